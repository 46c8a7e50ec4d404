"""The glasslog HTTP server: tiles any verifier can read, a JSON API with a view
for each overseer, weights disclosure by tier, and the kill switch.

Read API for verifiers (no credentials), C2SP tlog-tiles:
``GET /checkpoint``, ``GET /tile/<L>/<N>[.p/<W>]``, ``GET /tile/entries/<N>[.p/<W>]``.

JSON API under ``/v1`` (see ``docs/openapi.json`` and ``docs/API.md``).
Credentials: ``Authorization: Bearer glk_...`` (API key) or ``Bearer grt_...``
(a subject's receipt token); none for the public. Errors are RFC 9457
``application/problem+json`` with ``errors: [{"field", "problem"}]``.

Concurrency: each worker thread has its own connection to the log; batches
are serialised by SQLite's write lock. Each append is one transaction, so a
shutdown (uvicorn finishes in-flight requests on SIGINT/SIGTERM) never
leaves a half-written batch.
"""


import base64
import binascii
import json
import re
import threading
from pathlib import Path
from typing import Annotated, Any, Literal

import pandas as pd
from fastapi import Depends, FastAPI, File, Form, Header, Query, Request, UploadFile
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.gzip import GZipMiddleware
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from pydantic import BaseModel, ConfigDict, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

from .. import __version__, capture
from ..access import (
    PUBLIC,
    AuthError,
    KeyStore,
    Principal,
    decision_view,
    may_download_weights,
    may_read_decision,
    new_receipt_token,
    store_receipt_tokens,
)
from ..ledger import EntryError, Ledger, LedgerError, utc_now
from ..ledger.tiles import TilePathError, parse_tile_path
from ..registry import (
    ArtifactError,
    CardError,
    Deployment,
    DeploymentError,
    Deployments,
    ModelCard,
    Registry,
    RegistryError,
)
from .index import SearchIndex

__all__ = ["create_app", "MAX_BODY_BYTES", "MAX_ARTIFACT_BYTES"]

MAX_BODY_BYTES = 4 * 1024 * 1024
"""Largest JSON request body accepted, in bytes."""
MAX_ARTIFACT_BYTES = 256 * 1024 * 1024
"""Largest model artifact upload accepted, in bytes."""
MAX_BATCH = 1000
"""Most rows in one decision or outcome batch."""

_UINT = r"^(0|[1-9][0-9]{0,17})$"
_FINGERPRINT = r"^sha256:[0-9a-f]{64}$"
_TIME = r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,9})?Z$"
IMMUTABLE = "public, max-age=31536000, immutable"


# ---------------------------------------------------------------- problems
class Problem(Exception):
    """An RFC 9457 problem to return."""

    def __init__(self, status: int, title: str, detail: str, errors: list[dict] | None = None, kind: str | None = None):
        super().__init__(detail)
        self.status, self.title, self.detail, self.errors, self.kind = status, title, detail, errors or [], kind


def _problem_response(status: int, title: str, detail: str, errors: list[dict] | None = None,
                      kind: str | None = None, headers: dict | None = None) -> JSONResponse:
    body = {"type": f"https://glasslog.dev/problems/{kind}" if kind else "about:blank", "title": title,
            "status": status, "detail": detail}
    if errors:
        body["errors"] = errors
    return JSONResponse(body, status_code=status, media_type="application/problem+json", headers=headers)


def forbidden(detail: str) -> Problem:
    return Problem(403, "Forbidden", detail, kind="forbidden")


def not_found(detail: str) -> Problem:
    return Problem(404, "Not Found", detail, kind="not-found")


def invalid(field: str, problem: str, status: int = 422) -> Problem:
    return Problem(status, "Invalid request", f"{field}: {problem}", [{"field": field, "problem": problem}], kind="invalid")


# ------------------------------------------------------------ request models
class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class DecisionRow(Strict):
    input: dict[str, Any] = Field(description="Feature name -> value, exactly the model card's features.")
    subject_id: str | None = Field(None, min_length=1, max_length=200, description="Who the decision is about.")
    output: Any = Field(None, description="The model's output, if computed by the client; omit to let the server compute it.")


class DecisionBatch(Strict):
    model: str = Field(pattern=_FINGERPRINT)
    deployment: str = Field(min_length=1, max_length=200)
    method: Literal["predict", "predict_proba"] = "predict_proba"
    rows: list[DecisionRow] = Field(min_length=1, max_length=MAX_BATCH)


