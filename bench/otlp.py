"""OTLP/HTTP ingestion throughput: GenAI spans per second into ``glasslog serve --workers 2`` over loopback.

What it does: makes a fresh log (one registered model, one public-service
deployment, an operator key bound to it), starts the server as ``glasslog
serve --workers 2`` does (uvicorn, two worker processes) on a free port, and sends ``--batches`` OTLP/HTTP protobuf export requests
of 512 spans each (the OpenTelemetry SDK's default ``BatchSpanProcessor``
batch) from ``--clients`` concurrent clients. Every span is a ``chat`` span in
the current GenAI conventions with captured content (a 3-message input of
about 300 characters and a 200-character output), token usage and sampling
parameters, unique trace and span ids. Timed: from the first request sent to
the last response received. After: every response must say all 512 spans
were logged, the log must hold exactly one generation entry per span, and
``glasslog verify log --key-file log.vkey`` must pass.

Baseline, in the same run: the same batches into the same kind of server
running the code of ``--baseline`` (a git ref, default ``6e78c4a``, the last
commit before the per-span work of 2026-12-05 23:10, where each entry was
schema-checked twice), extracted with ``git archive`` and put first on
``PYTHONPATH``. Rounds alternate baseline and current (``--rounds``, default 2
of each), each on a fresh log and a fresh server, each verified as above.
Also reported: the CPU the server processes spent per span (user + system,
from ``/proc``), which the other load on the machine disturbs less than wall
time.

Target (issue 14): at least 5,000 spans/s with 2 workers.

    .venv/bin/python bench/otlp.py [--batches 40] [--clients 4] [--rounds 2] [--baseline REF] [--json PATH]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "bench"))

from common import add_wait_argument, loadavg, machine_info, print_machine, wait_for_quiet  # noqa: E402

LAUNCH = """
import os, uvicorn
from glasslog.server.timeouts import head_protocol
uvicorn.run("glasslog.server.app:app_from_env", host="127.0.0.1", port=int(os.environ["BENCH_PORT"]), factory=True,
            workers=int(os.environ["BENCH_WORKERS"]), log_level="warning", http=head_protocol(), proxy_headers=False,
            timeout_worker_healthcheck=120)
"""
"""What ``glasslog serve --workers N`` runs, started the same way for both codes: uvicorn's worker health check
(5 s by default) kills workers still importing the stack on a loaded machine, and the baseline's serve command
did not lengthen it."""

DEPLOYMENT = "bench.example/assistant"
MODEL = "bench-model"


def make_log(data_dir: Path) -> str:
    from glasslog.access import KeyStore
    from glasslog.demo.generative import _generative_card
    from glasslog.ledger import Ledger, utc_now
    from glasslog.registry import Deployments

    lg = Ledger.create(data_dir, "bench.example/otlp")
    fp = "sha256:" + os.urandom(32).hex()
    card = _generative_card(MODEL, "1")
    lg.append([{"type": "model", "v": 1, "event": "register", "model": fp, "card": card, "status": "active", "time": utc_now()}])
    Deployments(lg).declare(DEPLOYMENT, "public-service", "benchmark")
    _, key = KeyStore(lg).create("operator", "bench app", [DEPLOYMENT])
    lg.close()
    return key


def batch(rng: random.Random, n: int = 512) -> bytes:
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

    req = ExportTraceServiceRequest()
    rs = req.resource_spans.add()
    rs.resource.attributes.add(key="service.name").value.string_value = "bench-app"
    ss = rs.scope_spans.add()
    ss.scope.name = "bench"
    now = time.time_ns()
    for _ in range(n):
        sp = ss.spans.add()
        sp.trace_id, sp.span_id = rng.randbytes(16), rng.randbytes(8)
        sp.name, sp.kind = f"chat {MODEL}", 3
        sp.start_time_unix_nano, sp.end_time_unix_nano = now, now + 800_000_000
        question = "".join(rng.choice("abcdefghij klmnop") for _ in range(200))
        answer = "".join(rng.choice("qrstuvwxyz .,") for _ in range(200))
        attrs = {"gen_ai.operation.name": "chat", "gen_ai.provider.name": "openai", "gen_ai.request.model": MODEL,
                 "gen_ai.response.model": MODEL, "gen_ai.response.id": "chatcmpl-" + rng.randbytes(8).hex(),
                 "gen_ai.input.messages": json.dumps([
                     {"role": "system", "parts": [{"type": "text", "content": "You are a helpful assistant."}]},
                     {"role": "user", "parts": [{"type": "text", "content": question}]},
                     {"role": "user", "parts": [{"type": "text", "content": "Answer briefly."}]}]),
                 "gen_ai.output.messages": json.dumps([{"role": "assistant", "finish_reason": "stop",
                                                        "parts": [{"type": "text", "content": answer}]}])}
        for k, v in attrs.items():
            sp.attributes.add(key=k).value.string_value = v
        for k, v in (("gen_ai.usage.input_tokens", 80), ("gen_ai.usage.output_tokens", 50),
                     ("gen_ai.request.max_tokens", 256), ("gen_ai.request.seed", 42)):
            sp.attributes.add(key=k).value.int_value = v
        sp.attributes.add(key="gen_ai.request.temperature").value.double_value = 0.7
        fr = sp.attributes.add(key="gen_ai.response.finish_reasons").value.array_value.values.add()
        fr.string_value = "stop"
    return req.SerializeToString()


def server_cpu(pid: int) -> float:
    """CPU seconds (user + system) used so far by a process and its children (the uvicorn workers), from /proc."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0.0
    pids = [pid]
    try:
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit():
                try:
                    fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
                except OSError:
                    continue
                if int(fields[1]) == pid:  # ppid
                    pids.append(int(entry.name))
        for p in pids:
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / tick
    except OSError:
        return 0.0
    return total


