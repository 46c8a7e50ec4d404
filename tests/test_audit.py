"""Audits: COMPAS and German Credit group figures, black-box query counts, white-box access and reliance, shortcut,
leakage, site, claims vs realised, findings on the log and suspension, reports, the CLI, and the deceptive-accuracy
demonstration (which access level finds it, and when)."""

from __future__ import annotations

import hashlib
import json
import shutil
from importlib.resources import files

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from glasslog.audit.blackbox import QueryCounter, blackbox_audit, counterfactual_flip_rate, perturbation_sensitivity
from glasslog.audit.claims import claimed_vs_realised, claims_from_log, output_rate_check
from glasslog.audit.group import group_audit_frame, group_error_rates
from glasslog.audit.leakage import batch_dependence, label_proxies, leakage_audit, train_test_duplicates
from glasslog.audit.logdata import logged_decisions
from glasslog.audit.recording import AuditInputError, record_findings, suspend_from_finding
from glasslog.audit.report import build_report
from glasslog.audit.run import audit_logged_model
from glasslog.audit.shortcut import association, shortcut_audit
from glasslog.audit.site import site_audit
from glasslog.audit.whitebox import WeightsAccessError, check_training_data, feature_reliance, load_registered_model
from glasslog.cli import app
from glasslog.datasets import COMPAS_SHA256, credit_model, german_credit_groups, load_compas, load_german_credit, split
from glasslog.findings import Finding
from glasslog.ledger import Ledger
from glasslog.registry import Registry, RegistryError
from glasslog.verify import audit_log

runner = CliRunner()


def run(*args):
    return runner.invoke(app, [str(a) for a in args])


# ---------------------------------------------------------------- COMPAS


def test_compas_file_is_the_documented_one():
    data = files("glasslog.datasets").joinpath("data/compas-scores-two-years.csv").read_bytes()
    assert hashlib.sha256(data).hexdigest() == COMPAS_SHA256
    header = data.split(b"\n", 1)[0].decode().split(",")
    assert len(header) == 46 and not {"name", "first", "last", "dob", "c_case_number"} & set(header)


def test_compas_reproduces_propublica_on_all_rows():
    """ProPublica's published contingency tables (all 7,214 scored defendants): FPR 44.85 % vs 23.45 %, FNR 27.99 % vs 47.72 %."""
    df = load_compas(filtered=False)
    assert len(df) == 7214
    r = group_error_rates(df["two_year_recid"], df["high_risk"], df["race"], attribute="race", n_boot=200)
    black, white = r.by_group.loc["African-American"], r.by_group.loc["Caucasian"]
    assert (black["tp"], black["fp"], black["tn"], black["fn"]) == (1369, 805, 990, 532)
    assert (white["tp"], white["fp"], white["tn"], white["fn"]) == (505, 349, 1139, 461)
    assert round(100 * black["false_positive_rate"], 2) == 44.85
    assert round(100 * white["false_positive_rate"], 2) == 23.45
    assert round(100 * black["false_negative_rate"], 2) == 27.99
    assert round(100 * white["false_negative_rate"], 2) == 47.72


def test_compas_filtered_by_race_and_sex():
    df = load_compas()
    assert len(df) == 6172
    assert df["race"].value_counts().to_dict() == {"African-American": 3175, "Caucasian": 2103, "Hispanic": 509, "Other": 343,
                                                   "Asian": 31, "Native American": 11}
    race = group_audit_frame(df, "two_year_recid", "high_risk", ["race"], reference="Caucasian")["race"]
    sex = group_audit_frame(df, "two_year_recid", "high_risk", ["sex"])["sex"]
    black, white = race.by_group.loc["African-American"], race.by_group.loc["Caucasian"]
    assert (black["tp"], black["fp"], black["tn"], black["fn"]) == (1188, 641, 873, 473)
    assert (white["tp"], white["fp"], white["tn"], white["fn"]) == (414, 282, 999, 408)
    assert black["false_positive_rate"] == pytest.approx(641 / 1514) == pytest.approx(0.423382, abs=1e-6)
    assert white["false_positive_rate"] == pytest.approx(282 / 1281) == pytest.approx(0.220141, abs=1e-6)
    assert black["false_negative_rate"] == pytest.approx(473 / 1661)
    assert white["false_negative_rate"] == pytest.approx(408 / 822)
    assert black["positive_predictive_value"] == pytest.approx(1188 / 1829)
    assert black["selection_rate"] == pytest.approx(1829 / 3175)
    # Ratio to the reference (white defendants): FPR 1.92x, with a bootstrap interval that excludes 1.
    ratio = race.ratios.loc["African-American"]
    assert ratio["false_positive_rate_ratio"] == pytest.approx((641 / 1514) / (282 / 1281))
    assert 1.0 < ratio["false_positive_rate_ratio_lo"] < ratio["false_positive_rate_ratio"] < ratio["false_positive_rate_ratio_hi"]
    assert black["false_positive_rate_lo"] < black["false_positive_rate"] < black["false_positive_rate_hi"]
    # Groups under 50 rows stay out of the between-group ratios; the disparity findings alert.
    assert race.small_groups == ["Asian", "Native American"]
    fpr = next(f for f in race.findings if f.check == "group.false_positive_rate")
    assert fpr.alert and fpr.severity == "high" and fpr.evidence["highest"] == "African-American"
    # By sex the FPR is nearly equal (Female 0.302, Male 0.303): no alert; PPV differs (0.517 vs 0.654).
    assert sex.by_group.loc["Female", "n"] == 1175 and sex.by_group.loc["Male", "n"] == 4997
    assert sex.disparity["false_positive_rate"]["ratio"] == pytest.approx(0.9963, abs=1e-4)
    assert not next(f for f in sex.findings if f.check == "group.false_positive_rate").alert
    assert sex.by_group.loc["Female", "positive_predictive_value"] == pytest.approx(0.5168, abs=1e-4)
    # The point estimates are fairlearn's MetricFrame's.
    assert race.metric_frame.by_group.loc["Caucasian", "false_positive_rate"] == white["false_positive_rate"]
    # Same seed, same intervals.
    again = group_error_rates(df["two_year_recid"], df["high_risk"], df["race"], reference="Caucasian")
    pd.testing.assert_frame_equal(again.by_group, race.by_group)


