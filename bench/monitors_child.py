"""One measured run of bench/monitors.py, in its own process (honest peak memory per contender).

    python bench/monitors_child.py glasslog-frames DATA_DIR   # glasslog drift monitor on in-memory frames
    python bench/monitors_child.py evidently DATA_DIR         # Evidently DataDriftPreset on the same frames
    python bench/monitors_child.py glasslog-ledger LEDGER_DIR N_REF   # every monitor, read from the log's columnar copy
    python bench/monitors_child.py glasslog-ledger-legacy LEDGER_DIR N_REF   # the same, reading the log as before it
    python bench/monitors_child.py columnar-build LEDGER_DIR [drop]   # build the columnar copy (first drop it)

Prints one JSON object on stdout: seconds, peak and baseline resident memory
(``VmHWM`` / ``VmRSS`` from /proc/self/status, MiB) and the columns each tool
flagged as drifted. Imports only numpy and pandas at the top, so the Evidently
run works in its own virtualenv (Evidently 0.7 does not import under pandas 3).
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd


def _mib(field: str) -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    return float("nan")


def load_frames(data_dir: Path) -> tuple[pd.DataFrame, pd.DataFrame, dict]:
    """The reference and current frames written by bench/monitors.py (numeric float64, categorical object/None)."""
    meta = json.loads((data_dir / "meta.json").read_text())
    frames = []
    for part in ("ref", "cur"):
        cols = {}
        for name in meta["numeric"]:
            cols[name] = np.load(data_dir / f"{part}_{name}.npy")
        for name, labels in meta["categorical"].items():
            codes = np.load(data_dir / f"{part}_{name}.npy")
            table = np.array(labels + [None], dtype=object)
            cols[name] = table[np.where(codes < 0, len(labels), codes)]
        frames.append(pd.DataFrame(cols))
    return frames[0], frames[1], meta


def run_glasslog_frames(data_dir: Path) -> dict:
    from glasslog.oversight.monitors import compare_frames, flag_drift

    ref, cur, meta = load_frames(data_dir)
    types = {n: "numeric" for n in meta["numeric"]} | {n: "categorical" for n in meta["categorical"]}
    base = _mib("VmRSS")
    t, c = time.perf_counter(), time.process_time()
    results = compare_frames(ref, cur, types)
    drifted = flag_drift(results, alpha=0.05)
    seconds, cpu = time.perf_counter() - t, time.process_time() - c
    return {"seconds": seconds, "cpu_seconds": cpu, "peak_rss_mib": _mib("VmHWM"), "baseline_rss_mib": base, "drifted": sorted(drifted),
            "psi": {k: r["psi"] for k, r in results.items()}}


def run_evidently(data_dir: Path) -> dict:
    import evidently
    from evidently import DataDefinition, Dataset, Report
    from evidently.presets import DataDriftPreset

    ref, cur, meta = load_frames(data_dir)
    base = _mib("VmRSS")
    t, c = time.perf_counter(), time.process_time()
    definition = DataDefinition(numerical_columns=list(meta["numeric"]), categorical_columns=list(meta["categorical"]))
    snapshot = Report([DataDriftPreset()], include_tests=True).run(Dataset.from_pandas(cur, data_definition=definition),
                                                                 Dataset.from_pandas(ref, data_definition=definition))
    result = snapshot.dict()
    seconds, cpu = time.perf_counter() - t, time.process_time() - c
    drifted, methods = [], {}
    for test in result.get("tests", []):
        params = (test.get("metric_config") or {}).get("params") or {}
        if params.get("type", "").endswith("ValueDrift"):
            methods[params["column"]] = params.get("method")
            if test.get("status") == "FAIL":
                drifted.append(params["column"])
    return {"seconds": seconds, "cpu_seconds": cpu, "peak_rss_mib": _mib("VmHWM"), "baseline_rss_mib": base,
            "drifted": sorted(drifted), "methods": methods, "evidently": evidently.__version__, "pandas": pd.__version__}


def _summary(run, seconds: float, cpu: float, base: float) -> dict:
    by_check = {}
    for f in run.findings:
        by_check.setdefault(f.check, []).append(f.verdict)
    drift = next((f for f in run.findings if f.check == "drift.inputs"), None)
    return {"seconds": seconds, "cpu_seconds": cpu, "load_seconds": run.load_seconds, "check_seconds": run.check_seconds,
            "peak_rss_mib": _mib("VmHWM"), "baseline_rss_mib": base, "decisions": run.decisions,
            "rows_read": run.rows_read, "drifted": sorted(drift.evidence.get("drifted", [])) if drift else None,
            "verdicts": by_check, "findings": len(run.findings),
            "signature": sorted(json.dumps(f.to_dict(), sort_keys=True, default=str) for f in run.findings)}


def run_glasslog_ledger(ledger_dir: Path, n_ref: int) -> dict:
    """Every monitor through ``run_monitors`` (the columnar copy), from ``Ledger.open`` to the findings."""
    from datetime import datetime, timezone

    from glasslog.ledger import Ledger
    from glasslog.oversight.monitors import MonitorConfig, run_monitors

    base = _mib("VmRSS")
    t, c = time.perf_counter(), time.process_time()
    ledger = Ledger.open(ledger_dir)
    run = run_monitors(ledger, "supervisor", MonitorConfig(reference_size=n_ref, now=datetime(2030, 1, 1, tzinfo=timezone.utc)))
    seconds, cpu = time.perf_counter() - t, time.process_time() - c
    ledger.close()
    return _summary(run, seconds, cpu, base)


def run_glasslog_ledger_legacy(ledger_dir: Path, n_ref: int) -> dict:
    """The same monitors over views read the way before the columnar copy (bench/monitors_legacy.py)."""
    from datetime import datetime, timezone

    from monitors_legacy import load_views_legacy

    from glasslog.ledger import Ledger, utc_now
    from glasslog.oversight.monitors import MonitorConfig, MonitorRun, monitor_views
    from glasslog.oversight.monitors.config import check_settings

    base = _mib("VmRSS")
    t, c = time.perf_counter(), time.process_time()
    ledger = Ledger.open(ledger_dir)
    cfg = MonitorConfig(reference_size=n_ref, now=datetime(2030, 1, 1, tzinfo=timezone.utc))
    views = load_views_legacy(ledger, "supervisor")
    check_settings(views, cfg, "supervisor")
    loaded = time.perf_counter()
    findings, skipped = monitor_views(views, cfg, role="supervisor")
    done = time.perf_counter()
    seconds, cpu = done - t, time.process_time() - c
    run = MonitorRun("supervisor", findings, skipped, sum(v.n for v in views), loaded - t, done - loaded, utc_now())
    ledger.close()
    out = _summary(run, seconds, cpu, base)
    out["rows_read"] = None  # MonitorRun counts columnar-copy rows; this reader reads entries and does not count them
    return out


def run_columnar_build(ledger_dir: Path, drop: bool) -> dict:
    """Build the log's columnar copy from the entries and private values (dropping it first if asked)."""
    from glasslog.ledger import Ledger
    from glasslog.storage import columnar

    ledger = Ledger.open(ledger_dir)
    if drop:
        ledger.store.columnar.drop()
    before, _ = ledger.store.columnar.state()
    base = _mib("VmRSS")
    t, c = time.perf_counter(), time.process_time()
    upto = columnar.refresh(ledger.store)
    seconds, cpu = time.perf_counter() - t, time.process_time() - c
    ledger.close()
    return {"seconds": seconds, "cpu_seconds": cpu, "entries": upto - before, "peak_rss_mib": _mib("VmHWM"),
            "baseline_rss_mib": base}


if __name__ == "__main__":
    mode, where = sys.argv[1], Path(sys.argv[2])
    if mode == "glasslog-frames":
        out = run_glasslog_frames(where)
    elif mode == "evidently":
        out = run_evidently(where)
    elif mode == "glasslog-ledger":
        out = run_glasslog_ledger(where, int(sys.argv[3]))
    elif mode == "glasslog-ledger-legacy":
        out = run_glasslog_ledger_legacy(where, int(sys.argv[3]))
    elif mode == "columnar-build":
        out = run_columnar_build(where, sys.argv[3:4] == ["drop"])
    else:
        raise SystemExit(f"unknown mode {mode!r}")
    sys.stdout.write(json.dumps(out) + "\n")
