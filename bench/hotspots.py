"""Where the time goes: profiles behind the figures of append.py and proofs.py.

1. cProfile of ``Ledger.append`` over N entries (default 100,000) in batches of
   1,000, for pre-validated ``Entry`` objects and for raw canonical bytes.
2. Cost per entry of the steps of ``Entry.from_bytes`` (the validation the
   bytes path pays inside ``append``), best of 3, without the profiler.
3. Cost per batch of 1,000 of the SQLite writes alone, for the ledger's row
   layout and for alternatives (same pragmas: WAL, synchronous=FULL), the
   layouts interleaved batch by batch, best of 3 fresh runs.
4. Cost per proof of the steps of ``Ledger.inclusion_proof`` at each cached
   fixture size (see proofs.py), best of 3.

Diagnostics, not a benchmark: the profiler slows pure-Python code (rfc8785)
far more than C code (sqlite3, hashlib), so read part 1 for shares, parts 2-4
for absolute costs.

    .venv/bin/python bench/hotspots.py [--entries 100000] [--json PATH]
"""

from __future__ import annotations

import argparse
import cProfile
import io
import json
import os
import pstats
import random
import shutil
import sqlite3
import sys
import tempfile
import time
from pathlib import Path

from rich.table import Table

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import (  # noqa: E402
    DEFAULT_SEED,
    DEFAULT_WORK_DIR,
    ORIGIN,
    _fixture_ok,
    apply_pragmas,
    console,
    loadavg,
    machine_info,
    make_entries,
    print_machine,
    store_digest,
    write_json,
)

from glasslog.ledger import Ledger, merkle  # noqa: E402
from glasslog.ledger import entries as _entries  # noqa: E402
from glasslog.ledger.entries import Entry, canonical_json  # noqa: E402
from glasslog.records import check_entry, parse_time  # noqa: E402
from glasslog.storage import strips as _strips  # noqa: E402

# the parse_constant hook Entry.from_bytes passes to json.loads (its name has changed between versions)
_PARSE_CONSTANT = getattr(_entries, "_parse_constant", None) or getattr(_entries, "_reject_constant", None)


def best_of(fn, xs, reps: int = 3) -> float:
    """Microseconds per item, best of ``reps`` passes over ``xs``."""
    best = float("inf")
    for _ in range(reps):
        t0 = time.perf_counter()
        for x in xs:
            fn(x)
        best = min(best, time.perf_counter() - t0)
    return best / len(xs) * 1e6


def profile_append(entries: list[Entry], mode: str, work: Path) -> dict:
    src = entries if mode == "Entry" else [e.data for e in entries]
    ledger = Ledger.create(work / f"profile-{mode}", ORIGIN)
    prof = cProfile.Profile()
    t0 = time.perf_counter()
    prof.enable()
    for s in range(0, len(src), 1000):
        ledger.append(src[s : s + 1000])
    prof.disable()
    wall = time.perf_counter() - t0
    ledger.close()
    st = pstats.Stats(prof)
    total = st.total_tt
    rows = []
    for (file, line, func), (cc, nc, tt, ct, _) in st.stats.items():
        name = f"{Path(file).name}:{line}({func})" if line else func
        rows.append({"function": name, "calls": nc, "tottime": tt, "cumtime": ct})
    rows.sort(key=lambda r: r["cumtime"], reverse=True)
    out = io.StringIO()
    pstats.Stats(prof, stream=out).sort_stats("tottime").print_stats(15)
    return {"mode": mode, "profiled_wall_s": wall, "profiled_total_s": total, "top_cumulative": rows[:25], "text": out.getvalue()}


