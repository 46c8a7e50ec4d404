"""``glasslog demo``: a credit-scoring deployment on the German Credit data, end to end.

1. Open (or create) the log.
2. Train a scorecard on 50 % of the applicants; measure the claimed accuracy
   and ROC AUC on a 20 % evaluation split; register the model (skops
   artifact, model card, claims) unless the same model is already registered.
3. Score the remaining 30 % through the capture SDK in batches, each applicant
   with a subject id; every call is one batch with its signed checkpoint.
4. Record each applicant's true outcome.
5. Verify: sample receipts offline with only the verifier key, the whole log,
   and a replay of this deployment's decisions against the registered weights.

Re-running appends a new deployment (``<origin>/deployment-<k>``) to the same log.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from sklearn.metrics import accuracy_score, roc_auc_score

from .. import capture
from ..datasets.german_credit import credit_model, german_credit_features, load_german_credit, split
from ..ledger import Ledger
from ..registry import ClaimedMetrics, ModelCard, Registry, fingerprint_frame, with_domains
from ..stats import wilson_interval
from ..verify import audit_log, replay, verify_receipt

__all__ = ["DemoSummary", "run_demo", "DEFAULT_ORIGIN"]

DEFAULT_ORIGIN = "bank.example/credit-decisions"


@dataclass
class DemoSummary:
    """What ``run_demo`` did and found; ``to_dict`` is the ``--json`` output."""

    data_dir: str
    origin: str
    verifier_key: str
    model: str
    model_registered_now: bool
    deployment: str
    decisions: int
    first_index: int
    outcomes: int
    batches: int
    tree_size: int
    checkpoint: str
    claimed: dict
    realised: dict
    receipts_checked: int
    receipts_ok: bool
    receipt_file: str
    log_audit: dict
    replay: dict
    ok: bool = field(default=False)

    def to_dict(self) -> dict:
        return vars(self).copy()


def run_demo(data_dir: str | Path, *, origin: str = DEFAULT_ORIGIN, seed: int = 0, batch_size: int = 30,
             progress=None) -> DemoSummary:
    """Run the demo (see module docstring) and return its summary.

    Args:
        data_dir: the log's data directory (created if absent).
        origin: origin for a new log (ignored when the log exists).
        seed: seed of the train / evaluation / deployment split and the model.
        batch_size: applicants per scoring call (one batch, one checkpoint each).
        progress: optional ``progress(stage, done, total)`` callback.
    """
    data_dir = Path(data_dir)
    ledger = capture.open_log(data_dir, create=True, origin=origin)
    try:
        return _run(ledger, data_dir, seed, batch_size, progress)
    finally:
        ledger.close()


def _run(ledger: Ledger, data_dir: Path, seed: int, batch_size: int, progress) -> DemoSummary:
    X, y = load_german_credit()
    train, evaluation, deploy = split(len(X), seed)
    registry = Registry(ledger)
    card_name, version = "German Credit scorecard", f"1.0-seed{seed}"
    training_fp = fingerprint_frame(X.iloc[train].assign(bad_credit_risk=y.iloc[train]))
    existing = [m for m in registry.list()
                if m.card.name == card_name and m.card.version == version
                and m.card.training_data_fingerprint == training_fp]  # any status: a suspended model stays refused
    registered_now = not existing
    if existing:
        record = existing[-1]
        claimed = record.card.claimed.metrics
    else:
        model = credit_model(X, seed).fit(X.iloc[train], y.iloc[train])
        eval_X, eval_y = X.iloc[evaluation], y.iloc[evaluation]
        claimed = {
            "accuracy": float(accuracy_score(eval_y, model.predict(eval_X))),
            "roc_auc": float(roc_auc_score(eval_y, model.predict_proba(eval_X)[:, 1])),
        }
        card = ModelCard(
            name=card_name, version=version, provider="Example Bank model risk team",
            intended_use="Consumer credit scoring: estimate the risk that an applicant's loan goes bad. "
                         "High-risk AI system (EU AI Act Annex III 5(b)); decisions reviewed by a credit officer.",
            features=with_domains(german_credit_features(X), X.iloc[train]),  # categories and ranges seen in training
            input_policy="flag",  # values outside them are scored, and the decision entry names the features
            output={"classes": [0, 1], "positive": 1, "favourable": 0, "meaning": "1 = bad credit risk, 0 = good",
                    "score": "proba[1], probability of bad credit risk"},
            training_data_fingerprint=training_fp,
            claimed=ClaimedMetrics(claimed, fingerprint_frame(eval_X.assign(bad_credit_risk=eval_y)), len(evaluation)),
            disclosure_policy="researchers",
            extra={"data": "Statlog German Credit (UCI, CC BY 4.0)", "split_seed": seed},
        )
        record = registry.register(model, card)

    deployments = {d["deployment"] for _, d in ledger.entries_of_type("decision")}
    k = 1
    while f"{ledger.origin}/deployment-{k}" in deployments:
        k += 1
    deployment = f"{ledger.origin}/deployment-{k}"
    wrapped = capture.wrap(ledger, record.fingerprint, deployment, visibility="private",
                           description="Consumer credit applications scored by the German Credit scorecard; outputs and"
                                       " outcomes are private (logged as commitments), the public sees counts.")

    deploy_X, deploy_y = X.iloc[deploy], y.iloc[deploy]
    subject_ids = [f"applicant-{int(i):04d}" for i in deploy]
    indexes: list[int] = []
    probas = []
    batches = 0
    for start in range(0, len(deploy_X), batch_size):
        p = wrapped.predict_proba(deploy_X.iloc[start : start + batch_size], subject_ids=subject_ids[start : start + batch_size])
        probas.append(p)
        indexes.extend(wrapped.last_batch.indexes)
        batches += 1
        if progress:
            progress("scoring applicants", min(start + batch_size, len(deploy_X)), len(deploy_X))
    proba = np.vstack(probas)[:, 1]
    predicted = (proba >= 0.5).astype(int)

    capture.record_outcomes(ledger, list(zip(indexes, deploy_y.astype(int).tolist())))
    if progress:
        progress("recording outcomes", len(indexes), len(indexes))

    correct = int((predicted == deploy_y.to_numpy()).sum())
    lo, hi = wilson_interval(correct, len(predicted))
    realised = {
        "accuracy": correct / len(predicted),
        "accuracy_95ci": [lo, hi],
        "roc_auc": float(roc_auc_score(deploy_y, proba)),
        "n": len(predicted),
        "claim_within_interval": lo <= claimed["accuracy"] <= hi,
    }

    # Receipts, verified with nothing but the verifier key read from its file.
    verifier_key = (data_dir / "log.vkey").read_text().strip()
    rng = np.random.default_rng(seed + k)
    sample = sorted(rng.choice(len(subject_ids), size=5, replace=False).tolist())
    receipts_ok = True
    receipt_dir = data_dir / "receipts"
    receipt_dir.mkdir(exist_ok=True)
    receipt_file = ""
    for pos in sample:
        receipts = capture.receipts_for_subject(ledger, subject_ids[pos])
        r = receipts[-1]
        receipts_ok &= verify_receipt(r, verifier_key).ok and r.index == indexes[pos]
        if not receipt_file:
            path = receipt_dir / f"receipt-{r.index}.json"
            r.save(path)
            receipt_file = str(path)
    if progress:
        progress("verifying receipts", len(sample), len(sample))

    audit = audit_log(ledger, progress=None)
    if progress:
        progress("auditing the whole log", 1, 1)
    replayed = replay(ledger, deployment=deployment)
    if progress:
        progress("replaying decisions", 1, 1)

    summary = DemoSummary(
        data_dir=str(data_dir), origin=ledger.origin, verifier_key=verifier_key, model=record.fingerprint,
        model_registered_now=registered_now, deployment=deployment, decisions=len(indexes), first_index=indexes[0],
        outcomes=len(indexes), batches=batches, tree_size=ledger.size, checkpoint=ledger.checkpoint(),
        claimed=dict(claimed), realised=realised, receipts_checked=len(sample), receipts_ok=receipts_ok,
        receipt_file=receipt_file, log_audit=audit.to_dict(), replay=replayed.to_dict(),
    )
    summary.ok = receipts_ok and audit.ok and replayed.ok
    return summary