def test_group_audit_bad_input():
    with pytest.raises(AuditInputError, match="y_pred: has 2 rows"):
        group_error_rates([0, 1, 1], [0, 1], ["a", "b", "a"])
    with pytest.raises(AuditInputError, match="must be binary"):
        group_error_rates([0, 1, 2], [0, 1, 1], ["a", "b", "a"])
    with pytest.raises(AuditInputError, match="missing values"):
        group_error_rates([0, 1, None], [0, 1, 1], ["a", "b", "a"])
    with pytest.raises(AuditInputError, match="reference: group 'z' does not occur"):
        group_error_rates([0, 1, 1], [0, 1, 1], ["a", "b", "a"], reference="z")
    with pytest.raises(AuditInputError, match="no column 'colour'"):
        group_audit_frame(pd.DataFrame({"y": [0, 1], "p": [0, 1]}), "y", "p", ["colour"])
    # 0 of 60 vs 3 of 60 false positives: too few events for a ratio (the interval would be a degenerate 0-0).
    y = [0] * 120
    pred = [0] * 60 + [1] * 3 + [0] * 57
    r = group_error_rates(y, pred, ["a"] * 60 + ["b"] * 60)
    fpr = next(f for f in r.findings if f.check == "group.false_positive_rate")
    assert fpr.verdict == "insufficient-data" and fpr.evidence["comparisons"]["a"]["events"] == 3


# ---------------------------------------------------------------- German Credit groups


def test_german_credit_by_sex_and_age_group():
    X, y = load_german_credit()
    g = german_credit_groups(X)
    assert g["sex"].value_counts().to_dict() == {"male": 690, "female": 310}
    assert g["age_group"].value_counts().to_dict() == {"25 and over": 851, "under 25": 149}
    from sklearn.model_selection import StratifiedKFold, cross_val_predict

    pred = cross_val_predict(credit_model(X), X, y, cv=StratifiedKFold(5, shuffle=True, random_state=0))
    assert (pred == y).mean() == pytest.approx(0.754)
    sex = group_error_rates(y, pred, g["sex"])
    age = group_error_rates(y, pred, g["age_group"])
    counts = sex.by_group[["tp", "fp", "tn", "fn"]].to_dict(orient="index")
    assert counts == {"female": {"tp": 38, "fp": 27, "tn": 194, "fn": 51}, "male": {"tp": 104, "fp": 61, "tn": 418, "fn": 107}}
    counts = age.by_group[["tp", "fp", "tn", "fn"]].to_dict(orient="index")
    assert counts == {"25 and over": {"tp": 112, "fp": 64, "tn": 548, "fn": 127}, "under 25": {"tp": 30, "fp": 24, "tn": 64, "fn": 31}}
    # Sex: no ratio under 0.8. Age: applicants under 25 who repaid are flagged 2.6 times as often (FPR 0.273 vs 0.105).
    assert not any(f.alert for f in sex.findings)
    assert age.by_group.loc["under 25", "false_positive_rate"] == pytest.approx(24 / 88)
    assert age.reference == "25 and over"  # the largest group, fixed before looking at any rate
    assert age.disparity["false_positive_rate"]["ratio"] == pytest.approx((24 / 88) / (64 / 612))
    assert age.disparity["false_positive_rate"]["lo"] > 1.25  # the whole Bonferroni-adjusted interval above the band
    alerts = {f.check: f.severity for f in age.findings if f.alert}
    assert alerts == {"group.selection_rate": "high", "group.false_positive_rate": "high"}


# ---------------------------------------------------------------- black-box


@pytest.fixture(scope="module")
def demo_model():
    X, y = load_german_credit()
    train, evaluation, deploy = split(len(X))
    model = credit_model(X).fit(X.iloc[train], y.iloc[train])
    return model, X, y, train, evaluation, deploy


def test_blackbox_counts_queries(demo_model):
    model, X, y, _, evaluation, _ = demo_model
    Xe, ye = X.iloc[evaluation], y.iloc[evaluation]
    q = QueryCounter(lambda f: model.predict_proba(f)[:, 1])
    cf = counterfactual_flip_rate(q, Xe, "foreign_worker")
    assert cf.values == ["no", "yes"] and cf.queries == 200 * 3 and q.rows == 600 and q.calls == 3
    assert 0 <= cf.flip_rate <= 1 and cf.flipped == round(cf.flip_rate * 200)
    sens = perturbation_sensitivity(q, Xe, scale=0.05, repeats=2)
    assert sens.queries == 200 * 3 and sens.features == ["duration_in_month", "credit_amount",
                                                         "installment_rate_in_percentage_of_disposable_income",
                                                         "present_residence_since", "age_in_years",
                                                         "number_of_existing_credits_at_this_bank",
                                                         "number_of_people_being_liable_to_provide_maintenance_for"]
    audit = blackbox_audit(model, Xe, ye, protected=["personal_status_and_sex"], claimed={"accuracy": 0.755})
    assert audit.queries == sum(audit.queries_by_test.values()) == 200 * 5 + 200 * 4 + 200
    assert audit.performance.check("accuracy").realised == pytest.approx(151 / 200)
    with pytest.raises(AuditInputError, match="budget"):
        counterfactual_flip_rate(QueryCounter(lambda f: model.predict_proba(f)[:, 1], budget=300), Xe, "foreign_worker")
    with pytest.raises(AuditInputError, match="no column 'colour'"):
        counterfactual_flip_rate(q, Xe, "colour")
    with pytest.raises(AuditInputError, match="returned shape"):
        QueryCounter(lambda f: np.zeros(3))(Xe)


