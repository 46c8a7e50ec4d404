"""Shared fixtures: the reference vectors in tests/vectors, fresh logs, and a throwaway PostgreSQL server."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# Stored in the repository (sources and licences in tests/vectors/README.md): a missing file is an error, not a skip.
VECTORS = Path(__file__).resolve().parent / "vectors"


def load_vector(name: str):
    return json.loads((VECTORS / name).read_text())


@pytest.fixture(scope="module")
def credit():
    """German Credit and the fitted scorecard: ``(X, y, train, evaluation, deploy, model)`` (credit_support.credit_world)."""
    from .credit_support import credit_world

    return credit_world(0)


@pytest.fixture
def vectors_dir() -> Path:
    return VECTORS


@pytest.fixture
def ledger(tmp_path):
    from glasslog.ledger import Ledger

    lg = Ledger.create(tmp_path / "log", "test.example/log")
    yield lg
    lg.close()


# ------------------------------------------------------------------ PostgreSQL (tests/pgserver.py)
@pytest.fixture(scope="session")
def pg_server():
    """One throwaway PostgreSQL server for the whole session (a PgServer, already started).

    Skips, saying why, where the server cannot run (no binaries, root without a 'postgres'
    user, psycopg missing). Closed (stopped, temporary directory removed) at the end of the
    session, and at interpreter exit should the session be cut short.
    """
    from .pgserver import PgServer, skip_reason

    reason = skip_reason()
    if reason:
        pytest.skip(reason)
    server = PgServer()
    try:
        server.start()
        yield server
    finally:
        server.close()


@pytest.fixture
def pg_url(pg_server):
    """The URL of a fresh, empty database (``t_<uuid hex>``) on ``pg_server``, dropped after the test.

    Restarts the server first if an earlier test killed or stopped it.
    """
    import uuid

    pg_server.start()  # a no-op when it is running
    name = f"t_{uuid.uuid4().hex}"
    url = pg_server.create_database(name)
    yield url
    try:
        pg_server.start()
        pg_server.drop_database(name)
    except Exception:  # noqa: BLE001 - best effort: the whole data directory goes at the end of the session
        pass


# ---------------------------------------------------------------- the slow tests
# The README's command runs everything; `pytest -m "not slow"` is the quick run while working (about a third of the
# time): it leaves out the tests that drive a real browser, build Go, start several server processes, run the
# scenario lab or load transformer weights.
SLOW_MODULES = {
    "test_web", "test_web_witness", "test_go_interop", "test_tiles_http", "test_scenarios", "test_server_schemathesis",
    "test_postgres_processes", "test_witness", "test_witnessed_log", "test_generation", "test_generation_watermark",
    "test_llm_encoder", "test_llm_registry", "test_llm_demo", "test_gateway", "test_ingest_otlp",
    "test_web_generations", "test_llm_register_http", "test_llm_skops_oms",
}


def pytest_configure(config):
    config.addinivalue_line("markers", "slow: a real browser, Go, several processes, the scenario lab or model weights "
                                       "(deselect with -m 'not slow')")


def pytest_collection_modifyitems(config, items):
    for item in items:
        if item.module is not None and item.module.__name__.rsplit(".", 1)[-1] in SLOW_MODULES:
            item.add_marker(pytest.mark.slow)
