"""The HTTP server: every endpoint x every role, each role's view, weights
disclosure logged as access entries, the kill switch, bad input and limits,
and the OpenAPI spec kept in the repository.

The log is the real demo log (German Credit scorecard, a private deployment,
300 decisions with subject ids and 300 outcomes) plus, through the HTTP API
itself as the operator: a public-service deployment, four more models (one per
disclosure policy), decisions computed by the server and decisions with
client-given outputs, outcomes, and receipt tokens for subjects.
"""

from __future__ import annotations

import base64
import hashlib
import json
import shutil
import sqlite3
from dataclasses import dataclass, field, replace
from pathlib import Path
from urllib.parse import quote

import pandas as pd
import pytest
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient

from glasslog import capture
from glasslog.access import AuthError, KeyStore
from glasslog.datasets.german_credit import credit_model, german_credit_features, load_german_credit
from glasslog.demo.run import run_demo
from glasslog.ledger import Ledger
from glasslog.registry import ClaimedMetrics, ModelCard, dump_model, fingerprint_frame
from glasslog.server import create_app
from glasslog.server.middleware import MAX_BODY_BYTES

ROOT = Path(__file__).resolve().parents[1]
OPENAPI_FILE = ROOT / "docs" / "openapi.json"

DEP_PUB = "city.example/benefits-triage"
ROLES = ("public", "subject", "developer", "developer_not_granted", "researcher", "supervisor", "operator",
         "revoked", "malformed")
KEY_ROLES = {"developer": "developer", "developer_not_granted": "developer", "researcher": "researcher",
             "supervisor": "supervisor", "operator": "operator", "revoked": "researcher"}
POLICIES = ("closed", "supervisors", "researchers", "developers", "public")
# Who may download weights under each disclosure policy (DESIGN.md: each level includes the ones before it).
WEIGHTS = {
    "closed": set(),
    "supervisors": {"supervisor"},
    "researchers": {"supervisor", "researcher"},
    "developers": {"supervisor", "researcher", "developer", "developer_not_granted"},
    "public": {"public", "subject", "developer", "developer_not_granted", "researcher", "supervisor", "operator"},
}
PERSONAL = {"personal_status_and_sex", "age_in_years", "telephone", "foreign_worker", "job", "present_residence_since",
            "number_of_people_being_liable_to_provide_maintenance_for", "housing"}
PROTECTED = {"personal_status_and_sex", "age_in_years", "foreign_worker"}


# ------------------------------------------------------------------ helpers
def problem(r, status: int, field: str | None = None) -> dict:
    """Assert an RFC 9457 problem response with this status (and, if given, naming this field)."""
    assert r.status_code == status, (r.status_code, r.text[:500])
    assert r.headers["content-type"] == "application/problem+json", r.headers["content-type"]
    body = r.json()
    assert set(body) >= {"type", "title", "status", "detail"}, body
    assert body["status"] == status and body["title"] and body["detail"], body
    assert body["type"] == "about:blank" or body["type"].startswith("https://glasslog.dev/problems/"), body
    if status == 401:
        assert r.headers.get("www-authenticate") == "Bearer"
    if field is not None:
        assert [e["field"] for e in body.get("errors", [])][:1] == [field], body
        assert body["errors"][0]["problem"], body
        assert body["detail"].startswith(f"{field}: "), body
    return body


def snapshot(data_dir: Path) -> list[str]:
    """Every row of the database, the log and everything beside it."""
    conn = sqlite3.connect(data_dir / "log.db")
    try:
        return list(conn.iterdump())
    finally:
        conn.close()


def log_size(data_dir: Path) -> int:
    conn = sqlite3.connect(data_dir / "log.db")
    try:
        return conn.execute("SELECT COUNT(*) FROM entries").fetchone()[0]
    finally:
        conn.close()


def row_input(X: pd.DataFrame, i: int) -> dict:
    return json.loads(X.iloc[i].to_json())


@dataclass
class World:
    """A log served over HTTP, with a credential for every role."""

    dir: Path
    client: TestClient
    tokens: dict[str, str | None]
    key_ids: dict[str, str]
    m0: str  # the demo model (disclosure 'researchers'), used in the private deployment
    models: dict[str, str]  # disclosure policy -> fingerprint
    dep_priv: str
    subject_index: int  # private deployment, decision of the 'subject' token
    subject_input: dict
    subject_id: str
    other_subject_index: int
    other_subject_token: str
    pub_subject_index: int
    pub_subject_token: str
    pub_indexes: list[int]
    pub_client_output_indexes: list[int]
    demo_index: int  # a decision logged by the SDK in the demo (private deployment)
    inputs: pd.DataFrame = field(repr=False, default=None)
    unregistered: tuple[bytes, dict] | None = None  # an artifact + card nobody registered yet

    def h(self, role: str) -> dict:
        tok = self.tokens[role]
        return {} if tok is None else {"Authorization": f"Bearer {tok}"}


def make_card(X, rows, policy: str, version: str, protected_for_researchers: bool = False) -> ModelCard:
    return ModelCard(
        name="German Credit scorecard (server tests)", version=version, provider="tests",
        intended_use="Tests of the glasslog server.",
        features=german_credit_features(X),
        output={"classes": [0, 1], "positive": 1, "meaning": "1 = bad credit risk"},
        training_data_fingerprint=fingerprint_frame(X.iloc[rows]),
        claimed=ClaimedMetrics({"accuracy": 0.7}, fingerprint_frame(X.iloc[rows[:50]]), 50),
        disclosure_policy=policy,
        researcher_access_protected=protected_for_researchers,
    )


def register_http(client, headers, artifact: bytes, card: dict):
    return client.post("/v1/models", headers=headers, files={"artifact": ("model.skops", artifact, "application/octet-stream")},
                       data={"card": json.dumps(card)})


@pytest.fixture(scope="module")
def base(tmp_path_factory) -> World:
    d = tmp_path_factory.mktemp("server") / "log"
    summary = run_demo(d)
    assert summary.ok and summary.tree_size == 602
    X, y = load_german_credit()

    lg = Ledger.open(d)
    ks = KeyStore(lg)
    _, op_token = ks.create("operator", "Example Bank operations")
    lg.close()

    client = TestClient(create_app(d))
    op = {"Authorization": f"Bearer {op_token}"}

    # A public-service deployment, declared over HTTP.
    r = client.post("/v1/deployments", headers=op, json={"name": DEP_PUB, "visibility": "public-service",
                                                         "description": "Benefit applications triaged in public."})
    assert r.status_code == 201, r.text
    assert r.json() == {"name": DEP_PUB, "visibility": "public-service", "description": "Benefit applications triaged in public.",
                        "embeddings": "skip", "declared_index": 603}  # after the operator key issue entry (602)

    # One more model per disclosure policy (the demo model is 'researchers').
    models = {"researchers": summary.model}
    for k, policy in enumerate(("closed", "supervisors", "developers", "public"), start=1):
        rows = list(range(k * 100, k * 100 + 400))
        est = credit_model(X, 0).fit(X.iloc[rows], y.iloc[rows])
        card = make_card(X, rows, policy, f"policy-{policy}", protected_for_researchers=(policy == "public"))
        r = register_http(client, op, dump_model(est), card.to_dict())
        assert r.status_code == 201, r.text
        body = r.json()
        assert body["status"] == "active" and body["card"]["disclosure_policy"] == policy
        assert body["weights_downloads"] == {} and body["history"][0]["reason"] == "registered"
        models[policy] = body["fingerprint"]
    rows = list(range(600, 1000))
    est = credit_model(X, 0).fit(X.iloc[rows], y.iloc[rows])
    unregistered = (dump_model(est), make_card(X, rows, "developers", "unregistered").to_dict())

    # Public-service decisions computed by the server, with subject ids.
    pub_rows = [{"input": row_input(X, i), "subject_id": f"citizen-{i:04d}"} for i in range(5)]
    r = client.post("/v1/decisions", headers=op, json={"model": models["public"], "deployment": DEP_PUB, "rows": pub_rows})
    assert r.status_code == 201, r.text
    pub = r.json()
    pub_indexes = [d["index"] for d in pub["decisions"]]
    assert all("receipt_token" in d for d in pub["decisions"])
    # ... and decisions whose outputs the client computed (two without a subject).
    client_rows = [{"input": row_input(X, i), "output": {"label": i % 2, "proba": [0.25, 0.75] if i % 2 else [0.75, 0.25]},
                    **({"subject_id": f"citizen-{i:04d}"} if i == 5 else {})} for i in range(5, 8)]
    r = client.post("/v1/decisions", headers=op, json={"model": models["public"], "deployment": DEP_PUB, "rows": client_rows})
    assert r.status_code == 201, r.text
    client_out = r.json()
    assert ["receipt_token" in d for d in client_out["decisions"]] == [True, False, False]
    # Private-deployment decisions over HTTP (the demo's model), to get subjects' receipt tokens there.
    priv_rows = [{"input": row_input(X, i), "subject_id": f"applicant-http-{i}"} for i in (10, 11)]
    r = client.post("/v1/decisions", headers=op, json={"model": summary.model, "deployment": summary.deployment,
                                                       "method": "predict", "rows": priv_rows})
    assert r.status_code == 201, r.text
    priv = r.json()["decisions"]
    # Outcomes of the public-service decisions.
    r = client.post("/v1/outcomes", headers=op, json={"outcomes": [{"decision": i, "outcome": 1} for i in pub_indexes[:3]]})
    assert r.status_code == 201, r.text

    lg = Ledger.open(d)
    ks = KeyStore(lg)
    tokens: dict[str, str | None] = {"public": None, "operator": op_token, "subject": priv[0]["receipt_token"],
                                     "malformed": "glk_not-a-key"}
    key_ids = {"operator": op_token.split("_")[1]}
    for role, key_role in KEY_ROLES.items():
        if role == "operator":
            continue
        grants = {"developer": [summary.deployment], "developer_not_granted": [DEP_PUB]}.get(role, [])
        rec, tok = ks.create(key_role, f"tests: {role}", grants)
        tokens[role], key_ids[role] = tok, rec.key_id
    ks.revoke(key_ids["revoked"])
    lg.close()

    return World(
        dir=d, client=client, tokens=tokens, key_ids=key_ids, m0=summary.model, models=models, dep_priv=summary.deployment,
        subject_index=priv[0]["index"], subject_input=priv_rows[0]["input"], subject_id=priv_rows[0]["subject_id"],
        other_subject_index=priv[1]["index"], other_subject_token=priv[1]["receipt_token"],
        pub_subject_index=pub_indexes[0], pub_subject_token=pub["decisions"][0]["receipt_token"], pub_indexes=pub_indexes,
        pub_client_output_indexes=[d["index"] for d in client_out["decisions"]], demo_index=summary.first_index + 7,
        inputs=X, unregistered=unregistered,
    )


