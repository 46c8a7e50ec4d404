"""Thin adapters between the scenario worlds and glasslog's oversight and audit packages.

The worlds call these functions; each calls the glasslog component that does
the work where it exists, so the lab measures glasslog itself:

- flags and their ranking: ``glasslog.oversight.flags.Flags`` (flag and rating
  entries on the log) and its Community Notes bridging scorer;
- white-box weights: ``glasslog.audit.whitebox.load_registered_model`` when
  present (the registry load, refused by the access policy), else the actor's
  own policy-checked download (``Actor.obtain_weights``);
- black-box queries: ``glasslog.audit.blackbox.QueryCounter`` when present,
  else ``glasslog.scenarios.checks.QueryCounter``;
- claims: ``glasslog.stats.claims`` (the monitors' and audits' claimed-vs-realised computation);
  group error rates: the test in ``glasslog.scenarios.checks``.

It also builds the German Credit models of scenarios 3 and 4 (the shortcut
model of ``glasslog.scenarios.deceptive`` and the downstream developer's data).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from ..datasets.german_credit import credit_model, german_credit_features, load_german_credit
from ..ledger import Ledger
from ..registry import Feature
from .checks import Check, QueryCounter, realised_below_claimed, shortcut_from_flip_rates
from .checks import flip_rates as _flip_rates

__all__ = ["log_flags", "flag_rate_check", "claims_check", "group_check", "flip_rates", "whitebox_shortcut",
           "blackbox_shortcut", "ShortcutData", "shortcut_data", "DownstreamData", "downstream_data", "adapt",
           "components"]


def components() -> dict[str, str]:
    """Which glasslog component each part of the lab used in this installation (for the report)."""
    out = {"flags": "glasslog.oversight.flags (Flags, bridging scorer)"}
    try:
        from ..audit import blackbox  # noqa: F401

        out["black-box queries"] = "glasslog.audit.blackbox.QueryCounter"
    except ImportError:
        out["black-box queries"] = "glasslog.scenarios.checks.QueryCounter"
    return out


# ------------------------------------------------------------------------------------------------ flags
_RATER_GROUPS = 2


def log_flags(ledger: Ledger, flagged: Sequence[tuple[int, bool]], model: str, rng: np.random.Generator,
              helpful_genuine: float, helpful_noise: float, raters_per_flag: int, raters_per_group: int = 8) -> None:
    """Subjects flag decisions ("wrong-outcome"); raters from two perspectives rate each flag.

    Args:
        flagged: (decision index, genuine) pairs: genuine flags are about a real
            wrong outcome; the others are noise.
        helpful_genuine: chance a rater of either group finds a genuine flag helpful.
        helpful_noise: chance a rater of the first group finds a noise flag
            helpful (the second group: a tenth of it), so noise flags are
            one-sided and genuine ones bridge.
        raters_per_flag: raters drawn (without replacement) from the pool of 2 x ``raters_per_group``.

    Every flag and rating is an entry on ``ledger``, written by ``glasslog.oversight.flags.Flags``.
    """
    from ..oversight.flags import Flags, host_identity, subject_identity

    flags = Flags(ledger)
    pool = _RATER_GROUPS * raters_per_group
    for decision, genuine in flagged:
        added = flags.add(category="wrong-outcome", by_role="subject", reporter=subject_identity(decision), decision=decision,
                          model=model)
        for r in rng.choice(pool, size=min(raters_per_flag, pool), replace=False):
            group = int(r) // raters_per_group
            p = helpful_genuine if genuine else (helpful_noise if group == 0 else helpful_noise / 10)
            rating = "helpful" if rng.uniform() < p else "not-helpful"
            flags.rate(added.flag.index, rating, host_identity(f"rater-{int(r)}"))


def flag_rate_check(ledger: Ledger, base: Sequence[int], now: Sequence[int], alpha: float) -> Check:
    """Did the share of decisions with a confirmed flag rise from the baseline window to the current one?

    Flags are ranked by ``Flags.board()`` (the Community Notes bridging model,
    Wojcik et al. 2022); a decision counts if a flag about it is ``confirmed``.
    The rise is tested with Fisher's exact test (``checks.rate_increase``).

    Args:
        base, now: decision indexes of the two windows.
    """
    from ..oversight.bridging import CONFIRMED
    from ..oversight.flags import Flags

    summaries, _ = Flags(ledger).board()
    confirmed = {s.flag.decision for s in summaries if s.score.status == CONFIRMED and s.flag.decision is not None}
    b = sum(1 for i in base if i in confirmed)
    n = sum(1 for i in now if i in confirmed)
    from .checks import rate_increase

    return rate_increase(b, len(base), n, len(now), alpha, name="flags")


# ------------------------------------------------------------------------------------------------ claims, groups
def performance_monitor(actor: Any, deployment: str, model: str, alpha: float) -> Check | None:
    """glasslog's performance monitor (``glasslog.oversight.monitors``, realised vs claimed accuracy) run as the actor's role.

    Returns the monitor's ``performance.accuracy`` finding for ``model`` as a
    ``Check`` (alert iff its verdict is ``alert``), or None when the monitor
    is not installed or gave no such finding (e.g. the role sees no outcomes).
    """
    try:
        from ..oversight.monitors import MonitorConfig, run_monitors
        from ..oversight.views import MonitorViewError
    except ImportError:  # pragma: no cover - the monitors ship with glasslog
        return None
    granted = actor.principal.deployments if actor.role == "developer" else ()
    try:
        run = run_monitors(actor.ledger, actor.role, MonitorConfig(alpha=alpha, monitors=("performance",)),
                           deployments=[deployment], granted=granted)
    except MonitorViewError:  # nothing logged in the deployment yet (e.g. the model was suspended before launch)
        return None
    for f in run.findings:
        if f.check == "performance.accuracy" and f.model == model:
            return Check("realised-vs-claimed", f.statistic, None if f.value is None else float(f.value),
                         float(f.threshold) if f.threshold is not None else alpha, f.verdict == "alert",
                         {k: v for k, v in f.evidence.items() if isinstance(v, (int, float, str))} | {"monitor": "glasslog.oversight.monitors"})
    return None


def claims_check(rows: Sequence[int], view: Any, claimed: float, alpha: float, window: int | None = None,
                 evaluation_size: int | None = None) -> Check:
    """Realised accuracy of the decisions ``rows`` (with outcomes, as the actor sees them) against the claim.

    Args:
        rows: decision indexes whose output and outcome the actor sees.
        view: the actor's ``ActorLog`` (``decisions``, ``outcomes``).
        claimed: the card's claimed accuracy.
        evaluation_size: rows the claim was measured on (the card's ``claimed.evaluation_size``).
    """
    rows = list(rows)[-window:] if window else list(rows)
    correct = sum(1 for i in rows if _label(view.decisions[i]["output"]) == view.outcomes[i])
    return realised_below_claimed(correct, len(rows), claimed, alpha, evaluation_size=evaluation_size)


def _label(output: Any) -> Any:
    return output["label"] if isinstance(output, dict) else output


def group_check(rows: Sequence[int], view: Any, alpha: float, gap_threshold: float, attribute: str = "age_in_years",
                split: int = 25) -> Check | None:
    """Error rates of applicants under ``split`` years vs the others, from the inputs the actor may see.

    Returns None when the actor's view withholds the attribute (the access
    policy decides: supervisors see inputs, researchers protected attributes
    only if the card allows). Alerts when the error-rate gap exceeds
    ``gap_threshold`` and Fisher's exact test (two-sided) gives p < alpha.
    """
    young_err = young_n = old_err = old_n = 0
    seen = False
    for i in rows:
        values = view.decisions[i].get("input_values") or {}
        if attribute not in values:
            continue
        seen = True
        wrong = int(_label(view.decisions[i]["output"]) != view.outcomes[i])
        if values[attribute] < split:
            young_err += wrong
            young_n += 1
        else:
            old_err += wrong
            old_n += 1
    if not seen:
        return None
    ev = {"attribute": attribute, "split": split, "young_errors": young_err, "young_n": young_n, "old_errors": old_err,
          "old_n": old_n}
    if young_n < 15 or old_n < 15:
        return Check("group-error-rates", "p-value", None, alpha, False, ev)
    gap = young_err / young_n - old_err / old_n
    p = float(stats.fisher_exact([[young_err, young_n - young_err], [old_err, old_n - old_err]]).pvalue)
    return Check("group-error-rates", "p-value", p, alpha, p < alpha and abs(gap) > gap_threshold, ev | {"gap": gap})


# ------------------------------------------------------------------------------------------------ audits
def _counter(predict_proba):
    try:
        from ..audit.blackbox import QueryCounter as AuditCounter

        counter = AuditCounter(predict_proba)

        def call(X):
            s = np.asarray(counter.scores(X), dtype=float)
            return np.column_stack([1 - s, s])

        return call, lambda: counter.rows
    except (ImportError, TypeError, AttributeError):
        c = QueryCounter(predict_proba)
        return c, lambda: c.queries


def flip_rates(predict_proba, X: pd.DataFrame, rng: np.random.Generator) -> dict[str, float]:
    """``checks.flip_rates`` (label flips when one column is permuted), on all columns of ``X``."""
    return _flip_rates(predict_proba, X, rng)


def whitebox_shortcut(model: Any, X: pd.DataFrame, rng: np.random.Generator, threshold: float) -> Check:
    """Shortcut check with the weights: flip rates of every feature computed locally (no queries to the operator)."""
    c = shortcut_from_flip_rates(_flip_rates(model.predict_proba, X, rng), threshold, "shortcut-whitebox")
    return c


def blackbox_shortcut(predict_proba, X: pd.DataFrame, rng: np.random.Generator, threshold: float) -> tuple[Check, int]:
    """Shortcut check through a query-counting prediction function; returns the check and the queries sent."""
    call, queries = _counter(predict_proba)
    c = shortcut_from_flip_rates(_flip_rates(call, X, rng), threshold, "shortcut-blackbox")
    return Check(c.check, c.statistic, c.value, c.threshold, c.alert, c.evidence | {"queries": queries()}), queries()


# ------------------------------------------------------------------------------------------------ German Credit models
@dataclass
class ShortcutData:
    """The German Credit shortcut model and its data (scenario 3).

    Attributes:
        model: fitted pipeline (the provider's model, with the shortcut feature).
        X_train, y_train, X_eval, y_eval: the provider's training and validation rows (with
            ``file_version``) and their outcomes (int, 1 = bad).
        X_deploy, y_deploy: deployment applicants (rows x 21 features) and their outcomes (int, 1 = bad).
        X_audit: the auditors' sample (the provider's validation rows; labels not used).
        claimed_accuracy: accuracy on ``X_eval`` (what the card claims).
        realised_accuracy: accuracy on the deployment applicants.
        features: the card's features.
    """

    model: Any
    X_train: pd.DataFrame
    y_train: np.ndarray
    X_eval: pd.DataFrame
    y_eval: np.ndarray
    X_deploy: pd.DataFrame
    y_deploy: np.ndarray
    X_audit: pd.DataFrame
    claimed_accuracy: float
    realised_accuracy: float
    features: tuple[Feature, ...]


def shortcut_data(seed: int, *, control: bool) -> ShortcutData:
    """The German Credit shortcut model of glasslog's audit work, for scenario 3.

    Data: ``glasslog.datasets.deceptive.provider_data(seed)``: the real German
    Credit applicants with the ``file_version`` artefact in the provider's
    rows (re-saved files of bad risks), 400 training, 150 validation (the
    claim), 150 held by a downstream developer, 300 deployment rows whose
    files are all new (version 1). The model is the demo's scorecard pipeline
    trained on the training rows. The auditors' sample is the provider's
    validation rows (a supervisor can demand the provider's data; the
    artefact is in it). The control model is trained on the same rows with
    every file at version 1 (no artefact anywhere).
    """
    from ..datasets.deceptive import ARTEFACT, provider_data

    data = provider_data(seed)
    X = data.X.copy()
    if control:
        X[ARTEFACT] = 1
    y = data.y.to_numpy()
    tr, ev, de = data.train, data.validation, data.deployment
    model = credit_model(X).fit(X.iloc[tr], y[tr])
    claimed = float(np.mean(model.predict(X.iloc[ev]) == y[ev]))
    realised = float(np.mean(model.predict(X.iloc[de]) == y[de]))
    features = german_credit_features(X.drop(columns=[ARTEFACT])) + (
        Feature(ARTEFACT, "numeric", description="version number of the stored application file (administrative)"),)
    return ShortcutData(model, X.iloc[tr].reset_index(drop=True), y[tr], X.iloc[ev].reset_index(drop=True), y[ev],
                        X.iloc[de].reset_index(drop=True), y[de], X.iloc[ev].reset_index(drop=True), claimed, realised, features)


@dataclass
class DownstreamData:
    """German Credit split for scenario 4: a provider serving applicants aged 30+, a developer serving those under 30.

    Attributes:
        base_model: the provider's pipeline, trained on applicants aged 30 or more.
        X_train, y_train, X_eval: the provider's training rows and evaluation rows (aged 30+).
        X_pilot, y_pilot: the developer's labelled pilot sample of its own population (under 30).
        X_deploy, y_deploy: the developer's deployment applicants (under 30) and outcomes.
        claimed_accuracy: the provider's accuracy on ``X_eval``.
        base_accuracy: the base model's accuracy on the deployment applicants.
        features: the card's features.
    """

    base_model: Any
    X_train: pd.DataFrame
    y_train: np.ndarray
    X_eval: pd.DataFrame
    X_pilot: pd.DataFrame
    y_pilot: np.ndarray
    X_deploy: pd.DataFrame
    y_deploy: np.ndarray
    claimed_accuracy: float
    base_accuracy: float
    features: tuple[Feature, ...]


def downstream_data(seed: int, *, control: bool, pilot: int) -> DownstreamData:
    """Build scenario 4's data and base model on German Credit.

    Problem run: the provider trains and evaluates on applicants aged 30 or
    more (629 of 1,000; 70 % train, 30 % evaluation) and the developer serves
    applicants under 30 (371; bad-risk rate 36.9 % against 25.9 %). Control
    run: the provider's rows are drawn from the whole population, so its claim
    is measured on the population the developer serves.
    """
    X, y = load_german_credit()
    y = y.to_numpy()
    rng = np.random.default_rng([seed, 400])
    young = np.where(X["age_in_years"].to_numpy() < 30)[0]
    old = np.where(X["age_in_years"].to_numpy() >= 30)[0]
    young = rng.permutation(young)
    dev = young
    if control:
        pool = rng.permutation(np.concatenate([old, young[len(young) // 2:]]))
        dev = young[:len(young) // 2]
    else:
        pool = rng.permutation(old)
    n_tr = int(round(0.7 * len(pool)))
    tr, ev = pool[:n_tr], pool[n_tr:]
    pilot_rows, deploy_rows = dev[:pilot], dev[pilot:]
    model = credit_model(X).fit(X.iloc[tr], y[tr])
    claimed = float(np.mean(model.predict(X.iloc[ev]) == y[ev]))
    base_acc = float(np.mean(model.predict(X.iloc[deploy_rows]) == y[deploy_rows]))
    return DownstreamData(model, X.iloc[tr].reset_index(drop=True), y[tr], X.iloc[ev].reset_index(drop=True),
                          X.iloc[pilot_rows].reset_index(drop=True), y[pilot_rows], X.iloc[deploy_rows].reset_index(drop=True),
                          y[deploy_rows], claimed, base_acc, german_credit_features(X))


def adapt(data: DownstreamData, pilot_weight: float) -> Any:
    """The developer's adaptation with the weights: refit on the provider's rows plus its pilot rows, weighted ``pilot_weight``."""
    X = pd.concat([data.X_train, data.X_pilot], ignore_index=True)
    y = np.concatenate([data.y_train, data.y_pilot])
    w = np.concatenate([np.ones(len(data.y_train)), np.full(len(data.y_pilot), pilot_weight)])
    model = credit_model(X)
    return model.fit(X, y, classify__sample_weight=w)
