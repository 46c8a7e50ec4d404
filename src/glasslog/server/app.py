"""The glasslog HTTP server: tiles any verifier can read, a JSON API with a view
for each overseer, weights disclosure by tier, and the kill switch.

Read API for verifiers (no credentials; an ``Authorization`` header is
ignored there, as by any static file server), C2SP tlog-tiles:
``GET /checkpoint``, ``GET /tile/<L>/<N>[.p/<W>]``, ``GET /tile/entries/<N>[.p/<W>]``.

JSON API under ``/v1`` (see ``docs/openapi.json``, regenerated with
``glasslog serve --write-openapi docs/openapi.json``). Credentials:
``Authorization: Bearer glk_...`` (API key) or ``Bearer grt_...`` (a subject's
receipt token); none for the public. Every ``/v1`` endpoint checks a
credential when one is sent: a malformed, unknown or revoked one is refused
with 401 even where the public needs none. A role that may not use an
endpoint gets 403 before its request body is looked at.

Errors are RFC 9457 ``application/problem+json`` with ``type``, ``title``,
``status``, ``detail`` and, for invalid input, ``errors: [{"field", "problem"}]``
naming each bad field (``rows[3].input.age_in_years``). Input is parsed
strictly: unknown JSON fields and query parameters, repeated query
parameters, integers with signs or leading zeros, and JSON values of the
wrong type are refused (422); bodies over ``MAX_BODY_BYTES`` (model uploads:
``MAX_ARTIFACT_BYTES``) are refused with 413, whether or not they declare a
``Content-Length``. A batch is appended whole or not at all: one bad row
rejects it, naming the row, and nothing is written.

Concurrency: each thread has its own connection to the log. The verifier
endpoints and proofs run on the event loop (a few indexed reads; no hop to a
worker thread); everything else runs in worker threads. Decision batches are
serialised by a lock in each process (so waiting batches queue in order
instead of polling SQLite's busy handler) and across processes by SQLite's
write lock. Each append is one transaction, so a shutdown (uvicorn finishes
in-flight requests on SIGINT/SIGTERM) never leaves a half-written batch.
"""


import base64
import binascii
import collections
import dataclasses
import gzip
import json
import math
import re
import threading
from pathlib import Path
from typing import Annotated, Any, Literal

import pandas as pd
from fastapi import Depends, FastAPI, File, Form, Header, Query, Request, UploadFile
from fastapi import Path as PathParam
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.gzip import GZipMiddleware
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from fastapi.routing import APIRoute
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from .. import __version__, capture
from ..access import (
    PUBLIC,
    AuthError,
    KeyStore,
    Principal,
    decision_view,
    effective_principal,
    may_download_weights,
    may_read_decision,
    new_receipt_token,
    store_receipt_tokens,
)
from ..ledger import EntryError, Ledger, LedgerError, canonical_json, merkle, utc_now
from ..ledger.receipt import Receipt
from ..ledger.tiles import TilePathError, parse_tile_path
from ..ledger.witnesses import cosigned_checkpoint
from ..registry import (
    ArtifactError,
    CardError,
    ClaimedMetrics,
    Deployment,
    DeploymentError,
    Deployments,
    Feature,
    ModelCard,
    Registry,
    RegistryError,
    fingerprint_bytes,
    load_artifact,
)
from ..storage import StorageUnavailable
from .cosigning import attach_cosigning
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
_PATTERN_PROBLEMS = {
    _UINT: "must be a non-negative decimal integer without sign or leading zeros",
    _FINGERPRINT: "must be a model fingerprint: 'sha256:' and 64 lowercase hex digits",
    _TIME: "must be an RFC 3339 UTC time such as 2026-01-31T12:00:00Z",
}
_SAFE_INT = 2**53 - 1
IMMUTABLE = "public, max-age=31536000, immutable"

_TITLES = {400: "Bad Request", 401: "Unauthorized", 403: "Forbidden", 404: "Not Found", 405: "Method Not Allowed",
           409: "Conflict", 413: "Content Too Large", 415: "Unsupported Media Type", 422: "Invalid request",
           500: "Internal Server Error", 503: "Log unavailable"}


# ---------------------------------------------------------------- problems
class Problem(Exception):
    """An RFC 9457 problem to return."""

    def __init__(self, status: int, title: str, detail: str, errors: list[dict] | None = None, kind: str | None = None,
                 headers: dict[str, str] | None = None):
        super().__init__(detail)
        self.status, self.title, self.detail, self.errors, self.kind = status, title, detail, errors or [], kind
        self.headers = headers or {}


class ProblemResponse(JSONResponse):
    """``application/problem+json``; ASCII-escaped, so any text a client sent can be quoted back."""

    media_type = "application/problem+json"

    def render(self, content: Any) -> bytes:
        return json.dumps(content, ensure_ascii=True, allow_nan=False, separators=(",", ":")).encode("ascii")


def _problem_response(status: int, title: str, detail: str, errors: list[dict] | None = None,
                      kind: str | None = None, headers: dict | None = None) -> ProblemResponse:
    body = {"type": f"https://glasslog.dev/problems/{kind}" if kind else "about:blank", "title": title,
            "status": status, "detail": detail}
    if errors:
        body["errors"] = errors
    return ProblemResponse(body, status_code=status, headers=headers)


def forbidden(detail: str) -> Problem:
    return Problem(403, "Forbidden", detail, kind="forbidden")


def not_found(detail: str) -> Problem:
    return Problem(404, "Not Found", detail, kind="not-found")


def invalid(field: str, problem: str, status: int = 422) -> Problem:
    return Problem(status, "Invalid request", f"{field}: {problem}", [{"field": field, "problem": problem}], kind="invalid")


def _short(value: Any, limit: int = 80) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


_PROBLEM_SCHEMA = {
    "title": "Problem",
    "description": "RFC 9457 problem details.",
    "type": "object",
    "required": ["type", "title", "status", "detail"],
    "properties": {
        "type": {"type": "string", "description": "URI naming the kind of problem"},
        "title": {"type": "string"},
        "status": {"type": "integer"},
        "detail": {"type": "string"},
        "errors": {"type": "array", "description": "each invalid field and what is wrong with it",
                   "items": {"$ref": "#/components/schemas/FieldProblem"}},
    },
    "additionalProperties": False,
}
_FIELD_PROBLEM_SCHEMA = {
    "title": "FieldProblem",
    "type": "object",
    "required": ["field", "problem"],
    "properties": {"field": {"type": "string", "description": "e.g. rows[3].input.age_in_years"},
                   "problem": {"type": "string"}},
    "additionalProperties": False,
}
_ERROR_DESCRIPTIONS = {
    400: "Malformed request (e.g. a body that is not parseable)",
    401: "Credential malformed, unknown or revoked (or required and missing)",
    403: "The caller's role may not do this",
    404: "No such entry, model, deployment, key or tile",
    409: "Conflicts with the log's state (e.g. the model is suspended, already registered)",
    413: "Request body over the limit",
    415: "Body is not JSON",
    422: "Invalid input: the errors name each field and its problem",
    503: "The log cannot be read or written right now",
}


