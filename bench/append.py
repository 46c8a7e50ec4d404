"""Append throughput: decisions per second, batches of 1,000, each batch durable.

Four stores get the same realistic decision entries, batch by batch, in the
same run (the order of the four is rotated every batch so none is always
first or last):

* ``ledger (Entry)``  ``Ledger.append`` of pre-validated ``Entry`` objects
  (``Entry.from_object`` done before timing): the cost of the tree, the
  stored hashes and the signed checkpoint on top of storing the entries.
* ``ledger (bytes)``  ``Ledger.append`` of canonical bytes, which the ledger
  validates (``Entry.from_bytes``) inside ``append``.
* ``plain table``  the same canonical bytes inserted into a plain SQLite table
  ``entries(idx INTEGER PRIMARY KEY, type TEXT, data BLOB)`` (the ledger's own
  entries table, without hashes or checkpoints), same pragmas (WAL,
  synchronous=FULL), one transaction per batch.
* ``pymerkle SqliteTree``  pymerkle 7.0.0 ``SqliteTree.append_entries`` of the
  same bytes, one call (= one transaction) per batch; its connection is given
  the same pragmas (WAL, synchronous=FULL).

Every ledger batch is one SQLite WAL transaction with synchronous=FULL holding
the entries, the new stored hashes and an Ed25519-signed C2SP checkpoint.

After the run the databases are checkpointed (``wal_checkpoint(TRUNCATE)``)
and their size on disk (database + WAL) is divided by the number of entries.
The roots of the two ledgers and of pymerkle's tree are checked to be equal.

    .venv/bin/python bench/append.py --entries 100000
    .venv/bin/python bench/append.py --entries 1000000 --json bench/results/append-1m.json
"""

from __future__ import annotations

import argparse
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
    apply_pragmas,
    console,
    db_bytes,
    fmt_rate,
    fmt_ratio,
    loadavg,
    machine_info,
    make_entries,
    print_machine,
    progress,
    require_pymerkle,
    verdict,
    wait_for_quiet,
    write_json,
)

from glasslog.ledger import Ledger  # noqa: E402

TARGET_RATE = 25_000
TARGET_OVERHEAD = 2.0