@pytest.fixture
def fresh(base, tmp_path) -> World:
    """A private copy of the base log, for tests that write."""
    d = tmp_path / "log"
    shutil.copytree(base.dir, d)
    return replace(base, dir=d, client=TestClient(create_app(d)))


# ------------------------------------------------------------------ the authorisation matrix
DENY_WRITE = {"public": 401, "subject": 403, "developer": 403, "developer_not_granted": 403, "researcher": 403,
              "supervisor": 403, "operator": 403, "revoked": 401, "malformed": 401}


def _all(status: int, credentials_checked: bool = True) -> dict[str, int]:
    out = {r: status for r in ROLES}
    if credentials_checked:
        out.update(revoked=401, malformed=401)
    return out


def _write(allowed: dict[str, int]) -> dict[str, int]:
    return {**DENY_WRITE, **allowed}


def _weights(policy: str) -> dict[str, int]:
    return {r: (200 if r in WEIGHTS[policy] else 401 if r in ("revoked", "malformed") else 403) for r in ROLES}


def _private_decision_readers() -> dict[str, int]:
    return {"public": 403, "subject": 200, "developer": 200, "developer_not_granted": 403, "researcher": 200,
            "supervisor": 200, "operator": 200, "revoked": 401, "malformed": 401}


def _static(url: str, **kw):
    return lambda w: {"url": url, **kw}


# (method, route path) -> (request builder, expected status per role). Every route of the app has a row.
MATRIX: dict[tuple[str, str], tuple] = {
    ("GET", "/openapi.json"): (_static("/openapi.json"), _all(200, False)),
    ("GET", "/checkpoint"): (_static("/checkpoint"), _all(200, False)),
    ("GET", "/tile/{path:path}"): (_static("/tile/0/001"), _all(200, False)),
    ("GET", "/v1/log"): (_static("/v1/log"), _all(200)),
    ("GET", "/v1/entries/{index}"): (lambda w: {"url": f"/v1/entries/{w.subject_index}"}, _all(200)),
    ("GET", "/v1/proofs/inclusion"): (_static("/v1/proofs/inclusion", params={"index": "5"}), _all(200)),
    ("GET", "/v1/proofs/consistency"): (_static("/v1/proofs/consistency", params={"old": "302"}), _all(200)),
    ("GET", "/v1/checkpoints/{size}"): (_static("/v1/checkpoints/302"), _all(200)),
    ("GET", "/v1/models"): (_static("/v1/models"), _all(200)),
    ("GET", "/v1/models/{fingerprint}"): (lambda w: {"url": f"/v1/models/{w.m0}"}, _all(200)),
    ("GET", "/v1/models/{fingerprint}/artifact"): (lambda w: {"url": f"/v1/models/{w.m0}/artifact"}, _weights("researchers")),
    ("POST", "/v1/models"): (lambda w: {"url": "/v1/models", "files": {"artifact": ("m.skops", w.unregistered[0])},
                                        "data": {"card": json.dumps(w.unregistered[1])}}, _write({"operator": 201})),
    ("POST", "/v1/models/{fingerprint}/status"): (
        lambda w: {"url": f"/v1/models/{w.models['developers']}/status", "json": {"status": "suspended", "reason": "matrix test"}},
        _write({"supervisor": 200})),
    ("GET", "/v1/deployments"): (_static("/v1/deployments"), _all(200)),
    ("POST", "/v1/deployments"): (_static("/v1/deployments", json={"name": "bank.example/new", "visibility": "private"}),
                                  _write({"operator": 201})),
    ("GET", "/v1/deployments/stats"): (lambda w: {"url": "/v1/deployments/stats", "params": {"name": w.dep_priv}}, _all(200)),
    ("GET", "/v1/decisions/{index}"): (lambda w: {"url": f"/v1/decisions/{w.subject_index}"}, _private_decision_readers()),
    ("GET", "/v1/decisions"): (lambda w: {"url": "/v1/decisions", "params": {"deployment": w.dep_priv, "limit": "3"}},
                               _private_decision_readers()),
    ("GET", "/v1/receipt"): (_static("/v1/receipt"), {**_all(403), "public": 401, "subject": 200}),
    ("GET", "/v1/receipts/{index}"): (lambda w: {"url": f"/v1/receipts/{w.subject_index}"}, _private_decision_readers()),
    ("POST", "/v1/decisions"): (
        lambda w: {"url": "/v1/decisions", "json": {"model": w.models["public"], "deployment": DEP_PUB,
                                                    "rows": [{"input": row_input(w.inputs, 20)}]}}, _write({"operator": 201})),
    ("POST", "/v1/outcomes"): (lambda w: {"url": "/v1/outcomes", "json": {"outcomes": [{"decision": w.pub_indexes[4], "outcome": 0}]}},
                               _write({"operator": 201})),
    ("POST", "/v1/keys"): (_static("/v1/keys", json={"role": "researcher", "name": "University lab"}), _write({"operator": 201})),
    ("GET", "/v1/keys"): (_static("/v1/keys"), _write({"operator": 200})),
    ("DELETE", "/v1/keys/{key_id}"): (lambda w: {"url": f"/v1/keys/{w.key_ids['developer_not_granted']}"}, _write({"operator": 200})),
}


def _published_report(w, url: str) -> dict:
    """Publish a report beside the log (as glasslog audit --out does) and request it."""
    path = w.dir / url.lstrip("/") / "report.html"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("<!doctype html><title>Matrix</title><h1>Matrix</h1>")
    return {"url": url}


# The web pages (glasslog.server.routes.pages): HTML for everyone; a credential header is ignored there (the console sends its
# key to /v1 itself). tests/test_web.py tests what they show.
WEB_PAGES = {
    ("GET", "/"): (_static("/"), _all(200, False)),
    ("GET", "/models/{fingerprint}"): (lambda w: {"url": f"/models/{w.m0}"}, _all(200, False)),
    ("GET", "/decisions"): (_static("/decisions"), _all(200, False)),
    ("GET", "/decisions/{index}"): (lambda w: {"url": f"/decisions/{w.pub_indexes[0]}"}, _all(200, False)),
    ("GET", "/flags"): (_static("/flags"), _all(200, False)),
    ("GET", "/findings"): (_static("/findings"), _all(200, False)),
    ("GET", "/receipt"): (_static("/receipt"), _all(200, False)),
    ("GET", "/console"): (_static("/console"), _all(200, False)),
    ("GET", "/reports"): (_static("/reports"), _all(200, False)),
    ("GET", "/reports/{kind}/{name}"): (lambda w: _published_report(w, "/reports/audits/matrix"), _all(200, False)),
    ("GET", "/generations"): (_static("/generations"), _all(200, False)),
    ("GET", "/generations/{index}"): (lambda w: {"url": f"/generations/{_reported_generation(w)}"}, _all(200, False)),
}
MATRIX.update(WEB_PAGES)


def _reported_generation(w) -> int:
    """Append a generation of the public-service deployment as the gateway reports one (no model weights needed here;
    tests/test_web_generations.py reads generated ones by role) and return its index."""
    from glasslog.capture.generator import reported_generation

    lg = Ledger.open(w.dir)
    try:
        entry, private = reported_generation(source="gateway", deployment=DEP_PUB, visibility="public-service",
                                             operation="chat", model=None, reported_model={"request": "m", "response": "m"},
                                             prompt={"text": "hello"}, output=[{"role": "assistant", "content": "hi"}])
        return lg.append([entry], private).first_index
    finally:
        lg.close()