def _errors(*codes: int) -> dict:
    """OpenAPI ``responses`` documenting problem+json errors."""
    return {c: {"description": _ERROR_DESCRIPTIONS[c],
                "content": {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}}}
            for c in sorted({*codes, 422, 503})}


_READ = (401,)
_WRITE = (400, 401, 403, 413, 415)


# ------------------------------------------------------------ request models
class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class DecisionRow(Strict):
    input: dict[str, Any] = Field(description="Feature name -> value, exactly the model card's features: numbers for "
                                              "numeric features; text, integers or booleans for categorical ones; null "
                                              "for a missing value (if the model accepts them).")
    subject_id: str | None = Field(None, min_length=1, max_length=200, description="Who the decision is about.")
    output: Any = Field(None, description="The model's output, if computed by the client; omit to let the server compute it.")


class DecisionBatch(Strict):
    model: str = Field(pattern=_FINGERPRINT)
    deployment: str = Field(min_length=1, max_length=200)
    method: Literal["predict", "predict_proba"] = "predict_proba"
    rows: list[DecisionRow] = Field(min_length=1, max_length=MAX_BATCH)


class OutcomeRow(Strict):
    decision: int = Field(ge=0, le=_SAFE_INT, description="Index of the decision entry.")
    outcome: Any = Field(description="The observed outcome (a JSON value, not null).")


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
    deployments: list[Annotated[str, Field(min_length=1, max_length=200)]] = Field(default_factory=list, max_length=100)


# ------------------------------------------------------------ response models
class Out(BaseModel):
    """A response body built by this module: exactly these fields."""

    model_config = ConfigDict(extra="forbid")


class Open(BaseModel):
    """A response body that carries another package's record (it may grow fields)."""

    model_config = ConfigDict(extra="allow")


class LogInfo(Out):
    origin: str
    verifier_key: str = Field(description="name+keyhash+base64 verifier key of the signed-note spec")
    tree_size: int
    checkpoint: str = Field(description="latest signed checkpoint (C2SP signed note)")


class EntryOut(Out):
    index: int
    leaf_hash: str = Field(description="base64 SHA-256(0x00 || entry)")
    entry: dict[str, Any]


class InclusionProofOut(Out):
    index: int
    tree_size: int
    leaf_hash: str
    root_hash: str
    proof: list[str] = Field(description="base64 hashes of the audit path (RFC 9162 2.1.3)")


class ConsistencyProofOut(Out):
    old_size: int
    new_size: int
    old_root: str
    new_root: str
    proof: list[str] = Field(description="base64 hashes (RFC 9162 2.1.4)")


class StatusChangeOut(Open):
    index: int
    time: str
    status: Literal["active", "suspended", "withdrawn"]
    reason: str


class ModelOut(Open):
    fingerprint: str
    status: Literal["active", "suspended", "withdrawn"]
    registered_index: int
    card: dict[str, Any] = Field(description="the model card (features with personal / protected marks, claimed "
                                             "metrics, disclosure policy)")
    history: list[StatusChangeOut] = Field(description="status changes with their reasons, oldest first")
    weights_downloads: dict[str, int] = Field(description="logged weight downloads by role")
    entry_index: int | None = Field(None, description="after a status change: the index of its entry")


class DeploymentOut(Open):
    name: str
    visibility: Literal["public-service", "private"]
    description: str
    declared_index: int


class StatsOut(Out):
    deployment: DeploymentOut
    decisions: int
    decisions_with_subject: int
    outcomes: int
    first: str | None
    last: str | None
    decisions_per_day: dict[str, int]
    output_labels: dict[str, int] | None = Field(None, description="decisions per output label, for roles that may see outputs")


class OutcomeOut(Out):
    index: int
    time: str
    outcome: Any = None
    outcome_commitment: str | None = None


class DecisionOut(Out):
    index: int
    model: str
    deployment: str
    time: str
    input: str = Field(description="commitment to the input values")
    subject: str | None = Field(None, description="commitment to the subject id")
    output_commitment: str | None = Field(None, description="commitment to the output (private deployments)")
    output: Any = Field(None, description="the model's output, where the caller's role may see it")
    input_values: dict[str, Any] | None = Field(None, description="input values the caller's role may see (null: erased)")
    withheld: list[str] | None = Field(None, description="input features withheld from the caller's role")
    subject_id: str | None = None
    outcomes: list[OutcomeOut]


class DecisionPage(Out):
    decisions: list[DecisionOut]
    next_after: int | None = Field(description="pass as ?after= for the next page; null on the last page")


class OpenedValue(Out):
    salt: str
    value: str


class ReceiptOut(Open):
    format: str
    origin: str
    index: int
    entry: str = Field(description="base64 entry bytes")
    tree_size: int
    checkpoint: str
    inclusion_proof: list[str]
    private: dict[str, OpenedValue] | None = Field(None, description="salts and values opening the entry's commitments")


class OwnReceipt(Out):
    decision: DecisionOut
    receipt: ReceiptOut


class AppendedDecision(Out):
    index: int
    receipt: ReceiptOut
    receipt_token: str | None = Field(None, description="for the subject: Bearer token opening their own decision")


class DecisionsAppended(Out):
    first_index: int
    tree_size: int
    checkpoint: str
    decisions: list[AppendedDecision]


class BatchAppended(Out):
    first_index: int
    tree_size: int
    checkpoint: str


class KeyOut(Out):
    key_id: str
    name: str
    role: Literal["operator", "supervisor", "researcher", "developer"]
    deployments: list[str]
    created_at: str
    revoked_at: str | None


class KeyCreated(KeyOut):
    token: str = Field(description="the API key; shown once, only its hash is stored")


# -------------------------------------------------------------- per-thread state
class Context:
    """One worker thread's connection to the log and the helpers around it."""

    def __init__(self, data_dir: Path, store: str | None = None):
        self.ledger = Ledger.open(data_dir, store)
        self.registry = Registry(self.ledger)
        self.deployments = Deployments(self.ledger)
        self.keys = KeyStore(self.ledger)
        self.index = SearchIndex(self.ledger)
        self.wrapped: dict[tuple[str, str], capture.CapturedModel] = {}
        self._roots: dict[int, bytes] = {}

    def root(self, tree_size: int) -> bytes:
        """Root hash of the tree of ``tree_size`` entries; the log is append-only, so each is computed once."""
        r = self._roots.get(tree_size)
        if r is None:
            r = self.ledger.root(tree_size)
            if len(self._roots) >= 1024:
                self._roots.clear()
            self._roots[tree_size] = r
        return r


def _b64(b: bytes) -> str:
    return base64.b64encode(b).decode()


def _uint(value: str | None, field: str) -> int | None:
    if value is None:
        return None
    if not re.fullmatch(_UINT, value):
        raise invalid(field, f"{_PATTERN_PROBLEMS[_UINT]}, got {_short(value)}")
    return int(value)


def _field_path(loc: tuple) -> str:
    out = ""
    for p in loc:
        if isinstance(p, int):
            out += f"[{p}]"
        else:
            out += ("." if out else "") + str(p)
    return out


