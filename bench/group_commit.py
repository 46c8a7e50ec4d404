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
import json
import os
import shutil
import tempfile
import threading
import time
from pathlib import Path

from glasslog.ledger import GroupCommit, Ledger

MODEL = "sha256:" + "ab" * 32


def decision(t: int, i: int) -> dict:
    return {"type": "decision", "v": 1, "model": MODEL, "deployment": "bank.example/credit/1",
            "time": "2026-12-05T08:00:00Z", "input": "sha256:" + f"{t:08x}{i:08x}".ljust(64, "0"),
            "output": {"label": i % 2, "proba": [0.25, 0.75]}}


def run(data: Path, threads: int, appends: int, group: GroupCommit | None) -> dict:
    latencies: list[float] = []
    lock = threading.Lock()
    barrier = threading.Barrier(threads)

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
                latencies.extend(mine)

    with Ledger.open(data) as lg:
        size0, cps0 = lg.size, len(list(lg.checkpoints()))
    ts = [threading.Thread(target=worker, args=(t,)) for t in range(threads)]
    t0 = time.perf_counter()
    for th in ts:
        th.start()
    for th in ts:
        th.join()
    seconds = time.perf_counter() - t0
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
    ap.add_argument("--json", help="write the results here")
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="group-commit-"))
    try:
        data = work / "log"
        Ledger.create(data, "bench.example/group-commit").close()
        print(f"{os.cpu_count()} cores, 1-min load {os.getloadavg()[0]:.2f}; {args.threads} threads x {args.appends} "
              f"one-decision appends, SQLite WAL synchronous=FULL")
        base = run(data, args.threads, args.appends, None)
        grouped = run(data, args.threads, args.appends, GroupCommit(window=args.window_ms / 1000))
        for name, r in (("without group commit", base), ("with group commit", grouped)):
            print(f"{name:22} {r['per_s']:8,.0f} decisions/s  p50 {r['p50_ms']:6.1f} ms  p99 {r['p99_ms']:7.1f} ms  "
                  f"{r['checkpoints']:5} checkpoints for {r['decisions']} decisions")
        print(f"ratio (with / without): {grouped['per_s'] / base['per_s']:.1f}x decisions/s; "
              f"1-min load {os.getloadavg()[0]:.2f} at end")
        with Ledger.open(data) as lg:  # every checkpoint signs the root the entries give
            for size, root, _, _ in lg.checkpoints():
                assert lg.root(size) == root
        print("every decision present once; every checkpoint's root recomputed: ok")
        if args.json:
            Path(args.json).write_text(json.dumps({"without": base, "with": grouped, "args": vars(args)}, indent=2))
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