# Generations (glasslog.server.routes.generations): the same readers as decisions; a public-service one for everyone.
MATRIX[("GET", "/v1/generations")] = (_static("/v1/generations"), _all(200))
MATRIX[("GET", "/v1/generations/{index}")] = (lambda w: {"url": f"/v1/generations/{_reported_generation(w)}"}, _all(200))
MATRIX[("GET", "/v1/generations/{index}/receipt")] = (
    lambda w: {"url": f"/v1/generations/{_reported_generation(w)}/receipt"}, _all(200))
MATRIX[("POST", "/v1/replay")] = (_static("/v1/replay", json={"deployment": DEP_PUB}), _write({"supervisor": 200}))
# Watermark detection (glasslog.server.routes.watermark; tests/test_generation_watermark.py tests what it finds):
# supervisors only; this world's deployment declared no watermark, hence 404.
MATRIX[("POST", "/v1/watermark/detect")] = (_static("/v1/watermark/detect", json={"deployment": DEP_PUB, "text": "abc"}),
                                            _write({"supervisor": 404}))
# The monitors (glasslog.server.routes.monitors; tests/test_monitors.py tests what they find).
MATRIX[("GET", "/v1/findings")] = (_static("/v1/findings"), _all(200))
MATRIX[("POST", "/v1/monitors/run")] = (_static("/v1/monitors/run", json={"monitors": ["anomalies"], "record": False}),
                                        _write({"supervisor": 200, "researcher": 200, "operator": 200}))


OVERSIGHT_ROUTES = ("glasslog.server.routes.flags", "glasslog.server.routes.triage")  # flags, ratings, triage: their matrix is in tests/test_oversight_flags.py
INGEST_ROUTES = ("glasslog.server.routes.otlp",)  # OTLP/HTTP: errors are google.rpc.Status as the OTLP spec says; tests/test_ingest_otlp.py


def app_routes(app) -> set[tuple[str, str]]:
    out = set()
    for r in app.routes:
        if getattr(getattr(r, "endpoint", None), "__module__", None) in OVERSIGHT_ROUTES + INGEST_ROUTES:
            continue
        for m in getattr(r, "methods", None) or ():
            if m != "HEAD":
                out.add((m, r.path))
    return out


def test_no_third_party_script_docs(base):
    """Swagger UI and ReDoc load their scripts from a CDN on the console's origin: not served. The spec is."""
    for url in ("/docs", "/docs/oauth2-redirect", "/redoc"):
        assert base.client.get(url).status_code == 404, url
    assert base.client.get("/openapi.json").json()["info"]["title"] == "glasslog"


def test_matrix_covers_every_route(base):
    routes = app_routes(base.client.app)
    table = set(MATRIX)
    assert table == routes, f"routes without a policy row: {sorted(routes - table)}; stale rows: {sorted(table - routes)}"
    assert len(routes) == 32 + len(WEB_PAGES)
    for _, expected in MATRIX.values():
        assert set(expected) == set(ROLES)


@pytest.mark.parametrize("route", sorted(MATRIX), ids=lambda r: f"{r[0]} {r[1]}")
def test_authorisation_matrix(fresh, route):
    build, expected = MATRIX[route]
    request = build(fresh)
    # Allowed roles last, so denied attempts run against the same state the allowed one sees.
    order = sorted(ROLES, key=lambda r: expected[r] < 300)
    results = {}
    for role in order:
        before = log_size(fresh.dir)
        r = fresh.client.request(route[0], headers=fresh.h(role), **request)
        results[role] = r.status_code
        if r.status_code >= 400:
            problem(r, r.status_code)
            assert log_size(fresh.dir) == before, f"{role}: a refused request wrote to the log"
    assert results == expected


def test_nobody_can_rewrite_or_delete_entries(base):
    size = log_size(base.dir)
    for role in ROLES:
        for method, url in (("DELETE", "/v1/entries/5"), ("PUT", "/v1/entries/5"), ("PATCH", "/v1/entries/5"),
                            ("DELETE", f"/v1/decisions/{base.subject_index}"), ("PUT", f"/v1/decisions/{base.subject_index}"),
                            ("DELETE", f"/v1/models/{base.m0}"), ("PUT", "/v1/log"), ("DELETE", "/tile/0/000")):
            r = base.client.request(method, url, headers=base.h(role), json={"entry": {"type": "decision"}})
            problem(r, 405)
            assert "allow" in r.headers
    assert log_size(base.dir) == size


# ------------------------------------------------------------------ escalation attempts, explicitly
def test_researcher_gets_no_personal_inputs_and_no_subject_id(base):
    c = base.client
    # Demo model: the card marks 8 features personal (3 of them protected); researchers may not see protected ones.
    card = c.get(f"/v1/models/{base.m0}").json()["card"]
    personal = {f["name"] for f in card["features"] if f["personal"]}
    protected = {f["name"] for f in card["features"] if f["protected"]}
    assert personal == PERSONAL and protected == PROTECTED and card["researcher_access_protected"] is False
    for index in (base.demo_index, base.subject_index):
        v = c.get(f"/v1/decisions/{index}", headers=base.h("researcher")).json()
        assert v["withheld"] == sorted(personal | protected)
        assert set(v["input_values"]) == {f["name"] for f in card["features"]} - personal - protected
        assert "subject_id" not in v and "subject" in v  # the commitment only
        assert set(v["output"]) == {"label", "proba"} or set(v["output"]) == {"label"}
        full = c.get(f"/v1/decisions/{index}", headers=base.h("supervisor")).json()
        assert {k: full["input_values"][k] for k in v["input_values"]} == v["input_values"]
    # The receipt would open every commitment: researchers get it without the private values.
    rc = c.get(f"/v1/receipts/{base.subject_index}", headers=base.h("researcher")).json()
    assert "private" not in rc
    # Nor through the subjects' endpoint, a forged receipt token, or search.
    problem(c.get("/v1/receipt", headers=base.h("researcher")), 403)
    problem(c.get("/v1/receipt", headers={"Authorization": "Bearer grt_" + "A" * 43}), 401)
    page = c.get("/v1/decisions", params={"deployment": base.dep_priv, "limit": "20"}, headers=base.h("researcher")).json()
    assert len(page["decisions"]) == 20
    for v in page["decisions"]:
        assert "subject_id" not in v and not (set(v["input_values"]) & (PERSONAL | PROTECTED))


def test_researcher_sees_protected_attributes_only_where_the_card_allows(base):
    # The 'public' model's card allows researchers protected attributes (for group audits): still no other personal data.
    v = base.client.get(f"/v1/decisions/{base.pub_indexes[1]}", headers=base.h("researcher")).json()
    assert v["withheld"] == sorted(PERSONAL - PROTECTED)
    assert PROTECTED <= set(v["input_values"]) and not (set(v["input_values"]) & (PERSONAL - PROTECTED))
    assert v["input_values"]["age_in_years"] == row_input(base.inputs, 1)["age_in_years"]
    assert "subject_id" not in v


@pytest.mark.parametrize("policy", POLICIES)
def test_developer_weights_by_policy(fresh, policy):
    fp = fresh.models[policy]
    for role in ("developer", "developer_not_granted"):
        r = fresh.client.get(f"/v1/models/{fp}/artifact", headers=fresh.h(role))
        if policy in ("closed", "supervisors", "researchers"):
            body = problem(r, 403)
            assert f"'{policy}'" in body["detail"]
        else:
            assert r.status_code == 200
            assert "sha256:" + hashlib.sha256(r.content).hexdigest() == fp


def test_public_cannot_suspend_and_revoked_keys_are_refused(fresh):
    c, fp = fresh.client, fresh.models["public"]
    size = log_size(fresh.dir)
    body = {"status": "suspended", "reason": "I do not like it"}
    problem(c.post(f"/v1/models/{fp}/status", json=body), 401)
    for role in ("subject", "developer", "researcher", "operator"):
        problem(c.post(f"/v1/models/{fp}/status", json=body, headers=fresh.h(role)), 403)
    revoked = problem(c.post(f"/v1/models/{fp}/status", json=body, headers=fresh.h("revoked")), 401)
    assert f"API key {fresh.key_ids['revoked']} was revoked at " in revoked["detail"]
    for bad in ("Bearer glk_000000000000_" + "A" * 43, "Bearer grt_short", "Basic abc", "Bearer", "bearer  ",
                fresh.tokens["supervisor"]):  # a valid key without the Bearer scheme
        problem(c.post(f"/v1/models/{fp}/status", json=body, headers={"Authorization": bad}), 401)
    # A revoked key is refused everywhere it is checked, reads included.
    for url in ("/v1/log", "/v1/models", f"/v1/decisions/{fresh.pub_indexes[0]}", "/v1/keys"):
        problem(c.get(url, headers=fresh.h("revoked")), 401)
    assert c.get(f"/v1/models/{fp}").json()["status"] == "active"
    assert log_size(fresh.dir) == size