def sqlite_layouts(entries: list[Entry], work: Path, n: int, reps: int = 3) -> list[dict]:
    """Time the SQLite writes of several row layouts, interleaved batch by batch; best of ``reps`` fresh runs."""
    h, tile = os.urandom(32), os.urandom(32 * 256)
    layouts = [
        ("entries only (the plain table)", "plain"),
        ("entries + 2,000 hash rows (the ledger's layout)", "ledger"),
        ("entries + 2,000 hash rows + checkpoint row", "ledger+ckpt"),
        ("entries with a leaf-hash column + 1,000 interior hash rows", "leafcol"),
        ("entries + hashes packed 256 per row (about 8 tile rows)", "tiles"),
        ("for comparison: Ledger.append of the same Entry objects (all of it)", "Ledger"),
    ]
    best = {mode: float("inf") for _, mode in layouts}
    for rep in range(reps):
        conns = {}
        for _, mode in layouts:
            if mode == "Ledger":
                conns[mode] = Ledger.create(work / f"layout-ledger-{rep}", ORIGIN)
                continue
            c = sqlite3.connect(work / f"layout-{mode}-{rep}.db", isolation_level=None)
            apply_pragmas(c)
            c.execute("CREATE TABLE entries (idx INTEGER PRIMARY KEY, type TEXT NOT NULL, data BLOB NOT NULL, leaf BLOB)")
            c.execute("CREATE TABLE hashes (id INTEGER PRIMARY KEY, hash BLOB NOT NULL)")
            c.execute("CREATE TABLE checkpoints (tree_size INTEGER PRIMARY KEY, root BLOB, note TEXT, created_at TEXT)")
            conns[mode] = c
        hid = {mode: 0 for mode in conns}
        total = {mode: 0.0 for mode in conns}
        for s in range(0, n, 1000):
            b = entries[s : s + 1000]
            for mode, c in conns.items():
                if mode == "Ledger":
                    t0 = time.perf_counter()
                    c.append(b)
                    total[mode] += time.perf_counter() - t0
                    continue
                rows = [(s + i, e.type, e.data) for i, e in enumerate(b)]
                if mode == "leafcol":
                    hrows = [(hid[mode] + i, h) for i in range(len(b))]
                    rows = [(s + i, e.type, e.data, h) for i, e in enumerate(b)]
                elif mode == "tiles":
                    hrows = [(hid[mode] + i, tile) for i in range(8)]
                else:
                    hrows = [(hid[mode] + i, h) for i in range(2 * len(b))]
                hid[mode] += len(hrows)
                t0 = time.perf_counter()
                c.execute("BEGIN IMMEDIATE")
                if mode == "leafcol":
                    c.executemany("INSERT INTO entries VALUES (?, ?, ?, ?)", rows)
                else:
                    c.executemany("INSERT INTO entries VALUES (?, ?, ?, NULL)", rows)
                if mode != "plain":
                    c.executemany("INSERT INTO hashes VALUES (?, ?)", hrows)
                if mode == "ledger+ckpt":
                    c.execute("INSERT INTO checkpoints VALUES (?, ?, ?, ?)", (s + 1000, h, "x" * 180, "2026-01-01T00:00:00Z"))
                c.execute("COMMIT")
                total[mode] += time.perf_counter() - t0
        for mode, c in conns.items():
            c.close()
            best[mode] = min(best[mode], total[mode])
    return [{"layout": label, "ms_per_batch": best[mode] / (n / 1000) * 1e3, "rows_per_s": n / best[mode]}
            for label, mode in layouts]


def _proof_steps_at(ledger: Ledger, n: int, seed: int) -> dict:
    rng = random.Random(f"{seed}:hotspots:{n}")
    idx = [rng.randrange(n) for _ in range(10_000)]
    plans = {i: merkle.inclusion_proof_plan(i, n) for i in idx}
    keys = {i: list({k for parts in p for k in parts}) for i, p in plans.items()}
    db = ledger.store.connection

    # the query the SQLite back end's ``hashes`` runs (hashes packed in strips of 32)
    def raw_sql(i):
        ids = list({_strips.strip_id(lv, x) for lv, x in keys[i]})
        db.execute(f"SELECT id, strip FROM hashes WHERE id IN ({','.join('?' * len(ids))})", ids).fetchall()

    return {
        "tree_size": n,
        "proof_hashes": sum(len(p) for p in plans.values()) / len(plans),
        "stored_hashes_read": sum(len(k) for k in keys.values()) / len(keys),
        "total_us": best_of(lambda i: ledger.inclusion_proof(i, n), idx),
        "size_query_us": best_of(lambda i: ledger.size, idx),
        "plan_us": best_of(lambda i: merkle.inclusion_proof_plan(i, n), idx),
        "get_hashes_us": best_of(lambda i: ledger.store.hashes(keys[i]), idx),
        "raw_sql_us": best_of(raw_sql, idx) if raw_sql else None,
    }


