"""Flags and their ratings (see ``glasslog.oversight.flags``).

| endpoint | who |
|---|---|
| ``POST /v1/flags`` | a subject, for their own decision or generation (receipt token); anyone, for a model or a decision or generation of a public-service deployment; keyed roles for the decisions and generations they may read |
| ``GET /v1/flags``, ``GET /v1/flags/{index}`` | anyone; ranked by the bridging model, with ratings and status |
| ``POST /v1/flags/{index}/ratings`` | anyone who may read the flag's text, except its reporters |
| ``DELETE /v1/flags/{index}/text`` | supervisors (moderation; the entry and its commitment stay) |

Rate limits, per API key, receipt token or (for the public) client address,
in memory per server process: ``deps.FLAGS_PER_HOUR`` flags and
``deps.RATINGS_PER_HOUR`` ratings per hour (sliding window); over them, 429
with a ``Retry-After`` header (seconds until the oldest counted request
leaves the window). A request refused for another reason (a duplicate flag,
409; bad input) does not count. Every rating request that is accepted
counts, a re-rating included; a rating equal to the rater's current one
appends nothing (200, ``unchanged``, the existing rating entry).

A flag's text is shown to everyone for flags about a model or a
public-service decision, and for flags about a private deployment's decision
only to its reporter, supervisors and the operator (``text_state``:
``shown``, ``withheld``, ``erased`` or ``none``).
"""


import json
from typing import Annotated, Any, Literal

from fastapi import Query, Request, Response
from pydantic import Field

from ...access import Principal, may_read_decision
from ...oversight.bridging import CONFIRMED, NEEDS_MORE_RATINGS, NOT_HELPFUL
from ...oversight.flags import (
    MAX_TEXT_CHARS,
    DuplicateFlagError,
    FlagError,
    Flags,
    FlagSummary,
    OwnFlagError,
    UnknownFlagError,
    address_identity,
    key_identity,
    subject_identity,
)
from ...records import FLAG_CATEGORIES, RATINGS
from .. import deps
from ..deps import RateLimit, ServerState, State, Supervisor, Who, api_router, uint
from ..problems import READ, WRITE, Problem, errors, forbidden, invalid, not_found, unauthorized
from ..schemas import FINGERPRINT, SAFE_INT, UINT, Out, Strict, TriageState, UInt

__all__ = ["router"]

router = api_router()

Category = Literal["wrong-outcome", "wrong-reasons", "unfair", "harmful", "privacy", "other"]
RatingValue = Literal["helpful", "somewhat", "not-helpful"]
Status = Literal["confirmed", "needs-more-ratings", "not-helpful"]
assert set(Category.__args__) == set(FLAG_CATEGORIES) and set(RatingValue.__args__) == set(RATINGS)
assert set(Status.__args__) == {CONFIRMED, NEEDS_MORE_RATINGS, NOT_HELPFUL}

_TOO_MANY = {429: {"description": "Rate limit reached for this key, receipt token or address",
                   "headers": {"Retry-After": {"description": "seconds until the next request may be accepted",
                                               "schema": {"type": "integer", "minimum": 1}}},
                   "content": {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}}}}


# ------------------------------------------------------------ request models
class FlagRequest(Strict):
    model: str | None = Field(None, pattern=FINGERPRINT, description="The flagged model; may be omitted when a decision is given.")
    decision: int | None = Field(None, ge=0, le=SAFE_INT, description="Index of the flagged decision; omit to flag the model.")
    generation: int | None = Field(None, ge=0, le=SAFE_INT, description="Index of the flagged generation (a generative "
                                   "model's output; GET /v1/generations); instead of decision.")
    category: Category = Field(description="wrong-outcome, wrong-reasons (right answer for the wrong reasons), unfair, "
                                           "harmful, privacy or other")
    text: str | None = Field(None, max_length=MAX_TEXT_CHARS,
                             description=f"What is wrong, at most {MAX_TEXT_CHARS} characters. Kept beside the log (the "
                                         "entry holds its commitment) and shown publicly unless the flag is about a "
                                         "private deployment's decision; leave personal data out.")


class RatingRequest(Strict):
    rating: RatingValue


# ------------------------------------------------------------ response models
class RatingCounts(Out):
    helpful: int
    somewhat: int
    not_helpful: int
    total: int