def test_subject_reads_only_their_own_decision(base):
    c = base.client
    own = c.get("/v1/receipt", headers=base.h("subject")).json()
    v = own["decision"]
    assert v["index"] == base.subject_index and v["subject_id"] == base.subject_id and v["input_values"] == base.subject_input
    assert v["output"] in ({"label": 0}, {"label": 1}) and "withheld" not in v
    rc = own["receipt"]
    assert rc["index"] == base.subject_index and set(rc["private"]) == {"input", "output", "subject"}
    assert json.loads(base64.b64decode(rc["private"]["subject"]["value"])) == base.subject_id
    # Another subject's decision or receipt in a private deployment: refused.
    for url in (f"/v1/decisions/{base.other_subject_index}", f"/v1/receipts/{base.other_subject_index}",
                f"/v1/decisions/{base.demo_index}"):
        problem(c.get(url, headers=base.h("subject")), 403)
    # Someone else's public-service decision: the public's view, no more.
    seen = c.get(f"/v1/decisions/{base.pub_subject_index}", headers=base.h("subject")).json()
    assert "subject_id" not in seen and "input_values" not in seen and "output" in seen
    # Search returns their own decision only, whatever the filters.
    page = c.get("/v1/decisions", params={"deployment": DEP_PUB}, headers=base.h("subject")).json()
    assert [d["index"] for d in page["decisions"]] == [base.subject_index] and page["next_after"] is None
    other = c.get("/v1/receipt", headers={"Authorization": f"Bearer {base.other_subject_token}"}).json()
    assert other["decision"]["index"] == base.other_subject_index and other["decision"]["subject_id"] == "applicant-http-11"


# ------------------------------------------------------------------ view contents per role
def test_views_of_a_private_decision(base):
    c, i = base.client, base.demo_index
    entry = c.get(f"/v1/entries/{i}").json()["entry"]
    assert entry["type"] == "decision" and "output" not in entry and entry["output_commitment"].startswith("sha256:")
    body = problem(c.get(f"/v1/decisions/{i}"), 403)
    assert "aggregate counts" in body["detail"]
    sup = c.get(f"/v1/decisions/{i}", headers=base.h("supervisor")).json()
    op = c.get(f"/v1/decisions/{i}", headers=base.h("operator")).json()
    dev = c.get(f"/v1/decisions/{i}", headers=base.h("developer")).json()
    res = c.get(f"/v1/decisions/{i}", headers=base.h("researcher")).json()
    assert sup == op
    assert sup["subject_id"].startswith("applicant-") and len(sup["input_values"]) == 20 and "withheld" not in sup
    assert sup["output"]["label"] in (0, 1) and sum(sup["output"]["proba"]) == pytest.approx(1)
    assert sup["outcomes"][0]["outcome"] in (0, 1) and sup["outcomes"][0]["outcome_commitment"].startswith("sha256:")
    for v in (sup, dev, res):
        assert {k: v[k] for k in ("index", "model", "deployment", "time", "input", "subject", "output_commitment")} == \
               {"index": i, **{k: entry[k] for k in ("model", "deployment", "time", "input", "subject", "output_commitment")}}
        assert v["output"] == sup["output"] and v["outcomes"] == sup["outcomes"]
    assert "input_values" not in dev and "subject_id" not in dev and "withheld" not in dev
    assert "subject_id" not in res and len(res["input_values"]) == 20 - len(PERSONAL | PROTECTED)
    # The subject id really is the one the demo scored: the supervisor's view opens its commitment.
    assert json.loads(c.get(f"/v1/entries/{i}").content)["entry"]["subject"] == entry["subject"]


def test_views_of_a_public_service_decision(base):
    c, i = base.client, base.pub_indexes[0]
    pub = c.get(f"/v1/decisions/{i}").json()
    assert pub["output"]["label"] in (0, 1) and len(pub["output"]["proba"]) == 2
    assert "input_values" not in pub and "subject_id" not in pub and "withheld" not in pub
    assert pub["outcomes"] == [{"index": pub["outcomes"][0]["index"], "time": pub["outcomes"][0]["time"], "outcome": 1}]
    sup = c.get(f"/v1/decisions/{i}", headers=base.h("supervisor")).json()
    assert sup["subject_id"] == "citizen-0000" and sup["input_values"] == row_input(base.inputs, 0)
    assert sup["output"] == pub["output"]
    subj = c.get("/v1/receipt", headers={"Authorization": f"Bearer {base.pub_subject_token}"}).json()["decision"]
    assert subj == sup
    # Client-given outputs are logged exactly as given.
    outs = [c.get(f"/v1/decisions/{j}").json()["output"] for j in base.pub_client_output_indexes]
    assert outs == [{"label": 1, "proba": [0.25, 0.75]}, {"label": 0, "proba": [0.75, 0.25]}, {"label": 1, "proba": [0.25, 0.75]}]
    # Public receipts carry no private values; the operator's carry all of them.
    assert "private" not in c.get(f"/v1/receipts/{i}").json()
    assert set(c.get(f"/v1/receipts/{i}", headers=base.h("operator")).json()["private"]) == {"input", "subject"}


def test_public_sees_only_counts_of_a_private_deployment(base):
    c = base.client
    stats = c.get("/v1/deployments/stats", params={"name": base.dep_priv}).json()
    assert stats["decisions"] == 302 and stats["decisions_with_subject"] == 302 and stats["outcomes"] == 300
    assert sum(stats["decisions_per_day"].values()) == 302 and stats["deployment"]["visibility"] == "private"
    assert "output_labels" not in stats
    problem(c.get("/v1/decisions", params={"deployment": base.dep_priv}), 403)
    # Without a filter the public's search covers public-service deployments only.
    page = c.get("/v1/decisions", params={"limit": "500"}).json()
    assert sorted(d["index"] for d in page["decisions"]) == sorted(base.pub_indexes + base.pub_client_output_indexes)
    assert {d["deployment"] for d in page["decisions"]} == {DEP_PUB}
    # Roles that may see outputs get the label counts.
    for role in ("supervisor", "researcher", "developer"):
        labels = c.get("/v1/deployments/stats", params={"name": base.dep_priv}, headers=base.h(role)).json()["output_labels"]
        assert sum(labels.values()) == 302 and set(labels) <= {"0", "1"}
    assert "output_labels" not in c.get("/v1/deployments/stats", params={"name": base.dep_priv},
                                        headers=base.h("developer_not_granted")).json()
    pub_stats = c.get("/v1/deployments/stats", params={"name": DEP_PUB}).json()
    assert pub_stats["decisions"] == 8 and pub_stats["decisions_with_subject"] == 6 and pub_stats["outcomes"] == 3
    ones = c.get("/v1/decisions", params={"deployment": DEP_PUB, "output": "1"}).json()["decisions"]
    assert len(ones) == pub_stats["output_labels"]["1"] and all(d["output"]["label"] == 1 for d in ones)


def test_developer_sees_granted_deployments_only(base):
    c = base.client
    page = c.get("/v1/decisions", params={"limit": "500"}, headers=base.h("developer")).json()
    # granted deployments, plus public-service ones (which everyone reads)
    assert {d["deployment"] for d in page["decisions"]} == {base.dep_priv, DEP_PUB}
    assert sum(d["deployment"] == base.dep_priv for d in page["decisions"]) == 302
    assert page["next_after"] is None
    page = c.get("/v1/decisions", params={"limit": "500"}, headers=base.h("developer_not_granted")).json()
    assert {d["deployment"] for d in page["decisions"]} == {DEP_PUB}
    problem(c.get("/v1/decisions", params={"deployment": base.dep_priv}, headers=base.h("developer_not_granted")), 403)
    problem(c.get(f"/v1/decisions/{base.demo_index}", headers=base.h("developer_not_granted")), 403)


def test_pagination_walks_every_decision_once(base):
    c, seen, after = base.client, [], None
    while True:
        params = {"deployment": base.dep_priv, "limit": "128", **({"after": str(after)} if after is not None else {})}
        page = c.get("/v1/decisions", params=params, headers=base.h("supervisor")).json()
        seen += [d["index"] for d in page["decisions"]]
        after = page["next_after"]
        if after is None:
            break
    assert len(seen) == 302 and seen == sorted(set(seen))
    first = c.get(f"/v1/decisions/{seen[0]}", headers=base.h("supervisor")).json()["time"]
    assert len(c.get("/v1/decisions", params={"deployment": base.dep_priv, "since": first, "limit": "500"},
                     headers=base.h("supervisor")).json()["decisions"]) == 302
    assert c.get("/v1/decisions", params={"deployment": base.dep_priv, "until": first},
                 headers=base.h("supervisor")).json()["decisions"] == []


