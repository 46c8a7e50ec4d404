"""Audit run times and the deceptive demonstration's key numbers.

Measures, in one run:

1. The group error-rate audit of COMPAS (6,172 rows, by race and by sex,
   1,000 bootstrap draws) with glasslog's stratified multinomial bootstrap,
   side by side with the named baseline: fairlearn's own ``MetricFrame``
   bootstrap (``n_boot=1000``) for the same metrics. Prints both times and
   the ratio.
2. The whole supervisor audit of the German Credit demo deployment
   (``audit_logged_model``: claims, groups by sex and age group, black-box
   tests, reliance with SHAP, leakage, shortcut with the training data).
3. The deceptive-accuracy demonstration end to end, with its claimed vs
   realised accuracy and the detection point of each access level.

Usage: ``python bench/audit.py [--repeats 3] [--json out.json]``
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def _best(fn, repeats: int) -> tuple[float, object]:
    times, result = [], None
    for _ in range(repeats):
        t = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - t)
    return min(times), result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()

    import numpy as np
    from fairlearn.metrics import MetricFrame, count, false_negative_rate, false_positive_rate, selection_rate
    from sklearn.metrics import precision_score

    from glasslog.audit.group import group_audit_frame
    from glasslog.audit.run import audit_logged_model
    from glasslog.datasets import load_compas, load_german_credit, split
    from glasslog.demo.run import run_demo
    from glasslog.ledger import Ledger
    from glasslog.scenarios.deceptive import run_deceptive_demo

    out: dict = {"machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform()},
                 "commit": subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()}
    df = load_compas()

    def ours():
        return group_audit_frame(df, "two_year_recid", "high_risk", ["race", "sex"], n_boot=1000)

    def fairlearn_boot():
        def ppv(yt, yp):
            return precision_score(yt, yp, zero_division=np.nan)
        res = {}
        for attr in ("race", "sex"):
            res[attr] = MetricFrame(metrics={"n": count, "selection_rate": selection_rate, "fpr": false_positive_rate,
                                             "fnr": false_negative_rate, "ppv": ppv},
                                    y_true=df["two_year_recid"], y_pred=df["high_risk"], sensitive_features=df[attr],
                                    n_boot=1000, ci_quantiles=[0.025, 0.975], random_state=0)
        return res

    t_ours, audits = _best(ours, args.repeats)
    t_fl, frames = _best(fairlearn_boot, 1)
    lo, hi = audits["race"].by_group.loc["African-American", ["false_positive_rate_lo", "false_positive_rate_hi"]]
    fl_lo, fl_hi = (frames["race"].by_group_ci[0].loc["African-American", "fpr"], frames["race"].by_group_ci[1].loc["African-American", "fpr"])
    out["compas_group_audit"] = {"rows": len(df), "n_boot": 1000, "glasslog_s": t_ours, "fairlearn_bootstrap_s": t_fl,
                                 "ratio_glasslog_to_fairlearn": t_ours / t_fl,
                                 "black_fpr_ci_glasslog": [lo, hi], "black_fpr_ci_fairlearn": [float(fl_lo), float(fl_hi)]}
    print(f"COMPAS group audit (6,172 rows, race and sex, 1,000 draws): glasslog {t_ours:.2f} s, fairlearn MetricFrame"
          f" bootstrap {t_fl:.2f} s, ratio {t_ours / t_fl:.3f}")
    print(f"  FPR of Black defendants, 95% interval: glasslog {lo:.4f}-{hi:.4f}, fairlearn {fl_lo:.4f}-{fl_hi:.4f}")

    with tempfile.TemporaryDirectory() as tmp:
        summary = run_demo(Path(tmp) / "demo")
        X, y = load_german_credit()
        train, _, _ = split(len(X))
        training = X.iloc[train].assign(bad_credit_risk=y.iloc[train])
        with Ledger.open(Path(tmp) / "demo") as ledger:
            t_gc, results = _best(lambda: audit_logged_model(ledger, summary.model, principal="supervisor",
                                                             groups=["sex", "age_group"], training_data=training), args.repeats)
        out["german_credit_supervisor_audit"] = {"decisions": 300, "seconds": t_gc, "sections": list(results),
                                                 "queries": results["blackbox"].queries}
        print(f"German Credit demo deployment, whole supervisor audit (300 decisions): {t_gc:.2f} s,"
              f" {results['blackbox'].queries} black-box queries")
        times = []
        for k in range(args.repeats):
            t = time.perf_counter()
            demo = run_deceptive_demo(Path(tmp) / f"deceptive-{k}")
            times.append(time.perf_counter() - t)
    out["deceptive_demo"] = {"seconds_min": min(times), "seconds_median": statistics.median(times), **{
        k: v for k, v in demo.to_dict().items() if k in ("claimed", "realised", "honest_accuracy", "artefact_share", "detection")}}
    print(f"Deceptive demonstration end to end: {min(times):.1f} s (min of {args.repeats})")
    print(f"  claimed accuracy {demo.claimed['accuracy']:.3f}, realised {demo.realised['accuracy']:.3f}"
          f" (95% CI {demo.realised['accuracy_ci'][0]:.3f}-{demo.realised['accuracy_ci'][1]:.3f}), without the artefact"
          f" {demo.honest_accuracy:.3f}")
    for r in demo.detection:
        print(f"  {r.level:12s} {'found' if r.detected else 'missed'} {r.when}: {r.statistic}"
              + (f" ({r.queries} queries)" if r.queries else ""))
    if args.json:
        args.json.write_text(json.dumps(out, indent=2, default=float) + "\n")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