class FlagScoreOut(Out):
    method: Literal["bridging", "wilson"] = Field(description="bridging: scored by the matrix-factorisation model; "
                                                              "wilson: too few ratings yet, ranked by the Wilson lower bound")
    intercept: float | None = Field(description="helpfulness no viewpoint explains (bridging only); confirmed from 0.40")
    factor: float | None = Field(description="which side of the main axis of disagreement the flag appeals to (bridging only)")
    net_minority_helpful: int | None = Field(description="min over the two sides of helpful minus not-helpful ratings (bridging only)")
    wilson_lower_bound: float | None = Field(description="95% Wilson lower bound of the helpful share (somewhat counts half)")


class FlagOut(Out):
    index: int
    time: str
    model: str
    decision: int | None
    generation: int | None = Field(None, description="the flagged generation (on the log, the flag entry's decision field "
                                                     "holds its index)")
    deployment: str | None
    category: Category
    by_role: str
    text: str | None = Field(description="the text, where the caller may read it (see text_state)")
    text_state: Literal["none", "shown", "withheld", "erased"]
    text_erased_at: str | None = None
    status: Status
    rank: int = Field(description="position in the ranking of all flags (1 = first)")
    ratings: RatingCounts
    score: FlagScoreOut
    reporters: int = Field(description="reporters of this target and category (duplicates merged)")
    duplicates: list[int] = Field(description="flags merged into this one")
    duplicate_of: int | None = Field(description="the flag this one is merged into (its ratings and status are that flag's)")
    triage_state: TriageState
    own: bool = Field(description="the caller reported this flag")


class ScoringOut(Out):
    method: Literal["bridging", "wilson"]
    raters_in_model: int
    flags_in_model: int
    parameters: dict[str, Any] = Field(description="bridging parameters (Community Notes scorer defaults)")


class FlagPage(Out):
    flags: list[FlagOut]
    total: int
    next_offset: int | None
    scoring: ScoringOut


class RatingOut(Out):
    index: int
    flag: int = Field(description="the flag rated (the primary, if the one named was merged into it)")
    rating: RatingValue
    replaces: int | None = Field(description="the caller's earlier rating of this flag, now superseded")
    unchanged: bool = Field(False, description="the caller had already given this rating: nothing was appended, and "
                                               "index is that rating's entry (status 200)")
    flag_view: FlagOut


