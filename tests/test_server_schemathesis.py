"""Property-based tests of the HTTP API against its own OpenAPI spec (schemathesis 4).

Every operation of the spec is exercised with generated requests, as the public
(no credentials, or generated ones) and with an operator's and a supervisor's
key, and every response must be no 5xx, have a documented status code and
content type, and conform to the documented schema (error responses to the
RFC 9457 problem schema). Then the two batch writes are fuzzed from valid
batches, so the generated requests reach the model and the log: whatever the
perturbation, the answer is 201 with every row logged, or a 4xx problem with
nothing written.

Bounded (``max_examples`` per operation, derandomised) so the module runs in
about a minute.
"""

from __future__ import annotations

import json
import sqlite3
import tempfile
from pathlib import Path
from types import SimpleNamespace

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis.checks import (  # the built-in checks load lazily by name
    allow_header_conformance,
    content_type_conformance,
    ignored_auth,
    missing_required_header,
    negative_data_rejection,
    not_a_server_error,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
    unsupported_method,
)

from glasslog import capture
from glasslog.access import KeyStore
from glasslog.datasets.german_credit import load_german_credit
from glasslog.demo.run import run_demo
from glasslog.ledger import Ledger
from glasslog.server import create_app

# No 5xx, and every response documented and conforming (status, content type, headers, body schema); requests
# the schema forbids are refused; a credential, when one is required, is not ignored. Not included:
# positive_data_acceptance, since some refusals are semantic, beyond JSON Schema: "exactly one of index and
# leaf_hash", printable text, an index that names an outcome entry rather than a decision.
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_headers_conformance,
          response_schema_conformance, negative_data_rejection, missing_required_header, unsupported_method,
          allow_header_conformance, ignored_auth]
BOUNDED = settings(max_examples=25, derandomize=True, deadline=None, database=None,
                   suppress_health_check=list(HealthCheck))
DEP_PUB = "city.example/benefits-triage"


def log_size(data_dir) -> int:
    conn = sqlite3.connect(data_dir / "log.db")
    try:
        return conn.execute("SELECT COUNT(*) FROM entries").fetchone()[0]
    finally:
        conn.close()


# The spec is the app's own, loaded as schemathesis loads it from a running app. The app is built at
# import time over an empty log (the spec does not depend on the data); the ``world`` fixture then fills
# that log before the first request reaches it.
_LOG_DIR = tempfile.TemporaryDirectory(prefix="glasslog-schemathesis-")
_DATA = Path(_LOG_DIR.name) / "log"
Ledger.create(_DATA, "bank.example/credit-decisions").close()
APP = create_app(_DATA)
schema = schemathesis.openapi.from_asgi("/openapi.json", APP)


@pytest.fixture(scope="module")
def world():
    summary = run_demo(_DATA)
    X, _ = load_german_credit()
    lg = Ledger.open(_DATA)
    try:
        ks = KeyStore(lg)
        tokens = {"public": None}
        for role in ("operator", "supervisor", "researcher"):
            tokens[role] = ks.create(role, f"schemathesis {role}")[1]
        tokens["developer"] = ks.create("developer", "schemathesis developer", [summary.deployment])[1]
        wrapped = capture.wrap(lg, summary.model, DEP_PUB, visibility="public-service")
        wrapped.predict_proba(X.iloc[:20], subject_ids=[f"citizen-{i}" for i in range(20)])
        capture.record_outcomes(lg, [(i, 1) for i in wrapped.last_batch.indexes[:5]])
    finally:
        lg.close()
    return SimpleNamespace(dir=_DATA, tokens=tokens, model=summary.model, dep_priv=summary.deployment, inputs=X,
                           h=lambda role: {} if tokens[role] is None else {"Authorization": f"Bearer {tokens[role]}"})


@pytest.mark.parametrize("role", ["public", "operator", "supervisor"])
@schema.parametrize()
@BOUNDED
def test_every_operation_conforms_to_the_spec(case, role, world):
    if role != "public":  # keep the key; the public's runs send whatever Authorization schemathesis generates
        case.headers = {k: v for k, v in (case.headers or {}).items() if k.lower() != "authorization"}
    case.call_and_validate(headers=world.h(role), checks=CHECKS)


# ------------------------------------------------------------------ batches fuzzed from valid ones
JSON = st.recursive(
    st.none() | st.booleans() | st.integers(min_value=-(2**64), max_value=2**64)
    | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=6,
)