def proof_steps(work: Path, seed: int) -> list[dict]:
    out = []
    for n in (10_000, 100_000, 1_000_000):
        path = work / f"ledger-{n}-{seed}"
        if not _fixture_ok(path, n, seed, store_digest()):
            continue
        with Ledger.open(path) as ledger:
            out.append(_proof_steps_at(ledger, n, seed))
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--entries", type=int, default=100_000)
    ap.add_argument("--seed", type=int, default=DEFAULT_SEED)
    ap.add_argument("--work-dir", type=Path, default=DEFAULT_WORK_DIR)
    ap.add_argument("--json", metavar="PATH")
    args = ap.parse_args()
    n = args.entries
    info = machine_info(args.work_dir)
    print_machine(info)
    load_start = loadavg()
    entries = make_entries(n, args.seed)
    args.work_dir.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="hotspots-", dir=args.work_dir))
    try:
        # 1. cProfile of append
        profiles = []
        for mode in ("Entry", "bytes"):
            with console.status(f"profiling Ledger.append of {n:,} {mode} in batches of 1,000"):
                profiles.append(profile_append(entries, mode, work))
        for p in profiles:
            t = Table(title=f"cProfile, Ledger.append of {n:,} {p['mode']} entries (profiled wall {p['profiled_wall_s']:.2f}s), by cumulative time")
            t.add_column("function")
            t.add_column("calls", justify="right")
            t.add_column("tottime s", justify="right")
            t.add_column("cumtime s", justify="right")
            t.add_column("cum % of append", justify="right")
            top = p["top_cumulative"][0]["cumtime"]
            for r in p["top_cumulative"][:18]:
                t.add_row(r["function"], f"{r['calls']:,}", f"{r['tottime']:.3f}", f"{r['cumtime']:.3f}", f"{100 * r['cumtime'] / top:.0f}%")
            console.print(t)

        # 2. validation steps, unprofiled
        sample = entries[: min(n, 20_000)]
        raw = [e.data for e in sample]
        objs = [json.loads(d) for d in raw]
        steps = {
            "Entry.from_bytes (all of it)": best_of(Entry.from_bytes, raw),
            "  json.loads": best_of(lambda d: json.loads(d.decode("utf-8"), parse_constant=_PARSE_CONSTANT), raw),
            "  check_entry (schema checks)": best_of(check_entry, objs),
            "    of which parse_time (strptime)": best_of(lambda o: parse_time(o["time"]), objs),
            "  canonical_json (rfc8785.dumps), the canonical-form check": best_of(canonical_json, objs),
            "for comparison: datetime.fromisoformat on the same times": best_of(lambda o: __import__("datetime").datetime.fromisoformat(o["time"]), objs),
            "for comparison: merkle.leaf_hash": best_of(merkle.leaf_hash, raw),
        }
        t = Table(title=f"Validation cost per entry (best of 3 over {len(raw):,} entries, no profiler)")
        t.add_column("step")
        t.add_column("us / entry", justify="right")
        for k, v in steps.items():
            t.add_row(k, f"{v:.2f}")
        console.print(t)

        # 3. SQLite layouts
        with console.status("timing SQLite row layouts"):
            layouts = sqlite_layouts(entries, work, n)
        t = Table(title=f"SQLite writes alone, batches of 1,000 ({n:,} entries; WAL, synchronous=FULL, one transaction per batch; best of 3)")
        t.add_column("layout")
        t.add_column("ms / batch", justify="right")
        t.add_column("entries / s", justify="right")
        for r in layouts:
            t.add_row(r["layout"], f"{r['ms_per_batch']:.2f}", f"{r['rows_per_s']:,.0f}")
        console.print(t)

        # 4. inclusion proof steps
        with console.status("timing the steps of Ledger.inclusion_proof"):
            psteps = proof_steps(args.work_dir, args.seed)
        if psteps:
            t = Table(title="Ledger.inclusion_proof per proof (us, best of 3 over 10,000 random positions)")
            for col in ("tree size", "proof hashes", "stored hashes read", "total", "size query", "plan", "_get_hashes", "(its SQL alone)"):
                t.add_column(col, justify="right")
            for r in psteps:
                t.add_row(f"{r['tree_size']:,}", f"{r['proof_hashes']:.1f}", f"{r['stored_hashes_read']:.1f}", f"{r['total_us']:.1f}",
                          f"{r['size_query_us']:.1f}", f"{r['plan_us']:.1f}", f"{r['get_hashes_us']:.1f}", "-" if r["raw_sql_us"] is None else f"{r['raw_sql_us']:.1f}")
            console.print(t)
        else:
            console.print("[yellow]no cached proof fixtures for this store.py; run bench/proofs.py first for part 4[/yellow]")
        console.print(f"1-min load average {load_start:.2f} at start, {loadavg():.2f} at end")

        write_json(args.json, {
            "benchmark": "hotspots", "machine": info, "load_average": {"start": load_start, "end": loadavg()},
            "params": {"entries": n, "seed": args.seed},
            "append_profiles": [{k: v for k, v in p.items() if k != "text"} for p in profiles],
            "validation_us_per_entry": steps, "sqlite_layouts": layouts, "inclusion_proof_steps": psteps,
        })
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
