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