def _value_problem(feature, value: Any) -> str | None:
    """What is wrong with ``value`` for a model-card feature, or None."""
    if value is None:
        return None  # a missing value: the model decides whether it copes
    if feature.type == "numeric":
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return f"must be a number (the feature is numeric), got {type(value).__name__} {_short(value)}"
        if isinstance(value, float) and not math.isfinite(value):
            return "must be a finite number"
    elif not isinstance(value, (str, int, bool)) or isinstance(value, float):
        return f"must be text, an integer or a boolean (the feature is categorical), got {type(value).__name__}"
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) > _SAFE_INT:
        return "integers must be within +-2**53"
    if isinstance(value, str) and not value.isprintable():
        return "must be printable text"
    return None


_CARD_FIELDS = {f.name for f in dataclasses.fields(ModelCard)}
_FEATURE_FIELDS = {f.name for f in dataclasses.fields(Feature)}
_CLAIMED_FIELDS = {f.name for f in dataclasses.fields(ClaimedMetrics)}


def _unknown_card_fields(card: dict) -> str | None:
    """The dotted name of the first field a model card does not have (a typo must not fall back to a default)."""
    for key in card:
        if key not in _CARD_FIELDS:
            return str(key)
    if isinstance(card.get("claimed"), dict):
        for key in card["claimed"]:
            if key not in _CLAIMED_FIELDS:
                return f"claimed.{key}"
    if isinstance(card.get("features"), list):
        for i, f in enumerate(card["features"]):
            if isinstance(f, dict):
                for key in f:
                    if key not in _FEATURE_FIELDS:
                        return f"features[{i}].{key}"
    return None


def _loggable(value: Any) -> str | None:
    """Why ``value`` cannot be logged as JSON (NaN, infinity, huge integers, bad text), or None."""
    try:
        canonical_json(value)
    except EntryError as exc:
        return str(exc)
    except RecursionError:
        return "nested too deeply"
    return None




class Compression(GZipMiddleware):
    """gzip for responses of 1 KiB or more when the client accepts it, except tiles.

    Level 1 (nginx's default): entry bundles and receipts compress about as
    well as at level 9 (8% and 22% larger) for a third of the CPU. Hash tiles
    are random 32-byte hashes, which gzip only makes longer; entry bundles
    are compressed by their endpoint (full ones once, then served from memory).
    """

    def __init__(self, app):
        super().__init__(app, minimum_size=1024, compresslevel=1)

    async def __call__(self, scope, receive, send):
        if scope["type"] == "http" and scope["path"].startswith("/tile/"):
            return await self.app(scope, receive, send)
        return await super().__call__(scope, receive, send)


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict:
    seen: dict[str, Any] = {}
    for key, value in pairs:
        if key in seen:
            raise json.JSONDecodeError(f"duplicate key {_short(key)} in an object (RFC 8259 section 4: names should be "
                                       "unique; which one counts would be ambiguous)", "", 0)
        seen[key] = value
    return seen


class StrictJSONRequest(Request):
    """A request whose JSON body is refused if an object repeats a key (instead of the last one silently winning)."""

    async def json(self) -> Any:
        if not hasattr(self, "_json"):
            body = await self.body()
            self._json = json.loads(body, object_pairs_hook=_unique_keys)
        return self._json


class StrictJSONRoute(APIRoute):
    """Routes that parse JSON bodies with ``StrictJSONRequest``."""

    def get_route_handler(self):
        handle = super().get_route_handler()

        async def strict_handler(request: Request) -> Response:
            return await handle(StrictJSONRequest(request.scope, request.receive))

        return strict_handler


BUNDLE_CACHE_BYTES = 64 * 2**20
"""Memory (bytes) per process for gzip-compressed entry bundles (full and partial), which are immutable."""


def _accepts_gzip(request: Request) -> bool:
    """True if the request's Accept-Encoding admits gzip (RFC 9110 section 12.5.3; ``gzip;q=0`` refuses it)."""
    for part in request.headers.get("accept-encoding", "").lower().split(","):
        coding, _, params = part.strip().partition(";")
        if coding.strip() in ("gzip", "x-gzip", "*"):
            q = params.strip().removeprefix("q=").strip() if params.strip().startswith("q=") else "1"
            try:
                return float(q) > 0
            except ValueError:
                return False
    return False


class _BytesCache:
    """A thread-safe LRU map from hashable keys to bytes, bounded by total size in bytes."""

    def __init__(self, max_bytes: int):
        self.max_bytes = max_bytes
        self._items: collections.OrderedDict[Any, bytes] = collections.OrderedDict()
        self._size = 0
        self._lock = threading.Lock()

    def get(self, key: Any) -> bytes | None:
        with self._lock:
            value = self._items.get(key)
            if value is not None:
                self._items.move_to_end(key)
            return value

    def put(self, key: Any, value: bytes) -> bytes:
        with self._lock:
            if key not in self._items and len(value) <= self.max_bytes:
                self._items[key] = value
                self._size += len(value)
                while self._size > self.max_bytes:
                    self._size -= len(self._items.popitem(last=False)[1])
        return value


