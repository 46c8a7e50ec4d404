"""Monitors over a million logged decisions: glasslog's drift monitor against Evidently's
DataDriftPreset on the same data, side by side in one run, plus every glasslog monitor
read from a 1,000,000-decision log.

    .venv/bin/python bench/monitors.py [--decisions 1000000] [--reference 200000] [--json PATH]
    .venv/bin/python bench/monitors.py --log-only [--rebuild-columnar]   # the log part only

What is measured (each contender in its own process, so peak memory is its own):

1. Speed, same data: the reference (first ``--reference`` rows) and current
   (the rest) windows of the ``combined`` scenario, 20 features, loaded from
   .npy files into pandas frames; timed: glasslog's ``compare_frames`` +
   ``flag_drift`` (KS / chi-square, PSI, Jensen-Shannon, Bonferroni) against
   Evidently's ``Report([DataDriftPreset()], include_tests=True).run(...)``
   and ``.dict()``. Seconds, peak resident memory (VmHWM) and the ratio.
2. Detection, same data: every scenario below at the same size, both tools;
   which of the 20 features each flags, against the features that were shifted.
3. glasslog end to end: a log of ``--decisions`` decisions (private
   deployment; inputs, outputs and 60 % of outcomes as private values beside
   the log, the ``combined`` shifts after the reference rows), read as the
   supervisor and checked by all five monitors: seconds to load, seconds to
   check, peak memory; reading the log's columnar copy (``storage.columnar``,
   built once and timed when missing or with ``--rebuild-columnar``) and, side
   by side in its own process, reading the entries and private values as
   before it (``bench/monitors_legacy.py``), with a check that both find the
   same. ``--log-only`` runs just this part (no Evidently needed).

Synthetic generator (``GENERATOR_VERSION``; fixed seed): 20 features.
``num_00``-``num_03`` normal(50, 10); ``num_04``-``num_05`` lognormal(8, 0.5)
(amounts); ``num_06``-``num_07`` Poisson(3) (counts, tested as categories);
``num_08``-``num_09`` uniform(0, 100); ``num_10``-``num_11`` integer uniform
18-75 (ages); ``cat_00``-``cat_07`` categorical with 3, 4, 5, 6, 8, 10, 12, 20
levels, probabilities proportional to 1/(rank+1). True risk: logistic of a
linear score in num_00, log num_04, num_08, num_10 and cat_00/cat_01; outcome
~ Bernoulli(true risk).

Scenarios (applied to the current rows only): ``none``; ``mean`` (num_00 +0.5
SD, num_08 +10); ``scale`` (num_02 SD x1.5); ``mix`` (cat_01: the top level
loses 15 points of share to the others); ``missing`` (num_05: 5 % NaN);
``unseen`` (cat_03: 3 % a level never seen in the reference); ``subtle``
(num_01 +0.05 SD); ``combined`` (mean, scale, mix, missing and unseen together).

Evidently 0.7 does not import under pandas 3 (glasslog's environment), so it
runs in its own virtualenv, ``bench/.cache/venv-evidently`` (made on first use
from the ``evidently`` extra in pyproject.toml), or ``--evidently-python``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pandas as pd
from common import (
    BENCH_DIR,
    DEFAULT_WORK_DIR,
    console,
    loadavg,
    machine_info,
    print_machine,
    progress,
    wait_for_quiet,
    write_json,
)
from rich.table import Table

GENERATOR_VERSION = 1
SEED = 20261130
NUMERIC = [f"num_{i:02d}" for i in range(12)]
LEVELS = [3, 4, 5, 6, 8, 10, 12, 20]
CATEGORICAL = [f"cat_{i:02d}" for i in range(8)]
SCENARIOS = {
    "none": [],
    "mean": ["num_00", "num_08"],
    "scale": ["num_02"],
    "mix": ["cat_01"],
    "missing": ["num_05"],
    "unseen": ["cat_03"],
    "subtle": ["num_01"],
    "combined": ["num_00", "num_08", "num_02", "cat_01", "num_05", "cat_03"],
}
CHILD = BENCH_DIR / "monitors_child.py"
ORIGIN = "bench.example/credit-monitoring"
DEPLOYMENT = "bench.example/credit-monitoring/eu-west"


# ---------------------------------------------------------------- generator
def _labels(name: str) -> list[str]:
    k = LEVELS[CATEGORICAL.index(name)]
    return [f"{name}_level_{j:02d}" for j in range(k)]


def _probabilities(k: int) -> np.ndarray:
    p = 1.0 / np.arange(1, k + 1)
    return p / p.sum()


def generate(n: int, rng: np.random.Generator, shifts: tuple[str, ...] = ()) -> dict[str, np.ndarray]:
    """``n`` rows of the 20 features: numeric float64 (NaN = missing), categorical int16 codes (-1 = missing).

    ``shifts`` names scenario shifts to apply (see the module docstring); codes
    equal to the number of levels denote the unseen level of ``unseen``.
    """
    cols: dict[str, np.ndarray] = {}
    for i, name in enumerate(NUMERIC):
        if i < 4:
            cols[name] = rng.normal(50, 10, n)
        elif i < 6:
            cols[name] = rng.lognormal(8, 0.5, n)
        elif i < 8:
            cols[name] = rng.poisson(3, n).astype(float)
        elif i < 10:
            cols[name] = rng.uniform(0, 100, n)
        else:
            cols[name] = rng.integers(18, 76, n).astype(float)
    for name, k in zip(CATEGORICAL, LEVELS):
        p = _probabilities(k)
        if "mix" in shifts and name == "cat_01":
            p = p.copy()
            moved = 0.15
            p[0] -= moved
            p[1:] += moved / (k - 1)
        cols[name] = rng.choice(k, size=n, p=p).astype(np.int16)
    if "mean" in shifts:
        cols["num_00"] = cols["num_00"] + 5.0
        cols["num_08"] = cols["num_08"] + 10.0
    if "scale" in shifts:
        cols["num_02"] = 50 + (cols["num_02"] - 50) * 1.5
    if "missing" in shifts:
        cols["num_05"][rng.random(n) < 0.05] = np.nan
    if "unseen" in shifts:
        cols["cat_03"][rng.random(n) < 0.03] = LEVELS[CATEGORICAL.index("cat_03")]
    if "subtle" in shifts:
        cols["num_01"] = cols["num_01"] + 0.5
    return cols


def true_risk(cols: dict[str, np.ndarray]) -> np.ndarray:
    """Probability of the positive outcome (bad credit risk) under the generator."""
    amount = np.log(np.nan_to_num(cols["num_04"], nan=3000.0))
    z = (-1.0 + 0.06 * (cols["num_00"] - 50) + 0.8 * (amount - 8) - 0.01 * (cols["num_08"] - 50)
         - 0.03 * (cols["num_10"] - 45) + 0.5 * (cols["cat_00"] == 0) - 0.4 * (cols["cat_01"] == 2))
    return 1 / (1 + np.exp(-z))


def scenario_shifts(name: str) -> tuple[str, ...]:
    return ("mean", "scale", "mix", "missing", "unseen") if name == "combined" else ((name,) if name != "none" else ())


def write_scenario(work: Path, name: str, n: int, n_ref: int) -> Path:
    """Reference and current columns of one scenario as .npy files (reused when present)."""
    out = work / f"data-v{GENERATOR_VERSION}-{name}-{n}-{n_ref}"
    if (out / "meta.json").is_file():
        return out
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    rng = np.random.default_rng([SEED, list(SCENARIOS).index(name)])
    ref = generate(n_ref, rng)
    cur = generate(n - n_ref, rng, scenario_shifts(name))
    for part, cols in (("ref", ref), ("cur", cur)):
        for col, values in cols.items():
            np.save(out / f"{part}_{col}.npy", values)
    labels = {c: _labels(c) + (["cat_03_level_new"] if c == "cat_03" else []) for c in CATEGORICAL}
    (out / "meta.json").write_text(json.dumps({"numeric": NUMERIC, "categorical": labels, "n_ref": n_ref, "n_cur": n - n_ref,
                                               "truth": SCENARIOS[name], "generator": GENERATOR_VERSION}))
    return out


# ---------------------------------------------------------------- the log
def _frame(cols: dict[str, np.ndarray]) -> pd.DataFrame:
    data = {}
    for name in NUMERIC:
        data[name] = np.round(cols[name], 4)
    for name in CATEGORICAL:
        table = np.array(_labels(name) + ["cat_03_level_new", None], dtype=object) if name == "cat_03" else \
            np.array(_labels(name) + [None], dtype=object)
        codes = cols[name].astype(int)
        data[name] = table[np.where(codes < 0, len(table) - 1, codes)]
    return pd.DataFrame(data)


LEDGER_FORMAT = "sqlite-1"
"""Version of the cached log's layout (was a digest of sqlite/store.py, which rebuilt 1.6 GB on every edit of it)."""