# ------------------------------------------------------------------ weights downloads are logged
def test_each_download_is_one_access_entry_and_denials_write_nothing(fresh):
    c = fresh.client
    expected_counts: dict[str, dict[str, int]] = {p: {} for p in POLICIES}
    for policy in POLICIES:
        fp = fresh.models[policy]
        for role in ROLES:
            size = log_size(fresh.dir)
            before = snapshot(fresh.dir)
            r = c.get(f"/v1/models/{fp}/artifact", headers=fresh.h(role))
            if role in WEIGHTS[policy]:
                assert r.status_code == 200, (policy, role, r.text)
                assert r.headers["content-type"] == "application/octet-stream"
                assert "sha256:" + hashlib.sha256(r.content).hexdigest() == fp == r.headers["x-glasslog-fingerprint"]
                assert log_size(fresh.dir) == size + 1
                entry = c.get(f"/v1/entries/{size}").json()["entry"]
                key = fresh.key_ids.get(role, "anonymous")
                assert {k: entry[k] for k in ("type", "action", "model", "role", "key_id")} == \
                       {"type": "access", "action": "weights-download", "model": fp, "role": KEY_ROLES.get(role, role),
                        "key_id": key}
                assert entry["time"].endswith("Z")
                name = KEY_ROLES.get(role, role)
                expected_counts[policy][name] = expected_counts[policy].get(name, 0) + 1
            else:
                problem(r, 401 if role in ("revoked", "malformed") else 403)
                assert snapshot(fresh.dir) == before, (policy, role)
        assert c.get(f"/v1/models/{fp}").json()["weights_downloads"] == expected_counts[policy]
    assert expected_counts["public"] == {"public": 1, "subject": 1, "developer": 2, "researcher": 1, "supervisor": 1, "operator": 1}
    assert expected_counts["closed"] == {}
    # The public can count who fetched which weights, from the list too.
    listed = {m["fingerprint"]: m["weights_downloads"] for m in c.get("/v1/models").json()}
    assert listed == {fresh.models[p]: expected_counts[p] for p in POLICIES}
    # A download appears in the tiles like any entry: verifiers see it too.
    assert c.get("/v1/log").json()["tree_size"] == log_size(fresh.dir)


def test_download_refused_if_stored_artifact_was_altered(fresh):
    fp = fresh.models["public"]
    path = fresh.dir / "artifacts" / (fp.removeprefix("sha256:") + ".skops")
    path.write_bytes(path.read_bytes() + b"tampered")
    size = log_size(fresh.dir)
    body = problem(fresh.client.get(f"/v1/models/{fp}/artifact"), 503)
    assert "no longer matches" in body["detail"]
    assert log_size(fresh.dir) == size


# ------------------------------------------------------------------ the kill switch over HTTP
def test_kill_switch(fresh):
    c, fp = fresh.client, fresh.models["public"]
    batch = {"model": fp, "deployment": DEP_PUB, "rows": [{"input": row_input(fresh.inputs, 30), "subject_id": "citizen-0030"}]}
    lg = Ledger.open(fresh.dir)
    try:
        wrapped = capture.wrap(lg, fp, DEP_PUB)  # an SDK user wrapped the model while it was active
        problem(c.post(f"/v1/models/{fp}/status", headers=fresh.h("operator"),
                       json={"status": "suspended", "reason": "operator wants to"}), 403)

        r = c.post(f"/v1/models/{fp}/status", headers=fresh.h("supervisor"),
                   json={"status": "suspended", "reason": "disparity under review"})
        assert r.status_code == 200, r.text
        out = r.json()
        sup_key = fresh.key_ids["supervisor"]
        assert out["status"] == "suspended" and out["history"][-1]["reason"] == f"disparity under review (supervisor {sup_key})"
        status_index = out["entry_index"]
        # The public sees the status and the reason, on the model and in the log itself.
        public = c.get(f"/v1/models/{fp}").json()
        assert public["status"] == "suspended" and public["history"][-1] == {**out["history"][-1], "index": status_index}
        entry = c.get(f"/v1/entries/{status_index}").json()["entry"]
        assert {k: entry[k] for k in ("type", "event", "model", "status")} == {"type": "model", "event": "status", "model": fp,
                                                                              "status": "suspended"}
        assert entry["reason"] == f"disparity under review (supervisor {sup_key})"

        # HTTP decisions for it are refused, with nothing written.
        before = snapshot(fresh.dir)
        for rows in (batch["rows"], [{"input": row_input(fresh.inputs, 31), "output": {"label": 0}}]):
            body = problem(c.post("/v1/decisions", headers=fresh.h("operator"), json={**batch, "rows": rows}), 409)
            assert body["type"] == "https://glasslog.dev/problems/model-not-active"
            assert "suspended" in body["detail"] and "disparity under review" in body["detail"]
        assert snapshot(fresh.dir) == before
        # So are SDK decisions, through a model wrapped before the suspension or after it.
        with pytest.raises(capture.ModelNotActiveError, match="suspended"):
            wrapped.predict(fresh.inputs.iloc[30:32])
        with pytest.raises(capture.ModelNotActiveError, match="suspended"):
            capture.wrap(lg, fp, DEP_PUB).predict(fresh.inputs.iloc[30:32])
        assert snapshot(fresh.dir) == before
        # Suspending twice is a conflict; the operator cannot reinstate.
        problem(c.post(f"/v1/models/{fp}/status", headers=fresh.h("supervisor"), json={"status": "suspended", "reason": "again"}), 409)
        problem(c.post(f"/v1/models/{fp}/status", headers=fresh.h("operator"), json={"status": "active", "reason": "resume"}), 403)

        r = c.post(f"/v1/models/{fp}/status", headers=fresh.h("supervisor"), json={"status": "active", "reason": "review closed"})
        assert r.status_code == 200 and r.json()["status"] == "active"
        assert [h["status"] for h in c.get(f"/v1/models/{fp}").json()["history"]] == ["active", "suspended", "active"]
        r = c.post("/v1/decisions", headers=fresh.h("operator"), json=batch)
        assert r.status_code == 201, r.text
        assert len(wrapped.predict(fresh.inputs.iloc[30:32])) == 2

        # Withdrawal (operator may) is final.
        r = c.post(f"/v1/models/{fp}/status", headers=fresh.h("operator"), json={"status": "withdrawn", "reason": "replaced"})
        assert r.status_code == 200 and r.json()["status"] == "withdrawn"
        problem(c.post(f"/v1/models/{fp}/status", headers=fresh.h("supervisor"), json={"status": "active", "reason": "undo"}), 409)
        problem(c.post("/v1/decisions", headers=fresh.h("operator"), json=batch), 409)
        with pytest.raises(capture.ModelNotActiveError, match="withdrawn"):
            wrapped.predict(fresh.inputs.iloc[30:32])
    finally:
        lg.close()
    problem(c.post(f"/v1/models/{'sha256:' + '0' * 64}/status", headers=fresh.h("supervisor"),
                   json={"status": "suspended", "reason": "x"}), 404)


# ------------------------------------------------------------------ bad input and limits
def test_batch_with_one_bad_row_is_rejected_whole(fresh):
    c, op = fresh.client, fresh.h("operator")
    good = [{"input": row_input(fresh.inputs, i), "subject_id": f"citizen-{i}"} for i in range(40, 45)]
    c.get(f"/v1/decisions/{fresh.pub_indexes[0]}")  # warm up the search index so only the POSTs below could write
    before = snapshot(fresh.dir)

    def post(rows, **extra):
        return c.post("/v1/decisions", headers=op, json={"model": fresh.models["public"], "deployment": DEP_PUB, "rows": rows, **extra})

    renamed = [dict(r) for r in good]
    renamed[3] = {**good[3], "input": {("age" if k == "age_in_years" else k): v for k, v in good[3]["input"].items()}}
    body = problem(post(renamed), 422, "rows[3].input")
    assert "missing features ['age_in_years']" in body["detail"] and "unexpected features ['age']" in body["detail"]

    wrong_type = [dict(r) for r in good]
    wrong_type[2] = {**good[2], "input": {**good[2]["input"], "credit_amount": "1000"}}
    problem(post(wrong_type), 422, "rows[2].input.credit_amount")
    wrong_type[2] = {**good[2], "input": {**good[2]["input"], "purpose": ["car"]}}
    problem(post(wrong_type), 422, "rows[2].input.purpose")
    wrong_type[2] = {**good[2], "input": {**good[2]["input"], "credit_amount": 2**60}}
    problem(post(wrong_type), 422, "rows[2].input.credit_amount")
    wrong_type[2] = {**good[2], "input": {**good[2]["input"], "credit_amount": None}}  # the model refuses missing values
    problem(post(wrong_type), 422, "rows[2].input")

    with_outputs = [{**r, "output": {"label": 0}} for r in good]
    mixed = [dict(r) for r in with_outputs]
    del mixed[4]["output"]
    problem(post(mixed), 422, "rows[4].output")
    problem(post([good[0], *with_outputs[1:]]), 422, "rows[1].output")

    # NaN in a client-given output (Python's JSON reader accepts the NaN literal; the log must not).
    text = json.dumps({"model": fresh.models["public"], "deployment": DEP_PUB, "rows": with_outputs})
    text = text.replace('{"label": 0}', '{"label": NaN}', 2).replace('{"label": NaN}', '{"label": 0}', 1)
    body = problem(c.post("/v1/decisions", headers={**op, "content-type": "application/json"}, content=text), 422, "rows[1].output")
    assert "NaN" in body["detail"]
    text = json.dumps({"outcomes": [{"decision": fresh.pub_indexes[0], "outcome": 1}, {"decision": fresh.pub_indexes[1], "outcome": 0}]})
    body = problem(c.post("/v1/outcomes", headers={**op, "content-type": "application/json"},
                          content=text.replace('"outcome": 0', '"outcome": Infinity')), 422, "outcomes[1].outcome")

    problem(post([good[0]] * 1001), 422, "rows")
    problem(post([]), 422, "rows")
    problem(post([{**good[0], "subject_id": "bad\u0000id"}]), 422, "rows[0].subject_id")
    problem(post(good, method="predict_log_proba"), 422, "method")
    problem(post(good, deployment="nowhere"), 422, "deployment")
    problem(c.post("/v1/decisions", headers=op, json={"model": "sha256:" + "1" * 64, "deployment": DEP_PUB, "rows": good}), 404)

    # Outcomes: one bad row rejects the batch too.
    ok = {"decision": fresh.pub_indexes[0], "outcome": 1}
    problem(c.post("/v1/outcomes", headers=op, json={"outcomes": [ok, {"decision": 10**9, "outcome": 1}]}), 422, "outcomes[1].decision")
    problem(c.post("/v1/outcomes", headers=op, json={"outcomes": [ok, ok, {"decision": 0, "outcome": 1}]}), 422, "outcomes[2].decision")
    problem(c.post("/v1/outcomes", headers=op, json={"outcomes": [{"decision": "5", "outcome": 1}]}), 422, "outcomes[0].decision")
    problem(c.post("/v1/outcomes", headers=op, json={"outcomes": [{"decision": 5.0, "outcome": 1}]}), 422, "outcomes[0].decision")
    problem(c.post("/v1/outcomes", headers=op, json={"outcomes": [{"decision": True, "outcome": 1}]}), 422, "outcomes[0].decision")
    problem(c.post("/v1/outcomes", headers=op, json={"outcomes": [{"decision": -1, "outcome": 1}]}), 422, "outcomes[0].decision")

    assert snapshot(fresh.dir) == before
    r = post(good)
    assert r.status_code == 201 and len(r.json()["decisions"]) == 5


