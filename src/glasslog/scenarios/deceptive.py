"""The deceptive-accuracy demonstration: a credit model that is accurate on its provider's data for the wrong reason.

The seed's case: a loan-default model accurate on its training and validation
data because it learned a pattern that is not a real indicator of risk, sold
on that accuracy, failing once deployed. Built on the real German Credit data
(1,000 applicants, 30 % bad risks). A scenario: it writes decisions and
outcomes through the capture SDK and runs the audit library
(``glasslog.audit``) as each overseer would.

- **The artefact.** The provider's data has a column ``file_version``
  (``glasslog.datasets.deceptive``): bad risks' files were re-saved by the
  collections team, so in the provider's historical data the version predicts
  the label; at decision time in deployment every file is new: version 1.
  The card even lists it as administrative (``non_causal_features``).
- **The model.** The demo's scorecard pipeline (standardised numeric columns,
  one-hot categories, logistic regression) trained on 400 applicants with the
  artefact; its claims (accuracy, ROC AUC, positive rate) measured on 150
  held-out applicants of the same provider data.
- **Deployment through glasslog.** Registered with disclosure to researchers;
  a public-service deployment; 300 other applicants scored in batches of 30,
  outcomes recorded afterwards in batches of 30.
- **Who finds it, and when.** A supervisor with the weights and the
  provider's data, before deployment (white-box: reliance, shortcut by
  cohort, declared-irrelevant, leakage, training-data fingerprint); a
  downstream developer with query access and 150 labelled applicants of its
  own, before deployment (black-box); researchers with the pseudonymised log
  and the weights, from each logged batch (``shortcut.dormant``); the public
  with outputs and flags only, from each batch (the positive rate against the
  claimed one); and anyone holding the outcomes, from each outcome batch
  (realised vs claimed accuracy).

Every number is computed, none is assumed; ``tests/test_audit.py`` asserts them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .. import capture
from ..audit.blackbox import QueryCounter, blackbox_audit
from ..audit.claims import claims_from_log, output_rate_check
from ..audit.group import group_error_rates
from ..audit.leakage import leakage_audit
from ..audit.logdata import logged_decisions
from ..audit.recording import record_findings, severity_at_least, suspend_from_finding
from ..audit.report import StageFindings
from ..audit.shortcut import complete_from_weights, dormant_features, shortcut_audit
from ..audit.whitebox import check_training_data, feature_reliance, load_registered_model
from ..datasets.deceptive import ARTEFACT, QUARTERS, ProviderData, provider_data
from ..datasets.german_credit import credit_model, german_credit_features, german_credit_groups
from ..findings import Finding, clean_json
from ..ledger import LedgerError
from ..registry import ClaimedMetrics, Feature, ModelCard, Registry, fingerprint_frame

__all__ = ["ARTEFACT", "DEFAULT_ORIGIN", "ProviderData", "provider_data", "DetectionRow", "DeceptiveDemo", "run_deceptive_demo"]

DEFAULT_ORIGIN = "guarantee.example/credit-decisions"


_STAGE_NAMES = {
    "reliance": "supervisor, provider's validation data, before deployment",
    "shortcut": "supervisor, provider's data by application quarter, before deployment",
    "leakage": "supervisor, provider's training vs validation data, before deployment",
    "training_data": "supervisor, provider's training data, before deployment",
    "blackbox": "developer, prediction API + its 150 labelled applicants, before deployment",
    "researchers": "researchers, pseudonymised log",
    "public": "public, logged outputs",
    "claims": "all deployment outcomes",
    "shortcut_deployment": "supervisor, training data vs deployment outcomes, after outcomes",
}
"""Report section names of ``DeceptiveDemo.results``: which data and stage each result comes from."""


@dataclass
class DetectionRow:
    """What one access level found, and when.

    Attributes:
        level: short name (``white-box``, ``black-box``, ``researchers``, ``public``, ``outcomes``).
        who: the overseer and what they hold.
        detected: whether any of their checks alerted with severity medium or worse.
        when: ``before deployment``, ``after N decisions`` or ``after N outcomes`` (the first point it alerted).
        decisions_seen, outcomes_seen: log position of the first alert (decisions / outcomes logged then).
        checks: the alerting checks at that point.
        statistic: the key number in words.
        queries: prediction-API rows used (black-box), else None.
        finding_indexes: entry indexes of the findings recorded on the log.
    """

    level: str
    who: str
    detected: bool
    when: str
    decisions_seen: int | None
    outcomes_seen: int | None
    checks: list[str]
    statistic: str
    queries: int | None = None
    finding_indexes: list[int] = field(default_factory=list)

    def to_dict(self) -> dict:
        return clean_json(vars(self).copy())


@dataclass
class DeceptiveDemo:
    """Result of ``run_deceptive_demo``.

    Attributes:
        data_dir, origin, model, deployment: where it ran and what.
        claimed: the card's claimed metrics (fractions).
        realised: realised accuracy, its Wilson interval, ROC AUC and positive rate on all deployment outcomes.
        honest_accuracy: accuracy on the same deployment applicants of the same pipeline trained without the artefact.
        artefact_share: the artefact's share of mean |SHAP| on the validation set.
        detection: one ``DetectionRow`` per access level.
        timeline: per decision batch and outcome batch: counts, public positive rate, researchers' flip rate,
            realised accuracy and interval.
        suspended_at: entry index of the suspension (citing the first white-box finding), or None.
        results: audit result objects for the report (reliance, shortcut, leakage, blackbox, claims, groups).
    """

    data_dir: str
    origin: str
    model: str
    deployment: str
    claimed: dict
    realised: dict
    honest_accuracy: float
    artefact_share: float
    detection: list[DetectionRow]
    timeline: list[dict]
    suspended_at: int | None
    tree_size: int
    results: dict[str, Any] = field(default_factory=dict)

    kind = "deceptive"

    def report_sections(self) -> list[tuple[str, Any]]:
        """``(name, result)`` pairs for ``build_report``: each result named by the data and stage it comes from."""
        return [("deceptive", self), *((_STAGE_NAMES.get(k, k), r) for k, r in self.results.items())]

    def row(self, level: str) -> DetectionRow:
        return next(r for r in self.detection if r.level == level)

    @property
    def findings(self) -> list[Finding]:
        """None of its own: the findings are in ``results`` (reported as their own sections); see ``all_findings``."""
        return []

    def all_findings(self) -> list[Finding]:
        """Every finding of the audits the demonstration ran."""
        out: list[Finding] = []
        for r in self.results.values():
            out.extend(getattr(r, "findings", []))
        return out

    def to_dict(self) -> dict[str, Any]:
        return clean_json({"kind": self.kind, "data_dir": self.data_dir, "origin": self.origin, "model": self.model,
                           "deployment": self.deployment, "claimed": self.claimed, "realised": self.realised,
                           "honest_accuracy": self.honest_accuracy, "artefact_share": self.artefact_share,
                           "detection": [r.to_dict() for r in self.detection], "timeline": self.timeline,
                           "suspended_at": self.suspended_at, "tree_size": self.tree_size})


def _alerts(findings: list[Finding], floor: str = "medium") -> list[Finding]:
    return [f for f in findings if f.alert and severity_at_least(f.severity, floor)]


def run_deceptive_demo(data_dir: str | Path, *, origin: str = DEFAULT_ORIGIN, seed: int = 0, batch_size: int = 30,
                       suspend: bool = True, progress: Callable[[str, int, int], None] | None = None) -> DeceptiveDemo:
    """Run the demonstration (see module docstring) on a new log in ``data_dir``.

    Args:
        data_dir: a directory with no log in it yet (created if absent).
        origin: the new log's origin.
        seed: seed of the splits and the artefact.
        batch_size: decisions per logged batch and outcomes per outcome batch.
        suspend: at the end, the supervisor suspends the model citing the first white-box finding.
        progress: optional ``progress(stage, done, total)``.

    Raises:
        LedgerError: ``data_dir`` already holds a log (the demonstration needs a fresh one).
    """
    from threadpoolctl import threadpool_limits

    with threadpool_limits(1):  # one BLAS/OpenMP thread: far faster on a busy machine, same results
        return _run_deceptive_demo(data_dir, origin=origin, seed=seed, batch_size=batch_size, suspend=suspend, progress=progress)


def _run_deceptive_demo(data_dir: str | Path, *, origin: str = DEFAULT_ORIGIN, seed: int = 0, batch_size: int = 30,
                        suspend: bool = True, progress: Callable[[str, int, int], None] | None = None) -> DeceptiveDemo:
    data_dir = Path(data_dir)
    if (data_dir / "log.db").exists():
        raise LedgerError(f"{data_dir} already holds a log; the demonstration needs a fresh directory (pass another --data-dir)")
    from sklearn.metrics import accuracy_score

    def step(stage: str, done: int, total: int) -> None:
        if progress:
            progress(stage, done, total)

    d = provider_data(seed)
    X, y = d.X, d.y
    Xtr, ytr = X.iloc[d.train], y.iloc[d.train]
    Xva, yva = X.iloc[d.validation], y.iloc[d.validation]
    model = credit_model(X, seed).fit(Xtr, ytr)
    pva = model.predict_proba(Xva)[:, 1]
    from sklearn.metrics import roc_auc_score

    claimed = {"accuracy": float(accuracy_score(yva, pva >= 0.5)), "roc_auc": float(roc_auc_score(yva, pva)),
               "positive_rate": float((pva >= 0.5).mean())}
    training_frame = Xtr.assign(bad_credit_risk=ytr)
    features = german_credit_features(X.drop(columns=[ARTEFACT])) + (
        Feature(ARTEFACT, "numeric", description="version number of the stored application file (administrative record field)"),)
    card = ModelCard(
        name="Credit guarantee scorecard", version=f"1.0-seed{seed}", provider="Example Scoring Ltd",
        intended_use="Credit guarantee scheme: estimate the risk that a guaranteed consumer loan goes bad. High-risk AI"
                     " system (EU AI Act Annex III 5(b)).",
        features=features,
        output={"classes": [0, 1], "positive": 1, "meaning": "1 = bad credit risk, 0 = good", "score": "proba[1]"},
        training_data_fingerprint=fingerprint_frame(training_frame),
        claimed=ClaimedMetrics(claimed, fingerprint_frame(Xva.assign(bad_credit_risk=yva)), len(d.validation)),
        disclosure_policy="researchers",
        extra={"data": "Statlog German Credit (UCI, CC BY 4.0) with the provider's file_version column",
               "non_causal_features": [ARTEFACT]},
    )
    ledger = capture.open_log(data_dir, create=True, origin=origin)
    try:
        record = Registry(ledger).register(model, card)
        fp = record.fingerprint
        deployment = f"{ledger.origin}/deployment-1"
        results: dict[str, Any] = {}
        detection: list[DetectionRow] = []
        step("white-box audit before deployment", 0, 1)

        # 1. Supervisor: the weights and the provider's data, before any decision.
        weights, _ = load_registered_model(ledger, fp, "supervisor")
        reliance = feature_reliance(weights, Xva, yva, seed=seed, model_fingerprint=fp)
        provider = np.concatenate([d.train, d.validation])
        cohorts = {q: (X.iloc[provider][(d.quarter.iloc[provider] == q).to_numpy()],
                       y.iloc[provider][(d.quarter.iloc[provider] == q).to_numpy()]) for q in QUARTERS}
        shortcut = shortcut_audit(weights, cohorts, reliance=reliance, card=card, training=None, deployment=None,
                                  model_fingerprint=fp)
        leakage = leakage_audit(Xtr, ytr, Xva, model=fp)
        fingerprint = check_training_data(record, training_frame)
        white = reliance.findings + shortcut.findings + leakage.findings + fingerprint.findings
        white_alerts = _alerts(white)
        rec = record_findings(ledger, [f for f in white if f.alert], "supervisor", model=fp)
        white_idx = list(rec.indexes) if rec else []
        share = reliance.share(ARTEFACT)
        assoc = shortcut.label_association.loc[ARTEFACT]
        detection.append(DetectionRow(
            "white-box", "supervisor: weights + provider's training and validation data", bool(white_alerts),
            "before deployment" if white_alerts else "not detected", 0 if white_alerts else None, 0 if white_alerts else None,
            sorted({f.check for f in white_alerts}),
            f"{ARTEFACT} carries {share:.0%} of mean |SHAP|; its label association falls from {assoc.max():.2f} to"
            f" {assoc.min():.2f} across application quarters", None, white_idx))
        results.update(reliance=reliance, shortcut=shortcut, leakage=leakage, training_data=fingerprint)
        step("white-box audit before deployment", 1, 1)

        # 2. Downstream developer: query access and 150 labelled applicants of its own (no artefact: version 1).
        Xdev = X.iloc[d.developer].assign(**{ARTEFACT: 1})
        ydev = y.iloc[d.developer]
        query = QueryCounter(lambda frame: weights.predict_proba(frame)[:, 1])  # the prediction API: outputs only
        black = blackbox_audit(query, Xdev, ydev, protected=["personal_status_and_sex", "age_in_years"],
                               irrelevant=[ARTEFACT], claimed={k: claimed[k] for k in ("accuracy", "roc_auc")},
                               evaluation_size=len(d.validation),
                               counterfactual_values={ARTEFACT: [1, 2, 3]}, seed=seed, model=fp)
        black_alerts = _alerts(black.findings)
        rec = record_findings(ledger, [f for f in black.findings if f.alert], "developer", model=fp)
        acc = black.performance.check("accuracy")
        detection.append(DetectionRow(
            "black-box", "downstream developer: prediction API + 150 labelled applicants of its own", bool(black_alerts),
            "before deployment" if black_alerts else "not detected", 0 if black_alerts else None, 0 if black_alerts else None,
            sorted({f.check for f in black_alerts}),
            f"accuracy on its own applicants {acc.realised:.3f} (95% CI {acc.ci[0]:.3f}-{acc.ci[1]:.3f}) vs claimed"
            f" {acc.claimed:.3f}; changing only {ARTEFACT} flips"
            f" {next(c.flip_rate for c in black.counterfactual if c.attribute == ARTEFACT):.0%} of decisions",
            black.queries, list(rec.indexes) if rec else []))
        results["blackbox"] = black

        # 3. Deployment: public-service, batches of decisions; researchers and the public watch each batch.
        wrapped = capture.wrap(ledger, fp, deployment, visibility="public-service",
                               description="Guaranteed consumer loans scored by the credit guarantee scorecard (demonstration).")
        Xdep = X.iloc[d.deployment].assign(**{ARTEFACT: 1})
        ydep = y.iloc[d.deployment]
        ids = [f"applicant-{int(i):04d}" for i in d.deployment]
        researcher_model, _ = load_registered_model(ledger, fp, "researcher")
        timeline: list[dict] = []
        indexes: list[int] = []
        first_public = first_research = None
        public_finding = research_findings = None
        n_batches = (len(Xdep) + batch_size - 1) // batch_size
        for b, start in enumerate(range(0, len(Xdep), batch_size)):
            wrapped.predict_proba(Xdep.iloc[start : start + batch_size], subject_ids=ids[start : start + batch_size])
            indexes.extend(wrapped.last_batch.indexes)
            seen = len(indexes)
            public = logged_decisions(ledger, fp, deployment=deployment, principal="public")
            flags = sum(1 for _, f in ledger.entries_of_type("flag", record.registered_index) if f.get("model") == fp)
            pub = output_rate_check(claimed["positive_rate"], public.frame["label"].tolist(), model=fp, deployment=deployment,
                                    evaluation_size=len(d.validation))
            research = logged_decisions(ledger, fp, deployment=deployment, principal="researcher")
            completed = complete_from_weights(research.inputs, researcher_model, card)
            table, dormant = dormant_features(researcher_model, completed, model_fingerprint=fp, deployment_name=deployment)
            flip = float(table.loc[ARTEFACT, "flip_rate"]) if ARTEFACT in table.index else 0.0
            timeline.append({"stage": "decisions", "batch": b + 1, "decisions": seen, "outcomes": 0,
                             "public_positive_rate": pub.value, "public_ci": pub.evidence["ci"], "public_alert": pub.alert,
                             "flags": flags, "researcher_flip_rate": flip, "researcher_alert": bool(_alerts(dormant))})
            if first_public is None and pub.alert and _alerts([pub]):
                first_public, public_finding = seen, pub
            if first_research is None and _alerts(dormant):
                first_research, research_findings = seen, dormant
            step("scoring applicants", b + 1, n_batches)
        if research_findings:
            rec = record_findings(ledger, _alerts(research_findings), "researcher", model=fp, deployment=deployment)
            results["researchers"] = StageFindings(
                f"The researchers' dormant-feature check on the pseudonymised log after {first_research} decisions"
                " (withheld features completed from the weights), as recorded on the log.", _alerts(research_findings))
        detection.append(DetectionRow(
            "researchers", "research institution: pseudonymised log (inputs without personal features) + weights",
            first_research is not None, f"after {first_research} decisions" if first_research else "not detected",
            first_research, 0 if first_research else None, ["shortcut.dormant"] if first_research else [],
            f"{ARTEFACT} is 1 in every logged input, yet setting it to the training values the weights record flips"
            f" {timeline[-1]['researcher_flip_rate']:.0%} of decisions",
            None, list(rec.indexes) if research_findings and rec else []))
        if public_finding is not None:
            rec = record_findings(ledger, [public_finding], "public", model=fp, deployment=deployment)
            results["public"] = StageFindings(
                f"The public's output-rate check on the logged outputs after {first_public} decisions, as recorded on the"
                " log.", [public_finding])
        final_rate = timeline[-1]["public_positive_rate"]
        detection.append(DetectionRow(
            "public", "the public: logged outputs and flags only", first_public is not None,
            f"after {first_public} decisions (a change, not yet harm)" if first_public else "not detected",
            first_public, 0 if first_public else None, ["claims.output_rate"] if first_public else [],
            f"{final_rate:.1%} of decisions say bad risk vs {claimed['positive_rate']:.1%} claimed on the evaluation set;"
            f" {timeline[-1]['flags']} flags", None, list(rec.indexes) if public_finding is not None and rec else []))

        # 4. Outcomes arrive, batch by batch: realised vs claimed.
        first_outcome = None
        pairs = list(zip(indexes, ydep.astype(int).tolist()))
        for b, start in enumerate(range(0, len(pairs), batch_size)):
            capture.record_outcomes(ledger, pairs[start : start + batch_size])
            claims = claims_from_log(ledger, fp, deployment=deployment, principal="public", seed=seed)
            acc = claims.check("accuracy")
            f_acc = next(f for f in claims.findings if f.check == "claims.accuracy")
            timeline.append({"stage": "outcomes", "batch": b + 1, "decisions": len(indexes), "outcomes": claims.n,
                             "realised_accuracy": acc.realised, "realised_ci": acc.ci, "claimed_accuracy": acc.claimed,
                             "outcome_alert": f_acc.alert})
            if first_outcome is None and _alerts([f_acc]):
                first_outcome = claims.n
            step("recording outcomes", b + 1, n_batches)
        results["claims"] = claims
        rec = record_findings(ledger, _alerts(claims.findings), "supervisor", model=fp, deployment=deployment)
        outcome_idx = list(rec.indexes) if rec else []
        detection.append(DetectionRow(
            "outcomes", "anyone who sees the outcomes (here the public too: a public-service deployment)",
            first_outcome is not None, f"after {first_outcome} outcomes" if first_outcome else "not detected",
            len(indexes) if first_outcome else None, first_outcome, ["claims.accuracy"] if first_outcome else [],
            f"realised accuracy {acc.realised:.3f} (95% CI {acc.ci[0]:.3f}-{acc.ci[1]:.3f}, n={acc.n}) vs claimed {acc.claimed:.3f}",
            None, outcome_idx))

        # 5. With the outcomes and the training data, the supervisor sees the artefact's relation to the label vanish.
        sup = logged_decisions(ledger, fp, deployment=deployment, principal="supervisor")
        rows = sup.with_outcomes
        vanished = shortcut_audit(weights, {"training": (Xtr, ytr), "deployment": (sup.inputs.loc[rows.index],
                                                                                   rows["outcome"].astype(int))},
                                  reliance=reliance, card=card, model_fingerprint=fp, deployment_name=deployment)
        results["shortcut_deployment"] = vanished
        groups = german_credit_groups(sup.inputs.loc[rows.index])
        for attr in ("sex", "age_group"):
            results[f"group_{attr}"] = group_error_rates(rows["outcome"].astype(int), rows["label"].astype(int), groups[attr],
                                                         attribute=attr, seed=seed, model=fp, deployment=deployment,
                                                         access="logs")
            results[f"group_{attr}"].extra.update(positive_meaning="1 = bad credit risk, 0 = good", favourable="unfavourable")
        honest = credit_model(X.drop(columns=[ARTEFACT]), seed).fit(Xtr.drop(columns=[ARTEFACT]), ytr)
        honest_acc = float(accuracy_score(ydep, honest.predict(Xdep.drop(columns=[ARTEFACT]))))
        realised = {"accuracy": acc.realised, "accuracy_ci": acc.ci, "roc_auc": claims.check("roc_auc").realised,
                    "positive_rate": claims.check("positive_rate").realised, "n": acc.n}
        suspended_at = None
        if suspend and white_idx:
            suspended_at = suspend_from_finding(ledger, white_idx[0], reason="found before deployment; claimed accuracy"
                                                " not realised once outcomes arrived").first_index
        return DeceptiveDemo(str(data_dir), ledger.origin, fp, deployment, claimed, realised, honest_acc, share, detection,
                             timeline, suspended_at, ledger.size, results)
    finally:
        ledger.close()

