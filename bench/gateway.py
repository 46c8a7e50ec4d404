"""Latency the gateway adds to a non-streaming completion: the same requests sent directly to the upstream and through
``glasslog gateway``, interleaved in one run.

Upstream: ``transformers serve`` (a third-party OpenAI-compatible server shipped with transformers; it needs
``accelerate``) on the test causal LM built from a config (``glasslog.demo.testmodels``, nothing downloaded), CPU.
Each request is a chat completion of ``--max-tokens`` tokens (greedy, fixed seed), so upstream time is the same for
both paths. Pairs (direct, gateway) are sent one at a time, in random order within the pair, over keep-alive
connections. Reported: p50 and p99 of each path, and p50 / p99 of the per-pair difference (gateway minus direct):
what the gateway adds, its log append included (one SQLite transaction with synchronous=FULL and a signed
checkpoint per completion). Every gateway response is checked to carry its entry index, and the log is verified after.

Target (issue 14): at most 5 ms added at p50.

    .venv/bin/python bench/gateway.py [--pairs 200] [--max-tokens 4]
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "bench"))


def pct(values: list[float], q: float) -> float:
    values = sorted(values)
    k = min(len(values) - 1, max(0, round(q / 100 * (len(values) - 1))))
    return values[k]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pairs", type=int, default=200)
    ap.add_argument("--max-tokens", type=int, default=4)
    args = ap.parse_args()
    from ingest_support import build_test_model, free_port, glasslog_command, make_log

    with tempfile.TemporaryDirectory(prefix="glasslog-bench-gateway-") as tmp:
        root = Path(tmp)
        model_dir = build_test_model(root)
        tl = make_log(root / "log", model_dir, {"bench.example/chat": "public-service"})
        procs = []
        try:
            up_port, gw_port = free_port(), free_port()
            tf = Path(sys.executable).parent / "transformers"
            procs.append(subprocess.Popen([str(tf), "serve", str(model_dir), "--host", "127.0.0.1", "--port", str(up_port),
                                           "--device", "cpu", "--log-level", "warning"], stdout=subprocess.DEVNULL,
                                          stderr=subprocess.DEVNULL, env={"HF_HUB_OFFLINE": "1", "PATH": "/usr/bin:/bin"}))
            upstream = f"http://127.0.0.1:{up_port}"
            procs.append(subprocess.Popen([*glasslog_command(), "gateway", "--data-dir", str(tl.data_dir), "--upstream",
                                           upstream, "--deployment", "bench.example/chat", "--port", str(gw_port),
                                           "--model", f"{model_dir}={tl.fingerprint}"],
                                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
            gateway = f"http://127.0.0.1:{gw_port}"
            for url in (upstream, gateway):
                deadline = time.monotonic() + 240
                while True:
                    try:
                        httpx.get(url + "/v1/models", timeout=2)
                        break
                    except httpx.HTTPError:
                        if time.monotonic() > deadline:
                            raise SystemExit(f"{url} did not start") from None
                        time.sleep(0.2)
            body = {"model": str(model_dir), "messages": [{"role": "user", "content": "Summarise the decision."}],
                    "max_tokens": args.max_tokens, "temperature": 0, "seed": 1}
            rng = random.Random(14)
            direct_t, gw_t, diffs = [], [], []
            indexed = 0
            with httpx.Client(timeout=120) as cd, httpx.Client(timeout=120) as cg:
                for _ in range(10):  # warm up both paths
                    cd.post(upstream + "/v1/chat/completions", json=body)
                    cg.post(gateway + "/v1/chat/completions", json=body)
                from otlp import server_cpu

                cpu0, load0 = server_cpu(procs[1].pid), os.getloadavg()[0]
                for _ in range(args.pairs):
                    order = [("d", cd, upstream), ("g", cg, gateway)]
                    rng.shuffle(order)
                    took = {}
                    for name, client, base in order:
                        t0 = time.perf_counter()
                        r = client.post(base + "/v1/chat/completions", json=body)
                        took[name] = time.perf_counter() - t0
                        r.raise_for_status()
                        if name == "g" and "x-glasslog-index" in r.headers:
                            indexed += 1
                    direct_t.append(took["d"] * 1000)
                    gw_t.append(took["g"] * 1000)
                    diffs.append((took["g"] - took["d"]) * 1000)
                cpu = server_cpu(procs[1].pid) - cpu0
        finally:
            for p in procs:
                p.terminate()
                p.wait(30)
        v = subprocess.run([*glasslog_command(), "verify", "log", "--data-dir", str(tl.data_dir), "--key-file",
                            str(tl.data_dir / "log.vkey")], capture_output=True, text=True)
    print(f"non-streaming chat completions of {args.max_tokens} tokens, {args.pairs} pairs, transformers serve on the test"
          " model (CPU), loopback")
    print(f"direct : p50 {pct(direct_t, 50):7.2f} ms   p99 {pct(direct_t, 99):7.2f} ms")
    print(f"gateway: p50 {pct(gw_t, 50):7.2f} ms   p99 {pct(gw_t, 99):7.2f} ms")
    added = pct(gw_t, 50) - pct(direct_t, 50)
    print(f"added  : p50 of pair differences {pct(diffs, 50):6.2f} ms, p99 {pct(diffs, 99):6.2f} ms;"
          f" difference of p50s {added:6.2f} ms; mean {statistics.mean(diffs):6.2f} ms"
          f" (target <= 5 ms at p50: {'met' if pct(diffs, 50) <= 5 else 'MISSED'})")
    print(f"machine load average (1 min) at the start: {load0:.2f} on {os.cpu_count()} cores; gateway CPU (user+system)"
          f" per request: {cpu / args.pairs * 1000:.2f} ms")
    print(f"gateway responses with an entry index: {indexed}/{args.pairs}; glasslog verify log: exit {v.returncode}")
    return 0 if indexed == args.pairs and v.returncode == 0 else 1


if __name__ == "__main__":
    raise SystemExit(main())