@st.composite
def perturbed_batch(draw, world):
    X = world.inputs
    n = draw(st.integers(1, 4))
    starts = draw(st.integers(0, len(X) - n))
    rows = [{"input": json.loads(X.iloc[starts + k].to_json())} for k in range(n)]
    for row in rows:
        if draw(st.booleans()):
            row["subject_id"] = draw(st.text(min_size=1, max_size=20))
    for _ in range(draw(st.integers(0, 2))):
        row = draw(st.sampled_from(rows))
        how = draw(st.sampled_from(["value", "drop", "add", "output", "extra-field"]))
        names = sorted(row["input"])
        if how == "value":
            row["input"][draw(st.sampled_from(names))] = draw(JSON)
        elif how == "drop":
            del row["input"][draw(st.sampled_from(names))]
        elif how == "add":
            row["input"][draw(st.text(max_size=10))] = draw(JSON)
        elif how == "output":
            row["output"] = draw(JSON)
        else:
            row[draw(st.sampled_from(["outcome", "label", "Input"]))] = draw(JSON)
    if draw(st.booleans()):  # all rows with client outputs
        for row in rows:
            row.setdefault("output", draw(JSON))
    return {"model": world.model, "deployment": draw(st.sampled_from([world.dep_priv, DEP_PUB])),
            "method": draw(st.sampled_from(["predict", "predict_proba"])), "rows": rows}


def test_fuzzed_decision_batches_are_all_or_nothing(world):
    operation = schema["/v1/decisions"]["POST"]
    statuses: list[int] = []

    @given(batch=perturbed_batch(world))
    @settings(BOUNDED, max_examples=60)
    def run(batch):
        before = log_size(world.dir)
        case = operation.Case(body=batch, media_type="application/json")
        response = case.call_and_validate(headers=world.h("operator"), checks=CHECKS)
        statuses.append(response.status_code)
        if response.status_code == 201:
            assert log_size(world.dir) == before + len(batch["rows"])
            assert [d["index"] for d in response.json()["decisions"]] == list(range(before, before + len(batch["rows"])))
        else:
            assert 400 <= response.status_code < 500
            assert response.headers["content-type"] == ["application/problem+json"]
            assert log_size(world.dir) == before
            problem = json.loads(response.content)
            assert problem["errors"][0]["field"].startswith(("rows", "method")), problem

    run()
    assert statuses.count(201) >= 10 and sum(s == 422 for s in statuses) >= 10, statuses  # both paths were exercised


def test_fuzzed_outcome_batches_are_all_or_nothing(world):
    operation = schema["/v1/outcomes"]["POST"]
    size = log_size(world.dir)
    statuses: list[int] = []
    lg = Ledger.open(world.dir)
    try:  # decisions with no outcome yet (a second outcome must be a correction) and the card's classes
        fresh = sorted({i for i, _ in lg.entries_of_type("decision")} - {o["decision"] for _, o in lg.entries_of_type("outcome")})
    finally:
        lg.close()

    @given(outcomes=st.lists(st.fixed_dictionaries({"decision": st.sampled_from(fresh) | st.integers(0, size + 5),
                                                    "outcome": st.sampled_from([0, 1]) | JSON}), min_size=1, max_size=4))
    @settings(BOUNDED, max_examples=40)
    def run(outcomes):
        before = log_size(world.dir)
        case = operation.Case(body={"outcomes": outcomes}, media_type="application/json")
        response = case.call_and_validate(headers=world.h("operator"), checks=CHECKS)
        statuses.append(response.status_code)
        assert log_size(world.dir) == (before + len(outcomes) if response.status_code == 201 else before)
        if response.status_code != 201:
            assert json.loads(response.content)["errors"][0]["field"].startswith("outcomes[")

    run()
    # both paths exercised (fewer successes than before: an outcome for a decision that has one is now a 409)
    assert statuses.count(201) >= 2 and statuses.count(422) >= 5, statuses


def test_fuzzed_searches_with_real_names(world):
    operation = schema["/v1/decisions"]["GET"]
    names = st.sampled_from([world.dep_priv, DEP_PUB, "nowhere"])
    statuses: list[int] = []

    @given(query=st.fixed_dictionaries({}, optional={
        "deployment": names, "model": st.sampled_from([world.model, "sha256:" + "0" * 64]),
        "output": st.sampled_from(["0", "1", '"approve"', "[1]", "{"]), "after": st.integers(0, 700).map(str),
        "limit": st.integers(1, 500), "since": st.sampled_from(["2000-01-01T00:00:00Z", "2999-01-01T00:00:00Z"])}),
        role=st.sampled_from(["public", "researcher", "developer", "supervisor"]))
    @settings(BOUNDED, max_examples=40)
    def run(query, role):
        case = operation.Case(query=query)
        response = case.call_and_validate(headers=world.h(role), checks=CHECKS)
        statuses.append(response.status_code)
        if response.status_code == 200:
            for d in response.json()["decisions"]:
                assert "subject_id" not in d or role == "supervisor"
                assert "input_values" not in d or role in ("supervisor", "researcher")

    run()
    assert statuses.count(200) >= 10, statuses
