"""Group commit: one decision per append from many threads, with and without ``GroupCommit``, side by side.

What a server process does when 64 clients each send one decision: 64 threads, each with its own ``Ledger`` on the
same SQLite log, append one realistic decision at a time (each append durable before it returns: WAL,
``synchronous=FULL``). Without group commit every append is its own transaction, sync and signed checkpoint; with
it, appends that arrive while a commit is syncing go in the next one together. Prints decisions/s, p50/p99 latency
and checkpoints written, and the ratio, then checks every decision is in the log once and every checkpoint's root.

    .venv/bin/python bench/group_commit.py                   # 64 threads x 40 appends each, about 30 s
    .venv/bin/python bench/group_commit.py --threads 8 --appends 100 --window-ms 2
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path

from rich.table import Table

from glasslog.ledger import GroupCommit, Ledger

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import (  # noqa: E402
    add_wait_argument,
    console,
    fmt_rate,
    loadavg,
    machine_info,
    print_machine,
    progress,
    verdict,
    wait_for_quiet,
    write_json,
)

TARGET = 2_000  # decisions/s with group commit, 64 threads

MODEL = "sha256:" + "ab" * 32


def decision(t: int, i: int) -> dict:
    return {"type": "decision", "v": 1, "model": MODEL, "deployment": "bank.example/credit/1",
            "time": "2026-12-05T08:00:00Z", "input": "sha256:" + f"{t:08x}{i:08x}".ljust(64, "0"),
            "output": {"label": i % 2, "proba": [0.25, 0.75]}}


def run(data: Path, threads: int, appends: int, group: GroupCommit | None, label: str) -> dict:
    latencies: list[float] = []
    lock = threading.Lock()
    barrier = threading.Barrier(threads)
    done = [0]

    def worker(t: int) -> None:
        with Ledger.open(data) as lg:
            lg.group = group
            mine = []
            barrier.wait()
            for i in range(appends):
                t0 = time.perf_counter()
                lg.append([decision(t, i)])
                mine.append(time.perf_counter() - t0)
                with lock:
                    done[0] += 1
            with lock:
                latencies.extend(mine)

    with Ledger.open(data) as lg:
        size0, cps0 = lg.size, len(list(lg.checkpoints()))
    ts = [threading.Thread(target=worker, args=(t,)) for t in range(threads)]
    t0 = time.perf_counter()
    with progress() as p:  # the main thread only polls the counter (5 times a second) while the threads append
        task = p.add_task(label, total=threads * appends)
        for th in ts:
            th.start()
        while any(th.is_alive() for th in ts):
            p.update(task, completed=done[0])
            p.refresh()
            ts[0].join(0.2)
        for th in ts:
            th.join()
        seconds = time.perf_counter() - t0
        p.update(task, completed=done[0])
        p.refresh()
    latencies.sort()
    with Ledger.open(data) as lg:
        added = lg.size - size0
        checkpoints = len(list(lg.checkpoints())) - cps0
    assert added == threads * appends, (added, threads * appends)
    return {"decisions": added, "seconds": seconds, "per_s": added / seconds, "p50_ms": latencies[len(latencies) // 2] * 1e3,
            "p99_ms": latencies[int(len(latencies) * 0.99)] * 1e3, "checkpoints": checkpoints}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, default=64)
    ap.add_argument("--appends", type=int, default=40, help="appends per thread (one decision each)")
    ap.add_argument("--window-ms", type=float, default=0.0, help="GroupCommit window (default 0)")
    add_wait_argument(ap)
    ap.add_argument("--json", metavar="PATH", help="write results as JSON")
    args = ap.parse_args()
    if args.threads <= 0 or args.appends <= 0:
        ap.error("--threads and --appends must be positive")
    info = machine_info()
    print_machine(info)
    work = Path(tempfile.mkdtemp(prefix="group-commit-"))
    try:
        data = work / "log"
        Ledger.create(data, "bench.example/group-commit").close()
        load_start = wait_for_quiet(args.wait)
        console.print(f"{args.threads} threads x {args.appends} one-decision appends, SQLite WAL synchronous=FULL;"
                      f" 1-min load {load_start:.2f} at start")
        base = run(data, args.threads, args.appends, None, "without group commit")
        grouped = run(data, args.threads, args.appends, GroupCommit(window=args.window_ms / 1000), "with group commit")
        load_end = loadavg()
        with Ledger.open(data) as lg, console.status("recomputing every checkpoint's root"):
            for size, root, _, _ in lg.checkpoints():  # every checkpoint signs the root the entries give
                assert lg.root(size) == root
        t = Table(title=f"one decision per append, {args.threads} threads (each its own Ledger on one SQLite log)")
        for col in ("", "decisions/s", "p50 ms", "p99 ms", "checkpoints", "decisions"):
            t.add_column(col, justify="left" if not col else "right")
        for name, r in (("with group commit", grouped), ("without (baseline)", base)):
            t.add_row(name, fmt_rate(r["per_s"]), f"{r['p50_ms']:.1f}", f"{r['p99_ms']:.1f}", f"{r['checkpoints']:,}",
                      f"{r['decisions']:,}")
        console.print(t)
        ratio = grouped["per_s"] / base["per_s"]
        console.print(f"ratio with / without group commit: {ratio:.2f}x decisions/s; target >= {TARGET:,} decisions/s"
                      f" with group commit: {verdict(grouped['per_s'] >= TARGET)}")
        console.print("every decision present once; every checkpoint's root recomputed: ok")
        console.print(f"1-min load average {load_start:.2f} at start, {load_end:.2f} at end")
        write_json(args.json, {
            "benchmark": "group_commit", "machine": info, "load_average": {"start": load_start, "end": load_end},
            "params": vars(args), "without": base, "with": grouped, "ratio_with_over_without": ratio,
            "target_per_s": TARGET, "target_met": grouped["per_s"] >= TARGET,
        })
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