class BodyLimit:
    """ASGI middleware: refuse request bodies over the limit (413), declared or streamed."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        limit = MAX_ARTIFACT_BYTES if scope["path"] == "/v1/models" else MAX_BODY_BYTES
        for name, value in scope["headers"]:
            if name == b"content-length":
                if not re.fullmatch(rb"[0-9]{1,19}", value):
                    return await _problem_response(400, "Bad Request", "Content-Length must be a decimal number",
                                                   kind="invalid")(scope, receive, send)
                if int(value) > limit:
                    return await _problem_response(413, "Content Too Large", f"request body is {int(value)} bytes; "
                                                   f"the limit is {limit}", kind="too-large")(scope, receive, send)
        received = 0

        async def limited():
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise StarletteHTTPException(413, f"request body is over the limit of {limit} bytes")
            return message

        return await self.app(scope, limited, send)


ANONYMOUS_DOWNLOADS_PER_HOUR = 20
"""Anonymous weight downloads (each appends an access entry) allowed per client address per hour."""


class _RateLimit:
    """At most ``limit`` events per ``window`` seconds per key (sliding window, in memory)."""

    def __init__(self, limit: int, window: float):
        import collections
        import time

        self.limit, self.window, self._clock = limit, window, time.monotonic
        self._events: dict[str, collections.deque] = collections.defaultdict(collections.deque)
        self._lock = threading.Lock()

    def allow(self, key: str) -> bool:
        now = self._clock()
        with self._lock:
            q = self._events[key]
            while q and q[0] <= now - self.window:
                q.popleft()
            if len(q) >= self.limit:
                return False
            q.append(now)
            return True

    def release(self, key: str) -> None:
        """Take back the latest event of ``key`` (a request that was refused after ``allow`` counted it)."""
        with self._lock:
            q = self._events.get(key)
            if q:
                q.pop()

    def retry_after(self, key: str) -> int:
        """Whole seconds until ``key`` may have another event (for a ``Retry-After`` header); at least 1."""
        now = self._clock()
        with self._lock:
            q = self._events.get(key)
            if not q or len(q) < self.limit:
                return 1
            return max(1, math.ceil(q[0] + self.window - now))


def create_app(data_dir: str | Path, store: str | None = None) -> FastAPI:
    """Build the app for the log in ``data_dir`` (keys, artifacts) and ``store``.

    Args:
        data_dir: the log's data directory.
        store: the log's database URL when it is not the data directory's
            SQLite file (default ``$GLASSLOG_STORE``).

    Raises:
        LedgerError: there is no log there.
    """
    data_dir = Path(data_dir)
    Ledger.open(data_dir, store).close()  # fail now, not on the first request
    local = threading.local()
    append_lock = threading.Lock()  # one decision batch at a time per process (see the module docstring)
    anonymous_downloads = _RateLimit(ANONYMOUS_DOWNLOADS_PER_HOUR, 3600.0)
    bundle_cache = _BytesCache(BUNDLE_CACHE_BYTES)

    def ctx() -> Context:
        c = getattr(local, "ctx", None)
        if c is None:
            c = local.ctx = Context(data_dir, store)
        return c

    app = FastAPI(
        title="glasslog",
        version=__version__,
        description="A verifiable, append-only log of a deployed model's decisions, bound to its weights, "
                    "with a view for each overseer. Verifier endpoints follow C2SP tlog-tiles. "
                    "Errors are RFC 9457 application/problem+json.",
        docs_url=None,  # no Swagger UI / ReDoc: they load scripts from a CDN on the console's origin; see /openapi.json
        redoc_url=None,
    )
    app.router.route_class = StrictJSONRoute
    app.add_middleware(Compression)
    app.add_middleware(BodyLimit)
    attach_cosigning(app, data_dir, store)  # witnesses' cosignatures, beside the write path (server/cosigning.py)

    base_openapi = app.openapi

    def openapi() -> dict:
        if app.openapi_schema is None:
            schema = base_openapi()
            schemas = schema.setdefault("components", {}).setdefault("schemas", {})
            schemas["Problem"] = _PROBLEM_SCHEMA
            schemas["FieldProblem"] = _FIELD_PROBLEM_SCHEMA
        return app.openapi_schema

    app.openapi = openapi

    # ------------------------------------------------------------ errors
    @app.exception_handler(Problem)
    async def on_problem(request: Request, exc: Problem):
        headers = {"WWW-Authenticate": "Bearer"} if exc.status == 401 else {}
        return _problem_response(exc.status, exc.title, exc.detail, exc.errors, exc.kind, {**headers, **exc.headers} or None)

    @app.exception_handler(RequestValidationError)
    async def on_validation(request: Request, exc: RequestValidationError):
        errors = []
        for e in exc.errors():
            loc = tuple(e.get("loc", ()))
            where = loc[0] if loc else "body"
            kind = e.get("type", "")
            if kind == "json_invalid":
                errors.append({"field": "body", "problem": f"not valid JSON: {e.get('ctx', {}).get('error', 'decode error')}"
                                                          f" at character {loc[1] if len(loc) > 1 else 0}"})
                continue
            ctype = (request.headers.get("content-type") or "").split(";")[0].strip().lower()
            sent = bool(ctype) or bool(getattr(exc, "body", None))
            if where == "body" and len(loc) == 1 and sent and not (ctype == "application/json" or ctype.endswith("+json")):
                return _problem_response(415, "Unsupported Media Type", "the body must be JSON: send Content-Type: application/json",
                                         kind="unsupported-media-type")
            field = _field_path(loc[1:] if where in ("body", "query", "path", "header") else loc) or where
            if kind == "extra_forbidden":
                problem = "unknown field"
            elif kind == "string_pattern_mismatch" and e.get("ctx", {}).get("pattern") in _PATTERN_PROBLEMS:
                problem = f"{_PATTERN_PROBLEMS[e['ctx']['pattern']]}, got {_short(e.get('input'))}"
            else:
                problem = e.get("msg", "invalid")
            errors.append({"field": field, "problem": problem})
        detail = "; ".join(f"{e['field']}: {e['problem']}" for e in errors[:5])
        return _problem_response(422, "Invalid request", detail, errors, kind="invalid")

    @app.exception_handler(StarletteHTTPException)
    async def on_http(request: Request, exc: StarletteHTTPException):
        kind = {413: "too-large"}.get(exc.status_code, "http")
        headers = dict(getattr(exc, "headers", None) or {})
        if exc.status_code == 405:  # every method of the path, not only those of the first route that matched it
            methods = {m for r in app.router.routes if getattr(r, "path_regex", None) and r.path_regex.match(request.url.path)
                       for m in (getattr(r, "methods", None) or ())}
            headers["Allow"] = ", ".join(sorted(methods))
        return _problem_response(exc.status_code, _TITLES.get(exc.status_code, "Error"), str(exc.detail), kind=kind,
                                 headers=headers or None)

    @app.exception_handler(AuthError)
    async def on_auth(request: Request, exc: AuthError):
        return _problem_response(401, "Unauthorized", str(exc), kind="unauthorized", headers={"WWW-Authenticate": "Bearer"})

    @app.exception_handler(capture.ModelNotActiveError)
    async def on_inactive(request: Request, exc: Exception):
        return _problem_response(409, "Model not active", str(exc), kind="model-not-active")

    @app.exception_handler(LedgerError)
    async def on_ledger(request: Request, exc: LedgerError):
        return _problem_response(503, "Log unavailable", str(exc), kind="log-unavailable")

    @app.exception_handler(StorageUnavailable)
    async def on_busy(request: Request, exc: StorageUnavailable):
        return _problem_response(503, "Log unavailable", str(exc),
                                 kind="log-unavailable", headers={"Retry-After": "1"})

    @app.exception_handler(Exception)
    async def on_bug(request: Request, exc: Exception):  # still a 500, but problem+json and no internals
        return _problem_response(500, "Internal Server Error", f"unexpected {type(exc).__name__}; the request was not "
                                 "completed (batches are all or nothing)", kind="internal")

    # ------------------------------------------------------------ auth
    # Dependencies that only look at the request are ``async def``: FastAPI runs
    # a plain ``def`` dependency in the thread pool, one hop per dependency per
    # request. Only a credential lookup (a database read) goes to a thread.
    def _authenticate(token: str) -> Principal:
        return ctx().keys.authenticate(token)

    async def principal(authorization: Annotated[str | None, Header(description="Bearer glk_... (API key) or grt_... "
                                                                                 "(receipt token); omit for the public")] = None
                        ) -> Principal:
        if authorization is None:
            return PUBLIC
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise AuthError("Authorization must be 'Bearer <API key or receipt token>'")
        return await run_in_threadpool(_authenticate, token.strip())

    Who = Annotated[Principal, Depends(principal)]
    CHECK_CREDENTIALS = [Depends(principal)]

    def requires(*roles: str):
        async def check(who: Who) -> Principal:
            require(who, *roles)
            return who

        return check

    def require(who: Principal, *roles: str) -> None:
        if who.role not in roles:
            if who.role == "public":
                raise Problem(401, "Unauthorized", f"this needs credentials of role {' or '.join(roles)}", kind="unauthorized")
            raise forbidden(f"role {who.role} may not do this; it needs {' or '.join(roles)}")

    Operator = Annotated[Principal, Depends(requires("operator"))]

    async def strict_query(request: Request) -> None:
        if not request.scope["path"].startswith("/v1/"):
            return  # verifier endpoints are static assets: ignore query strings as CDNs and file servers do
        route = request.scope.get("route")
        dependant = getattr(route, "dependant", None)
        if dependant is None:
            return
        allowed: dict[str, Any] = {}
        stack = [dependant]
        while stack:
            d = stack.pop()
            allowed.update((p.alias, p) for p in d.query_params)
            stack.extend(d.dependencies)
        seen: set[str] = set()
        for name, value in request.query_params.multi_items():
            if name not in allowed:
                raise invalid(name, f"unknown query parameter; allowed: {', '.join(sorted(allowed)) or 'none'}")
            if name in seen:
                raise invalid(name, "given more than once")
            seen.add(name)
            if allowed[name].field_info.annotation in (int, int | None) and not re.fullmatch(_UINT, value):
                raise invalid(name, f"{_PATTERN_PROBLEMS[_UINT]}, got {_short(value)}")

    app.router.dependencies.append(Depends(strict_query))

    UInt = Annotated[str, PathParam(pattern=_UINT, description="entry index, decimal without sign or leading zeros")]

    # ------------------------------------------------------- verifier API
    # The verifier endpoints and the proofs are ``async def``: each is a few
    # indexed reads of the log (WAL readers never wait for the writer), cheaper
    # than the hop to a worker thread and back that a plain ``def`` costs
    # (FastAPI runs both the endpoint and its response validation in the pool).
    # The proofs return their JSON directly: the response model documents it,
    # and validating what the server just built would only cost time.
    @app.get("/checkpoint", response_class=PlainTextResponse, tags=["verifiers"], responses=_errors(),
             summary="Latest signed checkpoint (C2SP tlog-checkpoint in a C2SP signed note)")
    async def get_checkpoint() -> Response:
        return PlainTextResponse(cosigned_checkpoint(ctx().ledger), media_type="text/plain; charset=utf-8",
                                 headers={"Cache-Control": "public, max-age=2"})

    @app.get("/tile/{path:path}", tags=["verifiers"], summary="C2SP tlog-tiles hash tile or entry bundle",
             response_class=Response,
             responses={200: {"description": "the tile's bytes",
                              "content": {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}}},
                        **_errors(404)})
    async def get_tile(path: str, request: Request) -> Response:
        try:
            ref = parse_tile_path("tile/" + path)
        except TilePathError as exc:
            raise not_found(str(exc)) from None
        headers = {"Cache-Control": IMMUTABLE}
        try:
            if not ref.is_entries:
                return Response(ctx().ledger.tile(ref.level, ref.index, ref.width), media_type="application/octet-stream",
                                headers=headers)
            headers["Vary"] = "Accept-Encoding"
            if not _accepts_gzip(request):
                return Response(ctx().ledger.entry_bundle(ref.index, ref.width), media_type="application/octet-stream",
                                headers=headers)
            headers["Content-Encoding"] = "gzip"
            # A bundle's bytes never change, full or partial (entries are append-only): compress each once.
            key = (ref.index, ref.width)
            data = bundle_cache.get(key)
            if data is None:
                data = bundle_cache.put(key, gzip.compress(ctx().ledger.entry_bundle(ref.index, ref.width), 1, mtime=0))
        except LookupError as exc:
            raise not_found(str(exc)) from None
        return Response(data, media_type="application/octet-stream", headers=headers)

    # ------------------------------------------------------------ log & proofs
    @app.get("/v1/log", tags=["log"], summary="Origin, verifier key, tree size and latest checkpoint",
             response_model=LogInfo, dependencies=CHECK_CREDENTIALS, responses=_errors(*_READ))
    def get_log() -> dict:
        lg = ctx().ledger
        return {"origin": lg.origin, "verifier_key": lg.verifier_key, "tree_size": lg.signed_size(),
                "checkpoint": lg.checkpoint()}

    @app.get("/v1/entries/{index}", tags=["log"], summary="One entry (entries hold commitments, never personal values)",
             response_model=EntryOut, dependencies=CHECK_CREDENTIALS, responses=_errors(*_READ, 404))
    def get_entry(index: UInt) -> dict:
        i = _uint(index, "index")
        lg = ctx().ledger
        if i >= lg.signed_size():
            raise not_found(f"no entry {i} in the signed tree (size {lg.signed_size()})")
        data = lg.entry(i)
        return {"index": i, "leaf_hash": _b64(merkle.leaf_hash(data)), "entry": json.loads(data)}

    @app.get("/v1/proofs/inclusion", tags=["log"], summary="Inclusion proof by index or by leaf hash (RFC 9162 2.1.3)",
             response_model=InclusionProofOut, dependencies=CHECK_CREDENTIALS, responses=_errors(*_READ, 404))
    async def get_inclusion(index: Annotated[str | None, Query(pattern=_UINT, description="entry index")] = None,
                            leaf_hash: Annotated[str | None, Query(max_length=100, description="base64 or hex leaf hash")] = None,
                            tree_size: Annotated[str | None, Query(pattern=_UINT, description="default: the signed size")] = None
                            ) -> dict:
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
            # The leaf index is refreshed on demand (it may index many new entries): in a thread.
            i = await run_in_threadpool(lambda: ctx().index.index_of_leaf(raw))
            if i is None or i >= n:
                raise not_found(f"no entry with that leaf hash in the tree of size {n}")
        else:
            i = _uint(index, "index")
        if i >= n:
            raise invalid("index", f"must be below the tree size {n}")
        proof = c.ledger.inclusion_proof(i, n)
        return JSONResponse({"index": i, "tree_size": n, "leaf_hash": _b64(c.ledger.leaf_hash(i)), "root_hash": _b64(c.root(n)),
                             "proof": [_b64(p) for p in proof]})

    @app.get("/v1/proofs/consistency", tags=["log"], summary="Consistency proof between two tree sizes (RFC 9162 2.1.4)",
             response_model=ConsistencyProofOut, dependencies=CHECK_CREDENTIALS, responses=_errors(*_READ))
    async def get_consistency(old: Annotated[str, Query(pattern=_UINT, description="older tree size")],
                              new: Annotated[str | None, Query(pattern=_UINT, description="newer tree size; default: the "
                                                                                          "signed size")] = None
                              ) -> dict:
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
        return JSONResponse({"old_size": m, "new_size": n, "old_root": _b64(c.ledger.root(m)), "new_root": _b64(c.root(n)),
                             "proof": [_b64(p) for p in proof]})

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

    @app.get("/v1/models", tags=["models"], summary="Registered models: card, claimed metrics, disclosure policy, status",
             response_model=list[ModelOut], response_model_exclude_unset=True, dependencies=CHECK_CREDENTIALS,
             responses=_errors(*_READ))
    def list_models() -> list[dict]:
        c = ctx()
        return [_model_public(m, c) for m in c.registry.list()]

    @app.get("/v1/models/{fingerprint}", tags=["models"], summary="One model with its status history (fingerprint or a "
             "unique prefix of at least 12 hex digits)", response_model=ModelOut, response_model_exclude_unset=True,
             dependencies=CHECK_CREDENTIALS, responses=_errors(*_READ, 404))
    def get_model(fingerprint: str) -> dict:
        c = ctx()
        return _model_public(_model(fingerprint, c), c)

    @app.get("/v1/models/{fingerprint}/artifact", tags=["models"], response_class=Response,
             responses={200: {"description": "the skops artifact",
                              "content": {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}}},
                        **_errors(*_READ, 403, 404)},
             summary="Download the weights (skops artifact) where the disclosure policy allows; logged as an access entry")
    def get_artifact(fingerprint: str, who: Who, request: Request) -> Response:
        c = ctx()
        m = _model(fingerprint, c)
        if not may_download_weights(who.role, m.card.disclosure_policy):
            raise forbidden(f"the disclosure policy of this model is '{m.card.disclosure_policy}'; role {who.role} may not download its weights")
        if who.key_id is None:  # anonymous downloads append to the log: limit them per address
            client = request.client.host if request.client else "unknown"
            if not anonymous_downloads.allow(client):
                raise Problem(429, "Too Many Requests", f"at most {ANONYMOUS_DOWNLOADS_PER_HOUR} anonymous weight downloads"
                              " per hour per address (each is logged); use an API key or try later", kind="rate-limited",
                              headers={"Retry-After": str(anonymous_downloads.retry_after(client))})
        try:
            data = c.registry.artifact(m.fingerprint)
        except RegistryError as exc:
            raise Problem(503, "Artifact unavailable", str(exc), kind="artifact-unavailable") from None
        if fingerprint_bytes(data) != m.fingerprint:
            raise Problem(503, "Artifact unavailable", f"the stored artifact no longer matches fingerprint {m.fingerprint}; "
                          "refusing to serve it", kind="artifact-unavailable")
        c.ledger.append([{"type": "access", "v": 1, "action": "weights-download", "model": m.fingerprint, "role": who.role,
                          "key_id": who.key_id or "anonymous", "time": utc_now()}])
        name = m.fingerprint.removeprefix("sha256:")[:16]
        return Response(data, media_type="application/octet-stream",
                        headers={"Content-Disposition": f'attachment; filename="{name}.skops"', "X-Glasslog-Fingerprint": m.fingerprint})

    @app.post("/v1/models", status_code=201, tags=["models"], summary="Register a model: skops artifact and model card (operator)",
              response_model=ModelOut, response_model_exclude_unset=True, responses=_errors(*_WRITE, 409))
    async def register_model(request: Request, who: Operator, artifact: Annotated[UploadFile, File(description="skops artifact")],
                             card: Annotated[str, Form(description="model card JSON (ModelCard.to_dict)")]) -> dict:
        unknown = sorted(set((await request.form()).keys()) - {"artifact", "card"})
        if unknown:
            raise invalid(unknown[0], "unknown form field; send artifact and card")
        data = await artifact.read()
        if len(data) > MAX_ARTIFACT_BYTES:
            raise Problem(413, "Content Too Large", f"artifact is {len(data)} bytes; the limit is {MAX_ARTIFACT_BYTES}", kind="too-large")
        # Loading the artifact and appending are blocking work: off the event loop.
        return await run_in_threadpool(_register, data, card)

    def _register(data: bytes, card: str) -> dict:
        try:
            card_dict = json.loads(card)
        except (json.JSONDecodeError, RecursionError) as exc:
            raise invalid("card", f"not valid JSON: {exc}") from None
        if not isinstance(card_dict, dict):
            raise invalid("card", "must be a JSON object with the model card fields (ModelCard.to_dict)")
        unknown = _unknown_card_fields(card_dict)
        if unknown:
            raise invalid(f"card.{unknown}", "unknown field")
        try:
            card_obj = ModelCard.from_dict(card_dict)
        except CardError as exc:
            raise invalid(f"card.{exc.field}", str(exc).split(": ", 1)[-1]) from None
        except (TypeError, AttributeError, ValueError, RecursionError):
            raise invalid("card", "must be a JSON object with the model card fields (ModelCard.to_dict)") from None
        problem = _loggable(card_obj.to_dict())
        if problem:
            raise invalid("card", f"cannot be logged: {problem}")
        fingerprint = fingerprint_bytes(data)
        try:
            estimator = load_artifact(data, fingerprint)
        except ArtifactError as exc:
            raise invalid("artifact", str(exc)) from None
        names_in = getattr(estimator, "feature_names_in_", None)
        if names_in is not None and [str(n) for n in names_in] != card_obj.feature_names:
            raise invalid("card.features", f"do not match the model's features {[str(n) for n in names_in]}, in order")
        c = ctx()
        try:
            m = c.registry.register_artifact(data, card_obj)
        except ArtifactError as exc:
            raise invalid("artifact", str(exc)) from None
        except RegistryError as exc:
            raise Problem(409, "Conflict", str(exc), kind="conflict") from None
        except EntryError as exc:
            raise invalid(f"card.{exc.field}" if exc.field and exc.field != "card" else "card", str(exc)) from None
        return _model_public(m, c)

    @app.post("/v1/models/{fingerprint}/status", tags=["models"], response_model=ModelOut, response_model_exclude_unset=True,
              responses=_errors(*_WRITE, 404, 409),
              summary="Suspend or reinstate (supervisor), withdraw (operator or supervisor); logged with the reason")
    def set_status(fingerprint: str, body: StatusChangeRequest,
                   who: Annotated[Principal, Depends(requires("supervisor", "operator"))]) -> dict:
        if body.status != "withdrawn":
            require(who, "supervisor")
        if not body.reason.strip() or not body.reason.isprintable():
            raise invalid("reason", "must be printable text saying why (it goes on the record)")
        c = ctx()
        m = _model(fingerprint, c)
        try:
            result = c.registry.set_status(m.fingerprint, body.status, f"{body.reason.strip()} ({who.role} {who.key_id})")
        except RegistryError as exc:
            raise Problem(409, "Conflict", str(exc), kind="conflict") from None
        out = _model_public(c.registry.get(m.fingerprint), c)
        out["entry_index"] = result.first_index
        return out

    # ------------------------------------------------------------ deployments
    @app.get("/v1/deployments", tags=["deployments"], summary="Declared deployments with their visibility",
             response_model=list[DeploymentOut], dependencies=CHECK_CREDENTIALS, responses=_errors(*_READ))
    def list_deployments() -> list[dict]:
        return [d.to_dict() for d in ctx().deployments.list()]

    @app.post("/v1/deployments", status_code=201, tags=["deployments"], summary="Declare a deployment (operator)",
              response_model=DeploymentOut, responses=_errors(*_WRITE, 409))
    def declare_deployment(body: DeploymentRequest, who: Operator) -> dict:
        if not body.name.isprintable() or body.name != body.name.strip():
            raise invalid("name", "must be printable text without leading or trailing spaces")
        if not body.description.isprintable():
            raise invalid("description", "must be printable text")
        try:
            return ctx().deployments.declare(body.name, body.visibility, body.description).to_dict()
        except DeploymentError as exc:
            raise Problem(409, "Conflict", str(exc), kind="conflict") from None
        except EntryError as exc:
            raise invalid({"deployment": "name"}.get(exc.field, exc.field or "body"), exc.detail) from None

    def _deployment(name: str, c: Context) -> Deployment:
        d = c.deployments.find(name)
        if d is None:
            raise not_found(f"unknown deployment {name!r}")
        return d

    @app.get("/v1/deployments/stats", tags=["deployments"], summary="Aggregate counts for a deployment (public)",
             response_model=StatsOut, response_model_exclude_unset=True, responses=_errors(*_READ, 404))
    def deployment_stats(name: Annotated[str, Query(max_length=200, description="deployment name")], who: Who) -> dict:
        c = ctx()
        d = _deployment(name, c)
        out = {"deployment": d.to_dict(), **c.index.stats(d.name)}
        if d.public or who.role in ("supervisor", "operator", "researcher") or (who.role == "developer" and d.name in who.deployments):
            out["output_labels"] = c.index.label_counts(d.name)
        return out

    # ------------------------------------------------------------ decisions
    def _decision(i: int, who: Principal, c: Context) -> dict:
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
        who = effective_principal(who, i, entry["deployment"])
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

    @app.get("/v1/decisions/{index}", tags=["decisions"], summary="One decision, as the caller's role may see it",
             response_model=DecisionOut, response_model_exclude_unset=True, responses=_errors(*_READ, 403, 404))
    def get_decision(index: UInt, who: Who) -> dict:
        return _decision(_uint(index, "index"), who, ctx())

    @app.get("/v1/decisions", tags=["decisions"], summary="Search decisions by model, deployment, time range and output (paginated)",
             response_model=DecisionPage, response_model_exclude_unset=True, responses=_errors(*_READ, 403, 404))
    def search_decisions(who: Who, model: Annotated[str | None, Query(pattern=_FINGERPRINT)] = None,
                         deployment: Annotated[str | None, Query(max_length=200)] = None,
                         since: Annotated[str | None, Query(pattern=_TIME, description="inclusive, RFC 3339 UTC")] = None,
                         until: Annotated[str | None, Query(pattern=_TIME, description="exclusive, RFC 3339 UTC")] = None,
                         output: Annotated[str | None, Query(max_length=200, description="output label, e.g. 1 or approve")] = None,
                         after: Annotated[str | None, Query(pattern=_UINT, description="index from next_after")] = None,
                         limit: Annotated[int, Query(ge=1, le=500)] = 50) -> dict:
        c = ctx()
        all_deployments = c.deployments.list()
        if who.role in ("supervisor", "operator", "researcher"):
            visible = [d.name for d in all_deployments]
        elif who.role == "developer":
            visible = [d.name for d in all_deployments if d.name in who.deployments or d.public]
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
            except (json.JSONDecodeError, RecursionError):
                label = json.dumps(output)
        start = _uint(after, "after")
        found = c.index.search(model=model, deployments=visible, since=since, until=until, label=label,
                               after=-1 if start is None else start, limit=limit)
        signed = c.ledger.signed_size()
        found = [i for i in found if i < signed]
        return {"decisions": [_decision(i, who, c) for i in found],
                "next_after": found[-1] if len(found) == limit else None}

    def _receipt(i: int, who: Principal, c: Context) -> dict:
        deployment = json.loads(c.ledger.entry(i))["deployment"]
        who = effective_principal(who, i, deployment)
        include_private = who.role in ("subject", "supervisor", "operator")
        return capture.receipt(c.ledger, i, include_private=include_private).to_dict()

    @app.get("/v1/receipt", tags=["subjects"], summary="A subject's own decision and receipt (receipt token as bearer)",
             response_model=OwnReceipt, response_model_exclude_unset=True, responses=_errors(*_READ, 403))
    def get_own_receipt(who: Who) -> dict:
        if who.role == "public":
            raise Problem(401, "Unauthorized", "send your receipt token: Authorization: Bearer grt_...", kind="unauthorized")
        if who.role != "subject":
            raise forbidden(f"this is for subjects with a receipt token; role {who.role} reads receipts at GET /v1/receipts/{{index}}")
        c = ctx()
        return {"decision": _decision(who.entry_index, who, c), "receipt": _receipt(who.entry_index, who, c)}

    @app.get("/v1/receipts/{index}", tags=["decisions"], summary="Receipt (entry, checkpoint, inclusion proof) of a decision",
             response_model=ReceiptOut, response_model_exclude_unset=True, responses=_errors(*_READ, 403, 404))
    def get_receipt(index: UInt, who: Who) -> dict:
        c = ctx()
        i = _uint(index, "index")
        _decision(i, who, c)  # access check
        return _receipt(i, who, c)

    def _locate_bad_row(estimator, method: str, frame: pd.DataFrame) -> int | None:
        """The first row the estimator refuses on its own, if any."""
        for pos in range(len(frame)):
            try:
                getattr(estimator, method)(frame.iloc[pos : pos + 1])
            except Exception:  # noqa: BLE001 - the estimator's own refusal, whatever its type
                return pos
        return None

    @app.post("/v1/decisions", status_code=201, tags=["decisions"], response_model=DecisionsAppended,
              response_model_exclude_unset=True, responses=_errors(*_WRITE, 404, 409),
              summary="Append a batch of decisions (operator); returns receipts, and receipt tokens for subjects")
    def append_decisions(body: DecisionBatch, who: Operator) -> dict:
        c = ctx()
        m = _model(body.model, c)
        d = c.deployments.find(body.deployment)
        if d is None:
            raise invalid("deployment", "is not declared; POST /v1/deployments first")
        names = m.card.feature_names
        with_output = [r.output is not None for r in body.rows]
        for i, row in enumerate(body.rows):
            missing = [n for n in names if n not in row.input]
            extra = [k for k in row.input if k not in names]
            if missing or extra:
                detail = "; ".join(p for p in (f"missing features {missing}" if missing else "",
                                                f"unexpected features {extra}" if extra else "") if p)
                raise invalid(f"rows[{i}].input", detail)
            for f in m.card.features:
                problem = _value_problem(f, row.input[f.name])
                if problem:
                    raise invalid(f"rows[{i}].input.{f.name}", problem)
            if row.subject_id is not None and (not row.subject_id.isprintable() or not row.subject_id.strip()):
                raise invalid(f"rows[{i}].subject_id", "must be printable text")
            if with_output[i] != with_output[0]:
                raise invalid(f"rows[{i}].output", "give an output for every row or for none (then the server computes "
                                                   f"them); row 0 has {'one' if with_output[0] else 'none'}")
            if with_output[i]:
                problem = _loggable(row.output)
                if problem:
                    raise invalid(f"rows[{i}].output", f"cannot be logged: {problem}")
        key = (m.fingerprint, d.name)
        if key not in c.wrapped:
            try:
                c.wrapped[key] = capture.wrap(c.ledger, m.fingerprint, d.name)
            except (ArtifactError, RegistryError) as exc:
                raise Problem(409, "Conflict", str(exc), kind="artifact") from None
        wrapped = c.wrapped[key]
        if not with_output[0] and not callable(getattr(wrapped.estimator, body.method, None)):
            raise invalid("method", f"the model has no {body.method}")
        frame = None if with_output[0] else pd.DataFrame([r.input for r in body.rows], columns=names)
        subject_ids = [r.subject_id for r in body.rows]
        tokens: list[str | None] = []

        def within(tx, first: int) -> None:
            tokens[:] = [new_receipt_token(first + pos) if s else None for pos, s in enumerate(subject_ids)]
            store_receipt_tokens(tx, [t for t in tokens if t])

        try:
            with append_lock:
                if with_output[0]:
                    result = wrapped.log_outputs([r.input for r in body.rows], [r.output for r in body.rows], subject_ids, within)
                else:
                    decide = wrapped.predict if body.method == "predict" else wrapped.predict_proba
                    decide(frame, subject_ids, within=within)
                    result = wrapped.last_batch
        except (capture.InputError, EntryError) as exc:
            row = re.search(r"row (\d+)", str(exc))
            raise invalid(f"rows[{row.group(1)}]" if row else "rows", str(exc)) from None
        except (ValueError, TypeError, OverflowError, AttributeError, IndexError, KeyError) as exc:  # the estimator refusing the inputs
            bad = _locate_bad_row(wrapped.estimator, body.method, frame) if frame is not None else None
            raise invalid(f"rows[{bad}].input" if bad is not None else "rows",
                          f"the model cannot use these inputs: {exc}") from None
        # Receipts against the batch's own checkpoint (signed just now, so not re-verified), with the
        # batch's entries, private values and inclusion proofs read together; as capture.receipt builds them.
        lg = c.ledger
        entries = dict(lg.entries(result.first_index, result.tree_size))
        opened = lg.private_values_for(result.indexes)
        proofs = lg.inclusion_proofs(result.indexes, result.tree_size)
        out = []
        for pos, i in enumerate(result.indexes):
            private = {kind: (salt, value) for kind, (_, salt, value) in opened.get(i, {}).items()}
            rc = Receipt(lg.origin, i, entries[i], result.tree_size, result.checkpoint, tuple(proofs[i]), private)
            item = {"index": i, "receipt": rc.to_dict()}
            if tokens[pos]:
                item["receipt_token"] = tokens[pos]
            out.append(item)
        return {"first_index": result.first_index, "tree_size": result.tree_size, "checkpoint": result.checkpoint,
                "decisions": out}

    @app.post("/v1/outcomes", status_code=201, tags=["decisions"], summary="Record observed outcomes of decisions (operator)",
              response_model=BatchAppended, responses=_errors(*_WRITE))
    def append_outcomes(body: OutcomeBatch, who: Operator) -> dict:
        c = ctx()
        size = c.ledger.signed_size()
        for k, o in enumerate(body.outcomes):
            if o.decision >= size:
                raise invalid(f"outcomes[{k}].decision", f"no entry {o.decision} in the log (size {size})")
            kind = json.loads(c.ledger.entry(o.decision)).get("type")
            if kind != "decision":
                raise invalid(f"outcomes[{k}].decision", f"entry {o.decision} is a {kind} entry, not a decision")
            if o.outcome is None:
                raise invalid(f"outcomes[{k}].outcome", "must not be null: record an outcome once it is known")
            problem = _loggable(o.outcome)
            if problem:
                raise invalid(f"outcomes[{k}].outcome", f"cannot be logged: {problem}")
        try:
            result = capture.record_outcomes(c.ledger, [(o.decision, o.outcome) for o in body.outcomes])
        except EntryError as exc:
            raise invalid(f"outcomes[{exc.index}]" if exc.index is not None else "outcomes", str(exc)) from None
        except ValueError as exc:
            raise invalid("outcomes", str(exc)) from None
        return {"first_index": result.first_index, "tree_size": result.tree_size, "checkpoint": result.checkpoint}

    # ------------------------------------------------------------ keys
    @app.post("/v1/keys", status_code=201, tags=["keys"], summary="Issue an API key (operator); the token is shown once",
              response_model=KeyCreated, responses=_errors(*_WRITE))
    def create_key(body: KeyRequest, who: Operator) -> dict:
        if body.role == "supervisor":
            raise forbidden("supervisor keys are issued only at the log's host (glasslog keys create --role supervisor),"
                            " never through the operator's API; every issue is a public key entry on the log")
        c = ctx()
        for k, name in enumerate(body.deployments):
            if body.role != "developer":
                raise invalid("deployments", "only developer keys are granted specific deployments")
            if c.deployments.find(name) is None:
                raise invalid(f"deployments[{k}]", f"unknown deployment {name!r}: declare it first")
            if name in body.deployments[:k]:
                raise invalid(f"deployments[{k}]", "given twice")
        try:
            record, token = c.keys.create(body.role, body.name, body.deployments)
        except ValueError as exc:
            raise invalid("deployments" if "deployments" in str(exc) else "name", str(exc)) from None
        return {**record.to_dict(), "token": token}

    @app.get("/v1/keys", tags=["keys"], summary="List API keys (operator); secrets are never returned",
             response_model=list[KeyOut], responses=_errors(*_READ, 403))
    def list_keys(who: Operator) -> list[dict]:
        return [k.to_dict() for k in ctx().keys.list()]

    @app.delete("/v1/keys/{key_id}", tags=["keys"], summary="Revoke an API key (operator)",
                response_model=KeyOut, responses=_errors(*_READ, 403, 404))
    def revoke_key(key_id: str, who: Operator) -> dict:
        if any(k.key_id == key_id and k.role == "supervisor" for k in ctx().keys.list()):
            raise forbidden("supervisor keys are revoked only at the log's host, not by the operator's API")
        try:
            return ctx().keys.revoke(key_id).to_dict()
        except LookupError as exc:
            raise not_found(str(exc)) from None

    kit = ServerKit(ctx=ctx, Who=Who, require=require, requires=requires, append_lock=append_lock, data_dir=data_dir)
    for register in _route_modules():
        register(app, kit)
    return app


@dataclasses.dataclass(frozen=True)
class ServerKit:
    """What a route module added to the app gets from ``create_app``.

    Attributes:
        ctx: returns this thread's ``Context`` (ledger, registry, deployments, keys, index).
        Who: the ``Annotated[Principal, Depends(...)]`` type that authenticates the caller (public if none).
        require: ``require(who, *roles)`` raises 401/403 problem+json unless ``who.role`` is one of ``roles``.
        requires: ``requires(*roles)`` makes a dependency doing the same.
        append_lock: serialises writes in this process (hold it around ``ledger.append``).
        data_dir: the log's data directory.
    """

    ctx: Any
    Who: Any
    require: Any
    requires: Any
    append_lock: Any
    data_dir: Path


def _route_modules() -> list:
    """``register(app, kit)`` functions of the route modules beside this one, in the order they are added."""
    from . import monitor_routes, oversight_routes, verify_routes, web

    return [m.register for m in (oversight_routes, verify_routes, monitor_routes, web) if hasattr(m, "register")]


def app_from_env() -> FastAPI:
    """App factory for multi-worker uvicorn: the data directory comes from ``$GLASSLOG_DATA_DIR``."""
    from ..ledger import default_data_dir

    return create_app(default_data_dir())