# ---------------------------------------------------------------- white-box


def test_whitebox_reliance_and_fingerprint(demo_model):
    model, X, y, train, evaluation, _ = demo_model
    r = feature_reliance(model, X.iloc[evaluation], y.iloc[evaluation])
    assert r.shap_method.startswith("shap.LinearExplainer") and r.n_explained == 200
    assert r.ranking()[0] == "status_of_existing_checking_account"
    assert r.share("status_of_existing_checking_account") == pytest.approx(0.1619, abs=2e-3)
    assert r.shap_share.sum() == pytest.approx(1.0)
    assert r.permutation_mean[r.features.index("status_of_existing_checking_account")] == pytest.approx(0.0801, abs=2e-3)
    frame = X.iloc[train].assign(bad_credit_risk=y.iloc[train])
    from glasslog.datasets import german_credit_features
    from glasslog.registry import ClaimedMetrics, ModelCard, fingerprint_frame

    card = ModelCard("m", "1", "p", "u", german_credit_features(X), {"classes": [0, 1]}, fingerprint_frame(frame),
                     ClaimedMetrics({"accuracy": 0.7}, fingerprint_frame(frame), 10))
    assert check_training_data(card, frame).ok
    bad = check_training_data(card, frame.iloc[1:])
    assert not bad.ok and bad.finding.severity == "high" and bad.finding.evidence["rows"] == 499


@pytest.fixture(scope="module")
def demo_log(tmp_path_factory):
    from glasslog.demo.run import run_demo

    d = tmp_path_factory.mktemp("auditdemo") / "data"
    summary = run_demo(d)
    return d, summary


def test_weights_only_for_roles_the_policy_admits(demo_log):
    d, summary = demo_log
    with Ledger.open(d) as ledger:
        model, record = load_registered_model(ledger, summary.model, "researcher")  # policy: researchers
        assert record.card.disclosure_policy == "researchers" and hasattr(model, "predict_proba")
        for role in ("developer", "public"):
            with pytest.raises(WeightsAccessError, match=f"role '{role}' may not have the weights"):
                load_registered_model(ledger, summary.model, role)


# ---------------------------------------------------------------- claims and the log


def test_claims_from_log_and_roles(demo_log):
    d, summary = demo_log
    with Ledger.open(d) as ledger:
        claims = claims_from_log(ledger, summary.model, principal="supervisor")
        acc = claims.check("accuracy")
        assert (acc.claimed, acc.n) == (0.755, 300) and acc.realised == pytest.approx(223 / 300)
        assert acc.ci == pytest.approx((0.69105, 0.78947), abs=1e-4)
        assert acc.claim_ci == pytest.approx((0.69096, 0.80943), abs=1e-4)  # Wilson on the 200-row evaluation set
        assert not any(f.alert for f in claims.findings)
        assert claims.check("roc_auc").realised == pytest.approx(summary.realised["roc_auc"])
        # A private deployment: the public sees no outputs, researchers see them with personal features withheld.
        public = logged_decisions(ledger, summary.model, principal="public")
        assert (len(public.frame), public.hidden, public.inputs.shape[1]) == (0, 300, 0)
        research = logged_decisions(ledger, summary.model, principal="researcher")
        assert len(research.frame) == 300 and "age_in_years" in research.withheld and research.inputs.shape[1] == 12
        results = audit_logged_model(ledger, summary.model, principal="researcher", groups=["sex"], n_boot=200)
        assert any("group audit by sex skipped: withheld" in n for n in results["notes"].notes)
        results = audit_logged_model(ledger, summary.model, principal="public", n_boot=200)
        # Nothing visible to the public on a private deployment: no findings at all (none reads as "ok"), and why.
        assert results["claims"].n == 0 and results["claims"].findings == [] and set(results) == {"claims", "notes"}
        assert results["notes"].unmeasured == (
            "nothing could be measured for role public: none of its 300 decisions is visible: deployment"
            f" {summary.deployment} is private (role public sees counts only); no logged inputs (role public sees none);"
            " no weights under the disclosure policy 'researchers'")
        assert any("white-box checks skipped" in n for n in results["notes"].notes)
        operator = audit_logged_model(ledger, summary.model, principal="operator", n_boot=200)
        assert operator["notes"].unmeasured is None and operator["claims"].check("accuracy").n == 300
        assert any(n.startswith("black-box tests skipped: role operator sees every logged input") and "'researchers'" in n
                   for n in operator["notes"].notes)
        with pytest.raises(AuditInputError, match="not features of model"):
            audit_logged_model(ledger, summary.model, groups=["colour"])


