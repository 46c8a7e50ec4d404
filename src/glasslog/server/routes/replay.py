"""The supervisory authority's replay verification: did the registered weights really make the logged decisions?

``POST /v1/replay`` (supervisor) runs ``glasslog.verify.replay`` over the
decisions of one model and/or deployment (or the whole log): every logged
input is opened from beside the log, checked against its commitment, fed to
the registered artifact (checked against its fingerprint), and the recomputed
output compared with the logged one. The report is returned to the supervisor
and, unless ``record`` is false, its counts go on the log as a ``finding``
entry (``glasslog.verify.replay.replay_finding``: ``source`` ``audit``,
``check`` ``replay.weights``), so the result is public and a failed replay
enters the triage queue as an alert. The entry holds counts and the indexes
of mismatched decisions only, never their inputs or (private) outputs; the
response, for the supervisor, has them.
"""


import math
from typing import Annotated, Any

from pydantic import Field

from ...ledger import utc_now
from ...verify.replay import replay, replay_finding
from ..deps import State, Supervisor, api_router, deployment_or_404, model_or_404
from ..problems import WRITE, Problem, errors
from ..schemas import FINGERPRINT, Out, Strict

__all__ = ["router"]

router = api_router()


class ReplayRequest(Strict):
    model: str | None = Field(None, pattern=FINGERPRINT, description="only decisions of this model")
    deployment: str | None = Field(None, min_length=1, max_length=200, description="only decisions of this deployment")
    record: bool = Field(True, description="append the result to the log as a finding entry")
    trusted: list[Annotated[str, Field(min_length=1, max_length=300)]] = Field(
        default_factory=list, max_length=50, description="extra skops types the supervisor reviewed and trusts for loading "
                                                         "the weights (as skops names them)")
    trust_recorded: bool = Field(False, description="also trust the skops types recorded with each model's registration")


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
    encoder_checked: int = Field(description="decisions naming a foundation encoder, recomputed as embeddings + head")
    encoder_tolerance: float | None = Field(description="absolute tolerance for those (null: none selected)")
    batches: int = Field(0, description="logged batches recomputed, each as it was logged")
    alone_checked: int = Field(0, description="decisions of multi-row batches also recomputed alone (up to 10 per batch)")
    batch_dependent: int = Field(0, description="decisions whose output recomputed alone differs from the one recomputed in "
                                               "their logged batch: the leakage signal")
    batch_dependent_examples: list[dict[str, Any]] = Field(default_factory=list, description="first 100: index, in_batch, "
                                                                                            "alone, batch_size")
    unlogged_erasures: list[dict[str, Any]] = Field(default_factory=list, description="index and field of values marked "
                                                    "erased beside the log with no erasure entry on the log")
    not_checked: list[dict[str, Any]] = Field(default_factory=list, description="models not loaded because they need skops "
                                              "types not trusted (model, types, recorded): their decisions were not checked,"
                                              " which is not a failure")
    self_reported: int = Field(0, description="decisions an application reported (OTLP embeddings): nothing the weights "
                                              "produced to recompute, not checked, which is not a failure")
    model: str | None
    deployment: str | None
    finding_index: int | None = Field(description="index of the finding entry recording the result (null if not recorded)")


@router.post("/v1/replay", tags=["verification"], response_model=ReplayOut, responses=errors(*WRITE, 404),
             summary="Replay logged decisions against the registered weights (supervisor); the result goes on the log as a finding")
def run_replay(body: ReplayRequest, who: Supervisor, s: State) -> dict:
    c = s.ctx()
    model = model_or_404(c, body.model).fingerprint if body.model is not None else None
    if body.deployment is not None:
        deployment_or_404(c, body.deployment)
    report = replay(c.ledger, model=model, deployment=body.deployment, trusted=tuple(body.trusted),
                    trust_recorded=body.trust_recorded)
    index = None
    if body.record:
        try:
            with s.append_lock:
                index = c.ledger.append([replay_finding(report, model, body.deployment, utc_now())]).first_index
        except ValueError as exc:  # EntryError: a name the entry schema refuses
            raise Problem(422, "Invalid request", str(exc), kind="invalid") from None
    diff = report.max_abs_diff if math.isfinite(report.max_abs_diff) else None
    return {**report.to_dict(), "max_abs_diff": diff, "model": model, "deployment": body.deployment, "finding_index": index}
