"""Typed entry records: each builder's output passes the schema check and round-trips through ``Entry``'s canonical
bytes; a bad field in each builder raises EntryError naming that field."""

from __future__ import annotations

import pytest

from glasslog import records
from glasslog.ledger.entries import Entry
from glasslog.records import EntryError, check_entry

T = "2026-12-05T23:00:00.123456Z"
D = "sha256:" + "ab" * 32
C = "sha256:" + "cd" * 32
ACT = {"scheme": "toploc", "topk": 2, "chunk": 4, "commitments": ["gAEAAQAC"] * 2}  # prompt + ceil(3 / 4) chunks

# (builder, good keyword arguments, the field to spoil, a bad value for it)
CASES = [
    (records.model_entry, {"event": "register", "model": D, "card": {"name": "m"}, "status": "active", "time": T,
                           "trusted": ["numpy.dtype"]}, "status", "retired"),
    (records.model_entry, {"event": "status", "model": D, "status": "suspended", "reason": "bias", "time": T},
     "model", "sha256:XYZ"),
    (records.deployment_entry, {"deployment": "loans", "visibility": "private", "description": "credit", "time": T},
     "visibility", "secret"),
    (records.access_entry, {"action": "weights-download", "model": D, "role": "researcher", "key_id": "anonymous",
                            "time": T}, "action", "weights-upload"),
    (records.key_entry, {"event": "issue", "key_id": "k1", "role": "operator", "name": "ops", "time": T},
     "event", "lose"),
    (records.witness_entry, {"event": "add", "url": "https://w.example", "key": "w+0a1b2c3d+AAAA", "time": T},
     "url", "ftp://w.example"),
    (records.decision_entry, {"model": D, "deployment": "loans", "time": T, "input": C, "output": None,
                              "subject": C, "out_of_domain": ["age"]}, "input", "raw input"),
    (records.decision_entry, {"model": D, "deployment": "loans", "time": T, "input": C, "output_commitment": C,
                              "foundation": D, "runtime": {"torch": "2"}}, "time", "yesterday"),
    (records.reported_decision_entry, {"model": D, "deployment": "search", "time": T, "input": C, "source": "otlp",
                                       "operation": "embeddings", "captured": {"input": True},
                                       "reported_model": {"request": "e5"}, "output": {"embeddings": 2, "dimensions": 8},
                                       "span": {"trace_id": "0" * 32, "span_id": "1" * 16}, "convention": "gen_ai",
                                       "tokens": {"input": 7}}, "deployment", ""),
    (records.outcome_entry, {"decision": 3, "time": T, "outcome": 1, "corrects": 7, "reason": "typo"},
     "decision", -1),
    (records.erasure_entry, {"time": T, "commitment": C, "kind": "input", "reason": "GDPR art. 17", "entry": 4},
     "reason", " "),
    (records.flag_entry, {"time": T, "category": "unfair", "by_role": "subject", "model": D, "reporter": C,
                          "decision": 5, "text": C}, "category", "rude"),
    (records.rating_entry, {"time": T, "flag": 9, "rating": "helpful", "rater": C}, "rating", "great"),
    (records.finding_entry, {"time": T, "source": "monitor", "check": "drift.inputs", "statistic": "p-value",
                             "verdict": "alert", "severity": "high", "by_role": "monitor", "value": 0.001,
                             "threshold": 0.01, "model": D, "deployment": "loans", "window": {"count": 100},
                             "evidence": {"n": 100}}, "value", float("nan")),
    (records.triage_entry, {"time": T, "item": 12, "action": "assign", "reason": "look", "key_id": "k1",
                            "assignee": "ana"}, "action", "ignore"),
    (records.metric_entry, {"time": T, "model": D, "deployment": "loans", "name": "survey", "value": 0.71,
                            "window": {"period": 2}}, "value", "high"),
    (records.generation_entry, {"model": D, "deployment": "chat", "time": T, "prompt": C,
                                "tokens": {"prompt": 5, "output": 3}, "sampling": {"do_sample": False, "seed": 1},
                                "runtime": {"torch": "2", "transformers": "4", "dtype": "float32"}, "activations": ACT,
                                "output": "hi!", "output_tokens": [1, 2, 3], "watermark": C},
     "output_tokens", [1, 2]),
    (records.reported_generation_entry, {"source": "otlp", "deployment": "chat", "time": T, "operation": "chat",
                                         "reported_model": {"request": "gpt"}, "captured": {"input": True,
                                                                                            "output": True},
                                         "prompt": C, "output_commitment": C, "tokens": {"prompt": 5, "output": None},
                                         "span": {"trace_id": "0" * 32, "span_id": "1" * 16}},
     "operation", "dance"),
    (records.watermark_entry, {"event": "reveal", "deployment": "chat", "scheme": "kgw", "key_commitment": C,
                               "time": T, "declaration": 0, "salt": "AAAA", "secret": {"key": "00"}},
     "event", "hide"),
]


def _id(case) -> str:
    return f"{case[0].__name__}-{case[2]}"


@pytest.mark.parametrize("build, fields, bad_field, bad_value", CASES, ids=[_id(c) for c in CASES])
def test_builder_output_checks_and_round_trips(build, fields, bad_field, bad_value):
    obj = build(**fields)
    kind = build.__name__.removesuffix("_entry").removeprefix("reported_")
    assert obj["type"] == kind and obj["v"] == records.SCHEMA_VERSION == 1
    assert {k: v for k, v in obj.items() if k not in ("type", "v")} == fields  # every field given, nothing else
    check_entry(obj)
    entry = Entry.from_object(obj)
    assert entry.type == kind
    assert Entry.from_bytes(entry.data) == entry
    assert entry.object() == obj


@pytest.mark.parametrize("build, fields, bad_field, bad_value", CASES, ids=[_id(c) for c in CASES])
def test_builder_names_the_bad_field(build, fields, bad_field, bad_value):
    with pytest.raises(EntryError) as err:
        build(**{**fields, bad_field: bad_value})
    assert err.value.field == bad_field
    assert f"field '{bad_field}'" in str(err.value)


def test_optional_fields_given_as_none_are_left_out_but_a_null_output_is_kept():
    flag = records.flag_entry(time=T, category="other", by_role="public", model=D, decision=None, text=None)
    assert set(flag) == {"type", "v", "time", "category", "by_role", "model"}
    decision = records.decision_entry(model=D, deployment="d", time=T, input=C, output=None)
    assert "output" in decision and decision["output"] is None
    with pytest.raises(EntryError) as err:  # neither output nor commitment
        records.decision_entry(model=D, deployment="d", time=T, input=C)
    assert err.value.field == "output"


def test_every_entry_type_has_a_builder_case():
    built = {c[0].__name__.removesuffix("_entry").removeprefix("reported_") for c in CASES}
    assert built == set(records.ENTRY_TYPES)


def test_check_entry_refuses_unknown_type_and_version():
    with pytest.raises(EntryError) as err:
        check_entry({"type": "gossip", "v": 1})
    assert err.value.field == "type"
    obj = records.rating_entry(time=T, flag=1, rating="somewhat", rater=C)
    with pytest.raises(EntryError) as err:
        check_entry({**obj, "v": 2})
    assert err.value.field == "v"