def test_claims_alert_and_output_rate():
    y = [1] * 30 + [0] * 70
    pred = [1] * 10 + [0] * 20 + [0] * 70  # accuracy 0.80, positive rate 0.10
    r = claimed_vs_realised({"accuracy": 0.95, "positive_rate": 0.3, "gini": 0.5}, y, pred)
    assert r.not_computable == ["gini"]
    acc = next(f for f in r.findings if f.check == "claims.accuracy")
    assert acc.alert and acc.severity == "high" and acc.value == pytest.approx(0.8)
    f = output_rate_check(0.3, pred)
    assert f.alert and f.value == pytest.approx(0.1) and f.severity == "high"
    assert output_rate_check(0.1, pred).verdict == "ok"
    with pytest.raises(AuditInputError, match="claimed.accuracy"):
        claimed_vs_realised({"accuracy": 1.5}, y, pred)


# ---------------------------------------------------------------- shortcut, leakage, site


def test_leakage_checks(demo_model):
    model, X, y, train, evaluation, _ = demo_model
    Xt = X.iloc[train].assign(collections_note=np.where(y.iloc[train] == 1, "yes", "no"))
    assoc, findings = label_proxies(Xt, y.iloc[train])
    assert assoc["collections_note"] == 1.0
    f = next(f for f in findings if f.alert)
    assert f.evidence["feature"] == "collections_note" and f.severity == "critical"
    assert len([f for f in findings if f.alert]) == 1
    test = pd.concat([X.iloc[evaluation].head(20), X.iloc[train].head(5)])
    dup, f = train_test_duplicates(X.iloc[train], test)
    assert dup == 5 and f.value == pytest.approx(0.2) and f.severity == "high"
    stats, f = batch_dependence(model, X.iloc[evaluation])
    assert not f.alert and stats["max_abs_diff"] < 1e-12 and stats["queries"] == 200 + 200 + 25  # floating-point order only

    def batch_normalised(frame):  # scores depend on the other rows of the batch
        s = model.predict_proba(frame)[:, 1]
        return np.clip(s - s.mean() + 0.3, 0, 1)

    stats, f = batch_dependence(batch_normalised, X.iloc[evaluation])
    assert f.alert and stats["rows_differing"] > 100
    audit = leakage_audit(X.iloc[train], y.iloc[train], X.iloc[evaluation], query=model)
    assert audit.duplicates == 0 and audit.association.idxmax() == "status_of_existing_checking_account"


def test_shortcut_vanished_and_declared_irrelevant(demo_model):
    _, X, y, train, evaluation, deploy = demo_model
    rng = np.random.default_rng(1)
    art = lambda yy: np.where(rng.random(len(yy)) < 0.9, yy, 1 - yy)  # noqa: E731
    Xp = X.assign(scan_marker=0)
    Xp.loc[Xp.index[train], "scan_marker"] = art(y.iloc[train].to_numpy())
    model = credit_model(Xp).fit(Xp.iloc[train], y.iloc[train])
    reliance = feature_reliance(model, Xp.iloc[train], y.iloc[train], shap_rows=100, n_repeats=2)
    assert reliance.ranking()[0] == "scan_marker"

    class Card:
        extra = {"irrelevant_features": ["scan_marker"]}

    audit = shortcut_audit(model, {"training": (Xp.iloc[train], y.iloc[train]), "deployment": (Xp.iloc[deploy], y.iloc[deploy])},
                           reliance=reliance, card=Card())
    assert audit.label_association.loc["scan_marker", "training"] == pytest.approx(association(Xp.iloc[train]["scan_marker"], y.iloc[train]))
    assert audit.label_association.loc["scan_marker", "training"] > 0.85
    assert audit.label_association.loc["scan_marker", "deployment"] == 0.5
    for check in ("shortcut.unstable", "shortcut.declared_irrelevant", "shortcut.vanished", "shortcut.shifted"):
        assert audit.flagged(check) == ["scan_marker"], check


def test_site_audit_zech_pattern(demo_model, tmp_path):
    """Two sites: site B records loan duration in weeks and sees more bad risks; the inputs give the site away."""
    _, X, y, _, _, _ = demo_model
    rng = np.random.default_rng(3)
    site = np.where(rng.random(len(X)) < np.where(y == 1, 0.7, 0.35), "B", "A")
    Xs = X.copy()
    Xs.loc[site == "B", "duration_in_month"] = (Xs.loc[site == "B", "duration_in_month"] * 4.33).round().astype(int)
    order = rng.permutation(len(X))
    tr, te = order[:600], order[600:]
    model = credit_model(Xs).fit(Xs.iloc[tr], y.iloc[tr])
    r = site_audit(Xs.iloc[te], y.iloc[te], site[te], query=model)
    assert r.site_auc > 0.95 and r.queries == 400
    assert r.by_site.loc["B", "base_rate"] > r.by_site.loc["A", "base_rate"] + 0.2
    checks = {f.check: f for f in r.findings}
    assert checks["site.predictable"].alert and checks["site.score_gap"].alert
    md = build_report([("site", r)]).markdown()
    acc = r.by_site.loc["A"]
    assert "| site | rows | base rate (share positive) | model accuracy (95% Wilson interval) | ROC AUC |" in md
    assert f"| {acc['accuracy']:.3f} ({acc['accuracy_lo']:.3f}-{acc['accuracy_hi']:.3f}) |" in md
    assert "accuracy_lo" not in md and "mean_score_pos" not in md and "## Does the model know the site?\n" in md
    with pytest.raises(AuditInputError, match="at least two sites"):
        site_audit(Xs.iloc[te], y.iloc[te], ["A"] * len(te))
    csv = tmp_path / "sites.csv"
    Xs.assign(branch=site, bad=y).to_csv(csv, index=False)
    r = run("audit", "site", csv, "--label", "bad", "--site", "branch", "--json", "--out", tmp_path / "rep")
    assert r.exit_code == 1, r.output
    data = json.loads(r.stdout)
    assert data["sections"][0]["site_auc"] > 0.95 and "data:image/png" in (tmp_path / "rep" / "report.html").read_text()
    r = run("audit", "site", csv, "--label", "bad", "--site", "hospital")
    assert r.exit_code == 2 and "--site: no column 'hospital'" in r.output
    # the column that gives the site away is named (duration recorded in weeks at B)
    assert next(iter(checks["site.predictable"].evidence["giveaway_columns"])) == "duration_in_month"
    assert "give the site away most" in checks["site.predictable"].summary
    # bad input: exit 2 naming the option or column, no traceback
    frame = Xs.assign(branch=site, bad=y)
    bad_inputs = {
        "gap_site.csv": (frame.assign(branch=frame["branch"].where(frame.index != 4)), [], "--site column 'branch': 1 rows have no site"),
        "only.csv": (frame[["bad", "branch"]], [], "has no input columns"),
        "ok.csv": (frame, ["--positive", "7"], "--positive: the positive value 7 does not occur"),
        "ok2.csv": (frame, ["--seed", "-1"], "--seed: must be an integer from 0"),
    }
    for name, (df, extra, message) in bad_inputs.items():
        df.to_csv(tmp_path / name, index=False)
        r = run("audit", "site", tmp_path / name, "--label", "bad", "--site", "branch", *extra)
        assert r.exit_code == 2 and message in " ".join(r.output.split()), (name, r.output)
    with pytest.raises(AuditInputError, match="duration_in_month: 1 empty cells"):
        site_audit(Xs.iloc[te].assign(duration_in_month=Xs.iloc[te]["duration_in_month"].where(
            np.arange(len(te)) != 2)), y.iloc[te], site[te], query=model)


