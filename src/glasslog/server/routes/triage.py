"""The supervisors' triage queue of flags and findings (see ``glasslog.oversight.triage``).

| endpoint | who |
|---|---|
| ``GET /v1/triage``, ``GET /v1/triage/{item}`` | supervisors |
| ``POST /v1/triage/{item}/actions`` | supervisors: assign, resolve, escalate (suspends the model) or reopen; each is an entry |
"""


from typing import Annotated, Literal

from fastapi import Query
from pydantic import Field

from ...oversight.triage import STATES, Triage, TriageConflict, TriageError, TriageItem, UnknownItem
from ...records import TRIAGE_ACTIONS
from ..deps import State, Supervisor, api_router, uint
from ..problems import READ, WRITE, Problem, errors, invalid, not_found
from ..schemas import SAFE_INT, Out, Strict, TriageState, UInt

__all__ = ["router"]

router = api_router()


class TriageActionRequest(Strict):
    action: Literal["assign", "resolve", "escalate", "reopen"]
    reason: str = Field("", max_length=2000, description="Why; required for resolve, escalate and reopen. Public, on the log.")
    assignee: str | None = Field(None, min_length=1, max_length=200, description="For assign: who takes the item.")


assert set(TriageActionRequest.model_fields["action"].annotation.__args__) == set(TRIAGE_ACTIONS)


class LatestAlert(Out):
    index: int
    time: str
    value: float | None = None


class TriageSupport(Out):
    tier: Literal["alert", "confirmed", "needs-more-ratings", "not-helpful"]
    rank: int | None
    reporters: int | None
    ratings: int | None
    alerts: int | None = Field(None, description="findings: alerts merged into this item (repeats while it is not resolved)")
    latest: LatestAlert | None = Field(None, description="findings: the latest alert merged into this item")


class TriageActionOut(Out):
    index: int
    time: str
    item: int
    action: Literal["assign", "resolve", "escalate", "reopen"]
    reason: str
    key_id: str
    assignee: str | None = None


class TriageItemOut(Out):
    item: int
    kind: Literal["flag", "finding"]
    time: str
    model: str | None
    decision: int | None
    generation: int | None = Field(None, description="the flagged generation (flags about a generative model's output)")
    deployment: str | None
    summary: str = Field(description="the flag's category or the finding's check")
    severity: Literal["info", "low", "medium", "high", "critical"]
    support: TriageSupport
    state: TriageState
    assignee: str | None
    history: list[TriageActionOut]
    duplicates: list[int] = Field(default_factory=list, description="entries merged into this item: duplicate flags or "
                                                                    "repeated alerts, oldest first")


class TriagePage(Out):
    items: list[TriageItemOut]
    total: int
    next_offset: int | None


class TriageActionResult(Out):
    triage_index: int
    model_status_index: int | None = Field(description="escalate: the model status entry suspending the model")
    tree_size: int
    checkpoint: str
    item: TriageItemOut


def _item_out(it: TriageItem) -> dict:
    out = it.to_dict()
    keys = ("index", "time", "item", "action", "reason", "key_id", "assignee")
    out["history"] = [{k: h[k] for k in keys if k in h} for h in out["history"]]
    return out


def _item_or_404(triage: Triage, i: int) -> TriageItem:
    try:
        return triage.item(i)
    except UnknownItem as exc:
        raise not_found(exc.detail) from None


@router.get("/v1/triage", tags=["triage"], response_model=TriagePage, responses=errors(*READ, 403),
            summary="The triage queue of flags and findings, ranked by severity and support (supervisor)")
def list_triage(who: Supervisor, s: State,
                state: Annotated[Literal["active", "all", "open", "assigned", "resolved", "escalated"],
                                 Query(description="active = open and assigned")] = "active",
                offset: Annotated[int, Query(ge=0, le=SAFE_INT)] = 0,
                limit: Annotated[int, Query(ge=1, le=200)] = 50) -> dict:
    states = {"active": ("open", "assigned"), "all": STATES}.get(state, (state,))
    items = s.ctx().triage.queue(states)
    page = items[offset : offset + limit]
    return {"items": [_item_out(it) for it in page], "total": len(items),
            "next_offset": offset + limit if offset + limit < len(items) else None}


@router.get("/v1/triage/{item}", tags=["triage"], response_model=TriageItemOut, responses=errors(*READ, 403, 404),
            summary="One triage item with its history (supervisor)")
def get_triage_item(item: UInt, who: Supervisor, s: State) -> dict:
    return _item_out(_item_or_404(s.ctx().triage, uint(item, "item")))


@router.post("/v1/triage/{item}/actions", status_code=201, tags=["triage"], response_model=TriageActionResult,
             responses=errors(*WRITE, 404, 409),
             summary="Assign, resolve, escalate (suspends the model) or reopen a triage item (supervisor); each is an entry")
def act_on_item(item: UInt, body: TriageActionRequest, who: Supervisor, s: State) -> dict:
    triage = s.ctx().triage
    i = uint(item, "item")
    _item_or_404(triage, i)
    try:
        with s.append_lock:
            result = triage.act(i, body.action, body.reason, who.key_id or "supervisor", body.assignee)
    except UnknownItem as exc:
        raise not_found(exc.detail) from None
    except TriageConflict as exc:
        raise Problem(409, "Conflict", exc.detail, [{"field": exc.field or "action", "problem": exc.detail}],
                      kind="conflict") from None
    except TriageError as exc:
        raise invalid(exc.field or "body", exc.detail) from None
    return {"triage_index": result.triage_index, "model_status_index": result.model_status_index,
            "tree_size": result.tree_size, "checkpoint": result.checkpoint, "item": _item_out(result.item)}
