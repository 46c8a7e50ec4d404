"""HTTP route for the supervisory authority's replay verification: did the registered weights really make the logged decisions?

``POST /v1/replay`` (supervisor) runs ``glasslog.verify.replay`` over the
decisions of one model and/or deployment (or the whole log): every logged
input is opened from beside the log, checked against its commitment, fed to
the registered artifact (checked against its fingerprint), and the recomputed
output compared with the logged one. The report is returned to the supervisor
and, unless ``record`` is false, its counts go on the log as a ``finding``
entry (``source`` ``audit``, ``check`` ``replay.weights``), so the result is
public and a failed replay enters the triage queue as an alert. The entry
holds counts and the indexes of mismatched decisions only, never their inputs
or (private) outputs; the response, for the supervisor, has them.
"""


import math
from typing import Annotated, Any

from fastapi import Depends, FastAPI
from pydantic import Field

from ..access import Principal
from ..ledger import utc_now
from ..registry import RegistryError
from ..verify import replay
from .app import _FINGERPRINT, _WRITE, Out, Problem, Strict, _errors, not_found

__all__ = ["register", "REPLAY_CHECK", "replay_finding"]

REPLAY_CHECK = "replay.weights"
"""The ``check`` name of replay findings."""


class ReplayRequest(Strict):
    model: str | None = Field(None, pattern=_FINGERPRINT, description="only decisions of this model")
    deployment: str | None = Field(None, min_length=1, max_length=200, description="only decisions of this deployment")
    record: bool = Field(True, description="append the result to the log as a finding entry")


class ReplayOut(Out):
    ok: bool = Field(description="every decision checked was reproduced, and no value was missing or failed its commitment")
    total: int = Field(description="decisions selected")
    checked: int = Field(description="decisions recomputed")
    matched: int
    erased: int = Field(description="skipped: inputs or outputs lawfully erased")
    mismatch_count: int
    mismatches: list[dict[str, Any]] = Field(description="first 100: index, logged and recomputed output")
    commitment_failures: list[dict[str, Any]] = Field(description="index and field whose stored value does not open its commitment")
    missing: list[dict[str, Any]] = Field(description="index and field of values missing without a recorded erasure")
    max_abs_diff: float | None = Field(description="largest absolute difference between a logged and a recomputed probability "
                                                   "(null: a probability vector of another length)")
    tolerance: float
    errors: list[str] = Field(description="models that could not be loaded")
    model: str | None
    deployment: str | None
    finding_index: int | None = Field(description="index of the finding entry recording the result (null if not recorded)")


def _finite(x: float) -> float | None:
    return x if math.isfinite(x) else None


def replay_finding(report, model: str | None, deployment: str | None, time: str) -> dict:
    """The ``finding`` entry recording a replay report: counts and mismatched indexes, no values.

    Args:
        report: a ``glasslog.verify.replay.ReplayReport``.
        model, deployment: what was replayed (None: all).
        time: RFC 3339 UTC time of the entry.

    Returns:
        The entry as a JSON object (``alert`` with severity ``critical`` when outputs differ or commitments
        fail, ``high`` when values are missing or a model could not be loaded; ``insufficient-data`` when
        nothing could be checked; else ``ok``).
    """
    if report.mismatch_count or report.commitment_failures:
        verdict, severity = "alert", "critical"
    elif report.missing or report.errors:
        verdict, severity = "alert", "high"
    elif report.checked == 0:
        verdict, severity = "insufficient-data", "info"
    else:
        verdict, severity = "ok", "info"
    entry = {"type": "finding", "v": 1, "time": time, "source": "audit", "check": REPLAY_CHECK, "statistic": "mismatches",
             "value": report.mismatch_count, "threshold": 0, "verdict": verdict, "severity": severity, "by_role": "supervisor",
             "window": {"decisions": report.total},
             "evidence": {"checked": report.checked, "matched": report.matched, "erased": report.erased,
                          "mismatch_count": report.mismatch_count,
                          "mismatched_indexes": [m["index"] for m in report.mismatches[:20]],
                          "commitment_failures": [f["index"] for f in report.commitment_failures[:20]],
                          "missing": [m["index"] for m in report.missing[:20]],
                          "max_abs_diff": _finite(report.max_abs_diff), "tolerance": report.tolerance,
                          "errors": [e[:300] for e in report.errors[:5]]}}
    if model is not None:
        entry["model"] = model
    if deployment is not None:
        entry["deployment"] = deployment
    return entry


def register(app: FastAPI, kit) -> None:
    """Add ``POST /v1/replay`` to ``app`` (see the module docstring)."""
    Supervisor = Annotated[Principal, Depends(kit.requires("supervisor"))]

    @app.post("/v1/replay", tags=["verification"], response_model=ReplayOut, responses=_errors(*_WRITE, 404),
              summary="Replay logged decisions against the registered weights (supervisor); the result goes on the log as a finding")
    def run_replay(body: ReplayRequest, who: Supervisor) -> dict:
        c = kit.ctx()
        model = None
        if body.model is not None:
            try:
                model = c.registry.get(body.model).fingerprint
            except RegistryError as exc:
                raise not_found(str(exc)) from None
        if body.deployment is not None and c.deployments.find(body.deployment) is None:
            raise not_found(f"unknown deployment {body.deployment!r}")
        report = replay(c.ledger, model=model, deployment=body.deployment)
        index = None
        if body.record:
            try:
                with kit.append_lock:
                    index = c.ledger.append([replay_finding(report, model, body.deployment, utc_now())]).first_index
            except ValueError as exc:  # EntryError: a name the entry schema refuses
                raise Problem(422, "Invalid request", str(exc), kind="invalid") from None
        return {**report.to_dict(), "max_abs_diff": _finite(report.max_abs_diff), "model": model, "deployment": body.deployment, "finding_index": index}
