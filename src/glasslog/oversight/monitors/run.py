"""A monitor run: load the views a role may see, run the configured monitors over each, record the findings."""

from __future__ import annotations

import time as _time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timezone

from ...findings import Finding
from ...ledger import Ledger
from ...ledger.entries import MAX_ENTRY_BYTES, canonical_json
from ...ledger.log import AppendResult
from ..views import MONITOR_ROLES, ColumnCursor, DeploymentData, MonitorViewError, load_views
from .common import RunContext
from .config import MonitorConfig, MonitorConfigError, check_settings
from .registry import MONITORS

__all__ = ["MonitorRun", "run_monitors", "monitor_views", "list_findings"]


@dataclass
class MonitorRun:
    """What one run found.

    Attributes:
        role: the role the monitors ran as.
        findings: every finding, in the order the monitors produced them.
        skipped: ``{"monitor", "deployment", "model", "reason"}`` for monitors
            that could not run for a pair (e.g. the role sees no outputs).
        decisions: decisions in the views the monitors checked.
        load_seconds, check_seconds: wall time reading the log and running the monitors.
        time: the run's time (RFC 3339), also the findings' time.
        rows_read: decision and outcome rows this run read from the log's columnar copy (with a ``ColumnCursor``,
            only those added since the cursor's last run).
    """

    role: str
    findings: list[Finding]
    skipped: list[dict]
    decisions: int
    load_seconds: float
    check_seconds: float
    time: str
    rows_read: int = 0

    @property
    def alerts(self) -> list[Finding]:
        return [f for f in self.findings if f.verdict == "alert"]

    def entries(self, only_alerts: bool = False) -> list[dict]:
        """The findings as ``finding`` entries (all, or only the alerts)."""
        chosen = self.alerts if only_alerts else self.findings
        return [f.entry(self.role, self.time) for f in chosen]

    def record(self, ledger: Ledger, only_alerts: bool = False) -> AppendResult | None:
        """Append the findings to the log in one atomic batch (None if there is nothing to record).

        Raises:
            glasslog.ledger.EntryError: a finding fails the entry schema (nothing written).
            glasslog.ledger.KeyFileError: the log's signer key cannot be used (nothing written).
        """
        entries = self.entries(only_alerts)
        if not entries:
            return None
        return ledger.append(entries)

    def to_dict(self) -> dict:
        return {"role": self.role, "time": self.time, "decisions": self.decisions,
                "load_seconds": round(self.load_seconds, 3), "check_seconds": round(self.check_seconds, 3),
                "alerts": len(self.alerts), "findings": [f.to_dict() for f in self.findings], "skipped": self.skipped}


def monitor_views(views: list[DeploymentData], cfg: MonitorConfig, *, role: str,
                  reference: DeploymentData | None = None, progress: Callable[[str, int, int], None] | None = None
                  ) -> tuple[list[Finding], list[dict]]:
    """Run the configured monitors over loaded views (see ``run_monitors``)."""
    ctx = RunContext(cfg.now or datetime.now(timezone.utc), reference)
    findings: list[Finding] = []
    skipped: list[dict] = []
    for k, view in enumerate(views):
        for monitor in cfg.monitors:
            got, why = MONITORS[monitor].check(view, cfg, ctx)
            findings.extend(got)
            if why:
                skipped.append({"monitor": monitor, "deployment": view.deployment, "model": view.model, "reason": why})
        if progress:
            progress("running monitors", k + 1, len(views))
    return findings, skipped


