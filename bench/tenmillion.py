"""Ten million entries: how glasslog behaves as a SQLite log grows to 10,000,000 decisions.

Builds (once; cached in ``bench/.cache/tenmillion-<N>-<seed>/``) a log of N
realistic decision entries (``common.decision_objects``, about 410 bytes of
canonical JSON each), appended with ``Ledger.append`` in batches of 10,000
pre-validated ``Entry`` objects (each batch one durable transaction with a
signed checkpoint), and a baseline log of the first 1,000,000 of the same
entries built the same way. Then, on both logs, side by side in the same run:

- append rate over the whole build, by tenths (the entries' generation and
  validation are not timed, only ``Ledger.append``); "flat" means the last
  tenth ran at least 80% as fast as the first;
- inclusion and consistency proofs per second against the full tree, random
  positions (fixed seed): the first pass after opening (cold) and the median
  round of a second pass (warm), the two logs' workloads interleaved round by
  round (target: at least 10,000/s warm at N);
- ``glasslog verify log`` (a subprocess, with the verifier key from the log's
  ``log.vkey``): seconds, and seconds per million entries; and, when ``verify
  log --help`` offers a way to resume from a verified checkpoint, the time of
  a resumed run after a handful of new entries;
- bytes on disk per entry (``log.db`` + WAL after a TRUNCATE checkpoint);
- the server's read rates on each log: ``glasslog serve`` (1 worker) on a
  loopback port, ``wrk`` (``apt-get install wrk``) for ``/checkpoint``, full
  hash tiles, full entry bundles, inclusion and consistency proofs at random
  positions.

The build statistics (per-batch append times, load average) are stored with
the cached log, so a re-run measures without rebuilding; ``--rebuild`` builds
again. The cached log is not rebuilt when the storage code changes (a 10M
build takes a while): the code it was built with is recorded and printed.

    .venv/bin/python bench/tenmillion.py                      # builds 10M + 1M once, then measures
    .venv/bin/python bench/tenmillion.py --entries 1000000 --baseline 100000   # a quick check
    .venv/bin/python bench/tenmillion.py --json bench/results/tenmillion.json
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import (  # noqa: E402
    BENCH_DIR,
    DEFAULT_SEED,
    DEFAULT_WORK_DIR,
    ORIGIN,
    console,
    db_bytes,
    decision_objects,
    fmt_rate,
    fmt_ratio,
    loadavg,
    machine_info,
    measure,
    print_machine,
    progress,
    source_state,
    store_digest,
    verdict,
    wait_for_quiet,
    write_json,
)
from rich.table import Table  # noqa: E402

from glasslog.ledger import Entry, Ledger  # noqa: E402

ROOT = BENCH_DIR.parent
GLASSLOG = ROOT / ".venv" / "bin" / "glasslog"
PROOF_TARGET = 10_000  # proofs/s warm at N
FLAT_MIN = 0.80  # last tenth of the build >= 80% of the first tenth


# -------------------------------------------------------------------- build
def log_dir(work_dir: Path, n: int, seed: int) -> Path:
    return work_dir / f"tenmillion-{n}-{seed}"


def cached_build(path: Path, n: int, seed: int, batch: int) -> dict | None:
    """The build record of a complete cached log of ``n`` entries, or None."""
    try:
        info = json.loads((path / "build.json").read_text())
    except (OSError, ValueError):
        return None
    if (info.get("entries") == n and info.get("seed") == seed and info.get("batch") == batch and "setup_entries" in info
            and (path / "log.db").is_file()):
        return info
    return None


def register_models(ledger: Ledger, seed: int) -> dict[str, str]:
    """Register one small scikit-learn model per deployment and declare the deployments, as a real log would
    before its decisions (``verify log`` refuses a decision naming a model not registered before it).

    Returns the map from ``common.decision_objects``' placeholder model fingerprints to the registered ones.
    """
    import numpy as np
    import pandas as pd
    from sklearn.linear_model import LogisticRegression

    from glasslog.registry import ClaimedMetrics, Deployments, Feature, ModelCard, Registry, fingerprint_frame

    rng = np.random.default_rng(seed)
    placeholders = [o["model"] for o in decision_objects(200, seed)]
    deployments = {o["model"]: o["deployment"] for o in decision_objects(200, seed)}
    registry, declared = Registry(ledger), Deployments(ledger)
    out: dict[str, str] = {}
    for k, placeholder in enumerate(dict.fromkeys(placeholders)):
        X = pd.DataFrame(rng.normal(size=(500, 4)), columns=[f"x{j}" for j in range(4)])
        y = (X.sum(axis=1) + rng.normal(size=500) > 0).astype(int)
        model = LogisticRegression().fit(X, y)
        card = ModelCard(name=f"bench model {k}", version="1", provider="glasslog benchmark",
                         intended_use="ten-million-entry benchmark", features=tuple(Feature(c, "numeric") for c in X.columns),
                         output={"classes": [0, 1], "positive": 1, "favourable": 0},
                         training_data_fingerprint=fingerprint_frame(X.assign(y=y)),
                         claimed=ClaimedMetrics({"accuracy": float(model.score(X, y))}, fingerprint_frame(X.assign(y=y)), 500))
        out[placeholder] = registry.register(model, card).fingerprint
        declared.declare(deployments[placeholder], "private", "ten-million-entry benchmark")
    return out


def build(path: Path, n: int, seed: int, batch: int) -> dict:
    """Append ``n`` decision entries in batches of ``batch``; time each ``Ledger.append`` alone.

    Returns the build record (also written to ``build.json`` beside the log):
    per-batch append seconds, the time spent generating and validating entries
    (not part of the append rate), load average at start and end.
    """
    if path.exists():
        shutil.rmtree(path)
    load_start = loadavg()
    t_all = time.perf_counter()
    ledger = Ledger.create(path, ORIGIN)
    models = register_models(ledger, seed)
    first = ledger.size  # the registrations and declarations
    batch_seconds: list[float] = []
    gen_seconds = 0.0
    perf = time.perf_counter
    with progress() as p:
        task = p.add_task(f"building the {n:,}-entry log", total=n)
        for start in range(0, n, batch):
            m = min(batch, n - start)
            t0 = perf()
            entries = [Entry.from_object({**o, "model": models[o["model"]]}) for o in decision_objects(m, seed, start)]
            t1 = perf()
            ledger.append(entries)
            t2 = perf()
            gen_seconds += t1 - t0
            batch_seconds.append(t2 - t1)
            p.advance(task, m)
            p.refresh()
    ledger.store.connection.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()
    ledger.close()
    info = {"entries": n, "seed": seed, "batch": batch, "batch_seconds": batch_seconds, "setup_entries": first,
            "generate_seconds": gen_seconds, "wall_seconds": perf() - t_all,
            "load_start": load_start, "load_end": loadavg(), "store_sha256": store_digest(),
            "built_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), **source_state()}
    (path / "build.json").write_text(json.dumps(info) + "\n")
    return info


def ensure_log(work_dir: Path, n: int, seed: int, batch: int, rebuild: bool) -> tuple[Path, dict, bool]:
    path = log_dir(work_dir, n, seed)
    info = None if rebuild else cached_build(path, n, seed, batch)
    if info is not None:
        return path, info, True
    return path, build(path, n, seed, batch), False


def deciles(info: dict) -> list[float]:
    """Append rate (entries/s) over each tenth of the build's batches."""
    secs, n, b = info["batch_seconds"], info["entries"], info["batch"]
    k = len(secs)
    out = []
    for d in range(10):
        lo, hi = d * k // 10, (d + 1) * k // 10
        if hi <= lo:
            continue
        count = min(hi * b, n) - lo * b
        out.append(count / sum(secs[lo:hi]))
    return out