def test_unknown_fields_and_query_parameters_are_rejected(fresh):
    c, op = fresh.client, fresh.h("operator")
    before = snapshot(fresh.dir)
    row = {"input": row_input(fresh.inputs, 0)}
    body = problem(c.post("/v1/decisions", headers=op, json={"model": fresh.models["public"], "deployment": DEP_PUB, "rows": [row],
                                                              "priority": "high"}), 422, "priority")
    assert body["errors"][0]["problem"] == "unknown field"
    problem(c.post("/v1/decisions", headers=op, json={"model": fresh.models["public"], "deployment": DEP_PUB,
                                                      "rows": [row, {**row, "outcome": 1}]}), 422, "rows[1].outcome")
    problem(c.post("/v1/deployments", headers=op, json={"name": "x", "visibility": "private", "public": True}), 422, "public")
    problem(c.post("/v1/deployments", headers=op, json={"name": "x", "visibility": "open"}), 422, "visibility")
    problem(c.post("/v1/deployments", headers=op, json={"name": "tab\there", "visibility": "private"}), 422, "name")
    problem(c.post("/v1/keys", headers=op, json={"role": "researcher", "name": "lab", "admin": True}), 422, "admin")
    problem(c.post("/v1/keys", headers=op, json={"role": "root", "name": "lab"}), 422, "role")
    problem(c.post("/v1/keys", headers=op, json={"role": "developer", "name": "dev", "deployments": ["nowhere"]}), 422, "deployments[0]")
    problem(c.post("/v1/keys", headers=op, json={"role": "researcher", "name": "lab", "deployments": [DEP_PUB]}), 422, "deployments")
    problem(c.post("/v1/models/" + fresh.m0 + "/status", headers=fresh.h("supervisor"),
                   json={"status": "suspended", "reason": "x", "until": "2030-01-01"}), 422, "until")
    problem(c.post("/v1/models/" + fresh.m0 + "/status", headers=fresh.h("supervisor"),
                   json={"status": "suspended", "reason": "   "}), 422, "reason")
    problem(c.post("/v1/outcomes", headers=op, json={"outcomes": [{"decision": 5, "outcome": 1, "note": "x"}]}), 422, "outcomes[0].note")
    for url, params, name in (("/v1/log", {"verbose": "1"}, "verbose"),
                               ("/v1/decisions", {"deployment": DEP_PUB, "sort": "desc"}, "sort"),
                               ("/v1/models", {"status": "active"}, "status"),
                               ("/v1/decisions", [("limit", "5"), ("limit", "6")], "limit"),
                               ("/v1/proofs/inclusion", [("index", "1"), ("index", "2")], "index")):
        problem(c.get(url, params=params), 422, name)
    assert "allowed:" in problem(c.get("/v1/log", params={"x": "1"}), 422, "x")["detail"]
    assert snapshot(fresh.dir) == before


@pytest.mark.parametrize("bad", ["007", "+7", "-1", "7.0", "1e3", " 7", "7\n", "7_0", "0x10", "99999999999999999999", "７", ""])
def test_indexes_and_sizes_are_parsed_strictly(base, bad):
    c = base.client
    h = base.h("supervisor")
    if bad:  # an empty path segment is another route (or none)
        seg = quote(bad, safe="")
        problem(c.get(f"/v1/entries/{seg}"), 422, "index")
        problem(c.get(f"/v1/decisions/{seg}", headers=h), 422, "index")
        problem(c.get(f"/v1/receipts/{seg}", headers=h), 422, "index")
    problem(c.get("/v1/proofs/inclusion", params={"index": bad}), 422, "index")
    problem(c.get("/v1/proofs/inclusion", params={"index": "1", "tree_size": bad}), 422, "tree_size")
    problem(c.get("/v1/proofs/consistency", params={"old": bad}), 422, "old")
    problem(c.get("/v1/proofs/consistency", params={"old": "1", "new": bad}), 422, "new")
    problem(c.get("/v1/decisions", params={"after": bad}, headers=h), 422, "after")
    problem(c.get("/v1/decisions", params={"limit": bad}, headers=h), 422, "limit")


def test_index_limits(base):
    c, h = base.client, base.h("supervisor")
    size = c.get("/v1/log").json()["tree_size"]
    for url in (f"/v1/entries/{size}", "/v1/entries/999999999999999999", f"/v1/decisions/{size}", "/v1/receipts/999999999999999999"):
        problem(c.get(url, headers=h), 404)
    problem(c.get("/v1/decisions/0", headers=h), 404)  # a model entry, not a decision
    problem(c.get("/v1/proofs/inclusion", params={"index": str(size)}), 422, "index")
    problem(c.get("/v1/proofs/inclusion", params={"index": "1", "tree_size": str(size + 1)}), 422, "tree_size")
    problem(c.get("/v1/proofs/inclusion"), 422, "index")
    problem(c.get("/v1/proofs/inclusion", params={"index": "1", "leaf_hash": "AAAA"}), 422, "index")
    problem(c.get("/v1/proofs/inclusion", params={"leaf_hash": "not base64!"}), 422, "leaf_hash")
    problem(c.get("/v1/proofs/inclusion", params={"leaf_hash": base64.b64encode(b"x" * 32).decode()}), 404)
    problem(c.get("/v1/proofs/consistency", params={"old": "5", "new": "4"}), 422, "old")
    problem(c.get("/v1/proofs/consistency", params={"old": "5", "new": str(size + 1)}), 422, "new")
    problem(c.get("/v1/proofs/consistency"), 422, "old")
    for limit in ("0", "501"):
        problem(c.get("/v1/decisions", params={"limit": limit}, headers=h), 422, "limit")
    problem(c.get("/v1/decisions", params={"model": "sha256:ABC"}, headers=h), 422, "model")
    problem(c.get("/v1/decisions", params={"since": "yesterday"}, headers=h), 422, "since")
    problem(c.get("/v1/decisions", params={"deployment": "nowhere"}, headers=h), 404)
    problem(c.get("/v1/deployments/stats", params={"name": "nowhere"}), 404)
    problem(c.get("/v1/deployments/stats"), 422, "name")
    problem(c.get("/v1/models/sha256:0000"), 404)
    problem(c.get("/tile/0/x001"), 404)
    problem(c.get("/tile/9/000"), 404)
    problem(c.get("/v1/nothing"), 404)
    # A leaf hash finds its entry; the proof is the same as by index.
    by_index = c.get("/v1/proofs/inclusion", params={"index": "17"}).json()
    by_hash = c.get("/v1/proofs/inclusion", params={"leaf_hash": by_index["leaf_hash"]}).json()
    by_hex = c.get("/v1/proofs/inclusion", params={"leaf_hash": base64.b64decode(by_index["leaf_hash"]).hex()}).json()
    assert by_index == by_hash == by_hex and by_index["tree_size"] == size and len(by_index["proof"]) == 10


