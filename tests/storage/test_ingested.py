"""The ingested-telemetry side table (``WriteTx.put_ingested`` / ``LogStore.ingested``) on every back end:
keys are per deployment, written in the batch's transaction, a duplicate key fails the batch alone."""

from __future__ import annotations

import pytest

from glasslog.storage import StorageConflict

MODEL = "sha256:" + "ab" * 32


def _entry(i: int) -> dict:
    return {"type": "metric", "v": 1, "model": MODEL, "deployment": "d", "name": "m", "value": i,
            "time": "2026-01-01T00:00:00Z"}


def test_keys_are_stored_with_the_batch(store_kind, open_ledger):
    lg = store_kind
    k1, k2 = b"\x01" * 24, b"\x02" * 24
    lg.append([_entry(0), _entry(1)], within=lambda tx, first: tx.put_ingested([("d", k1, first), ("d", k2, first + 1)]))
    other = open_ledger()
    assert other.store.ingested("d", [k1, k2, b"\x03" * 24]) == {k1: 0, k2: 1}
    assert other.store.ingested("e", [k1]) == {}  # keys belong to a deployment
    assert other.store.ingested("d", []) == {}


def test_a_duplicate_key_fails_its_batch_and_leaves_nothing(store_kind):
    lg = store_kind
    key = b"\x07" * 24
    lg.append([_entry(0)], within=lambda tx, first: tx.put_ingested([("d", key, first)]))
    with pytest.raises(StorageConflict):
        lg.append([_entry(1)], within=lambda tx, first: tx.put_ingested([("d", key, first)]))
    assert lg.size == 1 and lg.store.ingested("d", [key]) == {key: 0}
    lg.append([_entry(2)], within=lambda tx, first: tx.put_ingested([("e", key, first)]))  # another deployment's
    assert lg.store.ingested("e", [key]) == {key: 1}


def test_a_failing_within_stores_no_keys(store_kind):
    lg = store_kind
    key = b"\x09" * 24

    def within(tx, first):
        tx.put_ingested([("d", key, first)])
        raise ValueError("refused")

    with pytest.raises(ValueError):
        lg.append([_entry(0)], within=within)
    assert lg.store.ingested("d", [key]) == {}