def run_round(label: str, bodies: list[bytes], args, src: Path | None, tmp: Path, progress, task) -> dict:
    """One round: a fresh log and server (the code under ``src``, or this checkout), the batches sent, the log verified."""
    from ingest_support import free_port, glasslog_command

    from glasslog.ledger import Ledger

    data_dir = tmp / f"log-{label}"
    key = make_log(data_dir)
    env = dict(os.environ)
    if src is not None:
        env["PYTHONPATH"] = str(src) + os.pathsep + env.get("PYTHONPATH", "")
    port = free_port()
    env.update(GLASSLOG_DATA_DIR=str(data_dir), BENCH_PORT=str(port), BENCH_WORKERS=str(args.workers))
    log = open(tmp / f"serve-{label}.log", "wb")
    proc = subprocess.Popen([sys.executable, "-c", LAUNCH], stdout=log, stderr=subprocess.STDOUT, env=env)
    base = f"http://127.0.0.1:{port}"
    headers = {"content-type": "application/x-protobuf", "authorization": f"Bearer {key}"}
    try:
        deadline = time.monotonic() + 240  # two workers importing the stack on a busy machine
        while True:
            try:
                httpx.get(base + "/checkpoint", timeout=1)
                break
            except httpx.HTTPError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    log.flush()
                    raise SystemExit("glasslog serve did not start:\n"
                                     + (tmp / f"serve-{label}.log").read_text(errors="replace")[-2000:]) from None
                time.sleep(0.1)
        for _ in range(args.workers * 2):  # warm up: each worker opens its connection to the log
            httpx.post(base + "/v1/traces", content=batch(random.Random(), 4), headers=headers, timeout=60)
        with Ledger.open(data_dir) as lg:
            start_size = lg.size
        results: list[tuple[int, str]] = []
        lock = threading.Lock()
        queue = list(bodies)

        def client() -> None:
            with httpx.Client(timeout=120) as c:
                while True:
                    with lock:
                        if not queue:
                            return
                        body = queue.pop()
                    r = c.post(base + "/v1/traces", content=body, headers=headers)
                    with lock:
                        results.append((r.status_code, r.headers.get("x-glasslog-logged", "")))
                        progress.advance(task)

        threads = [threading.Thread(target=client) for _ in range(args.clients)]
        cpu0 = server_cpu(proc.pid)
        load0 = os.getloadavg()[0]
        t0 = time.perf_counter()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        elapsed = time.perf_counter() - t0
        cpu = server_cpu(proc.pid) - cpu0
        load1 = os.getloadavg()[0]
    finally:
        proc.terminate()
        proc.wait(30)
        log.close()
    spans = 512 * len(bodies)
    ok = all(s == 200 and n == "512" for s, n in results) and len(results) == len(bodies)
    with Ledger.open(data_dir) as lg:
        generations = sum(1 for _ in lg.entries_of_type("generation", start_size))
    v = subprocess.run([*glasslog_command(), "verify", "log", "--data-dir", str(data_dir), "--key-file",
                        str(data_dir / "log.vkey")], capture_output=True, text=True)
    return {"label": label, "spans": spans, "seconds": elapsed, "spans_per_s": spans / elapsed,
            "server_cpu_s": cpu, "cpu_us_per_span": cpu / spans * 1e6 if cpu else None, "load_start": load0,
            "load_end": load1, "all_logged": ok, "generations": generations, "verify_exit": v.returncode}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batches", type=int, default=40)
    ap.add_argument("--clients", type=int, default=4)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=2, help="rounds of each, baseline and current alternating")
    ap.add_argument("--baseline", default="6e78c4a",
                    help="git ref of the baseline code ('' for none); default 6e78c4a, the last commit before the"
                         " per-span ingestion work of 2026-12-05 (each entry was schema-checked twice there)")
    add_wait_argument(ap)
    ap.add_argument("--json", type=Path, help="write the results here")
    args = ap.parse_args()
    if args.batches <= 0 or args.clients <= 0 or args.rounds <= 0:
        ap.error("--batches, --clients and --rounds must be positive")
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
    from rich.table import Table

    console = Console()
    info = machine_info()
    print_machine(info)
    commit = info.get("git_head") or "?"
    with tempfile.TemporaryDirectory(prefix="glasslog-bench-otlp-") as tmp_name:
        tmp = Path(tmp_name)
        src = None
        if args.baseline:
            dest = tmp / "baseline"
            dest.mkdir()
            archive = subprocess.run(["git", "-C", str(ROOT), "archive", args.baseline, "src"], capture_output=True,
                                     check=True).stdout
            subprocess.run(["tar", "-x", "-C", str(dest)], input=archive, check=True)
            src = dest / "src"
        rng = random.Random(14)
        bodies = [batch(rng) for _ in range(args.batches)]
        plan = [("current", None)] * args.rounds
        if src is not None:
            plan = [item for _ in range(args.rounds) for item in (("baseline", src), ("current", None))]
        rounds = []
        load_start = wait_for_quiet(args.wait)
        with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                      console=console) as progress:
            for k, (code, where) in enumerate(plan):
                task = progress.add_task(f"round {k // (len(plan) // args.rounds) + 1}/{args.rounds}: {code}",
                                         total=len(bodies))
                rounds.append({"code": code, **run_round(f"{code}-{k}", bodies, args, where, tmp, progress, task)})
    table = Table(title=f"OTLP/HTTP protobuf, batches of 512 spans, {args.clients} clients, glasslog serve --workers "
                        f"{args.workers}, {os.cpu_count()} cores; current {commit}, baseline {args.baseline or '-'}")
    for col in ("round", "code", "load (1 min) start-end", "spans/s", "server CPU per span", "all logged, verified"):
        table.add_column(col)
    for k, r in enumerate(rounds):
        table.add_row(str(k // (len(rounds) // args.rounds) + 1), r["code"], f"{r['load_start']:.1f}-{r['load_end']:.1f}", f"{r['spans_per_s']:,.0f}",
                      f"{r['cpu_us_per_span']:.0f} us" if r["cpu_us_per_span"] else "?",
                      str(r["all_logged"] and r["generations"] == r["spans"] and r["verify_exit"] == 0))
    console.print(table)
    summary = {}
    for code in ("baseline", "current"):
        rs = [r for r in rounds if r["code"] == code]
        if rs:
            cpus = [r["cpu_us_per_span"] or 0 for r in rs]
            summary[code] = {"best_spans_per_s": max(r["spans_per_s"] for r in rs),
                             "median_spans_per_s": statistics.median(r["spans_per_s"] for r in rs),
                             "median_cpu_us_per_span": statistics.median(cpus)}
            console.print(f"{code}: best {summary[code]['best_spans_per_s']:,.0f} spans/s, median"
                          f" {summary[code]['median_spans_per_s']:,.0f} spans/s, median server CPU "
                          f"{summary[code]['median_cpu_us_per_span']:.0f} us per span")
    if "baseline" in summary:
        cur, bl = summary["current"], summary["baseline"]
        summary["ratio_current_over_baseline"] = {
            "median_spans_per_s": cur["median_spans_per_s"] / bl["median_spans_per_s"],
            "median_cpu_per_span": (cur["median_cpu_us_per_span"] / bl["median_cpu_us_per_span"]
                                    if bl["median_cpu_us_per_span"] else None)}
        ratio = summary["ratio_current_over_baseline"]
        console.print(f"ratio current / baseline: {ratio['median_spans_per_s']:.2f}x median spans/s"
                      + (f", {ratio['median_cpu_per_span']:.2f}x server CPU per span"
                         if ratio["median_cpu_per_span"] is not None else ""))
    best = summary["current"]["best_spans_per_s"]
    load_end = loadavg()
    console.print(f"1-min load average {load_start:.2f} at start, {load_end:.2f} at end")
    console.print(f"target >= 5,000 spans/s with {args.workers} workers: {'met' if best >= 5000 else 'MISSED'} ({best:,.0f})")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"benchmark": "otlp", "machine": info,
                                         "load_average": {"start": load_start, "end": load_end},
                                         "commit": commit, "baseline": args.baseline, "batches": args.batches,
                                         "clients": args.clients, "workers": args.workers, "rounds": rounds,
                                         "summary": summary}, indent=2))
    good = all(r["all_logged"] and r["generations"] == r["spans"] and r["verify_exit"] == 0 for r in rounds)
    return 0 if good else 1


if __name__ == "__main__":
    raise SystemExit(main())
