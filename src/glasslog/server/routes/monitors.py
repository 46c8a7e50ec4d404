"""The monitors (see ``glasslog.oversight.monitors``).

| endpoint | who |
|---|---|
| ``POST /v1/monitors/run`` | supervisors, researchers, operators: the monitors run as the caller's role, so each sees its own view (researchers pseudonymised inputs, so no disparity unless the card allows); findings are recorded on the log in one append unless ``record`` is false |
| ``GET /v1/findings`` | anyone: monitor and audit findings as recorded (every entry is public; findings hold aggregates only), newest first |

A run reads the whole log (about 10 s for a million decisions, see
BENCHMARKS.md); it runs in a worker thread, and its findings are appended
under the server's write lock.
"""


from typing import Annotated, Any, Literal

from fastapi import Body, Depends, Query
from pydantic import Field

from ...ledger import EntryError
from ...oversight.monitors import MONITORS, MonitorConfig, MonitorConfigError, list_findings, run_monitors
from ...oversight.views import MonitorViewError
from ..deps import State, Who, api_router, requires, uint
from ..problems import READ, WRITE, errors, invalid
from ..schemas import UINT, Open, Out, Strict

__all__ = ["router"]

router = api_router()

MonitorName = Literal["performance", "drift", "disparity", "goodhart", "anomalies"]
assert set(MonitorName.__args__) == set(MONITORS)
Name = Annotated[str, Field(min_length=1, max_length=200)]
Runner = Annotated[Any, Depends(requires("supervisor", "researcher", "operator"))]


class GroupSpec(Strict):
    bins: list[float] | None = Field(None, min_length=1, max_length=50, description="increasing cut points of a numeric feature")
    map: dict[str, Name] | None = Field(None, max_length=500, description="category -> group name")


class MonitorRunRequest(Strict):
    deployments: list[Name] | None = Field(None, min_length=1, max_length=100, description="only these deployments (default all)")
    monitors: list[MonitorName] | None = Field(None, min_length=1, max_length=5, description="default: all five")
    alpha: float = Field(0.05, gt=0, lt=1, description="family-wise significance level of each monitor")
    reference_size: int = Field(1000, ge=1, le=100_000_000, description="reference window: the first N decisions (at most half)")
    reference_deployment: Name | None = Field(None, description="reference window: all decisions of this deployment instead")
    window: int | None = Field(None, ge=1, le=100_000_000, description="current window: the latest N decisions")
    favourable: int | str | None = Field(None, description="favourable output label for selection rates (default: the card's)")
    groups: dict[str, GroupSpec] | None = Field(None, max_length=50, description="protected feature -> its groups")
    min_psi: float = Field(0.0, ge=0, le=100, description="a feature drifts only if its PSI is also at least this")
    record: bool = Field(True, description="append the findings to the log (one atomic append)")
    alerts_only: bool = Field(False, description="record only the findings that alert")


class FindingOut(Open):
    check: str
    deployment: str | None = None
    model: str | None = None
    statistic: str
    value: float | None = None
    threshold: float | None = None
    verdict: Literal["alert", "ok", "insufficient-data"]
    severity: Literal["info", "low", "medium", "high", "critical"]
    window: dict[str, Any] | None = None
    evidence: dict[str, Any] | None = None


class SkippedOut(Out):
    monitor: str
    deployment: str
    model: str | None = None
    reason: str


class MonitorRunOut(Out):
    role: str
    time: str
    decisions: int = Field(description="decisions read")
    load_seconds: float
    check_seconds: float
    alerts: int
    findings: list[FindingOut]
    skipped: list[SkippedOut]
    recorded: list[int] | None = Field(description="entry indexes of the recorded findings (null when not recorded)")


class FindingEntryOut(FindingOut):
    index: int
    time: str
    source: Literal["monitor", "audit"]
    by_role: str


class FindingPage(Out):
    findings: list[FindingEntryOut]
    next_before: int | None = Field(description="pass as ?before= for the next (older) page; null at the end")


@router.post("/v1/monitors/run", tags=["monitors"], response_model=MonitorRunOut, response_model_exclude_none=False,
             responses=errors(*WRITE),
             summary="Run the monitors as the caller's role and record their findings (supervisor, researcher, operator)")
def run(who: Runner, s: State,
        body: Annotated[MonitorRunRequest | None, Body(description="settings; no body = all defaults")] = None) -> dict:
    body = body if body is not None else MonitorRunRequest()
    groups = {k: v.model_dump(exclude_none=True) for k, v in (body.groups or {}).items()}
    try:
        cfg = MonitorConfig(alpha=body.alpha, monitors=tuple(body.monitors or MONITORS), reference_size=body.reference_size,
                            reference_deployment=body.reference_deployment, window=body.window,
                            favourable=body.favourable, groups=groups, min_psi=body.min_psi)
    except MonitorConfigError as exc:
        raise invalid(exc.field, str(exc).split(": ", 1)[-1]) from None
    c = s.ctx()
    try:
        result = run_monitors(c.ledger, who.role, cfg, deployments=body.deployments, granted=who.deployments)
    except MonitorConfigError as exc:
        raise invalid(exc.field, str(exc).split(": ", 1)[-1]) from None
    except MonitorViewError as exc:
        field = "reference_deployment" if "reference" in str(exc) else "deployments"
        raise invalid(field, str(exc)) from None
    recorded = None
    if body.record:
        try:
            with s.append_lock:
                appended = result.record(c.ledger, only_alerts=body.alerts_only)
        except EntryError as exc:  # a finding that does not fit the schema: nothing was written
            raise invalid(exc.field or "body", exc.detail) from None
        recorded = list(appended.indexes) if appended is not None else []
    return {**result.to_dict(), "recorded": recorded}


@router.get("/v1/findings", tags=["monitors"], response_model=FindingPage, responses=errors(*READ),
            summary="Findings of monitors and audits as recorded on the log, newest first (anyone)")
def findings(who: Who, s: State,
             deployment: Annotated[str | None, Query(max_length=200)] = None,
             check: Annotated[str | None, Query(max_length=200, description="a check, or a prefix such as drift")] = None,
             verdict: Annotated[Literal["alert", "ok", "insufficient-data"] | None, Query()] = None,
             source: Annotated[Literal["monitor", "audit"] | None, Query()] = None,
             before: Annotated[str | None, Query(pattern=UINT, description="only entries before this index (next_before)")] = None,
             limit: Annotated[int, Query(ge=1, le=500)] = 50) -> dict:
    c = s.ctx()
    signed = c.ledger.signed_size()
    start = uint(before, "before")
    limit_before = signed if start is None else min(start, signed)
    found = list_findings(c.ledger, deployment=deployment, check=check, verdict=verdict, source=source, limit=limit,
                          before=limit_before)
    return {"findings": found, "next_before": found[-1]["index"] if len(found) == limit else None}