# ---------------------------------------------------------------- findings on the log, suspension, reports


def test_findings_recorded_and_suspension(demo_log, tmp_path):
    d0, summary = demo_log
    d = tmp_path / "copy"
    shutil.copytree(d0, d)
    with Ledger.open(d) as ledger:
        size = ledger.size
        f = Finding("claims.accuracy", "realised accuracy vs claimed", 0.6, 0.755, "alert", "high", "worse than claimed",
                    "outputs", {"n": 300})
        ok = Finding("group.selection_rate", "ratio", 0.9, 0.8, "ok", "info", "fine", "logs")
        rec = record_findings(ledger, [f, ok], "supervisor", model=summary.model, only_alerts=True)
        assert list(rec.indexes) == [size] and ledger.size == size + 1
        entry = json.loads(ledger.entry(size))
        assert entry["type"] == "finding" and entry["source"] == "audit" and entry["model"] == summary.model
        assert entry["evidence"]["summary"] == "worse than claimed" and entry["value"] == 0.6
        with pytest.raises(PermissionError, match="only a supervisor"):
            suspend_from_finding(ledger, size, by="researcher")
        with pytest.raises(AuditInputError, match="not a finding"):
            suspend_from_finding(ledger, 0)
        with pytest.raises(AuditInputError, match="no entry 99999"):
            suspend_from_finding(ledger, 99999)
        assert ledger.size == size + 1  # refusals write nothing
        s = suspend_from_finding(ledger, size, reason="confirmed")
        status = json.loads(ledger.entry(s.first_index))
        assert status["status"] == "suspended" and status["reason"].startswith(f"audit finding entry {size}: claims.accuracy")
        assert Registry(ledger).get(summary.model).status == "suspended"
        with pytest.raises(RegistryError, match="already suspended"):
            suspend_from_finding(ledger, size)
        assert audit_log(ledger).ok


def test_report_formats(tmp_path):
    df = load_compas()
    audits = group_audit_frame(df, "two_year_recid", "high_risk", ["race"], n_boot=200)
    report = build_report(audits, title="COMPAS", context={"data": "ProPublica"})
    paths = report.write(tmp_path)
    html = paths["html"].read_text()
    assert "data:image/png;base64," in html and "group.false_positive_rate" in html
    md = paths["md"].read_text()
    assert "| African-American | 3175 | 1188 | 641 | 873 | 473 |" in md
    # the reader is told which groups were left out, and the severity rules
    assert "Left out of the ratios for having fewer than 50 rows: Asian (n=31), Native American (n=11)." in md
    assert "Severity rules:" in md and "29 CFR 1607.4(D)" in md
    assert "Left out of the ratios for having fewer than 50 rows: Asian (n=31)" in html
    data = json.loads(paths["json"].read_text())
    assert data["sections"][0]["groups"][0]["group"] == "African-American"
    assert data["findings"][0]["verdict"] == "alert"
    # every section table is a real HTML table: no Markdown pipe rows left in the page
    import re
    from html.parser import HTMLParser

    class Text(HTMLParser):
        def __init__(self):
            super().__init__()
            self.text, self.tables = [], 0

        def handle_starttag(self, tag, attrs):
            self.tables += tag == "table"

        def handle_data(self, data):
            self.text.append(data)

    page = Text()
    page.feed(re.sub(r'src="data:[^"]+"', "", html))
    assert page.tables == 2 and "<pre>" not in html  # findings + the group table
    assert not [t for t in page.text if "|" in t or "---" in t]
    assert "<td>African-American</td><td style=\"text-align:right\">3175</td>" in html


def test_markdown_to_html_tables_and_escaping():
    from glasslog.markdown import cell, markdown_to_html

    lines = ["Top **features** <b>", "", f"| feature | {cell('mean |SHAP|')} |", "|---|---:|", f"| {cell('a|b')} | 0.5 |",
             "- a note"]
    assert str(markdown_to_html(lines)) == (
        "<p>Top <strong>features</strong> &lt;b&gt;</p>\n<table><tr><th>feature</th><th style=\"text-align:right\">mean |SHAP|</th></tr>"
        "<tr><td>a|b</td><td style=\"text-align:right\">0.5</td></tr></table>\n<ul><li>a note</li></ul>")