def build_ledger(work: Path, n: int, n_ref: int) -> tuple[Path, dict]:
    """A log of ``n`` decisions (scenario ``combined`` after ``n_ref``), built once and reused."""
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import accuracy_score, roc_auc_score
    from sklearn.pipeline import Pipeline, make_pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    from glasslog.ledger import Entry, Ledger, PrivateValue, commit
    from glasslog.registry import ClaimedMetrics, Deployments, Feature, ModelCard, Registry, fingerprint_frame

    digest = LEDGER_FORMAT  # the stored log's layout; a store that reads it unchanged reuses it
    path = work / f"monitor-ledger-v{GENERATOR_VERSION}-{n}-{n_ref}"
    marker = path / "fixture.json"
    if marker.is_file():
        info = json.loads(marker.read_text())
        if info.get("store") == digest:
            return path, info
    if path.exists():
        shutil.rmtree(path)
    t0 = time.perf_counter()
    rng = np.random.default_rng([SEED, 99])
    train = generate(20_000, rng)
    evaluation = generate(20_000, rng)
    y_train = (rng.random(20_000) < true_risk(train)).astype(int)
    y_eval = (rng.random(20_000) < true_risk(evaluation)).astype(int)
    pre = ColumnTransformer([("numeric", make_pipeline(SimpleImputer(), StandardScaler()), NUMERIC),
                             ("categorical", OneHotEncoder(handle_unknown="ignore"), CATEGORICAL)])
    model = Pipeline([("prepare", pre), ("classify", LogisticRegression(max_iter=1000))])
    train_frame, eval_frame = _frame(train), _frame(evaluation)
    model.fit(train_frame, y_train)
    claimed = {"accuracy": float(accuracy_score(y_eval, model.predict(eval_frame))),
               "roc_auc": float(roc_auc_score(y_eval, model.predict_proba(eval_frame)[:, 1]))}
    features = tuple(Feature(c, "numeric", personal=c == "num_10", protected=c == "num_10") for c in NUMERIC) + tuple(
        Feature(c, "categorical", personal=c == "cat_00", protected=c == "cat_00") for c in CATEGORICAL)
    card = ModelCard(name="bench credit model", version=f"g{GENERATOR_VERSION}", provider="glasslog benchmark",
                     intended_use="benchmark of the monitors on synthetic credit decisions", features=features,
                     output={"classes": [0, 1], "positive": 1, "favourable": 0},
                     training_data_fingerprint=fingerprint_frame(train_frame.assign(y=y_train)),
                     claimed=ClaimedMetrics(claimed, fingerprint_frame(eval_frame.assign(y=y_eval)), 20_000),
                     disclosure_policy="supervisors")
    ledger = Ledger.create(path, ORIGIN)
    fp = Registry(ledger).register(model, card, trusted=["numpy.dtype"]).fingerprint  # SimpleImputer keeps a dtype
    Deployments(ledger).declare(DEPLOYMENT, "private", "benchmark deployment")

    data = generate(n_ref, rng)
    shifted = generate(n - n_ref, rng, scenario_shifts("combined"))
    cols = {k: np.concatenate([data[k], shifted[k]]) for k in data}
    risk = true_risk(cols)
    start = datetime.now(timezone.utc) - timedelta(days=30)
    offsets = np.cumsum(rng.exponential(30 * 86400 / n, n))
    times = np.datetime64(start.replace(tzinfo=None), "us") + (offsets * 1e6).astype("timedelta64[us]")
    stamps = np.char.add(np.datetime_as_string(times, unit="us"), "Z")
    outcome_rows = np.sort(rng.choice(n, size=int(0.6 * n), replace=False))
    outcomes = (rng.random(len(outcome_rows)) < risk[outcome_rows]).astype(int)
    delay = rng.exponential(7 * 86400, len(outcome_rows))
    decision_index = np.empty(n, dtype=np.int64)
    batch = 10_000
    with progress() as p:
        task = p.add_task(f"logging {n:,} decisions", total=n)
        for s in range(0, n, batch):
            part = {k: v[s : s + batch] for k, v in cols.items()}
            frame = _frame(part)
            proba = model.predict_proba(frame)
            records = frame.to_dict(orient="records")
            entries, private = [], []
            for j, row in enumerate(records):
                value = {k: (None if isinstance(v, float) and np.isnan(v) else v) for k, v in row.items()}
                c_in, s_in, b_in = commit(value)
                out = {"label": int(proba[j, 1] >= 0.5), "proba": [float(proba[j, 0]), float(proba[j, 1])]}
                c_out, s_out, b_out = commit(out)
                entries.append(Entry.from_object({"type": "decision", "v": 1, "model": fp, "deployment": DEPLOYMENT,
                                                  "time": str(stamps[s + j]), "input": c_in, "output_commitment": c_out}))
                private.append(PrivateValue(j, "input", c_in, s_in, b_in))
                private.append(PrivateValue(j, "output", c_out, s_out, b_out))
            result = ledger.append(entries, private)
            decision_index[s : s + len(entries)] = np.arange(result.first_index, result.tree_size)
            p.advance(task, len(entries))
            p.refresh()
        order = np.argsort(offsets[outcome_rows] + delay, kind="stable")
        task = p.add_task(f"logging {len(order):,} outcomes", total=len(order))
        for s in range(0, len(order), batch):
            rows = order[s : s + batch]
            entries, private = [], []
            for j, r in enumerate(rows):
                row = outcome_rows[r]
                t = times[row] + np.timedelta64(int(delay[r] * 1e6), "us")
                c, salt, b = commit(int(outcomes[r]))
                entries.append(Entry.from_object({"type": "outcome", "v": 1, "decision": int(decision_index[row]),
                                                  "time": np.datetime_as_string(t, unit="us") + "Z", "outcome_commitment": c}))
                private.append(PrivateValue(j, "outcome", c, salt, b))
            ledger.append(entries, private)
            p.advance(task, len(rows))
            p.refresh()
    ledger.store.connection.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()
    size = ledger.size
    ledger.close()
    info = {"decisions": n, "reference": n_ref, "outcomes": len(outcome_rows), "entries": size, "store": digest,
            "claimed": claimed, "build_seconds": time.perf_counter() - t0,
            "bytes": sum(f.stat().st_size for f in path.glob("log.db*"))}
    marker.write_text(json.dumps(info))
    return path, info