# ------------------------------------------------------------------ proofs
def proof_rates(logs: dict[int, Path], proofs: int, seed: int) -> dict:
    """Inclusion and consistency proofs/s on every log, interleaved: first pass after opening, then a second pass."""
    from glasslog.ledger import merkle

    ledgers = {n: Ledger.open(path) for n, path in logs.items()}
    try:
        rng = random.Random(seed)
        for n, lg in ledgers.items():  # a sample of proofs verifies against the root
            size, root = lg.size, lg.root()
            for _ in range(50):
                i, m = rng.randrange(size), rng.randrange(1, size)
                merkle.verify_inclusion(i, size, lg.leaf_hash(i), lg.inclusion_proof(i, size), root)
                merkle.verify_consistency(m, size, lg.root(m), root, lg.consistency_proof(m, size))
        lg_close = [lg.close() for lg in ledgers.values()]  # noqa: F841 - reopen: the first pass is after opening
        ledgers = {n: Ledger.open(path) for n, path in logs.items()}
        out = {}
        for phase in ("cold", "warm"):
            contenders = {}
            for n, lg in ledgers.items():
                size = lg.size
                contenders[f"inclusion {n}"] = (lg.inclusion_proof, [(rng.randrange(size), size) for _ in range(proofs)])
                contenders[f"consistency {n}"] = (lg.consistency_proof, [(rng.randrange(1, size), size) for _ in range(proofs)])
            out[phase] = measure(f"proofs, {'first pass after opening' if phase == 'cold' else 'second pass'}", contenders)
        return out
    finally:
        for lg in ledgers.values():
            lg.close()


