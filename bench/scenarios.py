"""Scenario lab benchmark: wall time of a lab run, and of one world run against its plain baseline.

Prints:
- the wall time of ``run_lab`` at ``--reps`` (default 10, the CLI default) with sensitivity runs;
- for one world run of each scenario (closed regime, seed 0): the wall time with glasslog
  (real log, keys, registry, capture SDK, monitors, findings), against the baseline of the same
  model training and predictions with nothing logged or checked, and their ratio;
- the key measured figures of the lab run.

Usage: ``python bench/scenarios.py [--reps N] [--seed S] [--skip-lab]``.
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import time

import numpy as np
from threadpoolctl import threadpool_limits

from glasslog.scenarios import adapters
from glasslog.scenarios.report import to_json
from glasslog.scenarios.runner import run_lab
from glasslog.scenarios.schema import load_scenario
from glasslog.scenarios.worlds import run_world


def baseline_credit(seed: int) -> float:
    """Train and predict the deceptive-credit model in the same batches, logging nothing."""
    t = time.perf_counter()
    d = adapters.shortcut_data(seed, control=False)
    for i in range(0, len(d.X_deploy), 25):
        d.model.predict_proba(d.X_deploy.iloc[i:i + 25])
    return time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--reps", type=int, default=10)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--skip-lab", action="store_true")
    a = ap.parse_args()
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    print(f"machine: {platform.processor() or platform.machine()}, python {platform.python_version()}, commit {commit}")
    with threadpool_limits(limits=1):
        s = load_scenario("deceptive-credit").with_parameters(audit_query_budget=0)
        times = []
        for _ in range(3):
            t = time.perf_counter()
            run_world(s, "closed", 0)
            times.append(time.perf_counter() - t)
        base = float(np.median([baseline_credit(0) for _ in range(3)]))
        world = float(np.median(times))
        print(f"deceptive-credit world run (closed, seed 0): {world:.3f} s with glasslog; baseline (train + predict,"
              f" nothing logged) {base:.3f} s; ratio {world / base:.1f}x")
    if a.skip_lab:
        return
    t = time.perf_counter()
    res = run_lab(reps=a.reps, seed=a.seed)
    wall = time.perf_counter() - t
    print(f"lab run: {a.reps} reps, seed {a.seed}, 4 scenarios x 5 regimes x (problem + control) + sensitivity: {wall:.0f} s")
    print(json.dumps({sc["id"]: {g: {k: r[k] for k in ("detect_p", "time_median", "harm_mean", "false_alarm_p")}
                                 for g, r in sc["regimes"].items()} for sc in to_json(res)["scenarios"]}, indent=1))


if __name__ == "__main__":
    main()
