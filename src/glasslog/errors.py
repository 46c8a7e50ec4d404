"""One root for every error glasslog raises on purpose, in five kinds.

Each kind says how the command line and the server report it, in one place:
``exit_code`` (0 success, 1 a verification failed, 2 bad usage or input) and
``http_status``. Domain errors subclass one kind (and, where callers have
always caught it so, the matching built-in: ``ValueError``, ``LookupError``,
``PermissionError``), so ``except GlasslogError`` catches every one of them
and nothing else.

- ``LogIntegrityError``: the log, a proof, a checkpoint or a receipt failed
  verification (exit 1; HTTP 422).
- ``BadInputError``: the input is malformed or refused (exit 2; HTTP 422, or
  404 for ``NotFoundError``).
- ``AccessError``: the caller may not do or see this (exit 2; HTTP 403).
- ``ConflictError``: the request conflicts with the log's state: a suspended
  model, a duplicate flag, an item acted on meanwhile (exit 2; HTTP 409).
- ``UnavailableError``: the log or its database cannot be reached or used
  now (exit 2; HTTP 503).

The server's one handler for ``GlasslogError`` (``glasslog.server.problems``)
answers with the class's ``http_status``, ``problem_title`` and ``problem_kind``
(the RFC 9457 ``type`` suffix); a subclass that needs another answer (a missing
credential is 401, a suspended model "model-not-active") says so on the class,
not in the server. Only the OTLP receiver answers differently, because the
OTLP/HTTP specification fixes its statuses (400 for a bad request, 503 to retry)
and its body (``google.rpc.Status``).

Modelled on httpx's single ``HTTPError`` root.
"""

from __future__ import annotations

__all__ = ["GlasslogError", "LogIntegrityError", "BadInputError", "NotFoundError", "AccessError", "ConflictError",
           "UnavailableError", "EXIT_OK", "EXIT_FAILED", "EXIT_USAGE"]

EXIT_OK = 0
"""Exit code: success."""
EXIT_FAILED = 1
"""Exit code: a verification or check failed (or found something at the alert level asked)."""
EXIT_USAGE = 2
"""Exit code: bad usage or input, or the log cannot be used."""


class GlasslogError(Exception):
    """Root of glasslog's errors. ``exit_code`` and ``http_status`` say how to report it."""

    exit_code = EXIT_USAGE
    http_status = 400
    problem_title = "Bad Request"
    problem_kind = "bad-request"
    retry_after: int | None = None
    """Seconds after which a retry may succeed (sent as ``Retry-After``), or None."""


class LogIntegrityError(GlasslogError):
    """A log, proof, checkpoint or receipt failed verification."""

    exit_code = EXIT_FAILED
    http_status = 422
    problem_title = "Verification failed"
    problem_kind = "verification-failed"


class BadInputError(GlasslogError, ValueError):
    """Input that is malformed or refused; the message names the field and the problem."""

    http_status = 422
    problem_title = "Invalid request"
    problem_kind = "invalid"


class NotFoundError(BadInputError, LookupError):
    """The thing asked for does not exist (no such entry, model, checkpoint)."""

    http_status = 404
    problem_title = "Not Found"
    problem_kind = "not-found"


class AccessError(GlasslogError, PermissionError):
    """The caller's role or credential does not allow this."""

    http_status = 403
    problem_title = "Forbidden"
    problem_kind = "forbidden"


class ConflictError(GlasslogError):
    """The request conflicts with the log's current state."""

    http_status = 409
    problem_title = "Conflict"
    problem_kind = "conflict"


class UnavailableError(GlasslogError):
    """The log or its database cannot be reached or used now."""

    http_status = 503
    problem_title = "Log unavailable"
    problem_kind = "log-unavailable"