# ---------------------------------------------------------------- CLI


def test_cli_csv_and_bad_input(tmp_path):
    df = load_compas()[["two_year_recid", "high_risk", "race", "sex"]]
    csv = tmp_path / "compas.csv"
    df.to_csv(csv, index=False)
    r = run("audit", "csv", csv, "--label", "two_year_recid", "--prediction", "high_risk", "--group", "race", "--group", "sex",
            "--n-boot", "200", "--json", "--out", tmp_path / "rep")
    assert r.exit_code == 1, r.output  # disparities at severity high
    data = json.loads(r.stdout)
    race = data["sections"][0]
    black = next(g for g in race["groups"] if g["group"] == "African-American")
    assert black["false_positive_rate"]["value"] == pytest.approx(641 / 1514)
    assert (tmp_path / "rep" / "report.html").exists()
    r = run("audit", "csv", csv, "--label", "two_year_recid", "--prediction", "high_risk", "--group", "race", "--fail-on", "critical",
            "--n-boot", "200")
    assert r.exit_code == 0, r.output
    for bad in ("0", "1", "50"):  # too few draws for Bonferroni-adjusted intervals: refused, not NaN intervals
        r = run("audit", "csv", csv, "--label", "two_year_recid", "--prediction", "high_risk", "--group", "race", "--n-boot", bad)
        assert r.exit_code == 2 and "--n-boot: must be at least 200" in r.output, r.output
    for seed in ("-1", "99999999999"):  # was a traceback, or sklearn's random_state message
        r = run("audit", "csv", csv, "--label", "two_year_recid", "--prediction", "high_risk", "--group", "race", "--seed", seed)
        assert r.exit_code == 2 and "--seed: must be an integer from 0 to 4294967295" in r.output, r.output
    r = run("audit", "compas", "--seed", "-1")
    assert r.exit_code == 2 and "--seed:" in r.output
    r = run("audit", "csv", csv, "--label", "recid", "--prediction", "high_risk", "--group", "race")
    assert r.exit_code == 2 and "--label: no column 'recid'" in r.output
    r = run("audit", "csv", csv, "--label", "two_year_recid", "--prediction", "race", "--group", "sex")
    assert r.exit_code == 2 and "prediction column 'race': must be binary" in r.output
    df.assign(high_risk=df["high_risk"].where(df.index != 7)).to_csv(tmp_path / "gap.csv", index=False)
    r = run("audit", "csv", tmp_path / "gap.csv", "--label", "two_year_recid", "--prediction", "high_risk", "--group", "sex")
    assert r.exit_code == 2 and "prediction column 'high_risk': 1 missing values (first at row 7)" in r.output
    r = run("audit", "csv", tmp_path / "missing.csv", "--label", "a", "--prediction", "b", "--group", "c")
    assert r.exit_code == 2 and "no such file" in r.output
    r = run("audit", "csv", csv, "--label", "two_year_recid", "--prediction", "high_risk", "--group", "race", "--fail-on", "severe")
    assert r.exit_code == 2 and "--fail-on must be one of" in r.output
    (tmp_path / "empty.csv").write_text("")
    r = run("audit", "csv", tmp_path / "empty.csv", "--label", "a", "--prediction", "b", "--group", "c")
    assert r.exit_code == 2 and "cannot read" in r.output


def test_cli_model_record_and_suspend(demo_log, tmp_path):
    d0, summary = demo_log
    d = tmp_path / "copy"
    shutil.copytree(d0, d)
    r = run("audit", "model", summary.model[:19], "--data-dir", d, "--role", "researcher", "--suspend-on-severity", "high")
    assert r.exit_code == 2 and "only a supervisor may suspend" in r.output
    r = run("audit", "model", "sha256:0000000000000000", "--data-dir", d)
    assert r.exit_code == 2 and "unknown model" in r.output
    with Ledger.open(d) as ledger:
        size = ledger.size
    r = run("audit", "model", summary.model[:19], "--data-dir", d, "--role", "supervisor", "--group", "sex", "--n-boot", "200",
            "--record", "--suspend-on-severity", "high", "--json")
    data = json.loads(r.stdout)
    alerts = [f for f in data["findings"] if f["verdict"] == "alert"]
    with Ledger.open(d) as ledger:
        recorded = [json.loads(ledger.entry(i)) for i in range(size, ledger.size)]
        assert [e["type"] for e in recorded] == ["finding"] * len(alerts) + ["model"]
        assert recorded[-1]["status"] == "suspended" and "audit finding entry" in recorded[-1]["reason"]
    assert r.exit_code == 1  # high findings: the model uses sex and age (protected) in its decisions
    r = run("audit", "suspend", 0, "--data-dir", d, "--reason", "test")
    assert r.exit_code == 2 and "not a finding" in r.output
    r = run("audit", "suspend", size, "--data-dir", d)
    assert r.exit_code == 2 and "--reason" in r.output
    r = run("audit", "suspend", size, "--data-dir", d, "--reason", "  ")
    assert r.exit_code == 2 and "--reason: say why" in r.output
    # --record again: identical findings already on the log are not written twice, and the output says so
    with Ledger.open(d) as ledger:
        before = ledger.size
    r = run("audit", "model", summary.model[:19], "--data-dir", d, "--role", "supervisor", "--group", "sex", "--n-boot", "200",
            "--record")
    text = " ".join(r.stdout.split())
    assert f"{len(alerts)} alerting findings already on the log for this model and check" in text, text
    assert "no new alerting findings to record" in text
    with Ledger.open(d) as ledger:
        assert ledger.size == before