class Plain:
    """The baseline: the same rows in a plain SQLite table, no tree, no checkpoint."""

    def __init__(self, db_path: Path):
        self.path = db_path
        self.conn = sqlite3.connect(db_path, isolation_level=None)
        apply_pragmas(self.conn)
        self.conn.execute("CREATE TABLE entries (idx INTEGER PRIMARY KEY, type TEXT NOT NULL, data BLOB NOT NULL)")
        self.n = 0

    def append(self, rows: list[tuple[str, bytes]]) -> None:
        c = self.conn
        c.execute("BEGIN IMMEDIATE")
        c.executemany("INSERT INTO entries(idx, type, data) VALUES (?, ?, ?)", [(self.n + i, t, d) for i, (t, d) in enumerate(rows)])
        c.execute("COMMIT")
        self.n += len(rows)

    def close(self) -> None:
        self.conn.close()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--entries", type=int, default=100_000, help="entries to append per store (default 100,000)")
    ap.add_argument("--batch", type=int, default=1_000, help="entries per batch / transaction (default 1,000)")
    ap.add_argument("--pymerkle-entries", type=int, default=None,
                    help="cap pymerkle at this many entries (default: same as --entries; 0 to skip pymerkle)")
    ap.add_argument("--seed", type=int, default=DEFAULT_SEED)
    ap.add_argument("--work-dir", type=Path, default=DEFAULT_WORK_DIR, help="where the databases are written (same disk as the project by default)")
    ap.add_argument("--keep", action="store_true", help="keep the databases after the run")
    ap.add_argument("--json", metavar="PATH", help="write results as JSON")
    ap.add_argument("--wait", type=float, default=60, metavar="SECONDS",
                    help="wait up to this long for the machine to be quiet before timing (1-min load < 0.5; default 60; 0 = don't)")
    args = ap.parse_args()

    n, batch = args.entries, args.batch
    n_pm = n if args.pymerkle_entries is None else min(args.pymerkle_entries, n)
    if n <= 0 or batch <= 0:
        ap.error("--entries and --batch must be positive")
    if n_pm:
        require_pymerkle("bench/append.py")

    info = machine_info(args.work_dir)
    print_machine(info)

    # ---- untimed preparation: the same entries for every store
    entries = make_entries(n, args.seed)
    raw = [e.data for e in entries]
    rows = [(e.type, e.data) for e in entries]
    avg_entry = sum(map(len, raw)) / n

    args.work_dir.mkdir(parents=True, exist_ok=True)
    run_dir = Path(tempfile.mkdtemp(prefix="append-", dir=args.work_dir))
    led_e = Ledger.create(run_dir / "ledger-entry", ORIGIN)
    led_b = Ledger.create(run_dir / "ledger-bytes", ORIGIN)
    plain = Plain(run_dir / "plain.db")
    tree = None
    if n_pm:
        from pymerkle import SqliteTree

        tree = SqliteTree(str(run_dir / "pymerkle.db"))
        apply_pragmas(tree.con)

    names = ["ledger (Entry)", "ledger (bytes)", "plain table", "pymerkle SqliteTree"]
    ops = {
        "ledger (Entry)": lambda s, e: led_e.append(entries[s:e]),
        "ledger (bytes)": lambda s, e: led_b.append(raw[s:e]),
        "plain table": lambda s, e: plain.append(rows[s:e]),
        "pymerkle SqliteTree": lambda s, e: tree.append_entries(raw[s:e]),
    }
    totals = {k: 0.0 for k in names}
    counts = {k: 0 for k in names}
    batch_times: dict[str, list[float]] = {k: [] for k in names}
    batch_sizes: dict[str, list[int]] = {k: [] for k in names}

    load_start = wait_for_quiet(args.wait)
    starts = list(range(0, n, batch))
    perf = time.perf_counter
    with progress() as p:
        task = p.add_task(f"appending {n:,} entries x 4 stores", total=n)
        for b, s in enumerate(starts):
            e = min(s + batch, n)
            r = b % len(names)
            for name in names[r:] + names[:r]:
                if name == "pymerkle SqliteTree" and (tree is None or s >= n_pm):
                    continue
                stop = min(e, n_pm) if name == "pymerkle SqliteTree" else e
                t0 = perf()
                ops[name](s, stop)
                dt = perf() - t0
                totals[name] += dt
                counts[name] += stop - s
                batch_times[name].append(dt)
                batch_sizes[name].append(stop - s)
            p.advance(task, e - s)
            if b % 10 == 9:
                p.refresh()  # outside the timed calls; the bar does not auto-refresh

    # ---- correctness cross-check (untimed): same tree everywhere
    root_e, root_b = led_e.root(), led_b.root()
    assert led_e.size == led_b.size == plain.n == n, "stores disagree on the number of entries"
    assert root_e == root_b, "the two ledgers have different roots"
    pm_root_match = None
    if tree is not None:
        with console.status("computing pymerkle's root to cross-check"):
            pm_root_match = tree.get_root(n_pm) == led_e.root(n_pm)
        assert pm_root_match, "pymerkle's root differs from the ledger's root at the same size"

    led_e.close()
    led_b.close()
    plain.close()
    if tree is not None:
        tree.close()

    # ---- bytes on disk, after a WAL checkpoint
    sizes = {
        "ledger (Entry)": db_bytes(run_dir / "ledger-entry" / "log.db"),
        "ledger (bytes)": db_bytes(run_dir / "ledger-bytes" / "log.db"),
        "plain table": db_bytes(run_dir / "plain.db"),
    }
    if tree is not None:
        sizes["pymerkle SqliteTree"] = db_bytes(run_dir / "pymerkle.db")

    # ---- figures
    def rate(name: str) -> float | None:
        return counts[name] / totals[name] if counts[name] else None

    def per_entry(name: str) -> float | None:
        return totals[name] / counts[name] if counts[name] else None

    def tenth_rates(name: str) -> tuple[float | None, float | None]:
        bt = batch_times[name]
        if len(bt) < 10:
            return None, None
        k = len(bt) // 10
        return (k * batch) / sum(bt[:k]), (k * batch) / sum(bt[-k:])

    def median_batch(name: str) -> float | None:
        bt = sorted(t for t, c in zip(batch_times[name], batch_sizes[name]) if c == batch)
        return batch / bt[len(bt) // 2] if bt else None

    plain_per = per_entry("plain table")
    plain_med = median_batch("plain table")
    pm_per = per_entry("pymerkle SqliteTree")
    results = {}
    for name in names:
        if not counts[name]:
            continue
        first, last = tenth_rates(name)
        results[name] = {
            "entries": counts[name],
            "seconds": totals[name],
            "decisions_per_s": rate(name),
            "median_batch_per_s": median_batch(name),
            "median_batch_time_vs_plain": plain_med / median_batch(name) if median_batch(name) else None,
            "first_tenth_per_s": first,
            "last_tenth_per_s": last,
            "time_vs_plain": per_entry(name) / plain_per,
            "time_vs_pymerkle": (per_entry(name) / pm_per) if pm_per else None,
            "disk_bytes": sizes.get(name),
            "disk_bytes_per_entry": sizes[name] / counts[name] if name in sizes else None,
        }

    t = Table(title=f"Append throughput: {n:,} decisions, batches of {batch:,}, each batch one durable transaction")
    t.add_column("store")
    t.add_column("entries", justify="right")
    t.add_column("seconds", justify="right")
    t.add_column("decisions/s", justify="right")
    t.add_column("median batch (/s)", justify="right")
    t.add_column("first/last 10% (/s)", justify="right")
    t.add_column("time / plain (total; median batch)", justify="right")
    t.add_column("time / pymerkle", justify="right")
    t.add_column("bytes/entry on disk", justify="right")
    for name, r in results.items():
        t.add_row(
            name, f"{r['entries']:,}", f"{r['seconds']:.2f}", fmt_rate(r["decisions_per_s"]),
            fmt_rate(r["median_batch_per_s"]),
            f"{fmt_rate(r['first_tenth_per_s'])} / {fmt_rate(r['last_tenth_per_s'])}",
            f"{fmt_ratio(r['time_vs_plain'])}; {fmt_ratio(r['median_batch_time_vs_plain'])}", fmt_ratio(r["time_vs_pymerkle"]),
            "-" if r["disk_bytes_per_entry"] is None else f"{r['disk_bytes_per_entry']:.0f}",
        )
    console.print(t)
    console.print(f"average canonical entry size: {avg_entry:.1f} bytes; 1-min load average {load_start:.2f} at start, {loadavg():.2f} at end")
    if n_pm and n_pm < n:
        console.print(f"[yellow]pymerkle was capped at {n_pm:,} entries; its ratios compare per-entry times.[/yellow]")
    if pm_root_match is not None:
        console.print(f"roots cross-checked: ledger (Entry) = ledger (bytes) = pymerkle at size {n_pm:,}")

    targets = []
    for name in ("ledger (Entry)", "ledger (bytes)"):
        r = results[name]
        targets.append((f"{name}: >= {TARGET_RATE:,} decisions/s", f"{r['decisions_per_s']:,.0f}", r["decisions_per_s"] >= TARGET_RATE))
        targets.append((f"{name}: <= {TARGET_OVERHEAD:.0f}x plain-table time", f"{r['time_vs_plain']:.2f}x", r["time_vs_plain"] <= TARGET_OVERHEAD))
    tt = Table(title="Targets")
    tt.add_column("target")
    tt.add_column("measured", justify="right")
    tt.add_column("")
    for label, measured, ok in targets:
        tt.add_row(label, measured, verdict(ok))
    console.print(tt)

    write_json(args.json, {
        "benchmark": "append",
        "machine": info,
        "load_average": {"start": load_start, "end": loadavg()},
        "params": {"entries": n, "batch": batch, "pymerkle_entries": n_pm, "seed": args.seed,
                   "avg_entry_bytes": avg_entry},
        "results": results,
        "roots_match": {"ledgers": root_e == root_b, "pymerkle": pm_root_match},
        "targets": [{"target": label, "measured": m, "met": ok} for label, m, ok in targets],
    })

    if not args.keep:
        shutil.rmtree(run_dir, ignore_errors=True)
    else:
        console.print(f"databases kept in {run_dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