# ------------------------------------------------------------ helpers
def _duration(seconds: int) -> str:
    """``59`` -> ``59 seconds``, ``61`` -> ``2 minutes`` (rounded up), for a retry hint."""
    if seconds < 60:
        return f"{seconds} second{'s' if seconds != 1 else ''}"
    minutes = -(-seconds // 60)
    return f"{minutes} minute{'s' if minutes != 1 else ''}"


def _identity(who: Principal, request: Request) -> str:
    if who.role == "subject":
        return subject_identity(who.entry_index)
    if who.key_id is not None:
        return key_identity(who.key_id)
    return address_identity(request.client.host if request.client else "unknown")


def _limited(limit: RateLimit, ident: str, what: str, per_hour: int) -> None:
    if not limit.allow(ident):
        wait = limit.retry_after(ident)
        raise Problem(429, "Too Many Requests", f"at most {per_hour} {what} per hour per key, receipt token or address;"
                      f" try again in {_duration(wait)}", kind="rate-limited", headers={"Retry-After": str(wait)})


def _view(flags: Flags, s: FlagSummary, index: int, who: Principal, ident: str, states: dict[int, str]) -> dict:
    fl = flags.get(index)
    own = flags.is_reporter(index, ident) if fl.reporter is not None else False
    state, text = flags.text(index)
    erased_at = None
    if state == "shown" and not flags.may_read_text(index, who.role, own):
        state, text = "withheld", None
    elif state == "erased":
        erased = flags.erasure(index)
        erased_at = erased[0] if erased else None
    sc = s.score
    return {
        "index": fl.index, "time": fl.time, "model": fl.model, "deployment": fl.deployment,
        "decision": None if fl.generation is not None else fl.decision, "generation": fl.generation,
        "category": fl.category, "by_role": fl.by_role, "text": text, "text_state": state, "text_erased_at": erased_at,
        "status": sc.status, "rank": sc.rank,
        "ratings": {"helpful": sc.helpful, "somewhat": sc.somewhat, "not_helpful": sc.not_helpful, "total": sc.ratings},
        "score": {"method": sc.method, "intercept": sc.intercept, "factor": sc.factor,
                  "net_minority_helpful": sc.net_minority_helpful, "wilson_lower_bound": sc.wilson_lower_bound},
        "reporters": s.reporters, "duplicates": list(s.duplicates),
        "duplicate_of": None if s.flag.index == fl.index else s.flag.index,
        "triage_state": states.get(s.flag.index, "open"), "own": own,
    }


def _one(index: int, who: Principal, request: Request, s: ServerState) -> dict:
    c = s.ctx()
    try:
        summary = c.flags.summary(index)
    except UnknownFlagError as exc:
        raise not_found(exc.detail) from None
    return _view(c.flags, summary, index, who, _identity(who, request), c.triage.states())


# ------------------------------------------------------------ routes
@router.post("/v1/flags", status_code=201, tags=["flags"], response_model=FlagOut,
             responses={**errors(*WRITE, 409), **_TOO_MANY},
             summary="Flag a decision or a model (subjects with their receipt token, anyone for models and public-service "
                     "decisions, keyed roles)")
def post_flag(body: FlagRequest, who: Who, request: Request, s: State) -> dict:
    c = s.ctx()
    flags = c.flags
    by_role = "public" if who.role == "subject" else who.role
    if body.decision is not None and body.generation is not None:
        raise invalid("generation", "give the decision or the generation flagged, not both")
    target = "generation" if body.generation is not None else "decision"
    flagged = body.generation if body.generation is not None else body.decision
    if flagged is not None:
        i = flagged
        size = c.ledger.signed_size()
        if i >= size:
            raise invalid(target, f"no entry {i} in the log (size {size})")
        entry = json.loads(c.ledger.entry(i))
        if entry.get("type") != target:
            raise invalid(target, f"entry {i} is a {entry.get('type')} entry, not a {target}")
        d = c.deployments.find(entry["deployment"])
        public = bool(d is not None and d.public)
        if not may_read_decision(who, i, entry["deployment"], public):  # the one rule, for generations too (policy.py)
            # the policy decided; what follows only words the refusal for the caller
            if who.role == "subject":
                problem = (f"this receipt token opens {'decision' if target == 'decision' else 'entry'} {who.entry_index},"
                           f" not {target} {i}: flag a {target} with the receipt token of that {target}")
                raise Problem(403, "Forbidden", problem, [{"field": "token", "problem": problem}], kind="forbidden")
            if who.role == "public":
                raise unauthorized(f"{target} {i} is of a private deployment: its subject flags it with "
                                   "their receipt token (Authorization: Bearer grt_...)")
            raise forbidden(f"role {who.role} may not flag {target}s of deployment {entry['deployment']!r}")
        if who.role == "subject" and who.entry_index == i:
            by_role = "subject"  # recorded as the subject only on their own decision; elsewhere as the public
    ident = _identity(who, request)
    _limited(s.flag_limit, ident, "flags", deps.FLAGS_PER_HOUR)
    try:
        with s.append_lock:
            added = flags.add(category=body.category, by_role=by_role, reporter=ident, model=body.model,
                              decision=flagged, text=body.text)
    except DuplicateFlagError as exc:
        s.flag_limit.release(ident)  # nothing was written: a refused flag does not count toward the limit
        field = target if flagged is not None else "model"
        raise Problem(409, "Conflict", exc.detail, [{"field": field, "problem": exc.detail}], kind="duplicate-flag") from None
    except FlagError as exc:
        s.flag_limit.release(ident)
        raise invalid(target if exc.field == "decision" else (exc.field or "body"), exc.detail) from None
    except BaseException:
        s.flag_limit.release(ident)
        raise
    return _one(added.flag.index, who, request, s)


@router.get("/v1/flags", tags=["flags"], response_model=FlagPage, responses=errors(*READ),
            summary="Flags ranked by the bridging model (Community Notes), with ratings and status")
def list_flags(who: Who, request: Request, s: State,
               model: Annotated[str | None, Query(pattern=FINGERPRINT)] = None,
               decision: Annotated[str | None, Query(pattern=UINT, description="flags of this decision")] = None,
               generation: Annotated[str | None, Query(pattern=UINT, description="flags of this generation")] = None,
               category: Annotated[Category | None, Query()] = None,
               status: Annotated[Status | None, Query()] = None,
               offset: Annotated[int, Query(ge=0, le=SAFE_INT)] = 0,
               limit: Annotated[int, Query(ge=1, le=200)] = 50) -> dict:
    c = s.ctx()
    flags = c.flags
    d = uint(decision, "decision")
    g = uint(generation, "generation")
    summaries, board = flags.board()
    chosen = [x for x in summaries if (model is None or x.flag.model == model)
              and (d is None or (x.flag.decision == d and x.flag.generation is None))
              and (g is None or x.flag.generation == g)
              and (category is None or x.flag.category == category) and (status is None or x.score.status == status)]
    ident = _identity(who, request)
    states = c.triage.states()
    page = chosen[offset : offset + limit]
    return {"flags": [_view(flags, x, x.flag.index, who, ident, states) for x in page], "total": len(chosen),
            "next_offset": offset + limit if offset + limit < len(chosen) else None,
            "scoring": {"method": board.method, "raters_in_model": board.raters_in_model,
                        "flags_in_model": board.flags_in_model, "parameters": board.params.to_dict()}}


@router.get("/v1/flags/{index}", tags=["flags"], response_model=FlagOut, responses=errors(*READ, 404),
            summary="One flag, with its ratings, status and (where the caller may read it) text")
def get_flag(index: UInt, who: Who, request: Request, s: State) -> dict:
    return _one(uint(index, "index"), who, request, s)


@router.post("/v1/flags/{index}/ratings", status_code=201, tags=["flags"], response_model=RatingOut,
             responses={200: {"model": RatingOut, "description": "The caller had already given this rating: nothing "
                                                                "appended (unchanged, with that rating's entry)"},
                        **errors(*WRITE, 404), **_TOO_MANY},
             summary="Rate a flag: helpful, somewhat or not-helpful (anyone who may read it, except its reporters)")
def rate_flag(index: UInt, body: RatingRequest, who: Who, request: Request, response: Response, s: State) -> dict:
    flags = s.ctx().flags
    i = uint(index, "index")
    ident = _identity(who, request)
    try:
        own = flags.is_reporter(i, ident)
    except UnknownFlagError as exc:
        raise not_found(exc.detail) from None
    if own:
        raise forbidden("you reported this flag (or one merged with it); others rate it")
    if flags.text(i)[0] == "shown" and not flags.may_read_text(i, who.role, False):
        raise forbidden("this flag is about a private deployment's decision; its text, and so its rating, is for "
                        "supervisors and the operator")
    _limited(s.rating_limit, ident, "ratings", deps.RATINGS_PER_HOUR)  # re-ratings count too (each one is an entry)
    try:
        with s.append_lock:
            added = flags.rate(i, body.rating, ident)
    except OwnFlagError as exc:
        s.rating_limit.release(ident)
        raise forbidden(exc.detail) from None
    except FlagError as exc:
        s.rating_limit.release(ident)
        raise invalid(exc.field or "body", exc.detail) from None
    if added.unchanged:
        response.status_code = 200
    return {"index": added.rating.index, "flag": added.rating.flag, "rating": added.rating.rating,
            "replaces": added.replaces, "unchanged": added.unchanged, "flag_view": _one(added.rating.flag, who, request, s)}


@router.delete("/v1/flags/{index}/text", tags=["flags"], response_model=FlagOut, responses=errors(*READ, 403, 404, 409),
               summary="Erase a flag's text beside the log (supervisor moderation); the entry and its commitment stay")
def erase_flag_text(index: UInt, who: Supervisor, request: Request, s: State,
                    reason: Annotated[str, Query(min_length=1, max_length=500, description="why (kept with the erasure)")]) -> dict:
    flags = s.ctx().flags
    i = uint(index, "index")
    if not reason.strip() or not reason.isprintable():
        raise invalid("reason", "must be printable text saying why")
    try:
        erased = flags.erase_text(i, f"{reason.strip()} (supervisor {who.key_id})")
    except UnknownFlagError as exc:
        raise not_found(exc.detail) from None
    if not erased:
        raise Problem(409, "Conflict", f"flag {i} has no text to erase (none given, or erased already)", kind="conflict")
    return _one(i, who, request, s)