def run_monitors(
    ledger: Ledger,
    role: str,
    config: MonitorConfig | None = None,
    *,
    deployments: Iterable[str] | None = None,
    granted: Iterable[str] = (),
    progress: Callable[[str, int, int], None] | None = None,
    cursor: ColumnCursor | None = None,
) -> MonitorRun:
    """Run the monitors over the log as ``role`` sees it (nothing is recorded; see ``MonitorRun.record``).

    Args:
        ledger: the log.
        role: one of ``views.MONITOR_ROLES``.
        config: settings (default ``MonitorConfig()``).
        deployments: only these deployments (default all).
        granted: a developer's granted deployments.
        progress: optional ``progress(stage, done, total)`` callback.
        cursor: keeps what this run read for the next (``monitor run --every``), which then reads only the
            decisions and outcomes added since.

    Returns:
        The run's findings and skipped checks.

    Raises:
        glasslog.oversight.views.MonitorViewError: unknown role or deployment,
            or a reference deployment with no decisions.
        MonitorConfigError: a setting does not fit the log (``check_settings``),
            ``granted`` for a role other than developer or naming an unknown deployment,
            or ``reference_deployment`` among the monitored deployments.
        Nothing is recorded in either case.
    """
    cfg = config or MonitorConfig()
    if role not in MONITOR_ROLES:
        raise MonitorViewError(f"role must be one of {', '.join(MONITOR_ROLES)}, got {role!r}")
    started = _time.perf_counter()
    wanted = None if deployments is None else list(dict.fromkeys(deployments))
    if wanted is not None and cfg.reference_deployment is not None and cfg.reference_deployment in wanted:
        raise MonitorConfigError("reference_deployment", f"{cfg.reference_deployment!r} is also a monitored deployment; "
                                                         "the reference must be another deployment")
    load = wanted
    if wanted is not None and cfg.reference_deployment is not None and cfg.reference_deployment not in wanted:
        load = wanted + [cfg.reference_deployment]
    granted = tuple(granted)
    if granted and role != "developer":
        raise MonitorConfigError("granted", f"applies to role developer only, not {role}")
    cursor = cursor if cursor is not None else ColumnCursor()
    views = load_views(ledger, role, deployments=load, granted=granted, progress=progress, cursor=cursor)
    if granted:
        from ...registry import Deployments

        known = {d.name for d in Deployments(ledger).list()} | {v.deployment for v in views}
        unknown = [g for g in granted if g not in known]
        if unknown:
            raise MonitorConfigError("granted", f"no deployment {', '.join(map(repr, unknown))} on log {ledger.origin}")
    reference = None
    if cfg.reference_deployment is not None:
        refs = [v for v in views if v.deployment == cfg.reference_deployment]
        if not refs:
            raise MonitorViewError(f"reference deployment {cfg.reference_deployment!r} has no decisions on log {ledger.origin}")
        reference = refs[0]
        if wanted is not None and cfg.reference_deployment not in wanted:
            views = [v for v in views if v.deployment != cfg.reference_deployment]
        else:
            views = [v for v in views if v is not reference]
    check_settings(views + ([reference] if reference is not None else []), cfg, role)
    loaded = _time.perf_counter()
    findings, skipped = monitor_views(views, cfg, role=role, reference=reference, progress=progress)
    done = _time.perf_counter()
    from ...ledger import utc_now

    run = MonitorRun(role, findings, skipped, sum(v.n for v in views) + (reference.n if reference is not None else 0),
                     loaded - started, done - loaded, utc_now(), cursor.rows_read)
    for f in run.findings:  # fail now, before anything is recorded, if a finding would not fit an entry
        size = len(canonical_json(f.entry(role, run.time)))
        if size > MAX_ENTRY_BYTES:
            f.evidence = {"truncated": True, "reason": f"evidence of {size} bytes exceeds the entry limit",
                          "drifted": f.evidence.get("drifted")}
    return run


def list_findings(ledger: Ledger, *, deployment: str | None = None, check: str | None = None, verdict: str | None = None,
                  source: str | None = "monitor", limit: int = 50, before: int | None = None) -> list[dict]:
    """Finding entries on the log, newest first, each with its ``index``.

    Args:
        deployment, check (exact or prefix), verdict, source: filters (None = any).
        limit: at most this many.
        before: only entries with a smaller index (for paging).
    """
    found: list[dict] = []
    for idx, obj in ledger.entries_of_type("finding"):
        if before is not None and idx >= before:
            break
        if source is not None and obj.get("source") != source:
            continue
        if deployment is not None and obj.get("deployment") != deployment:
            continue
        if check is not None and not (obj.get("check") == check or str(obj.get("check", "")).startswith(check + ".")):
            continue
        if verdict is not None and obj.get("verdict") != verdict:
            continue
        found.append({"index": idx, **{k: v for k, v in obj.items() if k not in ("type", "v")}})
    found.reverse()
    return found[:limit]
