"""OTLP/HTTP ingestion throughput: GenAI spans per second into ``glasslog serve --workers 2`` over loopback.

What it does: makes a fresh log (one registered model, one public-service
deployment, an operator key bound to it), starts ``glasslog serve --workers
2`` on a free port, and sends ``--batches`` OTLP/HTTP protobuf export requests
of 512 spans each (the OpenTelemetry SDK's default ``BatchSpanProcessor``
batch) from ``--clients`` concurrent clients. Every span is a ``chat`` span in
the current GenAI conventions with captured content (a 3-message input of
about 300 characters and a 200-character output), token usage and sampling
parameters, unique trace and span ids. Timed: from the first request sent to
the last response received. After: every response must say all 512 spans
were logged, the log must hold exactly one generation entry per span, and
``glasslog verify log --key-file log.vkey`` must pass.

Target (issue 14): at least 5,000 spans/s with 2 workers.

    .venv/bin/python bench/otlp.py [--batches 40] [--clients 4]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

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


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batches", type=int, default=40)
    ap.add_argument("--clients", type=int, default=4)
    ap.add_argument("--workers", type=int, default=2)
    args = ap.parse_args()
    from ingest_support import free_port, glasslog_command

    with tempfile.TemporaryDirectory(prefix="glasslog-bench-otlp-") as tmp:
        data_dir = Path(tmp) / "log"
        key = make_log(data_dir)
        rng = random.Random(14)
        bodies = [batch(rng) for _ in range(args.batches)]
        port = free_port()
        log = open(Path(tmp) / "serve.log", "wb")
        proc = subprocess.Popen([*glasslog_command(), "serve", "--data-dir", str(data_dir), "--port", str(port),
                                 "--workers", str(args.workers)], stdout=log, stderr=subprocess.STDOUT)
        base = f"http://127.0.0.1:{port}"
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
                                         + (Path(tmp) / "serve.log").read_text(errors="replace")[-2000:]) from None
                    time.sleep(0.1)
            headers = {"content-type": "application/x-protobuf", "authorization": f"Bearer {key}"}
            # warm up: each worker opens its connection to the log
            for _ in range(args.workers * 2):
                warm = batch(random.Random(), 4)
                httpx.post(base + "/v1/traces", content=warm, headers=headers, timeout=60)
            from glasslog.ledger import Ledger

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
        finally:
            proc.terminate()
            proc.wait(30)
            log.close()
        spans = 512 * args.batches
        ok = all(s == 200 and n == "512" for s, n in results) and len(results) == args.batches
        with Ledger.open(data_dir) as lg:
            generations = sum(1 for _ in lg.entries_of_type("generation", start_size))
        v = subprocess.run([*glasslog_command(), "verify", "log", "--data-dir", str(data_dir), "--key-file",
                            str(data_dir / "log.vkey")], capture_output=True, text=True)
        rate = spans / elapsed
        print(f"OTLP/HTTP protobuf, batches of 512 spans, {args.clients} clients, glasslog serve --workers {args.workers}")
        print(f"machine load average (1 min) at the start: {load0:.2f} on {os.cpu_count()} cores")
        if cpu > 0:
            print(f"server CPU (user+system, all worker processes): {cpu:.2f} s = {cpu / spans * 1e6:.0f} us per span;"
                  f" {spans / cpu * args.workers:,.0f} spans/s if the {args.workers} workers had a core each to themselves")
        print(f"spans: {spans:,} in {elapsed:.2f} s = {rate:,.0f} spans/s (target >= 5,000: {'met' if rate >= 5000 else 'MISSED'})")
        print(f"responses all 200 with 512 logged: {ok}; generation entries on the log: {generations:,} (expected {spans:,})")
        print(f"glasslog verify log: exit {v.returncode}: {(v.stdout + v.stderr).strip().splitlines()[-1] if (v.stdout + v.stderr).strip() else ''}")
        return 0 if ok and generations == spans and v.returncode == 0 else 1


if __name__ == "__main__":
    raise SystemExit(main())