class OutcomeRow(Strict):
    decision: int = Field(ge=0, le=2**53, description="Index of the decision entry.")
    outcome: Any = Field(description="The observed outcome (JSON value).")


class OutcomeBatch(Strict):
    outcomes: list[OutcomeRow] = Field(min_length=1, max_length=MAX_BATCH)


class StatusChangeRequest(Strict):
    status: Literal["active", "suspended", "withdrawn"]
    reason: str = Field(min_length=1, max_length=2000)


class DeploymentRequest(Strict):
    name: str = Field(min_length=1, max_length=200)
    visibility: Literal["public-service", "private"]
    description: str = Field("", max_length=2000)


class KeyRequest(Strict):
    role: Literal["operator", "supervisor", "researcher", "developer"]
    name: str = Field(min_length=1, max_length=200)
    deployments: list[str] = Field(default_factory=list, max_length=100)


# -------------------------------------------------------------- per-thread state
class Context:
    """One worker thread's connection to the log and the helpers around it."""

    def __init__(self, data_dir: Path):
        self.ledger = Ledger.open(data_dir)
        self.registry = Registry(self.ledger)
        self.deployments = Deployments(self.ledger)
        self.keys = KeyStore(self.ledger)
        self.index = SearchIndex(self.ledger)
        self.wrapped: dict[tuple[str, str], capture.CapturedModel] = {}


def _b64(b: bytes) -> str:
    return base64.b64encode(b).decode()


def _uint(value: str | None, field: str) -> int | None:
    if value is None:
        return None
    if not re.match(_UINT, value):
        raise invalid(field, f"must be a non-negative decimal integer without sign or leading zeros, got {value!r}")
    return int(value)


