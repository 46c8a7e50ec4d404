"""The columnar copy (glasslog.storage.columnar) on each back end: built incrementally from the log, read from a
cursor, and scrubbed by erasure down to the stored bytes."""

from __future__ import annotations

import struct

import numpy as np

from glasslog.ledger import PrivateValue, commit
from glasslog.storage import columnar as C

from .test_behaviour import _DROP, MODEL, T0, decision, model_entry

SECRET_TEXT = "zz-only-in-one-input-7f3a"
SECRET_NUMBER = 987654.321


def _log_decisions(lg, inputs: list[dict], deployment: str = "credit-eu", outputs: list | None = None) -> list[int]:
    entries, private = [], []
    for k, value in enumerate(inputs):
        c_in, s_in, b_in = commit(value)
        out = outputs[k] if outputs is not None else {"label": k % 2, "proba": [0.25, 0.75]}
        c_out, s_out, b_out = commit(out)
        entries.append(decision(k, deployment=deployment, input=c_in, output=_DROP, output_commitment=c_out,
                                time=f"2026-11-29T08:00:{k % 60:02d}Z"))
        private += [PrivateValue(k, "input", c_in, s_in, b_in), PrivateValue(k, "output", c_out, s_out, b_out)]
    r = lg.append(entries, private)
    return list(range(r.first_index, r.tree_size))


def _raw(lg) -> bytes:
    upto, _ = lg.store.columnar.state()
    return b"".join(r.data for r in lg.store.columnar.chunks(0, upto + 1))


def test_built_on_first_use_and_decoded(store_kind):
    lg = store_kind
    lg.append([model_entry()])
    inputs = [{"age": 30 + k, "amount": 1000.5 * k, "purpose": ["car", "tv", None][k % 3], "flag": k % 2 == 0}
              for k in range(7)]
    inputs[3]["age"] = "unknown"  # a string in a numeric feature
    del inputs[4]["purpose"]  # a missing key
    idx = _log_decisions(lg, inputs)
    cols = C.read(lg.store)
    assert cols.upto == lg.size and cols.rows_read == 7
    (chunk,) = cols.groups[C.decision_group("credit-eu", MODEL)]
    assert C.plain([chunk], "index", np.int64, 0).tolist() == idx
    assert chunk.cols["time"].data[1] == np.datetime64("2026-11-29T08:00:01", "us").astype(np.int64)
    assert C.as_objects([chunk], "in:purpose").tolist() == ["car", "tv", None, "car", None, None, "car"]
    assert C.as_objects([chunk], "in:flag").tolist() == [True, False] * 3 + [True]
    age = C.as_objects([chunk], "in:age").tolist()
    assert age == [30, 31, 32, "unknown", 34, 35, 36] and type(age[0]) is int
    amount = C.as_float([chunk], "in:amount", lambda v: (np.array(v, dtype=float), np.zeros(len(v), bool)))[0]
    assert amount.tolist() == [1000.5 * k for k in range(7)]
    assert C.as_objects([chunk], "label").tolist() == [0, 1, 0, 1, 0, 1, 0]
    assert C.matrix([chunk], "proba")[:, 1].tolist() == [0.75] * 7
    assert C.plain([chunk], "committed", bool, False).all() and C.plain([chunk], "input.available", bool, False).all()


def test_a_cursor_reads_only_what_was_added(store_kind):
    lg = store_kind
    lg.append([model_entry()])
    _log_decisions(lg, [{"age": k} for k in range(5)])
    first = C.read(lg.store)
    assert first.rows_read == 5
    later = _log_decisions(lg, [{"age": 100 + k} for k in range(3)], deployment="credit-uk")
    more = C.read(lg.store, since=first.upto)
    assert more.rows_read == 3 and more.upto == lg.size
    (chunk,) = more.groups[C.decision_group("credit-uk", MODEL)]
    assert C.plain([chunk], "index", np.int64, 0).tolist() == later
    assert C.decision_group("credit-eu", MODEL) not in more.groups
    assert C.read(lg.store, since=more.upto).rows_read == 0


