"""Errors as RFC 9457 ``application/problem+json``, and the handlers that turn exceptions into them.

Every error has ``type``, ``title``, ``status``, ``detail`` and, for invalid
input, ``errors: [{"field", "problem"}]`` naming each bad field
(``rows[3].input.age_in_years``). A route raises ``Problem`` (or one made by
``forbidden``, ``not_found``, ``invalid``); ``install`` adds the handlers for
it, for FastAPI's and Starlette's exceptions, and one for every
``glasslog.errors.GlasslogError``, whose class says its status, title and kind
(a bad credential 401, a model not active 409, the log unavailable 503: see
``glasslog.errors``); any other exception is a 500 without internals. It documents ``Problem`` and
``FieldProblem`` in the OpenAPI components. ``errors(...)`` gives a route's
documented error responses.
"""


import json
from collections.abc import Callable
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from ..errors import GlasslogError
from .schemas import PATTERN_PROBLEMS

__all__ = ["Problem", "ProblemResponse", "problem_response", "forbidden", "not_found", "invalid", "unauthorized", "short",
           "errors", "READ", "WRITE", "install"]

TITLES = {400: "Bad Request", 401: "Unauthorized", 403: "Forbidden", 404: "Not Found", 405: "Method Not Allowed",
          408: "Request Timeout", 409: "Conflict", 413: "Content Too Large", 415: "Unsupported Media Type", 422: "Invalid request",
          500: "Internal Server Error", 503: "Log unavailable"}


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


def problem_response(status: int, title: str, detail: str, errors: list[dict] | None = None,
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


def unauthorized(detail: str) -> Problem:
    return Problem(401, "Unauthorized", detail, kind="unauthorized")


def invalid(field: str, problem: str, status: int = 422) -> Problem:
    return Problem(status, "Invalid request", f"{field}: {problem}", [{"field": field, "problem": problem}], kind="invalid")


def short(value: Any, limit: int = 80) -> str:
    """``repr(value)``, cut to ``limit`` characters, for quoting what a client sent."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


# ------------------------------------------------------------ OpenAPI
PROBLEM_SCHEMA = {
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
FIELD_PROBLEM_SCHEMA = {
    "title": "FieldProblem",
    "type": "object",
    "required": ["field", "problem"],
    "properties": {"field": {"type": "string", "description": "e.g. rows[3].input.age_in_years"},
                   "problem": {"type": "string"}},
    "additionalProperties": False,
}
ERROR_DESCRIPTIONS = {
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


def errors(*codes: int) -> dict:
    """OpenAPI ``responses`` documenting problem+json errors (422 and 503 always)."""
    return {c: {"description": ERROR_DESCRIPTIONS[c],
                "content": {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}}}
            for c in sorted({*codes, 422, 503})}


READ = (401,)
"""Errors of a read: a credential is checked when one is sent."""
WRITE = (400, 401, 403, 413, 415)
"""Errors of a write: credential, role, body."""


# ------------------------------------------------------------ handlers
def _field_path(loc: tuple) -> str:
    out = ""
    for p in loc:
        if isinstance(p, int):
            out += f"[{p}]"
        else:
            out += ("." if out else "") + str(p)
    return out


async def on_problem(request: Request, exc: Problem):
    headers = {"WWW-Authenticate": "Bearer"} if exc.status == 401 else {}
    return problem_response(exc.status, exc.title, exc.detail, exc.errors, exc.kind, {**headers, **exc.headers} or None)


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
            return problem_response(415, "Unsupported Media Type", "the body must be JSON: send Content-Type: application/json",
                                    kind="unsupported-media-type")
        field = _field_path(loc[1:] if where in ("body", "query", "path", "header") else loc) or where
        if kind == "extra_forbidden":
            problem = "unknown field"
        elif kind == "string_pattern_mismatch" and e.get("ctx", {}).get("pattern") in PATTERN_PROBLEMS:
            problem = f"{PATTERN_PROBLEMS[e['ctx']['pattern']]}, got {short(e.get('input'))}"
        else:
            problem = e.get("msg", "invalid")
        errors.append({"field": field, "problem": problem})
    detail = "; ".join(f"{e['field']}: {e['problem']}" for e in errors[:5])
    return problem_response(422, "Invalid request", detail, errors, kind="invalid")


def http_handler(page_not_found: Callable[[Request], Response | None] | None = None):
    """The handler of Starlette's HTTP errors (404, 405, 413 ...): problem+json, unless ``page_not_found``
    returns a page for the request (an HTML 404 for a browser)."""

    async def on_http(request: Request, exc: StarletteHTTPException):
        if exc.status_code == 404 and page_not_found is not None:
            page = page_not_found(request)
            if page is not None:
                return page
        kind = {413: "too-large"}.get(exc.status_code, "http")
        headers = dict(getattr(exc, "headers", None) or {})
        if exc.status_code == 405:  # every method of the path, not only those of the first route that matched it
            methods = {m for r in request.app.router.routes
                       if getattr(r, "path_regex", None) and r.path_regex.match(request.url.path)
                       for m in (getattr(r, "methods", None) or ())}
            headers["Allow"] = ", ".join(sorted(methods))
        return problem_response(exc.status_code, TITLES.get(exc.status_code, "Error"), str(exc.detail), kind=kind,
                                headers=headers or None)

    return on_http


async def on_glasslog_error(request: Request, exc: GlasslogError):
    """A domain error, answered as its class says (``http_status``, ``problem_title``, ``problem_kind``)."""
    headers = {}
    if exc.http_status == 401:
        headers["WWW-Authenticate"] = "Bearer"
    if exc.retry_after is not None:
        headers["Retry-After"] = str(exc.retry_after)
    field = getattr(exc, "field", None)
    problems = [{"field": field, "problem": getattr(exc, "detail", None) or str(exc)}] if isinstance(field, str) else None
    return problem_response(exc.http_status, exc.problem_title, str(exc), problems, exc.problem_kind, headers or None)


async def on_bug(request: Request, exc: Exception):  # still a 500, but problem+json and no internals
    return problem_response(500, "Internal Server Error", f"unexpected {type(exc).__name__}; the request was not "
                            "completed (batches are all or nothing)", kind="internal")


def install(app: FastAPI, page_not_found: Callable[[Request], Response | None] | None = None) -> None:
    """Add the exception handlers to ``app`` and the problem schemas to its OpenAPI document.

    Args:
        page_not_found: called for a 404; returns a page instead of problem+json (the web register's, for
            browsers asking for a page that does not exist), or None.
    """
    app.add_exception_handler(Problem, on_problem)
    app.add_exception_handler(RequestValidationError, on_validation)
    app.add_exception_handler(StarletteHTTPException, http_handler(page_not_found))
    app.add_exception_handler(GlasslogError, on_glasslog_error)
    app.add_exception_handler(Exception, on_bug)

    base_openapi = app.openapi

    def openapi() -> dict:
        if app.openapi_schema is None:
            schema = base_openapi()
            schemas = schema.setdefault("components", {}).setdefault("schemas", {})
            schemas["Problem"] = PROBLEM_SCHEMA
            schemas["FieldProblem"] = FIELD_PROBLEM_SCHEMA
        return app.openapi_schema

    app.openapi = openapi
