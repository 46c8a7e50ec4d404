"""What a route gets from the app: its state, this thread's connection to the log, the caller, and the checks on both.

- ``State``: the app's ``ServerState`` (``s.ctx()`` is this thread's
  ``Context``: ledger, registry, deployments, keys, search index, flags and
  triage; the append lock; rate limits; caches).
- ``Who``: the caller as a ``Principal``, the public if no credential is sent.
  Every ``/v1`` endpoint checks a credential when one is sent: a malformed,
  unknown or revoked one is refused with 401 even where the public needs
  none. ``Operator`` and ``Supervisor`` (and ``requires(*roles)``) refuse
  other roles with 403, before the request body is looked at.
- ``strict_query``: on every route, unknown and repeated query parameters
  and integers with signs or leading zeros are refused (422).

Concurrency: each thread has its own connection to the log (``Context``).
The verifier endpoints and proofs run on the event loop (a few indexed reads;
no hop to a worker thread); everything else runs in worker threads. Decision
batches arriving together in one process are group-committed
(``ServerState.group_commit``, a ``glasslog.ledger.GroupCommit`` every
thread's ledger shares: one transaction, one sync and one signed checkpoint
for all of them, each request answered once its own entries are durable);
across processes, appends are serialised by the back end's write lock. The
low-volume writes (flags, triage, monitors) also hold ``append_lock``, so that
their read-then-append checks run one at a time. Each append is one transaction,
so a shutdown (uvicorn finishes in-flight requests on SIGINT/SIGTERM) never
leaves a half-written batch. Since a ``Context`` belongs to a thread, routes
take the ``ServerState`` and call ``s.ctx()`` in the thread they run in (a
plain ``def`` dependency would run in another one).

Rate limits and caches are in memory, per app (so per server process).
"""


import collections
import json
import math
import os
import re
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Request
from starlette.concurrency import run_in_threadpool

from .. import capture
from ..access import PUBLIC, AuthError, KeyStore, Principal, effective_principal, may_read_decision
from ..access.policy import opens_outcomes, readable_deployments
from ..ledger import GroupCommit, Ledger
from ..oversight.flags import Flags
from ..oversight.triage import Triage
from ..registry import Deployment, Deployments, RegisteredModel, Registry, RegistryError
from .index import SearchIndex
from .middleware import StrictJSONRoute
from .problems import forbidden, invalid, not_found, short, unauthorized
from .schemas import PATTERN_PROBLEMS, UINT

__all__ = ["Context", "ServerState", "State", "state_of", "Who", "CHECK_CREDENTIALS", "Operator", "Supervisor", "require", "requires",
           "strict_query", "api_router", "uint", "model_or_404", "deployment_or_404", "RateLimit", "BytesCache",
           "ANONYMOUS_DOWNLOADS_PER_HOUR", "FLAGS_PER_HOUR", "RATINGS_PER_HOUR", "BUNDLE_CACHE_BYTES"]

ANONYMOUS_DOWNLOADS_PER_HOUR = 20
"""Anonymous weight downloads (each appends an access entry) allowed per client address per hour."""
FLAGS_PER_HOUR = 20
"""Flags one key, receipt token or client address may file per hour."""
RATINGS_PER_HOUR = 200
"""Ratings one key, receipt token or client address may give per hour."""
BUNDLE_CACHE_BYTES = 64 * 2**20
"""Memory (bytes) per process for gzip-compressed entry bundles (full and partial), which are immutable."""


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
        self._flags: Flags | None = None
        self._triage: Triage | None = None

    def root(self, tree_size: int) -> bytes:
        """Root hash of the tree of ``tree_size`` entries; the log is append-only, so each is computed once."""
        r = self._roots.get(tree_size)
        if r is None:
            r = self.ledger.root(tree_size)
            if len(self._roots) >= 1024:
                self._roots.clear()
            self._roots[tree_size] = r
        return r

    @property
    def flags(self) -> Flags:
        """This thread's flags and ratings (kept: they read the log incrementally)."""
        if self._flags is None:
            self._flags = Flags(self.ledger, self.registry, self.deployments)
        return self._flags

    @property
    def triage(self) -> Triage:
        """This thread's triage queue, over ``flags``."""
        if self._triage is None:
            self._triage = Triage(self.ledger, self.flags, self.registry)
        return self._triage


# -------------------------------------------------------------- limits and caches
class RateLimit:
    """At most ``limit`` events per ``window`` seconds per key (sliding window, in memory)."""

    def __init__(self, limit: int, window: float):
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


class BytesCache:
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


