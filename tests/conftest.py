"""Shared fixtures: the reference vectors in ../shared/vectors and fresh logs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
VECTORS = ROOT.parent / "shared" / "vectors"


def load_vector(name: str):
    path = VECTORS / name
    if not path.exists():
        pytest.skip(f"reference vectors not found at {path} (the shared folder beside the repo is absent)")
    return json.loads(path.read_text())


@pytest.fixture
def vectors_dir() -> Path:
    if not VECTORS.is_dir():
        pytest.skip(f"reference vectors not found at {VECTORS} (the shared folder beside the repo is absent)")
    return VECTORS


@pytest.fixture
def ledger(tmp_path):
    from glasslog.ledger import Ledger

    lg = Ledger.create(tmp_path / "log", "test.example/log")
    yield lg
    lg.close()
