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