# ---------------------------------------------------------------- runs
def evidently_python(given: str | None) -> str:
    """An interpreter that imports Evidently: ``--evidently-python``, else the bench venv (made on first use)."""
    if given:
        return given
    venv = DEFAULT_WORK_DIR / "venv-evidently"
    exe = venv / "bin" / "python"
    probe = [str(exe), "-c", "import evidently, pandas; assert int(pandas.__version__.split('.')[0]) < 3"]
    if exe.exists() and subprocess.run(probe, capture_output=True).returncode == 0:
        return str(exe)
    import tomllib

    extra = tomllib.loads((BENCH_DIR.parent / "pyproject.toml").read_text())["project"]["optional-dependencies"]["evidently"]
    console.print(f"making {venv} with {' '.join(extra)} (once)")
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    subprocess.run([str(venv / "bin" / "pip"), "install", "-q", *extra], check=True)
    return str(exe)


def child(python: str, *args: str) -> dict:
    env = dict(os.environ, PYTHONWARNINGS="ignore")
    proc = subprocess.run([python, str(CHILD), *args], capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(args[:1])} run failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def detection(flagged: list[str] | None, truth: list[str]) -> dict:
    flagged = flagged or []
    return {"flagged": flagged, "hits": sorted(set(flagged) & set(truth)), "missed": sorted(set(truth) - set(flagged)),
            "false_alarms": sorted(set(flagged) - set(truth))}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--decisions", type=int, default=1_000_000)
    ap.add_argument("--reference", type=int, default=200_000, help="rows in the reference window")
    ap.add_argument("--scenarios", default=",".join(SCENARIOS), help="detection scenarios (comma-separated)")
    ap.add_argument("--rounds", type=int, default=1, help="timed rounds of the speed comparison (median reported)")
    ap.add_argument("--evidently-python", help="interpreter with evidently 0.7 installed")
    ap.add_argument("--skip-ledger", action="store_true", help="skip the end-to-end run over the log")
    ap.add_argument("--log-only", action="store_true",
                    help="only the end-to-end run over the log (columnar copy vs the old reader), not Evidently")
    ap.add_argument("--rebuild-columnar", action="store_true",
                    help="drop the log's columnar copy and time building it again (else timed only when missing)")
    ap.add_argument("--work-dir", type=Path, default=DEFAULT_WORK_DIR)
    ap.add_argument("--wait", type=float, default=60, help="seconds to wait for a quiet machine (1-min load < 0.5; default 60; 0 = don't)")
    ap.add_argument("--json", help="write the results here")
    args = ap.parse_args()
    n, n_ref = args.decisions, args.reference
    if not 0 < n_ref < n:
        ap.error("--reference must be between 0 and --decisions")
    work = args.work_dir
    work.mkdir(parents=True, exist_ok=True)
    info = machine_info(work)
    print_machine(info)
    if args.log_only:
        args.skip_ledger = False
    ev_python = None if args.log_only else evidently_python(args.evidently_python)
    scenarios = [] if args.log_only else [s for s in args.scenarios.split(",") if s]
    with console.status("writing scenario data"):
        dirs = {s: write_scenario(work, s, n, n_ref) for s in scenarios}
    ledger_dir = ledger_info = None
    if not args.skip_ledger:
        ledger_dir, ledger_info = build_ledger(work, n, n_ref)
    load_start = wait_for_quiet(args.wait)
    uptime_start = subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()

    # 1. speed on the same frames, alternating the two contenders each round
    speed: dict[str, list[dict]] = {"glasslog": [], "evidently": []}
    combined = None if args.log_only else dirs.get("combined") or write_scenario(work, "combined", n, n_ref)
    for r in range(0 if args.log_only else args.rounds):
        order = ["glasslog", "evidently"] if r % 2 == 0 else ["evidently", "glasslog"]
        for who in order:
            with console.status(f"speed round {r + 1}: {who}"):
                res = child(sys.executable, "glasslog-frames", str(combined)) if who == "glasslog" else \
                    child(ev_python, "evidently", str(combined))
            speed[who].append(res)
    med = {who: sorted(runs, key=lambda x: x["seconds"])[len(runs) // 2] for who, runs in speed.items() if runs}

    # 2. detection per scenario, both tools, same data
    det = {}
    for s in scenarios:
        truth = SCENARIOS[s]
        if s == "combined":
            g, e = med["glasslog"], med["evidently"]
        else:
            with console.status(f"detection: {s}"):
                g = child(sys.executable, "glasslog-frames", str(dirs[s]))
                e = child(ev_python, "evidently", str(dirs[s]))
        det[s] = {"truth": truth, "glasslog": detection(g["drifted"], truth), "evidently": detection(e["drifted"], truth),
                  "glasslog_seconds": g["seconds"], "evidently_seconds": e["seconds"]}

    # 3. glasslog end to end over the log: the columnar copy against the old reader, each in its own process
    e2e = legacy = build = None
    if ledger_dir is not None:
        with console.status("building the log's columnar copy (once; timed)"):
            build = child(sys.executable, "columnar-build", str(ledger_dir), *(["drop"] if args.rebuild_columnar else []))
        with console.status("every monitor over the log (supervisor), columnar copy"):
            e2e = child(sys.executable, "glasslog-ledger", str(ledger_dir), str(n_ref))
        with console.status("every monitor over the log (supervisor), the old reader"):
            legacy = child(sys.executable, "glasslog-ledger-legacy", str(ledger_dir), str(n_ref))
        e2e["detection"] = detection(e2e["drifted"], SCENARIOS["combined"])
        e2e["same_findings_as_legacy"] = e2e.pop("signature") == legacy.pop("signature")
    load_end = loadavg()
    uptime_end = subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()

    ratio = cpu_ratio = better_or_equal = None
    if med:
        ratio = med["evidently"]["seconds"] / med["glasslog"]["seconds"]
        table = Table(title=f"Drift on the same data: {n:,} rows x 20 features (reference {n_ref:,}, current {n - n_ref:,})")
        for col in ("", "seconds", "CPU seconds", "peak RSS MiB", "RSS before run MiB", "drifted features flagged (combined)"):
            table.add_column(col, justify="right" if col and col != "drifted features flagged (combined)" else "left")
        for who, label in (("glasslog", "glasslog drift monitor"), ("evidently", f"Evidently {med['evidently'].get('evidently')} DataDriftPreset")):
            m = med[who]
            table.add_row(label, f"{m['seconds']:.2f}", f"{m.get('cpu_seconds', float('nan')):.2f}", f"{m['peak_rss_mib']:.0f}",
                          f"{m['baseline_rss_mib']:.0f}", ", ".join(m["drifted"]))
        console.print(table)
        cpu_ratio = med["evidently"]["cpu_seconds"] / med["glasslog"]["cpu_seconds"]
        console.print(f"speed ratio (Evidently seconds / glasslog seconds): [bold]{ratio:.1f}x[/bold]; CPU seconds: {cpu_ratio:.1f}x"
                      f" (target >= 10x: {'met' if ratio >= 10 else 'MISSED'})")
        t2 = Table(title="Detection: features flagged per scenario (hits / missed / false alarms)")
        for col in ("scenario", "shifted", "glasslog", "Evidently"):
            t2.add_column(col)
        better_or_equal = True
        for s, d in det.items():
            g, e = d["glasslog"], d["evidently"]
            t2.add_row(s, ", ".join(d["truth"]) or "-",
                       f"{len(g['hits'])} / {len(g['missed'])} / {len(g['false_alarms'])} {' '.join(g['false_alarms'])}",
                       f"{len(e['hits'])} / {len(e['missed'])} / {len(e['false_alarms'])} {' '.join(e['false_alarms'])}")
            better_or_equal &= len(g["hits"]) >= len(e["hits"]) and len(g["false_alarms"]) <= len(e["false_alarms"])
        console.print(t2)
        console.print(f"glasslog detection equal or better in every scenario: {'yes' if better_or_equal else 'NO'}")
    if e2e:
        t3 = Table(title=f"All five monitors over the log ({e2e['decisions']:,} decisions, supervisor view, "
                         "each in its own process)")
        for col in ("reader", "read s", "checks s", "total s", "CPU s", "peak RSS MiB", "rows read", "findings"):
            t3.add_column(col, justify="left" if col == "reader" else "right")
        for label, r in (("columnar copy (storage.columnar)", e2e), ("old reader (entries + private values)", legacy)):
            t3.add_row(label, f"{r['load_seconds']:.2f}", f"{r['check_seconds']:.2f}", f"{r['seconds']:.2f}",
                       f"{r['cpu_seconds']:.2f}", f"{r['peak_rss_mib']:.0f}",
                       "n/a" if r.get("rows_read") is None else f"{r['rows_read']:,}",  # the old reader counts none
                       str(r["findings"]))
        console.print(t3)
        console.print(f"columnar copy vs old reader: [bold]{legacy['seconds'] / e2e['seconds']:.1f}x[/bold] wall, "
                      f"{legacy['cpu_seconds'] / e2e['cpu_seconds']:.1f}x CPU; the same findings: "
                      f"{'yes' if e2e['same_findings_as_legacy'] else 'NO'}; target <= 3 s end to end: "
                      f"{'met' if e2e['seconds'] <= 3 else 'MISSED'}, peak RSS <= 1024 MiB: "
                      f"{'met' if e2e['peak_rss_mib'] <= 1024 else 'MISSED'}; input drift flagged: {', '.join(e2e['drifted'] or [])}")
        if build and build["entries"]:
            console.print(f"building the columnar copy of {build['entries']:,} entries (once; later runs add only new "
                          f"entries): {build['seconds']:.1f} s ({build['cpu_seconds']:.1f} CPU s, "
                          f"{1e6 * build['cpu_seconds'] / build['entries']:.1f} CPU us per entry), peak RSS "
                          f"{build['peak_rss_mib']:.0f} MiB")
        if med:
            console.print(f"end-to-end vs Evidently on in-memory frames: {med['evidently']['seconds'] / e2e['seconds']:.1f}x")
    console.print(f"[dim]load average at start {load_start:.2f}, at end {load_end:.2f}; uptime: {uptime_start} / {uptime_end}[/dim]")
    write_json(args.json, {"machine": info, "decisions": n, "reference": n_ref, "speed": speed, "median": med, "ratio": ratio, "cpu_ratio": cpu_ratio,
                           "detection": det, "detection_equal_or_better": better_or_equal, "end_to_end": e2e,
                           "end_to_end_legacy": legacy, "columnar_build": build,
                           "ledger": ledger_info, "load": {"start": load_start, "end": load_end, "uptime_start": uptime_start,
                                                           "uptime_end": uptime_end}})


if __name__ == "__main__":
    main()