# -------------------------------------------------------------- the app's state
COMMIT_WINDOW_ENV = "GLASSLOG_COMMIT_WINDOW_MS"
COMMIT_MAX_ENV = "GLASSLOG_COMMIT_MAX_ENTRIES"


def _env_number(name: str, default: float) -> float:
    """A non-negative number from the environment (``glasslog serve`` sets these from its options)."""
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ValueError(f"${name} must be a number, got {raw!r}") from None
    if not value >= 0:
        raise ValueError(f"${name} must not be negative, got {raw!r}")
    return value


class ServerState:
    """What one app shares across its threads (``app.state.glasslog``).

    Attributes:
        data_dir: the log's data directory.
        store: the log's database URL, or None for the data directory's SQLite file.
        append_lock: serialises the low-volume read-then-append routes in this process.
        group_commit: gathers concurrent appends of this process's threads into one transaction
            (window ``$GLASSLOG_COMMIT_WINDOW_MS``, default 0: whatever queued during the last commit;
            at most ``$GLASSLOG_COMMIT_MAX_ENTRIES`` entries, default 5,000).
        anonymous_downloads, flag_limit, rating_limit: rate limits (``*_PER_HOUR``, read when the app is built).
        bundle_cache: gzip-compressed entry bundles.
    """

    def __init__(self, data_dir: Path, store: str | None = None):
        self.data_dir, self.store = data_dir, store
        self.append_lock = threading.Lock()
        self.group_commit = GroupCommit(window=_env_number(COMMIT_WINDOW_ENV, 0.0) / 1000,
                                        max_entries=int(_env_number(COMMIT_MAX_ENV, 5000)))
        self.anonymous_downloads = RateLimit(ANONYMOUS_DOWNLOADS_PER_HOUR, 3600.0)
        self.flag_limit = RateLimit(FLAGS_PER_HOUR, 3600.0)
        self.rating_limit = RateLimit(RATINGS_PER_HOUR, 3600.0)
        self.bundle_cache = BytesCache(BUNDLE_CACHE_BYTES)
        self._local = threading.local()
        self._shared: dict[str, Any] = {}
        self._shared_lock = threading.Lock()

    def ctx(self) -> Context:
        """This thread's ``Context`` (opened on the thread's first call)."""
        c = getattr(self._local, "ctx", None)
        if c is None:
            c = self._local.ctx = Context(self.data_dir, self.store)
            c.ledger.group = self.group_commit
        return c

    def shared(self, name: str, make: Callable[[], Any]) -> Any:
        """The app's one object called ``name``, made by ``make()`` on first use (e.g. the web register's aggregates)."""
        with self._shared_lock:
            if name not in self._shared:
                self._shared[name] = make()
            return self._shared[name]


def state_of(request: Request) -> ServerState:
    """The app's ``ServerState``, for code that has the request but not the ``State`` dependency."""
    return request.app.state.glasslog


# Dependencies that only look at the request are ``async def``: FastAPI runs
# a plain ``def`` dependency in the thread pool, one hop per dependency per
# request. Only a credential lookup (a database read) goes to a thread.
async def server_state(request: Request) -> ServerState:
    return request.app.state.glasslog


State = Annotated[ServerState, Depends(server_state)]


async def principal(request: Request,
                    authorization: Annotated[str | None, Header(description="Bearer glk_... (API key) or grt_... "
                                                                            "(receipt token); omit for the public")] = None
                    ) -> Principal:
    if authorization is None:
        return PUBLIC
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise AuthError("Authorization must be 'Bearer <API key or receipt token>'")
    s = state_of(request)
    who = await run_in_threadpool(lambda: s.ctx().keys.authenticate(token.strip()))
    if who.role == "operator" and who.deployments:  # an ingestion key, kept in an application's exporter settings
        raise forbidden(f"this operator key is bound to deployment {who.deployments[0]!r}: it sends that deployment's"
                        " telemetry (POST /v1/traces, /v1/logs) and nothing else; use an unbound operator key")
    return who


Who = Annotated[Principal, Depends(principal)]
CHECK_CREDENTIALS = [Depends(principal)]
"""For routes that do not use the caller: a credential sent is still checked."""


def require(who: Principal, *roles: str) -> None:
    """Raise 401 (the public) or 403 unless ``who`` has one of ``roles``."""
    if who.role not in roles:
        if who.role == "public":
            raise unauthorized(f"this needs credentials of role {' or '.join(roles)}")
        raise forbidden(f"role {who.role} may not do this; it needs {' or '.join(roles)}")


def requires(*roles: str):
    """A dependency giving the caller if it has one of ``roles`` (see ``require``)."""
    async def check(who: Who) -> Principal:
        require(who, *roles)
        return who

    return check