def test_cli_model_refuses_to_publish_a_private_view_without_publish(demo_log, tmp_path):
    d0, summary = demo_log
    d = tmp_path / "copy"
    shutil.copytree(d0, d)
    target = d / "reports" / "audits" / "sup"
    for role in ("supervisor", "researcher", "operator"):
        r = run("audit", "model", "--data-dir", d, "--role", role, "--out", target)
        assert r.exit_code == 2 and "serves publicly at /reports" in " ".join(r.output.split()), r.output
        assert f"role {role}'s access" in " ".join(r.output.split()) and "--publish" in r.output
        assert not target.exists()
    # a path that only reaches the folder through .. is caught too; elsewhere, or with --publish, it is written
    r = run("audit", "model", "--data-dir", d, "--role", "supervisor", "--out", d / "artifacts" / ".." / "reports" / "x")
    assert r.exit_code == 2
    r = run("audit", "model", "--data-dir", d, "--role", "supervisor", "--n-boot", "200", "--out", target, "--publish")
    assert r.exit_code == 1 and (target / "report.html").exists()  # high findings (protected features used), as above
    r = run("audit", "model", "--data-dir", d, "--role", "public", "--out", d / "reports" / "audits" / "pub")
    assert r.exit_code == 1 and (d / "reports" / "audits" / "pub" / "report.json").exists()  # nothing measured, but allowed


def test_cli_model_nothing_measured_says_why(demo_log, tmp_path):
    """The public and a developer without a grant see nothing of the demo's private deployment: exit 1 and the reason."""
    d, summary = demo_log
    for role in ("public", "developer"):
        r = run("audit", "model", "--data-dir", d, "--role", role, "--n-boot", "200", "--out", tmp_path / role)
        assert r.exit_code == 1, r.output
        text = " ".join(r.stdout.split())
        assert f"nothing could be measured for role {role}: none of its 300 decisions is visible" in text
        assert "no weights under the disclosure policy 'researchers'" in text and "alerting findings" not in text
        data = json.loads((tmp_path / role / "report.json").read_text())
        assert data["measured"] is False and data["findings"] == []
        assert data["unmeasured"].startswith(f"nothing could be measured for role {role}")
        md = (tmp_path / role / "report.md").read_text()
        assert f"**Nothing could be measured for role {role}: none of its 300 decisions" in md
        assert "Nothing could be measured" in (tmp_path / role / "report.html").read_text()


# ---------------------------------------------------------------- the deceptive-accuracy demonstration


@pytest.fixture(scope="module")
def deceptive(tmp_path_factory):
    d = tmp_path_factory.mktemp("deceptive")
    r = run("audit", "deceptive", "--data-dir", d / "log", "--out", d / "report", "--json")
    assert r.exit_code == 1, r.output  # like every audit command: high findings (the model is deceptive by design)
    return d, json.loads(r.stdout)


def test_deceptive_report_cites_its_findings_and_their_stages(deceptive):
    d, demo = deceptive
    report = json.loads((d / "report" / "report.json").read_text())
    assert report["findings"] == demo["findings"]
    alerting = {f["check"] for f in report["findings"] if f["verdict"] == "alert"}
    cited = {c for row in demo["detection"] for c in row["checks"]}
    assert cited <= alerting and {"shortcut.dormant", "claims.output_rate"} <= alerting
    # the same check from two stages says which data each comes from
    before = "Shortcut / spurious features: supervisor, provider's data by application quarter, before deployment"
    after = "Shortcut / spurious features: supervisor, training data vs deployment outcomes, after outcomes"
    unstable = {f["severity"]: f["from"] for f in report["findings"] if f["check"] == "shortcut.unstable"}
    assert unstable == {"medium": [before], "high": [after]}
    assert sorted(f["from"][0] for f in report["findings"] if f["check"] == "shortcut.declared_irrelevant") == [before, after]
    dormant = next(f for f in report["findings"] if f["check"] == "shortcut.dormant")
    assert dormant["from"] == ["Findings: researchers, pseudonymised log"] and dormant["value"] == pytest.approx(26 / 30)
    rate = next(f for f in report["findings"] if f["check"] == "claims.positive_rate")
    assert "realised 0.040 on 300 decisions" in rate["summary"]
    md = (d / "report" / "report.md").read_text()
    assert "## Error rates by group: sex\n" in md and "## Leakage: supervisor, provider's training vs validation data" in md
    assert "group_sex" not in md and "Notes: notes" not in md and "## Deceptive-accuracy demonstration\n" in md


def test_deceptive_claimed_vs_realised(deceptive):
    d, demo = deceptive
    assert demo["claimed"]["accuracy"] == pytest.approx(128 / 150)  # 0.853 on the provider's validation data
    assert demo["claimed"]["positive_rate"] == pytest.approx(38 / 150)
    assert demo["realised"]["accuracy"] == pytest.approx(212 / 300)  # 0.707 in deployment
    assert demo["realised"]["accuracy_ci"] == pytest.approx([0.6528, 0.7553], abs=1e-4)
    assert demo["realised"]["positive_rate"] == pytest.approx(12 / 300)
    assert demo["honest_accuracy"] == pytest.approx(218 / 300)  # the same pipeline without the artefact does better
    assert demo["artefact_share"] == pytest.approx(0.2896, abs=2e-3)
    assert (d / "report" / "report.html").exists()
    md = (d / "report" / "report.md").read_text()
    assert "Positive = 1 (1 = bad credit risk, 0 = good)" in md and "a higher selection rate is unfavourable" in md


