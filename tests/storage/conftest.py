"""Fixtures of the storage behaviour suite: every test runs on each back end (SQLite and PostgreSQL).

``store_url`` is None for SQLite (the data directory's file) or a fresh
PostgreSQL database's URL (the ``pg_url`` fixture of ``tests/conftest.py``,
which skips, saying why, where no PostgreSQL server can run). ``store_kind``
is a fresh ``Ledger`` on that back end; ``open_ledger()`` opens another
``Ledger`` on the same log (another writer).
"""

from __future__ import annotations

import pytest

from glasslog.ledger import Ledger

ORIGIN = "test.example/storage"


@pytest.fixture(params=["sqlite", "postgres"])
def store_url(request, monkeypatch):
    monkeypatch.delenv("GLASSLOG_STORE", raising=False)  # "sqlite" must mean the data directory's file
    if request.param == "sqlite":
        return None
    return request.getfixturevalue("pg_url")


@pytest.fixture
def store_kind(store_url, tmp_path):
    lg = Ledger.create(tmp_path / "log", ORIGIN, store=store_url)
    yield lg
    lg.close()


@pytest.fixture
def open_ledger(store_url, store_kind):
    opened: list[Ledger] = []

    def _open() -> Ledger:
        lg = Ledger.open(store_kind.data_dir, store=store_url)
        opened.append(lg)
        return lg

    yield _open
    for lg in opened:
        lg.close()