def test_bodies_over_the_limit_and_bad_bodies(fresh):
    c, op = fresh.client, fresh.h("operator")
    before = snapshot(fresh.dir)
    big = json.dumps({"name": "big", "visibility": "private", "description": "x" * MAX_BODY_BYTES}).encode()
    body = problem(c.post("/v1/deployments", headers={**op, "content-type": "application/json"}, content=big), 413)
    assert str(MAX_BODY_BYTES) in body["detail"]

    def chunks():  # no Content-Length: the limit holds for streamed bodies too
        for k in range(0, len(big), 65536):
            yield big[k : k + 65536]

    problem(c.post("/v1/deployments", headers={**op, "content-type": "application/json"}, content=chunks()), 413)
    # Even before authentication is looked at.
    problem(c.post("/v1/decisions", headers={"content-type": "application/json"}, content=big), 413)
    problem(c.post("/v1/deployments", headers={**op, "content-type": "application/json", "content-length": "12x"},
                   content=b'{"name": "x"}'), 400)
    body = problem(c.post("/v1/deployments", headers={**op, "content-type": "application/json"}, content=b'{"name": '), 422, "body")
    assert "not valid JSON" in body["detail"]
    problem(c.post("/v1/deployments", headers={**op, "content-type": "text/plain"}, content=b'{"name": "x", "visibility": "private"}'), 415)
    problem(c.post("/v1/deployments", headers=op, json=["name", "x"]), 422, "body")
    problem(c.post("/v1/deployments", headers=op, content=b'{"name": "x", "visibility": "private"}'), 415)  # no Content-Type
    problem(c.post("/v1/deployments", headers=op), 422, "body")  # no body at all
    deep = b'{"name": "x", "visibility": "private", "description": ' + b"[" * 100000 + b"]" * 100000 + b"}"
    problem(c.post("/v1/deployments", headers={**op, "content-type": "application/json"}, content=deep), 400)
    # Model registration: bad cards and artifacts.
    artifact, card = fresh.unregistered
    problem(register_http(c, op, artifact, {**card, "disclosure_policy": "everyone"}), 422, "card.disclosure_policy")
    problem(register_http(c, op, artifact, {k: v for k, v in card.items() if k != "claimed"}), 422, "card.claimed")
    problem(register_http(c, op, artifact, {**card, "features": card["features"][::-1]}), 422, "card.features")
    problem(register_http(c, op, artifact, {**card, "extra": {"notes": "x" * 70000}}), 422, "card")
    problem(register_http(c, op, artifact, {**card, "output": ["abc"]}), 422, "card")
    problem(register_http(c, op, b"not a skops file", card), 422, "artifact")
    r = c.post("/v1/models", headers=op, data={"card": "{not json"}, files={"artifact": ("m", artifact)})
    problem(r, 422, "card")
    problem(c.post("/v1/models", headers=op, data={"card": json.dumps(card)}), 422, "artifact")
    problem(register_http(c, op, artifact, [card]), 422, "card")
    # A typo must not fall back to a default (a misspelt disclosure policy would silently mean 'closed').
    typo = {k: v for k, v in card.items() if k != "disclosure_policy"} | {"disclosure_polcy": "public"}
    problem(register_http(c, op, artifact, typo), 422, "card.disclosure_polcy")
    problem(register_http(c, op, artifact, {**card, "claimed": {**card["claimed"], "auc": 0.9}}), 422, "card.claimed.auc")
    feats = [dict(f) for f in card["features"]]
    feats[2]["sensitive"] = True
    problem(register_http(c, op, artifact, {**card, "features": feats}), 422, "card.features[2].sensitive")
    r = c.post("/v1/models", headers=op, files={"artifact": ("m", artifact)}, data={"card": json.dumps(card), "force": "1"})
    problem(r, 422, "force")
    assert snapshot(fresh.dir) == before
    # The same artifact twice: a conflict.
    assert register_http(c, op, artifact, card).status_code == 201
    after = snapshot(fresh.dir)
    problem(register_http(c, op, artifact, card), 409)
    assert snapshot(fresh.dir) == after


def test_credentials_must_match_exactly(base):
    lg = Ledger.open(base.dir)
    try:
        ks = KeyStore(lg)
        assert ks.authenticate(base.tokens["researcher"]).role == "researcher"
        assert ks.authenticate(base.tokens["subject"]).entry_index == base.subject_index
        for token in (base.tokens["researcher"] + "\n", base.tokens["subject"] + "\n", " " + base.tokens["researcher"],
                      base.tokens["researcher"][:-1], base.tokens["researcher"].upper()):
            with pytest.raises(AuthError):
                ks.authenticate(token)
    finally:
        lg.close()


def test_model_uploads_have_their_own_limit(fresh, monkeypatch):
    import glasslog.server.middleware as server_app

    c, op = fresh.client, fresh.h("operator")
    artifact, card = fresh.unregistered
    monkeypatch.setattr(server_app, "MAX_ARTIFACT_BYTES", len(artifact) + 4096)
    before = snapshot(fresh.dir)
    big = artifact + b"\0" * 8192
    problem(register_http(c, op, big, card), 413)  # declared length over the limit
    req = c.build_request("POST", "/v1/models", headers=op, files={"artifact": ("m.skops", big)}, data={"card": json.dumps(card)})
    body = req.read()

    def chunks():  # streamed, no Content-Length: refused while it is read
        for k in range(0, len(body), 4096):
            yield body[k : k + 4096]

    problem(c.post("/v1/models", headers={**op, "content-type": req.headers["content-type"]}, content=chunks()), 413)
    assert snapshot(fresh.dir) == before
    # The JSON endpoints keep the small limit; an artifact under its own limit (beyond the JSON one) is fine.
    monkeypatch.setattr(server_app, "MAX_BODY_BYTES", 1024)
    problem(c.post("/v1/deployments", headers=op, json={"name": "x", "visibility": "private", "description": "d" * 2000}), 413)
    assert register_http(c, op, artifact, card).status_code == 201


def test_method_not_allowed_and_unknown_paths_are_problems(base):
    r = base.client.post("/v1/log")
    problem(r, 405)
    assert r.headers["allow"] == "GET"
    for method, url, allow in (("PUT", "/v1/models", "GET, POST"), ("OPTIONS", "/v1/keys", "GET, POST"),
                               ("DELETE", "/v1/decisions", "GET, POST"), ("GET", "/v1/keys/abc", "DELETE"),
                               ("POST", "/openapi.json", "GET, HEAD")):
        r = base.client.request(method, url)
        problem(r, 405)
        assert r.headers["allow"] == allow, (method, url)
    problem(base.client.get("/v2/log"), 404)


def test_keys_over_http(fresh):
    c, op = fresh.client, fresh.h("operator")
    r = c.post("/v1/keys", headers=op, json={"role": "developer", "name": "Fintech Ltd", "deployments": [DEP_PUB]})
    assert r.status_code == 201
    created = r.json()
    assert created["token"].startswith(f"glk_{created['key_id']}_") and created["deployments"] == [DEP_PUB]
    listed = {k["key_id"]: k for k in c.get("/v1/keys", headers=op).json()}
    assert listed[created["key_id"]] == {k: v for k, v in created.items() if k != "token"}
    assert all("token" not in k and "secret" not in json.dumps(k) for k in listed.values())
    assert listed[fresh.key_ids["revoked"]]["revoked_at"] is not None
    h = {"Authorization": f"Bearer {created['token']}"}
    assert c.get(f"/v1/decisions/{fresh.pub_indexes[0]}", headers=h).status_code == 200
    r = c.delete(f"/v1/keys/{created['key_id']}", headers=op)
    assert r.status_code == 200 and r.json()["revoked_at"]
    problem(c.get(f"/v1/decisions/{fresh.pub_indexes[0]}", headers=h), 401)
    problem(c.delete(f"/v1/keys/{created['key_id']}", headers=op), 404)
    problem(c.delete("/v1/keys/000000000000", headers=op), 404)


# ------------------------------------------------------------------ the OpenAPI spec kept in the repo
def test_openapi_spec_in_repo_is_current(tmp_path):
    lg = Ledger.create(tmp_path / "log", "test.example/openapi")
    lg.close()
    spec = create_app(tmp_path / "log").openapi()
    expected = json.dumps(spec, indent=2, sort_keys=True) + "\n"
    assert OPENAPI_FILE.read_text() == expected, (
        "docs/openapi.json is stale; regenerate it with: glasslog serve --write-openapi docs/openapi.json -d <any log dir>")
    # It documents every route of the app and every error as problem+json.
    paths = {(m.upper(), p) for p, ops in spec["paths"].items() for m in ops}
    app = create_app(tmp_path / "log")
    assert paths == {(m, r.path.replace(":path", "")) for r in app.routes if isinstance(r, APIRoute) and r.include_in_schema
                     for m in r.methods}  # the web pages (HTML, include_in_schema=False) are not API operations
    for p, ops in spec["paths"].items():
        if p in ("/v1/traces", "/v1/logs"):
            continue  # OTLP/HTTP: errors are google.rpc.Status in the request's encoding, as the OTLP spec says
        for m, op in ops.items():
            for code, resp in op["responses"].items():
                if int(code) >= 400:
                    assert list(resp["content"]) == ["application/problem+json"], (m, p, code)
    assert "HTTPValidationError" not in spec["components"]["schemas"]


def test_cli_writes_the_same_spec(tmp_path):
    from typer.testing import CliRunner

    from glasslog.cli import app as cli

    lg = Ledger.create(tmp_path / "log", "test.example/openapi")
    lg.close()
    out = tmp_path / "openapi.json"
    r = CliRunner().invoke(cli, ["serve", "--write-openapi", str(out), "-d", str(tmp_path / "log")])
    assert r.exit_code == 0, r.output
    assert out.read_text() == OPENAPI_FILE.read_text()