def bundle_rates(logs: dict[int, Path], count: int, seed: int) -> dict:
    """Full entry bundles read in-process (``Ledger.entry_bundle``, no HTTP, no gzip) per second on every log, interleaved."""
    ledgers = {n: Ledger.open(path) for n, path in logs.items()}
    try:
        rng = random.Random(seed + 1)
        contenders = {f"bundle {n}": (lg.entry_bundle, [(rng.randrange(lg.signed_size() // 256),) for _ in range(count)])
                      for n, lg in ledgers.items()}
        return measure("entry bundles read in-process", contenders)
    finally:
        for lg in ledgers.values():
            lg.close()


def scratch_copy(path: Path, label: str) -> tempfile.TemporaryDirectory:
    """A throwaway copy of a cached log's directory (next to it), for the parts that append: the cached log keeps its
    size, so every run measures the size its label states. Returns the TemporaryDirectory; the copy is ``<name>/log``."""
    db_bytes(path / "log.db")  # TRUNCATE checkpoint: everything is in log.db
    tmp = tempfile.TemporaryDirectory(prefix=f"tenmillion-scratch-{label}-", dir=path.parent)
    with console.status(f"copying {path.name} to a scratch directory ({db_bytes(path / 'log.db') / 1e9:.1f} GB) for {label}"):
        shutil.copytree(path, Path(tmp.name) / "log")
    return tmp


def append_at_size(path: Path, seed: int, batch: int, rounds: int) -> dict:
    """``rounds`` batches appended to the big log and to a fresh log, alternately (order swapped every round), timed
    alone (wall and this process's CPU): the append rate at the big log's size against at size zero, under the same load.
    The appends go to a scratch copy of the big log (untimed copy), so the cached log keeps its size."""
    perf, cpu = time.perf_counter, time.process_time
    out = {"big": {"wall": 0.0, "cpu": 0.0}, "fresh": {"wall": 0.0, "cpu": 0.0}, "entries": rounds * batch}
    with tempfile.TemporaryDirectory(prefix="tenmillion-fresh-", dir=path.parent) as tmp, scratch_copy(path, "appends") as sc:
        fresh = Ledger.create(Path(tmp) / "log", ORIGIN)
        big = Ledger.open(Path(sc) / "log")
        try:
            fresh_models = register_models(fresh, seed)
            fresh_start = fresh.size
            by_deployment = {}
            for _, obj in big.entries_of_type("decision", 0):
                by_deployment.setdefault(obj["deployment"], obj["model"])
                if len(by_deployment) == 3:
                    break
            big_start = big.size
            out["big"]["size_before"] = big_start
            with progress() as p:
                task = p.add_task("appending at the big log's size and at zero, alternately", total=2 * rounds)
                for r in range(rounds):
                    objs = list(decision_objects(batch, seed + 7, r * batch))  # not the build's entries: new decisions
                    work = {"big": (big, [Entry.from_object({**o, "model": by_deployment[o["deployment"]]}) for o in objs]),
                            "fresh": (fresh, [Entry.from_object({**o, "model": fresh_models[o["model"]]}) for o in objs])}
                    for name in (("big", "fresh") if r % 2 == 0 else ("fresh", "big")):
                        lg, entries = work[name]
                        c0, t0 = cpu(), perf()
                        lg.append(entries)
                        out[name]["wall"] += perf() - t0
                        out[name]["cpu"] += cpu() - c0
                        p.advance(task)
                        p.refresh()
            out["fresh"]["size_before"] = fresh_start
        finally:
            big.close()
            fresh.close()
    for name in ("big", "fresh"):
        out[name]["rate"] = out["entries"] / out[name]["wall"]
        out[name]["rate_cpu"] = out["entries"] / out[name]["cpu"]
    return out


# ------------------------------------------------------------------ verify log
def run_verify(path: Path, state: Path | None = None) -> dict:
    """``glasslog verify log`` (JSON) on a log, with its ``log.vkey``; wall and CPU seconds of the child."""
    cmd = [str(GLASSLOG), "verify", "log", "-d", str(path), "--key-file", str(path / "log.vkey"), "--json"]
    if state is not None:
        cmd += ["--state-file", str(state)]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True)
    wall = time.perf_counter() - t
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    try:
        report = json.loads(done.stdout)
    except ValueError:
        report = {}
    return {"exit": done.returncode, "seconds": wall, "cpu_seconds": (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime),
            "tree_size": report.get("tree_size"), "ok": report.get("ok"), "resumed_from": report.get("resumed_from"),
            "problems": (report.get("problems") or [])[:3], "stderr": done.stderr.strip()[-300:]}


def resume_supported() -> bool:
    done = subprocess.run([str(GLASSLOG), "verify", "log", "--help"], capture_output=True, text=True,
                          env={**os.environ, "COLUMNS": "200"})
    return "--resume" in done.stdout


def verify_runs(path: Path, info: dict, seed: int, batch: int, resume: bool) -> dict:
    """A full ``verify log``; with resume, one more batch appended to a scratch copy of the log and ``verify log
    --resume`` on the copy from the full run's state (the cached log keeps its size)."""
    with tempfile.TemporaryDirectory(prefix="tenmillion-verify-") as tmp:
        state = Path(tmp) / "state.json" if resume else None
        with console.status(f"glasslog verify log on {path.name} (full)"):
            full = run_verify(path, state)
        out = {"full": full}
        if resume and full["exit"] == 0:
            sc = scratch_copy(path, "verify-resume")
            path = Path(sc.name) / "log"
            lg = Ledger.open(path)
            try:
                start = lg.size - info["setup_entries"]  # the next decisions of the same generator
                models = {}
                for _, obj in lg.entries_of_type("decision", info["setup_entries"]):
                    models.setdefault(obj["deployment"], obj["model"])
                    if len(models) == 3:
                        break
                new = [Entry.from_object({**o, "model": models[o["deployment"]]}) for o in decision_objects(batch, seed, start)]
                lg.append(new)
            finally:
                lg.close()
            with console.status(f"glasslog verify log --resume on {path.name} ({batch:,} new entries)"):
                out["resume"] = {**run_verify(path, state), "new_entries": batch}
            sc.cleanup()
        return out


# ------------------------------------------------------------------ server reads
READS = ["GET checkpoint", "GET tile/0 full", "GET tile/entries full", "GET proof inclusion", "GET proof consistency"]


def server_reads(path: Path, clients: int, duration: float, warmup: float) -> list[dict]:
    """``glasslog serve`` (1 worker) on the log, wrk against each read path (random positions)."""
    import server as sb  # bench/server.py: the server process, wrk runs and the read paths

    rng = random.Random(20261129)
    results = []
    with tempfile.TemporaryDirectory(prefix="tenmillion-serve-", dir=path.parent) as tmp:
        srv = sb.Server(path, 1, Path(tmp) / "serve.log")
        try:
            srv.wait_ready(timeout=300)
            lg = Ledger.open(path)
            size = lg.signed_size()
            signed = [n for n, *_ in lg.checkpoints() if 0 < n < size]  # consistency proofs are between signed sizes
            lg.close()
            for op in READS:
                paths = (sb.read_paths(op, size, rng) if op != "GET proof consistency" else
                         [f"/v1/proofs/consistency?old={rng.choice(signed)}" for _ in range(2000)])
                paths_file = Path(tmp) / "paths.txt"
                paths_file.write_text("\n".join(paths) + "\n")
                r = sb.wrk_run(srv, Path(tmp), paths_file=paths_file, concurrency=clients, duration=duration, warmup=warmup,
                               headers={"Accept-Encoding": "gzip"}, threads=1)
                results.append({"operation": op, "tree_size": size, **r})
        finally:
            srv.stop()
    return results


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--entries", type=int, default=10_000_000, help="decisions in the big log (default 10,000,000)")
    ap.add_argument("--baseline", type=int, default=1_000_000, help="decisions in the baseline log (default 1,000,000)")
    ap.add_argument("--batch", type=int, default=10_000, help="decisions per append while building (default 10,000)")
    ap.add_argument("--proofs", type=int, default=20_000, help="proofs per kind, pass and log (default 20,000)")
    ap.add_argument("--clients", type=int, default=32, help="wrk connections for the server reads (default 32)")
    ap.add_argument("--read-duration", type=float, default=5, help="seconds per server read run (default 5)")
    ap.add_argument("--warmup", type=float, default=2, help="untimed seconds before each read run (default 2)")
    ap.add_argument("--skip", default="", help="comma-separated parts to skip: append, proofs, verify, server")
    ap.add_argument("--append-rounds", type=int, default=20,
                    help="batches appended to a scratch copy of the big log and to a fresh one, alternately (default 20;"
                         " the cached log keeps its size)")
    ap.add_argument("--seed", type=int, default=DEFAULT_SEED)
    ap.add_argument("--work-dir", type=Path, default=DEFAULT_WORK_DIR, help="where the logs are cached (default bench/.cache)")
    ap.add_argument("--rebuild", action="store_true", help="build the logs again even if cached")
    ap.add_argument("--build-only", action="store_true", help="build (or find) the logs and stop")
    ap.add_argument("--wait", type=float, default=60, metavar="SECONDS",
                    help="wait up to this long for the machine to be quiet before measuring (1-min load < 0.5; default 60; 0 = don't)")
    ap.add_argument("--json", metavar="PATH", help="write results as JSON")
    args = ap.parse_args()
    skip = {x.strip() for x in args.skip.split(",") if x.strip()}

    info = machine_info(args.work_dir)
    print_machine(info)
    args.work_dir.mkdir(parents=True, exist_ok=True)
    big, base = args.entries, args.baseline
    logs: dict[int, Path] = {}
    builds: dict[int, dict] = {}
    for n in (base, big):
        path, build_info, cached = ensure_log(args.work_dir, n, args.seed, args.batch, args.rebuild)
        logs[n], builds[n] = path, build_info
        console.print(f"{n:,}-decision log {'(cached) ' if cached else ''}at {path}: built {build_info['built_at']}"
                      f" at {build_info.get('git_head')}, load {build_info['load_start']:.2f} -> {build_info['load_end']:.2f}")
    if args.build_only:
        return 0
    if "server" not in skip and not shutil.which("wrk"):
        ap.error("the server reads need wrk (apt-get install wrk), or --skip server")
    load_start = wait_for_quiet(args.wait)
    results: dict = {"append": {}, "bytes_per_entry": {}, "sizes": {}}

    # ------------------------------------------------------------ build and disk
    for n in (base, big):
        results["append"][n] = {"tenths": deciles(builds[n]), "whole": n / sum(builds[n]["batch_seconds"]),
                                "build_load": [builds[n]["load_start"], builds[n]["load_end"]]}
        lg = Ledger.open(logs[n])
        results["sizes"][n] = lg.size
        lg.close()
        results["bytes_per_entry"][n] = db_bytes(logs[n] / "log.db") / results["sizes"][n]
        expected = builds[n]["entries"] + builds[n]["setup_entries"]
        if results["sizes"][n] != expected:  # grown by runs of this script before it appended to copies
            console.print(f"[bold yellow]the cached {n:,}-decision log holds {results['sizes'][n]:,} entries, not the"
                          f" {expected:,} it was built with (earlier runs appended to it); every figure is labelled with"
                          f" the tree size measured; --rebuild to measure at {expected:,}[/bold yellow]")
    if "append" not in skip:
        results["append_at_size"] = append_at_size(logs[big], args.seed, args.batch, args.append_rounds)
    if "proofs" not in skip:
        results["proofs"] = proof_rates({base: logs[base], big: logs[big]}, args.proofs, args.seed)
        results["bundles"] = bundle_rates({base: logs[base], big: logs[big]}, 2000, args.seed)
    if "server" not in skip:
        results["server"] = {n: server_reads(logs[n], args.clients, args.read_duration, args.warmup) for n in (base, big)}
    if "verify" not in skip:
        resume = resume_supported()
        results["verify_resume_supported"] = resume
        results["verify"] = {n: verify_runs(logs[n], builds[n], args.seed, args.batch, resume and n == big) for n in (base, big)}
    load_end = loadavg()

    # ------------------------------------------------------------------ report
    label = {n: f"{results['sizes'][n]:,}" for n in (base, big)}  # the tree size measured, not the size asked for
    t = Table(title="Append rate while building (Ledger.append, batches of "
                    f"{args.batch:,} pre-validated entries, decisions/s), by tenth of the build")
    for col in ("log", "first tenth", "slowest tenth", "last tenth", "last / first", "whole build", f"flat (>= {FLAT_MIN:.0%})"):
        t.add_column(col, justify="right")
    for n in (base, big):
        a = results["append"][n]
        ratio = a["tenths"][-1] / a["tenths"][0]
        a["last_over_first"] = ratio
        t.add_row(f"{builds[n]['entries'] + builds[n]['setup_entries']:,}",  # the build's own size
                  fmt_rate(a["tenths"][0]), fmt_rate(min(a["tenths"])), fmt_rate(a["tenths"][-1]), f"{ratio:.0%}",
                  fmt_rate(a["whole"]), verdict(ratio >= FLAT_MIN))
    console.print(t)
    console.print(f"tenths, {builds[big]['entries'] + builds[big]['setup_entries']:,} (build): " + ", ".join(fmt_rate(x) for x in results["append"][big]["tenths"]))
    if "append_at_size" in results:
        a = results["append_at_size"]
        t = Table(title=f"Appending {a['entries']:,} more decisions in batches of {args.batch:,}, alternately to the big log and "
                        "to a fresh one (same run, same load)")
        for col in ("log", "size before", "decisions/s", "per CPU s", f"big / fresh (flat: >= {FLAT_MIN:.0%})"):
            t.add_column(col, justify="right")
        ratio, ratio_cpu = a["big"]["rate"] / a["fresh"]["rate"], a["big"]["rate_cpu"] / a["fresh"]["rate_cpu"]
        a["ratio"], a["ratio_cpu"] = ratio, ratio_cpu
        t.add_row(label[big], f"{a['big']['size_before']:,}", fmt_rate(a["big"]["rate"]), fmt_rate(a["big"]["rate_cpu"]),
                  f"{ratio:.0%} wall, {ratio_cpu:.0%} CPU {verdict(ratio >= FLAT_MIN)}")
        t.add_row("fresh", f"{a['fresh']['size_before']:,}", fmt_rate(a["fresh"]["rate"]), fmt_rate(a["fresh"]["rate_cpu"]), "")
        console.print(t)
    if "bundles" in results:
        b = results["bundles"]
        console.print(f"full entry bundles read in-process (no HTTP, no gzip), median round: {label[big]} "
                      f"{fmt_rate(b[f'bundle {big}']['median'])}/s ({fmt_rate(b[f'bundle {big}']['cpu'])} per CPU s), "
                      f"{label[base]} {fmt_rate(b[f'bundle {base}']['median'])}/s ({fmt_rate(b[f'bundle {base}']['cpu'])} per CPU s)")
    if "proofs" in results:
        t = Table(title="Proofs per second against the whole tree, random positions (first pass after opening; second pass: median round)")
        for col in ("proof", "pass", label[big], label[base], f"{label[big]} / {label[base]}", f"{label[big]} per CPU s",
                    f"{label[base]} per CPU s", f"target {PROOF_TARGET:,}/s warm"):
            t.add_column(col, justify="right")
        for kind in ("inclusion", "consistency"):
            for phase in ("cold", "warm"):
                r = results["proofs"][phase]
                a, b = r[f"{kind} {big}"], r[f"{kind} {base}"]
                rate_a, rate_b = (a["total"], b["total"]) if phase == "cold" else (a["median"], b["median"])
                t.add_row(kind, "first" if phase == "cold" else "second", fmt_rate(rate_a), fmt_rate(rate_b),
                          fmt_ratio(rate_a / rate_b), fmt_rate(a["cpu"]), fmt_rate(b["cpu"]),
                          verdict(rate_a >= PROOF_TARGET) if phase == "warm" else "")
        console.print(t)
        console.print("per CPU s: proofs per second of this process's CPU time, which leaves out time spent waiting for a"
                      " core (on a loaded machine the wall-clock rate is the lower one)")
    t = Table(title="Bytes on disk per entry (log.db + WAL after a TRUNCATE checkpoint)")
    for col in ("log", "entries", "bytes", "bytes / entry"):
        t.add_column(col, justify="right")
    for n in (base, big):
        t.add_row(label[n], f"{results['sizes'][n]:,}", f"{results['bytes_per_entry'][n] * results['sizes'][n]:,.0f}",
                  f"{results['bytes_per_entry'][n]:.1f}")
    console.print(t)
    if "server" in results:
        t = Table(title=f"glasslog serve (1 worker) reads/s, wrk {args.clients} connections, {args.read_duration:g} s each")
        for col in ("read", f"{label[big]} /s", "p99 ms", f"{label[base]} /s", "p99 ms ", "ratio", "errors"):
            t.add_column(col, justify="right")
        for a, b in zip(results["server"][big], results["server"][base]):
            t.add_row(a["operation"], fmt_rate(a["rate"]), f"{a['p99_ms']:.1f}", fmt_rate(b["rate"]), f"{b['p99_ms']:.1f}",
                      fmt_ratio(a["rate"] / b["rate"]), str(a["errors"] + b["errors"]))
        console.print(t)
    if "verify" in results:
        t = Table(title="glasslog verify log (with the log's verifier key)")
        for col in ("run", "entries checked", "exit", "seconds", "CPU s", "s / million", "CPU s / million"):
            t.add_column(col, justify="right")
        for n in (base, big):
            for kind, r in results["verify"][n].items():
                checked = (r["tree_size"] or 0) - (r["resumed_from"] or 0)
                per = 1e6 / checked if checked else float("nan")
                t.add_row(f"{label[n]} {'full' if kind == 'full' else 'resumed'}", f"{checked:,}", str(r["exit"]),
                          f"{r['seconds']:.1f}", f"{r['cpu_seconds']:.1f}", f"{r['seconds'] * per:.1f}",
                          f"{r['cpu_seconds'] * per:.1f}")
        console.print(t)
        if not results["verify_resume_supported"]:
            console.print("[yellow]verify log has no --resume here: resuming is pending[/yellow]")
    console.print(f"1-min load average {load_start:.2f} at start, {load_end:.2f} at end")
    write_json(args.json, {"benchmark": "tenmillion", "machine": info, "load_average": {"start": load_start, "end": load_end},
                           "settings": vars(args) | {"work_dir": str(args.work_dir)},
                           "builds": {n: {k: v for k, v in b.items() if k != "batch_seconds"} for n, b in builds.items()},
                           "results": results})
    return 0


if __name__ == "__main__":
    sys.exit(main())
