"""The fast canonical-form check agrees with rfc8785 on random and tricky entries."""

from __future__ import annotations

import json
import random

import pytest
import rfc8785

from glasslog.ledger.entries import Entry
from glasslog.records import EntryError

BASE = {"type": "decision", "v": 1, "model": "sha256:" + "a" * 64, "deployment": "d", "time": "2026-11-29T08:00:00Z",
        "input": "sha256:" + "b" * 64}

TRICKY_FLOATS = [0.1, 1e-7, 1e21, 1e-6, 123456789012345680.0, 5e-324, 1.7976931348623157e308, -0.0, 2.5, 1e16, 1e15,
                 0.30000000000000004, 100.0, 1e-05]
TRICKY_TEXT = ["plain", "é", "\u2028", "\u0007", "tab\there", "quote\"", "back\\slash", "\U0001f600", "\ue000", "z\x7f"]


def random_value(rng: random.Random, depth: int = 0):
    kind = rng.randrange(7 if depth < 3 else 4)
    if kind == 0:
        return rng.choice(TRICKY_FLOATS) * rng.choice([1, -1]) if rng.random() < 0.5 else rng.uniform(-1e6, 1e6)
    if kind == 1:
        return rng.randrange(-(2**53) + 1, 2**53)
    if kind == 2:
        return rng.choice(TRICKY_TEXT)
    if kind == 3:
        return rng.choice([True, False, None])
    if kind in (4, 5):
        return {rng.choice(TRICKY_TEXT + ["a", "b", "B", "aa"]) + str(i): random_value(rng, depth + 1) for i in range(rng.randrange(4))}
    return [random_value(rng, depth + 1) for _ in range(rng.randrange(4))]


def test_fast_path_agrees_with_rfc8785_on_random_entries():
    rng = random.Random(20261129)
    accepted = rejected = 0
    for _ in range(3000):
        obj = dict(BASE, output=random_value(rng))
        canonical = rfc8785.dumps(obj)
        assert Entry.from_bytes(canonical).data == canonical
        accepted += 1
        # Python's own rendering differs from RFC 8785 for some floats and key orders: must be refused exactly then
        python_form = json.dumps(obj, ensure_ascii=False, sort_keys=True, separators=(",", ":")).encode()
        if python_form != canonical:
            with pytest.raises(EntryError, match="canonical"):
                Entry.from_bytes(python_form)
            rejected += 1
    assert accepted == 3000 and rejected > 100  # the random set does exercise the differences


@pytest.mark.parametrize("output,text", [("1.0", "1"), ("1e-07", "1e-7"), ("1E21", "1e+21"), ("-0", "0"), ("1e2", "100")])
def test_non_canonical_numbers_are_refused(output, text):
    canonical = rfc8785.dumps(dict(BASE, output=json.loads(text)))
    assert Entry.from_bytes(canonical)
    with pytest.raises(EntryError, match="canonical"):
        Entry.from_bytes(canonical.replace(f'"output":{text}'.encode(), f'"output":{output}'.encode()))


def test_canonical_json_fast_path_is_byte_identical_to_rfc8785():
    rng = random.Random(8785)
    fast = 0
    from glasslog.ledger import entries as E

    for _ in range(5000):
        value = random_value(rng)
        if isinstance(value, dict) and rng.random() < 0.5:
            value[rng.choice(["k", "é", "\U0001f600"])] = random_value(rng)
        try:
            expected = rfc8785.dumps(value)
        except Exception:
            with pytest.raises(EntryError):
                E.canonical_json(value)
            continue
        assert E.canonical_json(value) == expected, value
        fast += E._json_ready(value, 0) is not E._UNSURE
    assert fast > 1500  # the fast path does carry most values


@pytest.mark.parametrize("value", [1.0, -0.0, 1e15, 2.0**53 - 1, 2.0**53, 1e16, 0.0001, 0.00011, 1e-5, 123.456, 1e21,
                                   0.1 + 0.2, 9007199254740993, -(2**53) + 1, "\ud800", {"é": 1, "e": 2}, {"a": "\x1f\x7f"},
                                   [1e300, 5e-324], {"\ue000": 1, "\U0001f600": 2}])
def test_canonical_json_edge_values(value):
    from glasslog.ledger import entries as E

    try:
        expected = rfc8785.dumps(value)
    except Exception:
        with pytest.raises(EntryError):
            E.canonical_json(value)
        return
    assert E.canonical_json(value) == expected