def test_erasure_reaches_the_stored_chunk_bytes(store_kind, open_ledger):
    lg = store_kind
    lg.append([model_entry()])
    inputs = [{"age": 30, "purpose": "car", "income": 1000.0} for _ in range(4)]
    inputs[2] = {"age": 41, "purpose": SECRET_TEXT, "income": SECRET_NUMBER}
    idx = _log_decisions(lg, inputs)
    C.refresh(lg.store)
    raw = _raw(lg)
    assert SECRET_TEXT.encode() in raw and struct.pack("<d", SECRET_NUMBER) in raw  # the copy holds them
    c_input = lg.private_values_for([idx[2]])[idx[2]]["input"][0]
    c_output = lg.private_values_for([idx[1]])[idx[1]]["output"][0]
    assert lg.erase_private(c_input, "GDPR Art. 17 request", entry_index=idx[2])
    assert lg.erase_private(c_output, "subject asked", entry_index=idx[1])
    raw = _raw(lg)
    assert SECRET_TEXT.encode() not in raw and struct.pack("<d", SECRET_NUMBER) not in raw
    other = open_ledger()  # another process reads the scrubbed copy
    cols = C.read(other.store)
    assert cols.erasures == 2
    chunks = cols.groups[C.decision_group("credit-eu", MODEL)]
    assert C.plain(chunks, "input.available", bool, False).tolist() == [True, True, False, True]
    assert C.as_objects(chunks, "in:purpose").tolist() == ["car", "car", None, "car"]
    assert np.isnan(C.as_float(chunks, "in:income", None)[0][2])
    assert C.as_objects(chunks, "label").tolist() == [0, None, 0, 1]
    assert np.isnan(C.matrix(chunks, "proba")[1]).all() and C.matrix(chunks, "proba")[0, 1] == 0.75


def test_an_erasure_during_a_build_is_scrubbed_when_the_piece_is_stored(store_kind):
    lg = store_kind
    lg.append([model_entry()])
    idx = _log_decisions(lg, [{"purpose": SECRET_TEXT}, {"purpose": "tv"}])
    rows = C.build(lg.store, 0, lg.size)  # decoded before the erasure ...
    assert any(SECRET_TEXT.encode() in r.data for r in rows)
    c_input = lg.private_values_for([idx[0]])[idx[0]]["input"][0]
    assert lg.erase_private(c_input, "erased meanwhile", entry_index=idx[0])
    assert lg.store.columnar.put(0, lg.size, rows)  # ... stored after it
    assert SECRET_TEXT.encode() not in _raw(lg)
    assert not lg.store.columnar.put(0, lg.size, rows)  # the built size moved: a second builder stores nothing
    assert C.read(lg.store).rows_read == 2


def test_outcomes_and_metrics(store_kind):
    lg = store_kind
    lg.append([model_entry()])
    idx = _log_decisions(lg, [{"age": 1}, {"age": 2}])
    c, s, b = commit(1)
    r = lg.append([{"type": "outcome", "v": 1, "decision": idx[0], "time": T0, "outcome_commitment": c},
                   {"type": "outcome", "v": 1, "decision": idx[1], "time": T0, "outcome": 0},
                   {"type": "metric", "v": 1, "time": T0, "model": MODEL, "deployment": "credit-eu", "name": "nps",
                    "value": 0.5}],
                  [PrivateValue(0, "outcome", c, s, b)])
    cols = C.read(lg.store)
    (o,) = cols.groups["o"]
    assert C.plain([o], "decision", np.int64, 0).tolist() == idx
    assert C.plain([o], "index", np.int64, 0).tolist() == [r.first_index, r.first_index + 1]
    assert C.as_objects([o], "value").tolist() == [1, 0] and C.plain([o], "have", bool, False).all()
    ((m_idx, m),) = cols.groups["m"][0].cols["json"].data
    assert m_idx == r.first_index + 2 and m["name"] == "nps"
    assert lg.erase_private(c, "outcome erased", entry_index=r.first_index)
    (o,) = C.read(lg.store).groups["o"]
    assert C.plain([o], "have", bool, False).tolist() == [False, True]
    assert C.as_objects([o], "value").tolist() == [None, 0]
