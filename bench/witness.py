"""Witnessing: checkpoints cosigned per second by one witness, and the server's appends with and without a witness.

1. One witness (``python -m glasslog.witness serve``, its own process on a free
   loopback port, SQLite state with ``synchronous=FULL``) is sent a stream of
   checkpoints, each 10 entries past the last, with its consistency proof
   (C2SP tlog-witness ``add-checkpoint``): from one log over one keep-alive
   connection (requests one after another), and from 4 logs at once (one
   thread and connection each). The checkpoints and proofs are made before
   timing; every answer's cosignature is verified after timing. Reported:
   cosigned checkpoints per second and the request latency.

2. The server (``glasslog serve``, 1 worker, the demo log of bench/server.py)
   is loaded with ``POST /v1/decisions`` (batches of 100 decisions with
   client-supplied outputs, N concurrent clients, bench/server.py's load
   generator) in one run, alternating: without a witness, with one witness
   attached (added with a ``witness`` entry; the server's background thread
   sends each new checkpoint to it), without again (the witness removed), and
   so on (``--rounds``). Reported: decisions acknowledged per second, latency, how many
   checkpoints the witness cosigned during the run and how far behind the
   newest cosigned checkpoint was at its end.

    .venv/bin/python bench/witness.py                       # about two minutes
    .venv/bin/python bench/witness.py --checkpoints 3000 --duration 10 --json bench/results/witness.json
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "tests"))

from common import (  # noqa: E402
    add_wait_argument,
    console,
    fmt_rate,
    loadavg,
    machine_info,
    print_machine,
    progress,
    wait_for_quiet,
    write_json,
)
from rich.table import Table  # noqa: E402


class HashStore:
    """Every perfect subtree hash of a growing tree, in memory: proofs for any two sizes."""

    def __init__(self):
        from glasslog.ledger import merkle

        self.m = merkle
        self.h: dict[tuple[int, int], bytes] = {}
        self.n = 0

    def append(self, entry: bytes) -> None:
        m = self.m
        i = self.n
        self.h[(0, i)] = m.leaf_hash(entry)
        level = 0
        while i & 1:
            i >>= 1
            self.h[(level + 1, i)] = m.node_hash(self.h[(level, 2 * i)], self.h[(level, 2 * i + 1)])
            level += 1
        self.n += 1

    def root(self, n: int) -> bytes:
        parts = self.m.root_plan(n)
        return self.m.subtree_hash_from(parts, self.h)

    def proof(self, old: int, new: int) -> list[bytes]:
        return self.m.build_proof(self.m.consistency_proof_plan(old, new), lambda keys: {k: self.h[k] for k in keys})


def make_stream(origin: str, count: int, step: int = 10):
    """``count`` (old size, proof, signed note) add-checkpoint requests of a log growing by ``step`` entries each."""
    from glasslog.ledger.note import Checkpoint, generate_signer, sign_note

    signer = generate_signer(origin)
    tree = HashStore()
    out, old = [], 0
    for k in range(count):
        for j in range(step):
            tree.append(f'{{"i":{k * step + j}}}'.encode())
        n = tree.n
        note = sign_note(Checkpoint(origin, n, tree.root(n)).text(), signer)
        out.append((old, tree.proof(old, n) if old else [], note))
        old = n
    return signer, out


def pct(values: list[float], q: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, int(q * len(s)))]


def witness_rate(work: Path, checkpoints: int, logs: int) -> dict:
    from witness_support import WitnessProcess

    from glasslog.ledger.cosignature import verify_cosigned
    from glasslog.witness import Witness
    from glasslog.witness.client import WitnessClient

    d = work / f"witness-{logs}"
    Witness.init(d, "witness.bench/w1").close()
    w = Witness(d)
    # Exactly ``checkpoints`` timed requests in all, spread over the logs; each log's stream has one more,
    # its first, sent untimed to open the connection.
    per_log = [checkpoints // logs + (i < checkpoints % logs) for i in range(logs)]
    streams = []
    for i in range(logs):
        signer, stream = make_stream(f"bench.example/log{i}", per_log[i] + 1)
        w.add_log(signer.name, str(signer.verifier()))
        streams.append((signer, stream))
    wkey = w.verifier_key
    w.close()
    proc = WitnessProcess(d).start()
    results: list[list] = [[] for _ in range(logs)]
    try:
        def run(i: int) -> None:
            client = WitnessClient(proc.url, wkey, timeout=30)
            client.add_checkpoint(*streams[i][1][0])  # warm the connection (not timed)
            for old, proof, note in streams[i][1][1:]:
                t0 = time.perf_counter()
                lines = client.add_checkpoint(old, proof, note)
                results[i].append((time.perf_counter() - t0, note, lines))
            client.close()

        threads = [threading.Thread(target=run, args=(i,)) for i in range(logs)]
        with progress() as p:  # the main thread polls the counts 5 times a second while the threads send
            task = p.add_task(f"witness, {logs} log(s) at once", total=checkpoints)
            t0 = time.perf_counter()
            for t in threads:
                t.start()
            while any(t.is_alive() for t in threads):
                p.update(task, completed=sum(len(r) for r in results))
                p.refresh()
                threads[0].join(0.2)
            for t in threads:
                t.join()
            seconds = time.perf_counter() - t0
            p.update(task, completed=sum(len(r) for r in results))
            p.refresh()
    finally:
        proc.stop()
    done = sum(len(r) for r in results)
    if done != checkpoints:
        raise RuntimeError(f"only {done} of {checkpoints} checkpoints were cosigned")
    for i, rs in enumerate(results):  # every cosignature verifies, under the witness policy
        for _, note, lines in rs:
            if not verify_cosigned(note + "".join(lines), streams[i][0].verifier(), [wkey], 1).ok:
                raise RuntimeError("a cosignature did not verify")
    lat = [x for rs in results for x, _, _ in rs]
    return {"logs": logs, "checkpoints": done, "seconds": seconds, "cosigned_per_s": done / seconds,
            "p50_ms": 1000 * statistics.median(lat), "p99_ms": 1000 * pct(lat, 0.99)}


def server_runs(work: Path, duration: float, warmup: float, clients: int, rounds: int = 2) -> list[dict]:
    import server as sb
    from witness_support import WitnessProcess

    from glasslog.ledger import Ledger
    from glasslog.ledger.witnesses import witness_entry
    from glasslog.witness import Witness

    data = work / "log"
    setup = sb.build_log(data)
    wdir = work / "witness-server"
    Witness.init(wdir, "witness.bench/server").close()
    w = Witness(wdir)
    w.add_log((data / "log.vkey").read_text().split("+")[0], (data / "log.vkey").read_text().strip())
    wkey = w.verifier_key
    w.close()
    witness = WitnessProcess(wdir).start()
    bodies = sb.write_bodies(setup, work / "bodies.jsonl", "private", True)
    auth = {"Accept-Encoding": "gzip", "Authorization": "Bearer " + setup["token"]}
    srv = sb.Server(data, 1, work / "server.log")
    runs = []
    labels = ["no witness"] + ["1 witness", "no witness"] * rounds  # alternated: the machine's load drifts
    bar = progress()
    bar.start()
    task = bar.add_task("server runs (with / without a witness)", total=len(labels))
    try:
        srv.wait_ready()
        attached = False
        for label in labels:
            with Ledger.open(data) as lg:
                if label == "1 witness":
                    lg.append([witness_entry("add", witness.url, wkey)])
                    attached = True
                elif attached:
                    lg.append([witness_entry("remove", witness.url, wkey)])
                    attached = False
                start_size = lg.signed_size()
                start_cosigned = lg.store.witness_sizes().get(wkey)
            if label == "1 witness":  # let the thread see the witness and catch up before timing
                deadline = time.monotonic() + 30
                while time.monotonic() < deadline:
                    with Ledger.open(data) as lg:
                        if lg.store.witness_sizes().get(wkey) == lg.signed_size():
                            break
                    time.sleep(0.1)
            r = sb.httpx_run(srv, work, method="POST", items_file=bodies, concurrency=clients, duration=duration,
                             warmup=warmup, headers=auth, expect=201, stagger=0.02)
            with Ledger.open(data) as lg:
                end_size = lg.signed_size()
                checkpoints = sum(1 for n, *_ in lg.checkpoints() if n > start_size)
                cosigned_now = lg.store.witness_sizes().get(wkey)
                cosigned = len([n for n in lg.store.cosigned_sizes() if n > start_size])
            time.sleep(2.0 if label == "1 witness" else 0)
            with Ledger.open(data) as lg:
                cosigned_later = lg.store.witness_sizes().get(wkey)
            runs.append({"run": label, "clients": clients, "decisions_per_s": r["ok"] * sb.BATCH / r["seconds"],
                         "requests": r["ok"], "p50_ms": r.get("p50_ms"), "p99_ms": r.get("p99_ms"),
                         "checkpoints_signed": checkpoints, "checkpoints_cosigned": cosigned if label == "1 witness" else 0,
                         "tree_size_at_end": end_size,
                         "cosigned_size_at_end": cosigned_now if label == "1 witness" else None,
                         "cosigned_size_2s_later": cosigned_later if label == "1 witness" else None,
                         "start_cosigned": start_cosigned})
            bar.advance(task)
            bar.refresh()
    finally:
        bar.stop()
        srv.stop()
        witness.stop()
    return runs


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--checkpoints", type=int, default=2000,
                    help="checkpoints cosigned (timed) per witness run, spread over the logs (default 2000); each log"
                         " also sends one untimed first checkpoint to open its connection")
    ap.add_argument("--duration", type=float, default=5, help="seconds timed per server run (default 5)")
    ap.add_argument("--warmup", type=float, default=1, help="untimed seconds before each server run (default 1)")
    ap.add_argument("--clients", type=int, default=8, help="concurrent clients of the server (default 8)")
    ap.add_argument("--rounds", type=int, default=2, help="server runs with a witness, each between two without (default 2)")
    ap.add_argument("--skip-server", action="store_true", help="only the witness's own rate")
    add_wait_argument(ap)
    ap.add_argument("--json", metavar="PATH", help="write results as JSON")
    args = ap.parse_args()
    if args.checkpoints < 4:
        ap.error("--checkpoints must be at least 4 (one per log in the four-log run)")
    info = machine_info()
    print_machine(info)
    work = Path(tempfile.mkdtemp(prefix="glasslog-bench-witness-", dir=os.environ.get("TMPDIR")))
    load_start = wait_for_quiet(args.wait)
    out: dict = {"benchmark": "witness", "machine": info, "params": vars(args)}
    try:
        out["witness"] = [witness_rate(work, args.checkpoints, 1), witness_rate(work, args.checkpoints, 4)]
        t = Table(title="one witness, loopback, add-checkpoint (+10 entries each, consistency proof, Ed25519"
                        " cosignature/v1, state synced to disk before the answer)")
        for col in ("logs at once", "checkpoints", "seconds", "cosigned/s", "p50 ms", "p99 ms"):
            t.add_column(col, justify="right")
        for r in out["witness"]:
            t.add_row(str(r["logs"]), f"{r['checkpoints']:,}", f"{r['seconds']:.2f}", fmt_rate(r["cosigned_per_s"]),
                      f"{r['p50_ms']:.2f}", f"{r['p99_ms']:.2f}")
        console.print(t)
        if not args.skip_server:
            out["server"] = server_runs(work, args.duration, args.warmup, args.clients, args.rounds)
            t = Table(title=f"server (1 worker), POST /v1/decisions, batches of 100, {args.clients} clients,"
                            f" {args.duration:g} s each, same run")
            for col in ("run", "decisions/s", "p50 ms", "p99 ms", "witness"):
                t.add_column(col, justify="left" if col in ("run", "witness") else "right")
            for r in out["server"]:
                extra = "-"
                if r["run"] == "1 witness":
                    extra = (f"cosigned {r['checkpoints_cosigned']} of {r['checkpoints_signed']} checkpoints;"
                             f" newest cosigned size {r['cosigned_size_at_end']} of {r['tree_size_at_end']} at the end,"
                             f" {r['cosigned_size_2s_later']} 2 s later")
                t.add_row(r["run"], fmt_rate(r["decisions_per_s"]), f"{r['p50_ms']:.1f}", f"{r['p99_ms']:.1f}", extra)
            medians = {}
            for label in ("1 witness", "no witness"):
                rates = [r["decisions_per_s"] for r in out["server"] if r["run"] == label]
                medians[label] = statistics.median(rates)
                t.add_row(f"median, {label} ({len(rates)} runs)", fmt_rate(medians[label]), "", "", "")
            console.print(t)
            out["server_ratio_witness_over_none"] = medians["1 witness"] / medians["no witness"]
            console.print(f"ratio with a witness / without (medians): {out['server_ratio_witness_over_none']:.2f}")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    out["load_average"] = {"start": load_start, "end": loadavg()}
    console.print(f"1-min load average {load_start:.2f} at start, {out['load_average']['end']:.2f} at end")
    write_json(args.json, out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