def test_deceptive_who_finds_it_and_when(deceptive):
    d, demo = deceptive
    rows = {r["level"]: r for r in demo["detection"]}
    assert all(r["detected"] for r in rows.values())
    assert rows["white-box"]["when"] == "before deployment"
    assert rows["white-box"]["checks"] == ["shortcut.declared_irrelevant", "shortcut.unstable"]
    assert rows["black-box"]["when"] == "before deployment" and rows["black-box"]["queries"] == 2700
    # the claimed AUC (0.882 on 150 validation rows) against 0.798 on the developer's 150: consistent once the claim's own
    # sampling error counts (claim minus realised -0.017 to 0.185); accuracy (0.853 vs 0.707) is not
    assert rows["black-box"]["checks"] == ["blackbox.audit_set.accuracy", "blackbox.counterfactual.irrelevant"]
    assert rows["researchers"]["decisions_seen"] == 30 and rows["researchers"]["checks"] == ["shortcut.dormant"]
    assert rows["public"]["decisions_seen"] == 30 and rows["public"]["checks"] == ["claims.output_rate"]
    assert rows["outcomes"]["outcomes_seen"] == 90 and rows["outcomes"]["checks"] == ["claims.accuracy"]
    outcomes = [t for t in demo["timeline"] if t["stage"] == "outcomes"]
    # 60 outcomes are not enough (0.750 realised: the claim 0.853 was measured on 150 rows), 90 are (0.711)
    assert not outcomes[1]["outcome_alert"] and outcomes[2]["outcome_alert"]
    with Ledger.open(d / "log") as ledger:
        first = rows["white-box"]["finding_indexes"][0]
        first_decision = next(i for i, _ in ledger.entries_of_type("decision"))
        assert first < first_decision  # recorded on the log before the first decision
        status = json.loads(ledger.entry(demo["suspended_at"]))
        assert status["status"] == "suspended" and status["reason"].startswith(f"audit finding entry {first}:")
        assert audit_log(ledger).ok


def test_audit_model_on_deceptive_log_constant_feature(deceptive):
    """A feature that never varies in deployment (file_version = 1) takes its counterfactual values from the weights."""
    d, _ = deceptive
    r = run("audit", "model", "-d", d / "log", "--role", "supervisor", "--n-boot", 200, "--json")
    assert r.exit_code == 1, r.output  # high findings, not a usage error
    data = json.loads(r.stdout)
    black = next(s for s in data["sections"] if s["kind"] == "blackbox")
    fv = next(c for c in black["counterfactual"] if c["attribute"] == "file_version")
    assert fv["values"] == [0, 1, 2, 3] and fv["kind"] == "irrelevant" and fv["flip_rate"] > 0.5
    notes = next(s for s in data["sections"] if s["kind"] == "notes")["notes"]
    assert any("file_version: one value (1)" in n for n in notes)


def test_blackbox_constant_attribute_without_values_is_skipped(demo_model):
    model, X = demo_model[0], demo_model[1].head(50).copy()
    X["foreign_worker"] = X["foreign_worker"].iloc[0]
    black = blackbox_audit(QueryCounter(lambda f: model.predict_proba(f)[:, 1]), X, protected=["foreign_worker"])
    f = next(f for f in black.findings if f.check == "blackbox.counterfactual.protected")
    assert f.verdict == "insufficient-data" and "skipped" in f.summary and black.counterfactual == []


def test_group_disparity_null_false_alarms_within_family_wise_alpha():
    """Pure noise: 1,000 rows, 4 random groups, prediction independent of group. Before the fix every seed alerted
    (min/max of the extreme groups, no multiplicity correction); now any-alert runs stay within alpha = 0.05."""
    from scipy.stats import binom

    seeds, runs_alerting = 40, 0
    for seed in range(seeds):
        rng = np.random.default_rng(seed)
        groups = rng.choice(["a", "b", "c", "d"], 1000)
        y = rng.binomial(1, 0.3, 1000)
        pred = np.where(rng.random(1000) < 0.7, y, 1 - y)
        r = group_error_rates(y, pred, groups, seed=seed)
        assert r.reference == max("abcd", key=lambda g: ((groups == g).sum(), g))  # fixed by size, before looking
        assert r.findings[0].evidence["comparisons_in_family"] == 12  # 3 groups x 4 metrics
        runs_alerting += any(f.alert for f in r.findings)
    # at most the 99th percentile of Binomial(40, 0.05) runs with any alert (measured: 2 of 40; 20 of 400 seeds)
    assert runs_alerting <= binom.ppf(0.99, seeds, 0.05) == 6
    # ... while COMPAS race still alerts, against the largest group (African-American), on FPR and FNR
    df = load_compas()
    race = group_error_rates(df["two_year_recid"], df["high_risk"], df["race"], attribute="race", n_boot=200)
    assert race.reference == "African-American"
    alerts = {f.check: f.evidence["ratios"]["Caucasian"] for f in race.findings if f.alert}
    assert alerts["group.false_positive_rate"]["severity"] == "high"  # 0.220 / 0.423 = 0.52
    assert alerts["group.false_positive_rate"]["ratio"] == pytest.approx((282 / 1281) / (641 / 1514))
    assert alerts["group.false_negative_rate"]["severity"] == "high"  # 0.496 / 0.285 = 1.74
    assert alerts["group.false_negative_rate"]["ratio"] == pytest.approx((408 / 822) / (473 / 1661))
    with pytest.raises(AuditInputError, match="n_boot: must be at least 200"):
        group_error_rates(df["two_year_recid"], df["high_risk"], df["race"], n_boot=0)