def create_app(data_dir: str | Path) -> FastAPI:
    """Build the app for the log in ``data_dir``.

    Raises:
        LedgerError: there is no log in ``data_dir``.
    """
    data_dir = Path(data_dir)
    Ledger.open(data_dir).close()  # fail now, not on the first request
    local = threading.local()

    def ctx() -> Context:
        c = getattr(local, "ctx", None)
        if c is None:
            c = local.ctx = Context(data_dir)
        return c

    app = FastAPI(
        title="glasslog",
        version=__version__,
        description="A verifiable, append-only log of a deployed model's decisions, bound to its weights, "
                    "with a view for each overseer. Verifier endpoints follow C2SP tlog-tiles.",
    )
    app.add_middleware(GZipMiddleware, minimum_size=1024)

    @app.middleware("http")
    async def limit_body(request: Request, call_next):
        limit = MAX_ARTIFACT_BYTES if request.url.path == "/v1/models" else MAX_BODY_BYTES
        length = request.headers.get("content-length")
        if length is not None:
            if not length.isdigit():
                return _problem_response(400, "Bad Request", "Content-Length must be a decimal number", kind="invalid")
            if int(length) > limit:
                return _problem_response(413, "Payload Too Large", f"request body is {length} bytes; the limit is {limit}",
                                         kind="too-large")
        return await call_next(request)

    # ------------------------------------------------------------ errors
    @app.exception_handler(Problem)
    async def on_problem(request: Request, exc: Problem):
        headers = {"WWW-Authenticate": "Bearer"} if exc.status == 401 else None
        return _problem_response(exc.status, exc.title, exc.detail, exc.errors, exc.kind, headers)

    @app.exception_handler(RequestValidationError)
    async def on_validation(request: Request, exc: RequestValidationError):
        errors = []
        for e in exc.errors():
            loc = [str(p) for p in e.get("loc", ()) if p not in ("body", "query", "path", "header")]
            errors.append({"field": ".".join(loc) or "body", "problem": e.get("msg", "invalid")})
        detail = "; ".join(f"{e['field']}: {e['problem']}" for e in errors[:5])
        return _problem_response(422, "Invalid request", detail, errors, kind="invalid")

    @app.exception_handler(StarletteHTTPException)
    async def on_http(request: Request, exc: StarletteHTTPException):
        return _problem_response(exc.status_code, {404: "Not Found", 405: "Method Not Allowed"}.get(exc.status_code, "Error"),
                                 str(exc.detail), kind="http")

    @app.exception_handler(AuthError)
    async def on_auth(request: Request, exc: AuthError):
        return _problem_response(401, "Unauthorized", str(exc), kind="unauthorized", headers={"WWW-Authenticate": "Bearer"})

    @app.exception_handler(capture.ModelNotActiveError)
    async def on_inactive(request: Request, exc: Exception):
        return _problem_response(409, "Model not active", str(exc), kind="model-not-active")

    @app.exception_handler(LedgerError)
    async def on_ledger(request: Request, exc: LedgerError):
        return _problem_response(503, "Log unavailable", str(exc), kind="log-unavailable")

    # ------------------------------------------------------------ auth
    def principal(authorization: Annotated[str | None, Header(description="Bearer glk_... or grt_...")] = None) -> Principal:
        if authorization is None:
            return PUBLIC
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer" or not token:
            raise AuthError("Authorization must be 'Bearer <API key or receipt token>'")
        return ctx().keys.authenticate(token.strip())

    Who = Annotated[Principal, Depends(principal)]

    def reject_unknown_query(request: Request) -> None:
        route = request.scope.get("route")
        dependant = getattr(route, "dependant", None)
        if dependant is None:
            return
        allowed: set[str] = set()
        stack = [dependant]
        while stack:
            d = stack.pop()
            allowed.update(p.alias for p in d.query_params)
            stack.extend(d.dependencies)
        unknown = sorted(set(request.query_params) - allowed)
        if unknown:
            raise invalid(unknown[0], f"unknown query parameter; allowed: {', '.join(sorted(allowed)) or 'none'}")

    app.router.dependencies.append(Depends(reject_unknown_query))

    def require(who: Principal, *roles: str) -> None:
        if who.role not in roles:
            raise forbidden(f"role {who.role} may not do this; it needs {' or '.join(roles)}")

    # ------------------------------------------------------- verifier API
    @app.get("/checkpoint", response_class=PlainTextResponse, tags=["verifiers"],
             summary="Latest signed checkpoint (C2SP tlog-checkpoint in a C2SP signed note)")
    def get_checkpoint() -> Response:
        return PlainTextResponse(ctx().ledger.checkpoint(), media_type="text/plain; charset=utf-8",
                                 headers={"Cache-Control": "public, max-age=2"})

    @app.get("/tile/{path:path}", tags=["verifiers"], summary="C2SP tlog-tiles hash tile or entry bundle",
             responses={200: {"content": {"application/octet-stream": {}}}})
    def get_tile(path: str) -> Response:
        try:
            ref = parse_tile_path("tile/" + path)
        except TilePathError as exc:
            raise not_found(str(exc)) from None
        try:
            data = ctx().ledger.entry_bundle(ref.index, ref.width) if ref.is_entries else ctx().ledger.tile(ref.level, ref.index, ref.width)
        except LookupError as exc:
            raise not_found(str(exc)) from None
        return Response(data, media_type="application/octet-stream", headers={"Cache-Control": IMMUTABLE})

    # ------------------------------------------------------------ log & proofs
    @app.get("/v1/log", tags=["log"], summary="Origin, verifier key, tree size and latest checkpoint")
    def get_log() -> dict:
        lg = ctx().ledger
        return {"origin": lg.origin, "verifier_key": lg.verifier_key, "tree_size": lg.signed_size(),
                "checkpoint": lg.checkpoint()}

    @app.get("/v1/entries/{index}", tags=["log"], summary="One entry (entries hold commitments, never personal values)")
    def get_entry(index: str) -> dict:
        i = _uint(index, "index")
        lg = ctx().ledger
        if i >= lg.signed_size():
            raise not_found(f"no entry {i} in the signed tree (size {lg.signed_size()})")
        data = lg.entry(i)
        from ..ledger import merkle

        return {"index": i, "leaf_hash": _b64(merkle.leaf_hash(data)), "entry": json.loads(data)}

    @app.get("/v1/proofs/inclusion", tags=["log"], summary="Inclusion proof by index or by leaf hash (RFC 9162 2.1.3)")
    def get_inclusion(index: str | None = None, leaf_hash: str | None = None, tree_size: str | None = None) -> dict:
        c = ctx()
        n = _uint(tree_size, "tree_size")
        signed = c.ledger.signed_size()
        if n is None:
            n = signed
        if n > signed:
            raise invalid("tree_size", f"must be at most the signed tree size {signed}")
        if (index is None) == (leaf_hash is None):
            raise invalid("index", "give exactly one of index and leaf_hash")
        if leaf_hash is not None:
            try:
                raw = base64.b64decode(leaf_hash, validate=True) if len(leaf_hash) != 64 else bytes.fromhex(leaf_hash)
            except (binascii.Error, ValueError):
                raise invalid("leaf_hash", "must be 32 bytes as base64 or 64 hex digits") from None
            if len(raw) != 32:
                raise invalid("leaf_hash", "must be 32 bytes")
            i = c.index.index_of_leaf(raw)
            if i is None or i >= n:
                raise not_found(f"no entry with that leaf hash in the tree of size {n}")
        else:
            i = _uint(index, "index")
        if i >= n:
            raise invalid("index", f"must be below the tree size {n}")
        proof = c.ledger.inclusion_proof(i, n)
        return {"index": i, "tree_size": n, "leaf_hash": _b64(c.ledger.leaf_hash(i)), "root_hash": _b64(c.ledger.root(n)),
                "proof": [_b64(p) for p in proof]}

    @app.get("/v1/proofs/consistency", tags=["log"], summary="Consistency proof between two tree sizes (RFC 9162 2.1.4)")
    def get_consistency(old: str, new: str | None = None) -> dict:
        c = ctx()
        signed = c.ledger.signed_size()
        m = _uint(old, "old")
        n = _uint(new, "new")
        n = signed if n is None else n
        if n > signed:
            raise invalid("new", f"must be at most the signed tree size {signed}")
        if m > n:
            raise invalid("old", f"must be at most new ({n})")
        proof = c.ledger.consistency_proof(m, n)
        return {"old_size": m, "new_size": n, "old_root": _b64(c.ledger.root(m)), "new_root": _b64(c.ledger.root(n)),
                "proof": [_b64(p) for p in proof]}

    # ------------------------------------------------------------ models
    def _model_public(m, c: Context) -> dict:
        d = m.to_dict()
        downloads: dict[str, int] = {}
        for _, e in c.ledger.entries_of_type("access"):
            if e.get("model") == m.fingerprint:
                downloads[e["role"]] = downloads.get(e["role"], 0) + 1
        d["weights_downloads"] = downloads
        return d

    def _model(fingerprint: str, c: Context):
        try:
            return c.registry.get(fingerprint)
        except RegistryError as exc:
            raise not_found(str(exc)) from None

    @app.get("/v1/models", tags=["models"], summary="Registered models: card, claimed metrics, disclosure policy, status")
    def list_models() -> list[dict]:
        c = ctx()
        return [_model_public(m, c) for m in c.registry.list()]

    @app.get("/v1/models/{fingerprint}", tags=["models"], summary="One model with its status history")
    def get_model(fingerprint: str) -> dict:
        c = ctx()
        return _model_public(_model(fingerprint, c), c)

    @app.get("/v1/models/{fingerprint}/artifact", tags=["models"], responses={200: {"content": {"application/octet-stream": {}}}},
             summary="Download the weights (skops artifact) where the disclosure policy allows; logged as an access entry")
    def get_artifact(fingerprint: str, who: Who) -> Response:
        c = ctx()
        m = _model(fingerprint, c)
        if not may_download_weights(who.role, m.card.disclosure_policy):
            raise forbidden(f"the disclosure policy of this model is '{m.card.disclosure_policy}'; role {who.role} may not download its weights")
        data = c.registry.artifact(m.fingerprint)
        c.ledger.append([{"type": "access", "v": 1, "action": "weights-download", "model": m.fingerprint, "role": who.role,
                          "key_id": who.key_id or "anonymous", "time": utc_now()}])
        name = m.fingerprint.removeprefix("sha256:")[:16]
        return Response(data, media_type="application/octet-stream",
                        headers={"Content-Disposition": f'attachment; filename="{name}.skops"', "X-Glasslog-Fingerprint": m.fingerprint})

    @app.post("/v1/models", status_code=201, tags=["models"], summary="Register a model: skops artifact and model card (operator)")
    async def register_model(who: Who, artifact: Annotated[UploadFile, File(description="skops artifact")],
                             card: Annotated[str, Form(description="model card JSON (ModelCard.to_dict)")]) -> dict:
        require(who, "operator")
        data = await artifact.read()
        if len(data) > MAX_ARTIFACT_BYTES:
            raise Problem(413, "Payload Too Large", f"artifact is {len(data)} bytes; the limit is {MAX_ARTIFACT_BYTES}", kind="too-large")
        try:
            card_obj = ModelCard.from_dict(json.loads(card))
        except json.JSONDecodeError as exc:
            raise invalid("card", f"not valid JSON: {exc}") from None
        except CardError as exc:
            raise invalid(f"card.{exc.field}", str(exc).split(": ", 1)[-1]) from None
        except (TypeError, AttributeError):
            raise invalid("card", "must be a JSON object with the model card fields") from None
        c = ctx()
        try:
            m = c.registry.register_artifact(data, card_obj)
        except ArtifactError as exc:
            raise invalid("artifact", str(exc)) from None
        except RegistryError as exc:
            raise Problem(409, "Conflict", str(exc), kind="conflict") from None
        return _model_public(m, c)

    @app.post("/v1/models/{fingerprint}/status", tags=["models"],
              summary="Suspend or reinstate (supervisor), withdraw (operator or supervisor); logged with the reason")
    def set_status(fingerprint: str, body: StatusChangeRequest, who: Who) -> dict:
        if body.status == "withdrawn":
            require(who, "supervisor", "operator")
        else:
            require(who, "supervisor")
        c = ctx()
        m = _model(fingerprint, c)
        try:
            result = c.registry.set_status(m.fingerprint, body.status, f"{body.reason} ({who.role} {who.key_id})")
        except RegistryError as exc:
            raise Problem(409, "Conflict", str(exc), kind="conflict") from None
        out = _model_public(c.registry.get(m.fingerprint), c)
        out["entry_index"] = result.first_index
        return out

    # ------------------------------------------------------------ deployments
    @app.get("/v1/deployments", tags=["deployments"], summary="Declared deployments with their visibility")
    def list_deployments() -> list[dict]:
        return [d.to_dict() for d in ctx().deployments.list()]

    @app.post("/v1/deployments", status_code=201, tags=["deployments"], summary="Declare a deployment (operator)")
    def declare_deployment(body: DeploymentRequest, who: Who) -> dict:
        require(who, "operator")
        try:
            return ctx().deployments.declare(body.name, body.visibility, body.description).to_dict()
        except DeploymentError as exc:
            raise Problem(409, "Conflict", str(exc), kind="conflict") from None

    def _deployment(name: str, c: Context) -> Deployment:
        d = c.deployments.find(name)
        if d is None:
            raise not_found(f"unknown deployment {name!r}")
        return d

    @app.get("/v1/deployments/stats", tags=["deployments"], summary="Aggregate counts for a deployment (public)")
    def deployment_stats(name: str, who: Who) -> dict:
        c = ctx()
        d = _deployment(name, c)
        out = {"deployment": d.to_dict(), **c.index.stats(d.name)}
        if d.public or who.role in ("supervisor", "operator", "researcher") or (who.role == "developer" and d.name in who.deployments):
            out["output_labels"] = c.index.label_counts(d.name)
        return out

    # ------------------------------------------------------------ decisions
    def _decision(i: int, who: Who, c: Context) -> dict:
        if i >= c.ledger.signed_size():
            raise not_found(f"no entry {i}")
        entry = json.loads(c.ledger.entry(i))
        if entry.get("type") != "decision":
            raise not_found(f"entry {i} is a {entry.get('type')} entry, not a decision")
        d = c.deployments.find(entry["deployment"])
        public = d.public if d is not None else False
        if not may_read_decision(who, i, entry["deployment"], public):
            if who.role == "public":
                raise forbidden(f"deployment {entry['deployment']!r} is private: the public sees aggregate counts only "
                                f"(GET /v1/deployments/stats?name=...)")
            raise forbidden(f"role {who.role} may not read decisions of deployment {entry['deployment']!r}")
        private = c.ledger.private_values_for([i]).get(i, {})
        card = c.registry.get(entry["model"]).card if entry["model"] else None
        view = decision_view(who, i, entry, private, card)
        outcomes = []
        for oi in c.index.outcomes_of(i):
            o = json.loads(c.ledger.entry(oi))
            ov = {"index": oi, "time": o["time"]}
            if "outcome" in o:
                ov["outcome"] = o["outcome"]
            else:
                ov["outcome_commitment"] = o["outcome_commitment"]
                if who.role != "public":
                    opened = c.ledger.private_values_for([oi]).get(oi, {}).get("outcome")
                    if opened:
                        ov["outcome"] = json.loads(opened[2])
            outcomes.append(ov)
        view["outcomes"] = outcomes
        return view

    @app.get("/v1/decisions/{index}", tags=["decisions"], summary="One decision, as the caller's role may see it")
    def get_decision(index: str, who: Who) -> dict:
        return _decision(_uint(index, "index"), who, ctx())

    @app.get("/v1/decisions", tags=["decisions"], summary="Search decisions by model, deployment, time range and output (paginated)")
    def search_decisions(who: Who, model: Annotated[str | None, Query(pattern=_FINGERPRINT)] = None,
                         deployment: Annotated[str | None, Query(max_length=200)] = None,
                         since: Annotated[str | None, Query(pattern=_TIME)] = None,
                         until: Annotated[str | None, Query(pattern=_TIME)] = None,
                         output: Annotated[str | None, Query(max_length=200, description="output label, e.g. 1 or approve")] = None,
                         after: str | None = None, limit: Annotated[int, Query(ge=1, le=500)] = 50) -> dict:
        c = ctx()
        all_deployments = c.deployments.list()
        if who.role in ("supervisor", "operator", "researcher"):
            visible = [d.name for d in all_deployments]
        elif who.role == "developer":
            visible = [d.name for d in all_deployments if d.name in who.deployments]
        elif who.role == "subject":
            return {"decisions": [_decision(who.entry_index, who, c)], "next_after": None}
        else:
            visible = [d.name for d in all_deployments if d.public]
        if deployment is not None:
            if deployment not in {d.name for d in all_deployments}:
                raise not_found(f"unknown deployment {deployment!r}")
            if deployment not in visible:
                raise forbidden(f"role {who.role} may not list decisions of deployment {deployment!r}"
                                + (" (private: see GET /v1/deployments/stats)" if who.role == "public" else ""))
            visible = [deployment]
        label = None
        if output is not None:
            try:
                label = json.dumps(json.loads(output))
            except json.JSONDecodeError:
                label = json.dumps(output)
        start = _uint(after, "after")
        found = c.index.search(model=model, deployments=visible, since=since, until=until, label=label,
                               after=-1 if start is None else start, limit=limit)
        signed = c.ledger.signed_size()
        found = [i for i in found if i < signed]
        return {"decisions": [_decision(i, who, c) for i in found],
                "next_after": found[-1] if len(found) == limit else None}

    def _receipt(i: int, who: Principal, c: Context) -> dict:
        include_private = who.role in ("subject", "supervisor", "operator")
        return capture.receipt(c.ledger, i, include_private=include_private).to_dict()

    @app.get("/v1/receipt", tags=["subjects"], summary="A subject's own decision and receipt (receipt token as bearer)")
    def get_own_receipt(who: Who) -> dict:
        if who.role != "subject":
            raise Problem(401, "Unauthorized", "send your receipt token: Authorization: Bearer grt_...", kind="unauthorized")
        c = ctx()
        return {"decision": _decision(who.entry_index, who, c), "receipt": _receipt(who.entry_index, who, c)}

    @app.get("/v1/receipts/{index}", tags=["decisions"], summary="Receipt (entry, checkpoint, inclusion proof) of a decision")
    def get_receipt(index: str, who: Who) -> dict:
        c = ctx()
        i = _uint(index, "index")
        _decision(i, who, c)  # access check
        return _receipt(i, who, c)

    @app.post("/v1/decisions", status_code=201, tags=["decisions"],
              summary="Append a batch of decisions (operator); returns receipts, and receipt tokens for subjects")
    def append_decisions(body: DecisionBatch, who: Who) -> dict:
        require(who, "operator")
        c = ctx()
        m = _model(body.model, c)
        d = c.deployments.find(body.deployment)
        if d is None:
            raise invalid("deployment", "is not declared; POST /v1/deployments first")
        names = m.card.feature_names
        for i, row in enumerate(body.rows):
            missing = [n for n in names if n not in row.input]
            extra = [k for k in row.input if k not in names]
            if missing or extra:
                detail = "; ".join(p for p in (f"missing features {missing}" if missing else "",
                                                f"unexpected features {extra}" if extra else "") if p)
                raise invalid(f"rows[{i}].input", detail)
        with_output = [r.output is not None for r in body.rows]
        if any(with_output) and not all(with_output):
            raise invalid("rows", "give an output for every row or for none (then the server computes them)")
        key = (m.fingerprint, d.name)
        if key not in c.wrapped:
            try:
                c.wrapped[key] = capture.wrap(c.ledger, m.fingerprint, d.name)
            except ArtifactError as exc:
                raise Problem(409, "Conflict", str(exc), kind="artifact") from None
        wrapped = c.wrapped[key]
        frame = pd.DataFrame([r.input for r in body.rows], columns=names)
        subject_ids = [r.subject_id for r in body.rows]
        tokens = [new_receipt_token() if s else None for s in subject_ids]

        def within(conn, first: int) -> None:
            store_receipt_tokens(conn, [(t, first + pos) for pos, t in enumerate(tokens) if t])

        try:
            if all(with_output):
                result = wrapped.log_outputs(frame, [r.output for r in body.rows], subject_ids, within)
            else:
                decide = wrapped.predict if body.method == "predict" else wrapped.predict_proba
                decide(frame, subject_ids, within=within)
                result = wrapped.last_batch
        except (capture.InputError, EntryError) as exc:
            row = re.search(r"row (\d+)", str(exc))
            raise invalid(f"rows[{row.group(1)}]" if row else "rows", str(exc)) from None
        except (ValueError, TypeError) as exc:  # pandas / the estimator refusing the inputs
            raise invalid("rows", f"the model cannot use these inputs: {exc}") from None
        out = []
        for pos, i in enumerate(result.indexes):
            item = {"index": i, "receipt": capture.receipt(c.ledger, i).to_dict()}
            if tokens[pos]:
                item["receipt_token"] = tokens[pos]
            out.append(item)
        return {"first_index": result.first_index, "tree_size": result.tree_size, "checkpoint": result.checkpoint,
                "decisions": out}

    @app.post("/v1/outcomes", status_code=201, tags=["decisions"], summary="Record observed outcomes of decisions (operator)")
    def append_outcomes(body: OutcomeBatch, who: Who) -> dict:
        require(who, "operator")
        c = ctx()
        try:
            result = capture.record_outcomes(c.ledger, [(o.decision, o.outcome) for o in body.outcomes])
        except EntryError as exc:
            raise invalid(f"outcomes[{exc.index}]" if exc.index is not None else "outcomes", str(exc)) from None
        except ValueError as exc:
            bad = next((k for k, o in enumerate(body.outcomes) if f"entry {o.decision} " in str(exc) + " "), None)
            raise invalid(f"outcomes[{bad}].decision" if bad is not None else "outcomes", str(exc)) from None
        return {"first_index": result.first_index, "tree_size": result.tree_size, "checkpoint": result.checkpoint}

    # ------------------------------------------------------------ keys
    @app.post("/v1/keys", status_code=201, tags=["keys"], summary="Issue an API key (operator); the token is shown once")
    def create_key(body: KeyRequest, who: Who) -> dict:
        require(who, "operator")
        try:
            record, token = ctx().keys.create(body.role, body.name, body.deployments)
        except ValueError as exc:
            raise invalid("deployments" if "deployments" in str(exc) else "name", str(exc)) from None
        return {**record.to_dict(), "token": token}

    @app.get("/v1/keys", tags=["keys"], summary="List API keys (operator); secrets are never returned")
    def list_keys(who: Who) -> list[dict]:
        require(who, "operator")
        return [k.to_dict() for k in ctx().keys.list()]

    @app.delete("/v1/keys/{key_id}", tags=["keys"], summary="Revoke an API key (operator)")
    def revoke_key(key_id: str, who: Who) -> dict:
        require(who, "operator")
        try:
            return ctx().keys.revoke(key_id).to_dict()
        except LookupError as exc:
            raise not_found(str(exc)) from None

    return app


def app_from_env() -> FastAPI:
    """App factory for multi-worker uvicorn: the data directory comes from ``$GLASSLOG_DATA_DIR``."""
    from ..ledger import default_data_dir

    return create_app(default_data_dir())