Operator = Annotated[Principal, Depends(requires("operator"))]
Supervisor = Annotated[Principal, Depends(requires("supervisor"))]


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
        if allowed[name].field_info.annotation in (int, int | None) and not re.fullmatch(UINT, value):
            raise invalid(name, f"{PATTERN_PROBLEMS[UINT]}, got {short(value)}")


def api_router() -> APIRouter:
    """A router for a route module: strict JSON bodies and strict query strings on every route."""
    return APIRouter(route_class=StrictJSONRoute, dependencies=[Depends(strict_query)])


# -------------------------------------------------------------- lookups
def uint(value: str | None, field: str) -> int | None:
    """A decimal index from a path or query string (None stays None); 422 naming ``field`` if malformed."""
    if value is None:
        return None
    if not re.fullmatch(UINT, value):
        raise invalid(field, f"{PATTERN_PROBLEMS[UINT]}, got {short(value)}")
    return int(value)


def model_or_404(c: Context, fingerprint: str) -> RegisteredModel:
    """The registered model (fingerprint or a unique prefix), or 404."""
    try:
        return c.registry.get(fingerprint)
    except RegistryError as exc:
        raise not_found(str(exc)) from None


def deployment_or_404(c: Context, name: str) -> Deployment:
    d = c.deployments.find(name)
    if d is None:
        raise not_found(f"unknown deployment {name!r}")
    return d


_PUBLIC_SEES = {"decision": "aggregate counts only (GET /v1/deployments/stats?name=...)",
                "generation": "the generation's commitments on the log (GET /v1/entries/{index}) and aggregate counts only"}


def readable_output(c: Context, who: Principal, i: int, kind: str) -> tuple[dict, Principal]:
    """Entry ``i`` of ``kind`` (``decision`` or ``generation``) if ``who`` may read it, and the principal whose view
    applies to it (``access.effective_principal``): the access policy decides, this only fetches and words.

    Raises:
        Problem: 404 if ``i`` is beyond the signed log or not of ``kind``; 403 if the policy refuses.
    """
    signed = c.ledger.signed_size()
    if i >= signed:
        raise not_found(f"no entry {i} in the signed log (tree size {signed})")
    entry = json.loads(c.ledger.entry(i))
    if entry.get("type") != kind:
        raise not_found(f"entry {i} is a {entry.get('type')} entry, not a {kind}")
    d = c.deployments.find(entry["deployment"])
    if not may_read_decision(who, i, entry["deployment"], d.public if d is not None else False):
        if who.role == "public":
            raise forbidden(f"deployment {entry['deployment']!r} is private: the public sees {_PUBLIC_SEES[kind]}")
        raise forbidden(f"role {who.role} may not read {kind}s of deployment {entry['deployment']!r}")
    return entry, effective_principal(who, i, entry["deployment"])


def outcome_views(c: Context, reader: Principal, i: int) -> list[dict]:
    """The outcomes recorded for decision or generation ``i``, oldest first, as ``reader`` sees them: public values as
    logged, committed ones opened for the roles ``access.policy.opens_outcomes`` names (the latest one counts; a later
    outcome says which it ``corrects``)."""
    views = []
    for oi in c.index.outcomes_of(i):
        o = json.loads(c.ledger.entry(oi))
        ov = {"index": oi, "time": o["time"], **{k: o[k] for k in ("corrects", "reason", "outcome") if k in o}}
        if "outcome" not in o:
            ov["outcome_commitment"] = o["outcome_commitment"]
            opened = c.ledger.private_values_for([oi]).get(oi, {}).get("outcome") if opens_outcomes(reader.role) else None
            if opened:
                ov["outcome"] = json.loads(opened[2])
        views.append(ov)
    return views


def listed_deployments(c: Context, who: Principal, deployment: str | None, kind: str) -> list[str]:
    """The deployments a list of ``kind`` (``decisions`` or ``generations``) may cover for ``who``: those the policy
    lets them read (``readable_deployments``), or the one named by the ``deployment`` filter.

    Raises:
        Problem: 404 for an unknown deployment; 403 for one the policy does not let ``who`` read.
    """
    all_deployments = c.deployments.list()
    visible = readable_deployments(who, all_deployments)
    if deployment is None:
        return visible
    if deployment not in {d.name for d in all_deployments}:
        raise not_found(f"unknown deployment {deployment!r}")
    if deployment not in visible:
        raise forbidden(f"role {who.role} may not list {kind} of deployment {deployment!r}"
                        + (" (private: see GET /v1/deployments/stats)" if who.role == "public" and kind == "decisions"
                           else ""))
    return [deployment]