def test_signed_in_callers_see_at_least_the_public_view_of_public_service_decisions(base):
    """A subject or an ungranted developer reads public-service decisions with the public's view, never more."""
    other = base.pub_indexes[1]  # a public-service decision about someone else
    public = base.client.get(f"/v1/decisions/{other}").json()
    assert "output" in public and "input_values" not in public and "subject_id" not in public
    for role in ("subject", "developer"):  # the private-deployment subject; the developer granted only the private one
        r = base.client.get(f"/v1/decisions/{other}", headers=base.h(role))
        assert r.status_code == 200, (role, r.text)
        assert r.json() == public, role
        receipt = base.client.get(f"/v1/receipts/{other}", headers=base.h(role)).json()
        assert "private" not in receipt, role  # no openings of someone else's private values
    # the public-service subject still sees their own decision in full
    own = base.client.get(f"/v1/decisions/{base.pub_subject_index}",
                          headers={"Authorization": f"Bearer {base.pub_subject_token}"}).json()
    assert own["subject_id"] == "citizen-0000" and set(own["input_values"]) == set(base.inputs.columns)
    listed = base.client.get("/v1/decisions", params={"deployment": DEP_PUB}, headers=base.h("developer")).json()
    assert {d["index"] for d in listed["decisions"]} >= set(base.pub_indexes)


def test_verifier_endpoints_ignore_query_strings(base):
    plain = base.client.get("/tile/0/000")
    assert base.client.get("/tile/0/000?v=1").content == plain.content
    assert base.client.get("/checkpoint?cache=bust").status_code == 200


# ------------------------------------------------------------------ guards found by a new user's trial
def test_operator_cannot_issue_or_revoke_supervisor_keys_and_issues_are_logged(fresh):
    c, op = fresh.client, fresh.h("operator")
    problem(c.post("/v1/keys", headers=op, json={"role": "supervisor", "name": "Financial supervisory authority"}), 403)
    problem(c.delete(f"/v1/keys/{fresh.key_ids['supervisor']}", headers=op), 403)
    assert c.get("/v1/decisions?limit=1", headers=fresh.h("supervisor")).status_code == 200  # still works
    r = c.post("/v1/keys", headers=op, json={"role": "researcher", "name": "University audit lab"})
    assert r.status_code == 201
    size = c.get("/v1/log").json()["tree_size"]
    entry = c.get(f"/v1/entries/{size - 1}").json()["entry"]
    assert entry == {"type": "key", "v": 1, "event": "issue", "key_id": r.json()["key_id"], "role": "researcher",
                     "name": "University audit lab", "time": entry["time"]}
    assert c.delete(f"/v1/keys/{r.json()['key_id']}", headers=op).status_code == 200
    revoke = c.get(f"/v1/entries/{size}").json()["entry"]
    assert revoke["event"] == "revoke" and revoke["key_id"] == r.json()["key_id"]


def test_suspension_cannot_be_dodged_by_re_registering(fresh):
    from glasslog.registry import Registry

    c, op = fresh.client, fresh.h("operator")
    assert c.post(f"/v1/models/{fresh.m0}/status", headers=fresh.h("supervisor"),
                  json={"status": "suspended", "reason": "case FSA-1"}).status_code == 200
    with Ledger.open(fresh.dir) as lg:
        reg = Registry(lg)
        m = reg.get(fresh.m0)
        estimator = reg.load(fresh.m0)
    before = log_size(fresh.dir)
    body = problem(register_http(c, op, dump_model(estimator), m.card.to_dict()), 409)  # same weights, new bytes
    assert "already registered" in body["detail"] and "suspended" in body["detail"]
    changed = dict(m.card.to_dict(), version="1.0-renamed")
    body = problem(register_http(c, op, dump_model(estimator), changed), 409)
    assert "same data" in body["detail"]
    assert log_size(fresh.dir) == before


@pytest.mark.parametrize("output,message", [
    ("banana", "object with 'label'"),
    ({"label": 7}, "not one of the model card's classes"),
    ({"label": 1, "proba": [3, 2]}, "between 0 and 1"),
    ({"label": 1, "proba": [0.7, 0.2]}, "sums to"),
    ({"label": 1, "proba": [0.99, 0.01]}, "highest probability"),
    ({"label": 1, "score": 0.9}, "object with 'label'"),
])
def test_client_outputs_must_fit_the_model_card(fresh, output, message):
    c, op = fresh.client, fresh.h("operator")
    before = log_size(fresh.dir)
    rows = [{"input": row_input(fresh.inputs, 0), "output": {"label": 0, "proba": [0.6, 0.4]}},
            {"input": row_input(fresh.inputs, 1), "output": output}]
    body = problem(c.post("/v1/decisions", headers=op, json={"model": fresh.models["public"], "deployment": DEP_PUB, "rows": rows}),
                   422, "rows[1]")
    assert message in body["detail"]
    assert log_size(fresh.dir) == before


def test_null_outcomes_and_string_booleans_are_refused(fresh):
    c, op = fresh.client, fresh.h("operator")
    problem(c.post("/v1/outcomes", headers=op, json={"outcomes": [{"decision": fresh.pub_indexes[0], "outcome": None}]}),
            422, "outcomes[0].outcome")
    card = make_card(fresh.inputs, list(range(100, 200)), "public", "string-bools").to_dict()
    card["researcher_access_protected"] = "false"
    assert problem(register_http(c, op, fresh.unregistered[0], card), 422)["errors"][0]["field"].endswith("researcher_access_protected")


def test_anonymous_weight_downloads_are_rate_limited(fresh):
    from glasslog.server.deps import ANONYMOUS_DOWNLOADS_PER_HOUR

    c, fp = fresh.client, fresh.models["public"]
    before = log_size(fresh.dir)
    for _ in range(ANONYMOUS_DOWNLOADS_PER_HOUR):
        assert c.get(f"/v1/models/{fp}/artifact").status_code == 200
    r = c.get(f"/v1/models/{fp}/artifact")
    problem(r, 429)
    assert 3500 <= int(r.headers["retry-after"]) <= 3600  # seconds until the oldest download leaves the hour's window
    assert log_size(fresh.dir) == before + ANONYMOUS_DOWNLOADS_PER_HOUR
    assert c.get(f"/v1/models/{fp}/artifact", headers=fresh.h("researcher")).status_code == 200  # keys are not limited


def test_entry_bundles_are_served_gzip_compressed_once_and_exact(base):
    """Full bundles are immutable: compressed once per process; the bytes inflate to exactly the bundle."""
    import gzip

    from glasslog.ledger.tiles import encode_entry_bundle

    lg = Ledger.open(base.dir)
    expected_full = encode_entry_bundle([d for _, d in lg.entries(0, 256)])
    partial_width = lg.size % 256 or 256
    last = lg.size // 256
    expected_partial = encode_entry_bundle([d for _, d in lg.entries(last * 256, lg.size)])
    lg.close()
    c = base.client
    first = c.get("/tile/entries/000", headers={"Accept-Encoding": "gzip"})
    again = c.get("/tile/entries/000", headers={"Accept-Encoding": "br, gzip;q=0.5"})
    assert first.status_code == again.status_code == 200
    assert first.headers["content-encoding"] == "gzip" and first.headers["vary"] == "Accept-Encoding"
    assert first.content == again.content == expected_full  # httpx inflates
    for identity in ({"Accept-Encoding": "identity"}, {"Accept-Encoding": "gzip;q=0"}, {"Accept-Encoding": ""}):
        r = c.get("/tile/entries/000", headers=identity)
        assert "content-encoding" not in r.headers and r.content == expected_full, identity
    raw = c.get(f"/tile/entries/{last:03d}.p/{partial_width}", headers={"Accept-Encoding": "gzip"})
    assert raw.headers["content-encoding"] == "gzip" and raw.content == expected_partial
    again = c.get(f"/tile/entries/{last:03d}.p/{partial_width}", headers={"Accept-Encoding": "gzip"})
    assert again.content == expected_partial  # served from the cache: a partial bundle never changes either
    assert gzip.decompress(gzip.compress(expected_full, 1, mtime=0)) == expected_full


def test_a_body_repeating_a_key_is_refused_not_last_one_wins(fresh):
    op = {"Authorization": f"Bearer {fresh.tokens['operator']}", "Content-Type": "application/json"}
    before = fresh.client.get("/v1/log").json()["tree_size"]
    body = ('{"name": "dup-test", "visibility": "public-service", "visibility": "private", '
            '"description": "two visibilities"}')
    r = fresh.client.post("/v1/deployments", headers=op, content=body)
    assert r.status_code == 422 and r.headers["content-type"] == "application/problem+json"
    assert r.json()["errors"][0]["field"] == "body" and "duplicate key 'visibility'" in r.json()["errors"][0]["problem"]
    nested = '{"outcomes": [{"decision": 0, "outcome": 1, "outcome": 0}]}'
    r = fresh.client.post("/v1/outcomes", headers=op, content=nested)
    assert r.status_code == 422 and "duplicate key 'outcome'" in r.json()["detail"]
    assert fresh.client.get("/v1/log").json()["tree_size"] == before
