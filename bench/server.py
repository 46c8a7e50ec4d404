"""HTTP server: decisions appended and tiles / proofs read per second over loopback.

The server is ``glasslog serve`` (FastAPI on uvicorn) in its own process,
bound to a free loopback port, with ``--workers 1`` and ``--workers 2``. The
load comes from another process: an asyncio client (``httpx.AsyncClient``,
one event loop, N concurrent requests on N keep-alive connections) for every
operation, or ``wrk`` (if installed: ``apt-get install wrk``) for the GETs.
Every operation runs for a fixed time with N concurrent clients (closed loop:
each client sends its next request when the last one is answered), after an
untimed warm-up at the same concurrency. On a 2-core machine the load
generator shares the cores with the server; the table shows how many cores
each used (CPU seconds per second of the timed window).

The log: ``glasslog.demo.run.run_demo`` (a registered German Credit
scorecard, a private deployment, 300 decisions and their outcomes), plus a
declared ``public-service`` deployment and an operator key
(``glasslog.access.KeyStore``). Operations:

- ``POST /v1/decisions``, batches of 100 German Credit applicants, each with
  a subject id: with client-supplied outputs (``{"label", "proba"}``, computed
  by the registered model before timing; what a deployer in another language
  sends) to the private and to the public-service deployment, and without
  outputs (the server runs the model) to the private deployment. The server
  validates the rows, logs them (one transaction, one signed checkpoint) and
  answers with a receipt per decision and a receipt token per subject.
- ``GET /tile/0/<N>`` (full hash tiles at random N), ``/tile/0/<N>.p/<W>``
  (the partial tile at the right edge of the tree), ``/tile/entries/<N>``
  (full entry bundles) and ``/tile/entries/<N>.p/<W>`` (the partial bundle),
  ``GET /checkpoint``, ``GET /v1/proofs/inclusion?index=i`` (random i) and
  ``GET /v1/proofs/consistency?old=m`` (random m), against the log as the
  write runs left it.

Clients send ``Accept-Encoding: gzip`` (as Go's and Python's HTTP clients
do; ``--no-gzip`` to ask for identity). Any response other than 2xx is an
error; the run fails if there is one. Afterwards the tree size must equal the
initial size plus every decision acknowledged (warm-ups included), and
``glasslog verify log`` must pass on the data directory.

    .venv/bin/python bench/server.py                    # about 3 minutes
    .venv/bin/python bench/server.py --duration 10 --read-duration 5 --json bench/results/server.json
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
import random
import re
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import (  # noqa: E402
    BENCH_DIR,
    DEFAULT_WORK_DIR,
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
from rich.table import Table  # noqa: E402

ROOT = BENCH_DIR.parent
WRITE_TARGET = 5_000  # decisions/s, batches of 100
SINGLE_TARGET = 2_000  # decisions/s with one decision per request (64 clients, 2 workers; p99 <= 100 ms)
READ_TARGET = 2_000  # reads/s
MIN_REQUESTS = 20  # fewer completed requests in a timed window: the run's figures are flagged unreliable
BATCH = 100
PUBLIC_DEPLOYMENT = "bank.example/credit-decisions/online-pilot"
OTHER_BENCHES = re.compile(r"bench/(append|proofs|verify|hotspots|server)\.py")

WRITES = {  # name: (deployment kind, client-supplied outputs)
    "POST decisions: outputs given, private": ("private", True),
    "POST decisions: outputs given, public-service": ("public", True),
    "POST decisions: server computes, private": ("private", False),
}
READS = ["GET tile/0 full", "GET tile/0 partial", "GET tile/entries full", "GET tile/entries partial", "GET checkpoint",
         "GET proof inclusion", "GET proof consistency"]


# ------------------------------------------------------------------ helpers
def group_cpu(pgid: int) -> dict[int, float]:
    """CPU seconds (user + system) used so far by each live process of a process group."""
    tick = os.sysconf("SC_CLK_TCK")
    out: dict[int, float] = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            stat = Path(f"/proc/{d}/stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rfind(")") + 2 :].split()
        if int(fields[2]) == pgid:  # field 5: pgrp
            out[int(d)] = (int(fields[11]) + int(fields[12])) / tick  # fields 14, 15: utime, stime
    return out


def cpu_split(before: dict[int, float], after: dict[int, float], seconds: float) -> list[float]:
    """Cores used by each process over a window, busiest first (processes using under 0.01 left out)."""
    used = [(after[p] - before.get(p, 0.0)) / seconds for p in after]
    return sorted((u for u in used if u >= 0.01), reverse=True)


def other_benches() -> list[str]:
    """Command lines of other glasslog benchmark scripts running on this machine."""
    me = os.getpid()
    found = []
    for d in os.listdir("/proc"):
        if not d.isdigit() or int(d) == me:
            continue
        try:
            cmd = Path(f"/proc/{d}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
        except OSError:
            continue
        if OTHER_BENCHES.search(cmd) and "--loadgen" not in cmd and "timeout" not in cmd.split()[0]:
            found.append(f"{d}: {cmd}")
    return found


def wait_for_other_benches(max_wait: float) -> list[str]:
    deadline = time.monotonic() + max_wait
    with console.status("checking for other benchmark processes") as st:
        while (found := other_benches()) and time.monotonic() < deadline:
            st.update(f"waiting for other benchmarks to finish ({len(found)} running; "
                      f"{deadline - time.monotonic():.0f}s left): {found[0][:100]}")
            time.sleep(5)
    if found:
        console.print(f"[yellow]other benchmarks still running: {found}[/yellow]")
    return found


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def pct(sorted_values: list[float], q: float) -> float | None:
    if not sorted_values:
        return None
    k = min(len(sorted_values) - 1, max(0, round(q * (len(sorted_values) - 1))))
    return sorted_values[k]


def code_state() -> dict:
    """Digest of the server, access, capture and ledger sources (the code this measures) and library versions."""
    import importlib.metadata as md

    digest = hashlib.sha256()
    for sub in ("server", "access", "capture", "ledger", "registry"):
        for f in sorted((ROOT / "src" / "glasslog" / sub).glob("*.py")):
            digest.update(f"{sub}/{f.name}".encode() + b"\0" + f.read_bytes())
    state = {"sources_sha256": digest.hexdigest()[:16]}
    try:
        dirty = subprocess.run(["git", "diff", "--quiet", "HEAD", "--", "src/glasslog"], cwd=ROOT, timeout=10)
        state["sources_match_head"] = dirty.returncode == 0
    except (OSError, subprocess.SubprocessError):
        pass
    versions = {}
    for name in ("fastapi", "starlette", "uvicorn", "h11", "httptools", "uvloop", "pydantic", "httpx"):
        try:
            versions[name] = md.version(name)
        except md.PackageNotFoundError:
            versions[name] = None
    state["versions"] = versions
    wrk = shutil.which("wrk")
    if wrk:
        out = subprocess.run([wrk, "--version"], capture_output=True, text=True).stdout + ""
        state["wrk"] = (out.splitlines() or ["?"])[0].split("Copyright")[0].strip()
    return state


# -------------------------------------------------------------------- setup
def build_log(data_dir: Path) -> dict:
    """The demo log, a public-service deployment, an operator key; request bodies for the write runs."""
    import numpy as np

    from glasslog.access import KeyStore
    from glasslog.datasets.german_credit import load_german_credit
    from glasslog.demo.run import run_demo
    from glasslog.ledger import Ledger
    from glasslog.registry import Deployments, Registry, load_artifact

    summary = run_demo(data_dir)
    ledger = Ledger.open(data_dir)
    try:
        Deployments(ledger).declare(PUBLIC_DEPLOYMENT, "public-service",
                                    "Benchmark: online applications, outputs published in the clear.")
        _, token = KeyStore(ledger).create("operator", "Benchmark operator")
        registry = Registry(ledger)
        model = registry.get(summary.model)
        estimator = load_artifact(registry.artifact(model.fingerprint), model.fingerprint)
        size = ledger.size
    finally:
        ledger.close()
    X, _ = load_german_credit()
    X = X[model.card.feature_names]
    proba = np.asarray(estimator.predict_proba(X), dtype=float)
    classes = list(estimator.classes_)
    rows = json.loads(X.to_json(orient="records"))
    labels = [c.item() if hasattr(c, "item") else c for c in classes]  # numpy scalars to JSON values
    outputs = [{"label": labels[int(np.argmax(p))], "proba": [float(x) for x in p]} for p in proba]
    return {"model": summary.model, "private": summary.deployment, "public": PUBLIC_DEPLOYMENT, "token": token,
            "initial_size": size, "verifier_key": summary.verifier_key, "rows": rows, "outputs": outputs}


def write_bodies(setup: dict, path: Path, kind: str, with_outputs: bool, count: int = 40, size: int = BATCH) -> Path:
    """``count`` distinct request bodies (JSON, one a line): windows of the 1,000 applicants, unique subject ids."""
    rows, outputs = setup["rows"], setup["outputs"]
    deployment = setup["private"] if kind == "private" else setup["public"]
    with path.open("wb") as f:
        for b in range(count):
            batch = []
            for k in range(size):
                r = (b * 37 + k * 7) % len(rows)
                row = {"input": rows[r], "subject_id": f"bench-applicant-{b:03d}-{k:03d}"}
                if with_outputs:
                    row["output"] = outputs[r]
                batch.append(row)
            body = {"model": setup["model"], "deployment": deployment, "rows": batch}
            f.write(json.dumps(body, separators=(",", ":")).encode() + b"\n")
    return path


def read_paths(op: str, size: int, rng: random.Random, count: int = 2000, signed: list[int] | None = None) -> list[str]:
    """Paths for a read run at tree size ``size``; consistency proofs start at one of the ``signed`` sizes (the server
    proves consistency between signed tree sizes only)."""
    from glasslog.ledger.tiles import TILE_WIDTH, tile_path

    full_tiles = size // TILE_WIDTH
    last, width = divmod(size, TILE_WIDTH)
    if op == "GET tile/0 full":
        return ["/" + tile_path(0, rng.randrange(full_tiles)) for _ in range(count)]
    if op == "GET tile/entries full":
        return ["/" + tile_path(None, rng.randrange(full_tiles)) for _ in range(count)]
    if op in ("GET tile/0 partial", "GET tile/entries partial"):
        if width == 0:  # no partial tile at this size: the last full one, minus one hash
            last, width = last - 1, TILE_WIDTH - 1
        return ["/" + tile_path(0 if op == "GET tile/0 partial" else None, last, width)]
    if op == "GET checkpoint":
        return ["/checkpoint"]
    if op == "GET proof inclusion":
        return [f"/v1/proofs/inclusion?index={rng.randrange(size)}" for _ in range(count)]
    if op == "GET proof consistency":
        olds = [m for m in signed or [] if 0 < m < size] or [size]
        return [f"/v1/proofs/consistency?old={rng.choice(olds)}" for _ in range(count)]
    raise ValueError(op)


# ------------------------------------------------------------------ server
# uvicorn binds the listening socket itself for --workers > 1 and leaves its
# proto at 0, so asyncio does not set TCP_NODELAY on accepted connections
# (uvicorn issue #3149): each keep-alive response then waits ~40 ms for the
# client's delayed ACK. --nodelay runs `glasslog serve` with TCP_NODELAY set on
# the listener, which accepted sockets inherit on Linux.
_NODELAY_LAUNCHER = """
import socket, sys
import uvicorn.config
_bind = uvicorn.config.Config.bind_socket
def bind_socket(self):
    sock = _bind(self)
    if sock.family in (socket.AF_INET, socket.AF_INET6):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock
uvicorn.config.Config.bind_socket = bind_socket
from glasslog.cli import main
sys.argv[0] = "glasslog"
main()
"""


class Server:
    """``glasslog serve`` in its own session (process group), on a free loopback port."""

    def __init__(self, data_dir: Path, workers: int, log_path: Path, nodelay: bool = False):
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        exe = Path(sys.executable).with_name("glasslog")
        if nodelay:
            cmd = [sys.executable, "-c", _NODELAY_LAUNCHER]
        else:
            cmd = [str(exe)] if exe.exists() else [sys.executable, "-c", "from glasslog.cli import main; main()"]
        cmd += ["serve", "--data-dir", str(data_dir), "--port", str(self.port), "--workers", str(workers)]
        self.log_path = log_path
        self.log = log_path.open("ab")
        self.proc = subprocess.Popen(cmd, stdout=self.log, stderr=self.log, stdin=subprocess.DEVNULL, start_new_session=True)
        self.workers = workers

    def wait_ready(self, timeout: float = 60) -> None:
        import httpx

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited with {self.proc.returncode}:\n{self.log_path.read_text()[-2000:]}")
            try:
                if httpx.get(self.base + "/checkpoint", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise RuntimeError(f"server not ready after {timeout}s:\n{self.log_path.read_text()[-2000:]}")

    def cpu(self) -> float:
        return group_cpu(self.proc.pid)

    def alive(self) -> bool:
        return self.proc.poll() is None

    def stop(self) -> None:
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGTERM)  # the group of the server we started (its workers too)
            except ProcessLookupError:
                pass
            try:
                self.proc.wait(timeout=40)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self.log.close()


# ---------------------------------------------------------------- load runs
def run_child(cmd: list[str], timeout: float) -> tuple[subprocess.CompletedProcess, float]:
    """Run a load generator process; returns its result and the CPU seconds it used."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return done, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def httpx_run(server: Server, tmp: Path, *, method: str, items_file: Path, concurrency: int, duration: float,
              warmup: float, headers: dict, expect: int, stagger: float = 0) -> dict:
    spec = {"base": server.base, "method": method, "items": str(items_file), "concurrency": concurrency,
            "duration": duration, "warmup": warmup, "warmup_min_ok": 2 * concurrency if method == "POST" else 0,
            "headers": headers, "expect": expect, "server_pgid": server.proc.pid, "stagger": stagger}
    spec_path = tmp / "spec.json"
    spec_path.write_text(json.dumps(spec))
    done, _ = run_child([sys.executable, str(Path(__file__).resolve()), "--loadgen", str(spec_path)],
                        timeout=warmup + duration + 300)
    if done.returncode != 0:
        raise RuntimeError(f"load generator failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


_WRK_LUA = r"""
local paths = {}
for line in io.lines("%(paths)s") do paths[#paths + 1] = line end
local threads = {}
local counter = 0
bad = 0
function setup(thread) table.insert(threads, thread) end
function init(args) counter = math.random(#paths) end
function request()
  counter = counter %% #paths + 1
  return wrk.format("GET", paths[counter], %(headers)s)
end
function response(status, headers, body)
  if status < 200 or status > 299 then bad = bad + 1 end
end
function done(summary, latency, requests)
  local nbad = 0
  for _, t in ipairs(threads) do nbad = nbad + t:get("bad") end
  local e = summary.errors
  io.write(string.format('GLB {"requests":%%d,"duration_us":%%d,"connect":%%d,"read":%%d,"write":%%d,"status":%%d,' ..
    '"timeout":%%d,"bad":%%d,"p50_us":%%d,"p99_us":%%d,"mean_us":%%f,"max_us":%%d}\n',
    summary.requests, summary.duration, e.connect, e.read, e.write, e.status, e.timeout, nbad,
    latency:percentile(50), latency:percentile(99), latency.mean, latency.max))
end
"""


def wrk_run(server: Server, tmp: Path, *, paths_file: Path, concurrency: int, duration: float, warmup: float,
            headers: dict, threads: int) -> dict:
    lua = tmp / "paths.lua"
    hdrs = "{" + ", ".join(f'["{k}"] = "{v}"' for k, v in headers.items()) + "}"
    lua.write_text(_WRK_LUA % {"paths": str(paths_file), "headers": hdrs})
    t = str(min(threads, concurrency))

    def wrk(seconds: float):
        return [shutil.which("wrk"), "-t", t, "-c", str(concurrency), "-d", f"{max(1, round(seconds))}s", "--timeout", "30s",
                "--latency", "-s", str(lua), server.base + "/"]

    if warmup > 0:
        run_child(wrk(warmup), timeout=warmup + 120)
    cpu0 = server.cpu()
    done, client_cpu = run_child(wrk(duration), timeout=duration + 120)
    cpu1 = server.cpu()
    line = next((x for x in done.stdout.splitlines() if x.startswith("GLB ")), None)
    if done.returncode != 0 or line is None:
        raise RuntimeError(f"wrk failed ({done.returncode}):\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}")
    r = json.loads(line[4:])
    seconds = r["duration_us"] / 1e6
    errors = r["bad"] + r["connect"] + r["read"] + r["write"] + r["timeout"]
    return {"requests": r["requests"], "seconds": seconds, "rate": r["requests"] / seconds, "errors": errors,
            "error_detail": {k: r[k] for k in ("bad", "connect", "read", "write", "timeout", "status")},
            "p50_ms": r["p50_us"] / 1000, "p99_ms": r["p99_us"] / 1000, "mean_ms": r["mean_us"] / 1000,
            "max_ms": r["max_us"] / 1000, "server_cpu_split": cpu_split(cpu0, cpu1, seconds),
            "client_cpu": client_cpu / seconds, "client": "wrk", "warmup_ok": 0}


_WRK_POST_LUA = r"""
local bodies = {}
for line in io.lines("%(bodies)s") do bodies[#bodies + 1] = line end
local threads = {}
local counter = 0
ok = 0
bad = 0
function setup(thread) table.insert(threads, thread) end
function init(args) counter = math.random(#bodies) end
function request()
  counter = counter %% #bodies + 1
  return wrk.format("POST", "/v1/decisions", %(headers)s, bodies[counter])
end
function response(status, headers, body)
  if status == %(expect)d then ok = ok + 1 else bad = bad + 1 end
end
function done(summary, latency, requests)
  local nok, nbad = 0, 0
  for _, t in ipairs(threads) do nok = nok + t:get("ok"); nbad = nbad + t:get("bad") end
  local e = summary.errors
  io.write(string.format('GLB {"requests":%%d,"duration_us":%%d,"connect":%%d,"read":%%d,"write":%%d,"status":%%d,' ..
    '"timeout":%%d,"ok":%%d,"bad":%%d,"p50_us":%%d,"p99_us":%%d,"mean_us":%%f,"max_us":%%d}\n',
    summary.requests, summary.duration, e.connect, e.read, e.write, e.status, e.timeout, nok, nbad,
    latency:percentile(50), latency:percentile(99), latency.mean, latency.max))
end
"""


def wrk_post_run(server: Server, tmp: Path, *, bodies_file: Path, concurrency: int, duration: float, warmup: float,
                 headers: dict, threads: int, expect: int = 201) -> dict:
    """POST /v1/decisions with ``wrk`` (bodies from ``bodies_file``, one a line), after a warm-up run.

    wrk stops at the deadline with requests in flight: those may be appended without being counted as
    acknowledged, so the caller checks ``acknowledged <= tree size growth <= acknowledged + in flight``.
    """
    lua = tmp / "post.lua"
    hdrs = "{" + ", ".join(f'["{k}"] = "{v}"' for k, v in {**headers, "Content-Type": "application/json"}.items()) + "}"
    lua.write_text(_WRK_POST_LUA % {"bodies": str(bodies_file), "headers": hdrs, "expect": expect})
    t = str(min(threads, concurrency))

    def wrk(seconds: float):
        return [shutil.which("wrk"), "-t", t, "-c", str(concurrency), "-d", f"{max(1, round(seconds))}s", "--timeout", "30s",
                "--latency", "-s", str(lua), server.base + "/"]

    def parse(done) -> dict:
        line = next((x for x in done.stdout.splitlines() if x.startswith("GLB ")), None)
        if done.returncode != 0 or line is None:
            raise RuntimeError(f"wrk failed ({done.returncode}):\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}")
        return json.loads(line[4:])

    warm = parse(run_child(wrk(warmup), timeout=warmup + 120)[0]) if warmup > 0 else {"ok": 0, "bad": 0, "connect": 0,
                                                                                     "read": 0, "write": 0, "timeout": 0}
    cpu0 = server.cpu()
    done, client_cpu = run_child(wrk(duration), timeout=duration + 120)
    cpu1 = server.cpu()
    r = parse(done)
    seconds = r["duration_us"] / 1e6
    errors = r["bad"] + r["connect"] + r["read"] + r["write"] + r["timeout"]
    warm_errors = warm["bad"] + warm["connect"] + warm["read"] + warm["write"] + warm["timeout"]
    return {"requests": r["requests"], "ok": r["ok"], "seconds": seconds, "rate": r["requests"] / seconds, "errors": errors,
            "error_detail": {k: r[k] for k in ("bad", "connect", "read", "write", "timeout", "status")},
            "p50_ms": r["p50_us"] / 1000, "p99_ms": r["p99_us"] / 1000, "mean_ms": r["mean_us"] / 1000,
            "max_ms": r["max_us"] / 1000, "server_cpu_split": cpu_split(cpu0, cpu1, seconds),
            "client_cpu": client_cpu / seconds, "client": "wrk", "warmup_ok": warm["ok"], "warmup_errors": warm_errors,
            "in_flight_at_end": 2 * concurrency}  # warm-up and timed run each stop with up to `concurrency` in flight


# ------------------------------------------------------- load generator (child)
def loadgen(spec_path: str) -> int:
    """The asyncio load generator, run as a separate process: ``server.py --loadgen SPEC``; prints JSON."""
    import httpx

    spec = json.loads(Path(spec_path).read_text())
    items = [line.rstrip(b"\n") for line in Path(spec["items"]).read_bytes().splitlines() if line.strip()]
    if spec["method"] == "GET":
        items = [i.decode() for i in items]
    conc, expect = spec["concurrency"], spec["expect"]
    headers = dict(spec["headers"])
    if spec["method"] == "POST":
        headers["Content-Type"] = "application/json"

    async def phase(client, seconds: float, record: bool, min_ok: int = 0, stagger: float = 0) -> dict:
        latencies: list[float] = []
        statuses: dict[int, int] = {}
        failures: list[str] = []
        counter = random.Random(0).randrange(len(items))
        ok = 0
        last_done = time.perf_counter()
        end = time.perf_counter() + seconds
        perf = time.perf_counter

        async def worker(k: int):
            nonlocal counter, ok, last_done
            if stagger:  # open the connections one by one, as independent clients would
                await asyncio.sleep(k * stagger)
            # A warm-up also lasts until min_ok requests succeeded (at most a minute more): the server's
            # worker threads each open the log and load the model on their first request.
            while perf() < end or (ok < min_ok and perf() < end + 60):
                counter = (counter + 1) % len(items)
                item = items[counter]
                t0 = perf()
                try:
                    if spec["method"] == "POST":
                        r = await client.post("/v1/decisions", content=item, headers=headers)
                    else:
                        r = await client.get(item, headers=headers)
                    await r.aread()
                    status = r.status_code
                except httpx.HTTPError as exc:
                    status = -1
                    if len(failures) < 5:
                        failures.append(f"{type(exc).__name__}: {exc}")
                t1 = perf()
                last_done = t1
                if record:
                    latencies.append(t1 - t0)
                statuses[status] = statuses.get(status, 0) + 1
                if status == expect:
                    ok += 1
                elif len(failures) < 5 and status != -1:
                    failures.append(f"{status}: {r.text[:300]}")

        start = perf()
        c0, s0 = time.process_time(), None
        if record and spec.get("server_pgid"):
            s0 = group_cpu(spec["server_pgid"])
        await asyncio.gather(*(worker(k) for k in range(conc)))
        elapsed = last_done - start
        out = {"ok": ok, "statuses": statuses, "failures": failures, "seconds": elapsed,
               "client_cpu": (time.process_time() - c0) / elapsed if elapsed else None}
        if s0 is not None:
            out["server_cpu_split"] = cpu_split(s0, group_cpu(spec["server_pgid"]), elapsed)
        if record:
            latencies.sort()
            out["latencies"] = latencies
        return out

    async def main() -> dict:
        limits = httpx.Limits(max_connections=conc, max_keepalive_connections=conc)
        async with httpx.AsyncClient(base_url=spec["base"], limits=limits, timeout=httpx.Timeout(120)) as client:
            warm = (await phase(client, spec["warmup"], False, spec.get("warmup_min_ok", 0), spec.get("stagger", 0))
                    if spec["warmup"] > 0
                    else {"ok": 0, "statuses": {}, "failures": []})
            timed = await phase(client, spec["duration"], True)
        lat = timed.pop("latencies")
        n = sum(timed["statuses"].values())
        return {"requests": n, "ok": timed["ok"], "seconds": timed["seconds"], "rate": n / timed["seconds"],
                "errors": n - timed["ok"], "warmup_ok": warm["ok"], "warmup_errors": sum(warm["statuses"].values()) - warm["ok"],
                "statuses": {str(k): v for k, v in timed["statuses"].items()},
                "failures": warm["failures"] + timed["failures"],
                "p50_ms": pct(lat, 0.50) * 1000, "p99_ms": pct(lat, 0.99) * 1000, "mean_ms": sum(lat) / len(lat) * 1000,
                "max_ms": lat[-1] * 1000, "server_cpu_split": timed.get("server_cpu_split", []), "client_cpu": timed["client_cpu"],
                "client": "httpx"}

    print(json.dumps(asyncio.run(main())))
    return 0


# -------------------------------------------------------------------- main
def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--workers", default="1,2", help="uvicorn worker processes to try, comma-separated (default 1,2)")
    ap.add_argument("--clients", default="8,32", help="concurrent clients, comma-separated (default 8,32)")
    ap.add_argument("--batch", default=str(BATCH), help="decisions per POST for the write runs, comma-separated, e.g. 1,100 "
                    "(one decision per request against batches of 100, side by side; default 100)")
    ap.add_argument("--duration", type=float, default=3, help="seconds timed per write run (default 3)")
    ap.add_argument("--read-duration", type=float, default=1, help="seconds timed per read run (default 1; whole seconds for wrk)")
    ap.add_argument("--warmup", type=float, default=1, help="untimed seconds before each run (default 1)")
    ap.add_argument("--reader", choices=["auto", "wrk", "httpx"], default="auto",
                    help="load generator for the GETs (default: wrk if installed, else httpx)")
    ap.add_argument("--writer", choices=["auto", "wrk", "httpx"], default="auto",
                    help="load generator for the POSTs (default: wrk with a Lua body script if installed, else httpx)")
    ap.add_argument("--wrk-threads", type=int, default=1, help="wrk threads (default 1)")
    ap.add_argument("--no-gzip", action="store_true", help="send Accept-Encoding: identity instead of gzip")
    ap.add_argument("--stagger-ms", type=float, default=20,
                    help="httpx clients open their connections this many ms apart (default 20; wrk opens all at once)")
    ap.add_argument("--nodelay", action="store_true",
                    help="work around uvicorn issue #3149 (no TCP_NODELAY with --workers > 1: ~40 ms per keep-alive "
                         "response): start the server with TCP_NODELAY set on its listening socket")
    ap.add_argument("--writes", default="all", help="write runs: 'all', 'none', or numbers (1-3) of: "
                    + "; ".join(f"{k}. {w}" for k, w in enumerate(WRITES, 1)))
    ap.add_argument("--reads", default="all", help="read runs: 'all', 'none', or numbers (1-7) of: "
                    + "; ".join(f"{k}. {r}" for k, r in enumerate(READS, 1)))
    ap.add_argument("--work-dir", type=Path, default=DEFAULT_WORK_DIR, help="where the temporary log goes (default bench/.cache)")
    ap.add_argument("--keep", action="store_true", help="keep the log's data directory")
    ap.add_argument("--json", metavar="PATH", help="write results as JSON")
    ap.add_argument("--wait", type=float, default=60, metavar="SECONDS",
                    help="wait up to this long for other benchmarks to finish and the machine to be quiet (1-min load < 0.5; default 60; 0 = don't)")
    ap.add_argument("--loadgen", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.loadgen:
        return loadgen(args.loadgen)

    workers = [int(x) for x in args.workers.split(",") if x]
    clients = [int(x) for x in args.clients.split(",") if x]

    def pick(spec: str, names: list[str]) -> list[str]:
        if spec == "all":
            return list(names)
        if spec == "none":
            return []
        try:
            return [names[int(k) - 1] for k in spec.split(",") if k.strip()]
        except (ValueError, IndexError):
            ap.error(f"runs are 'all', 'none' or numbers 1-{len(names)}, got {spec!r}")

    writes, reads = pick(args.writes, list(WRITES)), pick(args.reads, READS)
    reader = args.reader if args.reader != "auto" else ("wrk" if shutil.which("wrk") else "httpx")
    writer = args.writer if args.writer != "auto" else ("wrk" if shutil.which("wrk") else "httpx")
    if "wrk" in (reader, writer) and not shutil.which("wrk"):
        ap.error("wrk is not installed (apt-get install wrk), use --reader httpx --writer httpx")
    headers = {"Accept-Encoding": "identity" if args.no_gzip else "gzip"}

    args.work_dir.mkdir(parents=True, exist_ok=True)
    info = machine_info(args.work_dir)
    info.update(code_state())
    print_machine(info)
    console.print(f"[dim]server: uvicorn {info['versions']['uvicorn']} (h11 {info['versions']['h11']}, httptools "
                  f"{info['versions']['httptools'] or 'not installed'}, uvloop {info['versions']['uvloop'] or 'not installed'}),"
                  f" fastapi {info['versions']['fastapi']}; load: POSTs by "
                  f"{info.get('wrk', 'wrk') if writer == 'wrk' else 'httpx ' + info['versions']['httpx'] + ' asyncio'}, GETs by "
                  f"{info.get('wrk', 'wrk') if reader == 'wrk' else 'httpx ' + info['versions']['httpx'] + ' asyncio'}; sources {info['sources_sha256']}"
                  f"{'' if info.get('sources_match_head') else ' (+ local changes)'}[/dim]")
    others = wait_for_other_benches(args.wait)
    load_start = wait_for_quiet(args.wait)

    tmp = Path(tempfile.mkdtemp(prefix="server-", dir=args.work_dir))
    data_dir = tmp / "data"
    results: list[dict] = []
    setup: dict | None = None
    appended = 0
    in_flight = 0  # requests wrk left unanswered at a deadline: appended or not, never acknowledged
    failed: str | None = None
    try:
        with console.status("building the log (glasslog demo, a public-service deployment, an operator key)"):
            setup = build_log(data_dir)
        batches = [int(b) for b in args.batch.split(",")]
        # one-decision bodies need many more distinct bodies than batches of 100 (each carries unique subject ids)
        bodies = {(name, b): write_bodies(setup, tmp / f"bodies-{i}-{b}.jsonl", *WRITES[name], count=max(40, 4000 // b), size=b)
                  for i, name in enumerate(writes) for b in batches}
        auth = {**headers, "Authorization": "Bearer " + setup["token"]}
        total = len(workers) * len(clients) * (len(writes) * len(batches) + len(reads))
        timed = len(workers) * len(clients) * (len(writes) * len(batches) * args.duration + len(reads) * args.read_duration)
        console.print(f"log {data_dir}: {setup['initial_size']} entries; {total} runs, "
                      f"{timed:.0f} s timed + warm-ups and server starts")
        rng = random.Random(20261129)
        with progress() as p:
            task = p.add_task("runs", total=total)
            for w in workers:
                p.update(task, description=f"starting server, {w} worker{'s' if w > 1 else ''}")
                p.refresh()
                server = Server(data_dir, w, tmp / "serve.log", nodelay=args.nodelay)
                try:
                    server.wait_ready()
                    for name in writes:
                      for b in batches:  # noqa: E111 - one more loop level, kept flat for the diff
                        for c in clients:
                            p.update(task, description=f"{w}w {c:>2}c {name} x{b}")
                            p.refresh()
                            if writer == "wrk":
                                r = wrk_post_run(server, tmp, bodies_file=bodies[(name, b)], concurrency=c,
                                                 duration=args.duration, warmup=args.warmup, headers=auth,
                                                 threads=args.wrk_threads)
                                in_flight += r["in_flight_at_end"] * b
                            else:
                                r = httpx_run(server, tmp, method="POST", items_file=bodies[(name, b)], concurrency=c,
                                              duration=args.duration, warmup=args.warmup, headers=auth, expect=201,
                                              stagger=args.stagger_ms / 1000)
                            appended += (r["ok"] + r["warmup_ok"]) * b
                            results.append({"operation": name, "kind": "write", "workers": w, "clients": c, "batch": b,
                                            "ops_per_s": r["ok"] * b / r["seconds"],
                                            "server_cpu": sum(r["server_cpu_split"]), **r})
                            p.advance(task)
                            p.refresh()
                            if not server.alive():
                                raise RuntimeError(f"server died:\n{server.log_path.read_text()[-2000:]}")
                    import httpx

                    size = int(httpx.get(server.base + "/checkpoint").text.splitlines()[1])
                    from glasslog.ledger import Ledger

                    lg = Ledger.open(data_dir)
                    signed = [n for n, *_ in lg.checkpoints()]
                    lg.close()
                    for name in reads:
                        paths_file = tmp / "paths.txt"
                        paths_file.write_text("\n".join(read_paths(name, size, rng, signed=signed)) + "\n")
                        for c in clients:
                            p.update(task, description=f"{w}w {c:>2}c {name}")
                            p.refresh()
                            if reader == "wrk":
                                r = wrk_run(server, tmp, paths_file=paths_file, concurrency=c, duration=args.read_duration,
                                            warmup=args.warmup, headers=headers, threads=args.wrk_threads)
                            else:
                                r = httpx_run(server, tmp, method="GET", items_file=paths_file, concurrency=c,
                                              duration=args.read_duration, warmup=args.warmup, headers=headers, expect=200,
                                              stagger=args.stagger_ms / 1000)
                            results.append({"operation": name, "kind": "read", "workers": w, "clients": c,
                                            "ops_per_s": r["rate"], "server_cpu": sum(r["server_cpu_split"]),
                                            "tree_size": size, **r})
                            p.advance(task)
                            p.refresh()
                finally:
                    server.stop()
    except Exception as exc:  # noqa: BLE001 - report, then still check the log and write what was measured
        import traceback

        traceback.print_exc()
        failed = f"{type(exc).__name__}: {exc}"
        console.print(f"[red]run failed: {failed}[/red]")

    # ------------------------------------------------------- checks afterwards
    checks: dict = {}
    if setup is not None:
        from glasslog.ledger import Ledger

        lg = Ledger.open(data_dir)
        try:
            checks["tree_size"] = lg.size
            checks["signed_size"] = lg.signed_size()
        finally:
            lg.close()
        checks["expected_size"] = setup["initial_size"] + appended
        checks["unacknowledged_in_flight_max"] = in_flight
        # every acknowledged decision is in the log; with wrk, requests cut off at a deadline may be too
        checks["size_ok"] = (checks["tree_size"] == checks["signed_size"]
                             and checks["expected_size"] <= checks["tree_size"] <= checks["expected_size"] + in_flight)
        exe = Path(sys.executable).with_name("glasslog")
        cmd = [str(exe)] if exe.exists() else [sys.executable, "-c", "from glasslog.cli import main; main()"]
        with console.status(f"glasslog verify log ({checks['tree_size']:,} entries)"):
            t = time.perf_counter()
            v = subprocess.run(cmd + ["verify", "log", "--data-dir", str(data_dir)], capture_output=True, text=True)
        checks["verify_log_exit"] = v.returncode
        checks["verify_log_seconds"] = time.perf_counter() - t
        checks["verify_log_output"] = (v.stdout + v.stderr).strip()[-500:]
    errors = sum(r["errors"] + r.get("warmup_errors", 0) for r in results)

    # ------------------------------------------------------------------ report
    table = Table(title=f"glasslog serve over loopback ({reader} for GETs, {writer} for POSTs; "
                        f"Accept-Encoding {headers['Accept-Encoding']}"
                        f"{'; TCP_NODELAY workaround for --workers > 1' if args.nodelay else ''})")
    for col in ("operation", "workers", "clients", "ops/s", "req/s", "p50 ms", "p99 ms", "errors", "server cores",
                "server CPU ms / req", "client cores"):
        table.add_column(col, justify="left" if col == "operation" else "right")
    for r in results:
        table.add_row(r["operation"] + (f" x{r['batch']}" if r.get("batch") else ""), str(r["workers"]), str(r["clients"]), fmt_rate(r["ops_per_s"]), fmt_rate(r["rate"]),
                      f"{r['p50_ms']:.1f}", f"{r['p99_ms']:.1f}", str(r["errors"] + r.get("warmup_errors", 0)),
                      f"{r['server_cpu']:.2f}" + (f" ({'+'.join(f'{x:.2f}' for x in r['server_cpu_split'])})"
                                                  if len(r["server_cpu_split"]) > 1 else ""),
                      f"{1000 * r['server_cpu'] / r['rate']:.2f}" if r["rate"] else "-",
                      "-" if r["client_cpu"] is None else f"{r['client_cpu']:.2f}")
    console.print(table)
    for r in results:  # a rate from a handful of requests is noise: say so, and mark it in the JSON
        r["completed_requests"] = r["requests"]
        r["unreliable"] = r["requests"] < MIN_REQUESTS
        if r["unreliable"]:
            console.print(f"[bold red]UNRELIABLE: {r['workers']}w {r['clients']}c {r['operation']}"
                          f"{' x' + str(r['batch']) if r.get('batch') else ''}: only {r['requests']} request(s) completed"
                          f" in the timed window (fewer than {MIN_REQUESTS}); its rate and latencies mean little:"
                          f" run longer (--duration / --read-duration)[/bold red]")
    for w in dict.fromkeys(r["workers"] for r in results if r["kind"] == "read"):
        size = next(r["tree_size"] for r in results if r["kind"] == "read" and r["workers"] == w)
        console.print(f"reads with {w} worker{'s' if w > 1 else ''}: tree size {size:,}, partial tiles of width "
                      f"{size % 256 or 255} (.p/{size % 256 or 255})")
    console.print("ops/s: decisions/s for writes (x N: N decisions per request), reads/s for GETs; cores: CPU seconds per second of "
                  "the timed window (server: all its processes, and in brackets each busy process; client: the load "
                  "generator); server CPU ms / req: the server's CPU time per request answered (what a request costs, "
                  "whatever else the machine runs)")

    targets = []
    for name in dict.fromkeys(r["operation"] + (f" x{r['batch']}" if r.get("batch") else "") for r in results):
        rs = [r for r in results if r["operation"] + (f" x{r['batch']}" if r.get("batch") else "") == name]
        best = max(rs, key=lambda r: r["ops_per_s"])
        goal = (SINGLE_TARGET if name.endswith(" x1") else WRITE_TARGET) if best["kind"] == "write" else READ_TARGET
        targets.append({"operation": name, "target": goal, "best": best["ops_per_s"], "workers": best["workers"],
                        "clients": best["clients"], "met": best["ops_per_s"] >= goal, "unreliable": best["unreliable"],
                        "lowest": min(r["ops_per_s"] for r in rs)})
    for name in dict.fromkeys(r["operation"] for r in results if r["kind"] == "write"):
        by_batch = {r["batch"]: r for r in sorted(results, key=lambda r: r["ops_per_s"])
                    if r["operation"] == name and r.get("batch")}
        if 1 in by_batch and len(by_batch) > 1:
            big = max(by_batch)
            one, many = by_batch[1], by_batch[big]
            shaky = " [bold red](UNRELIABLE: too few requests in a run)[/bold red]" if (
                one["unreliable"] or many["unreliable"]) else ""
            console.print(f"{name}: one decision per request {one['ops_per_s']:,.0f}/s (p50 {one['p50_ms']:.1f} ms, "
                          f"p99 {one['p99_ms']:.1f} ms) vs batches of {big} {many['ops_per_s']:,.0f}/s in the same run: "
                          f"decisions/s one-per-request / batched = {one['ops_per_s'] / many['ops_per_s']:.2f}{shaky}")
    tt = Table(title="Targets (best configuration per operation)")
    for col in ("operation", "target /s", "best /s", "at workers x clients", "lowest /s", ""):
        tt.add_column(col, justify="left" if col in ("operation", "") else "right")
    for t in targets:
        tt.add_row(t["operation"], fmt_rate(t["target"]), fmt_rate(t["best"]), f"{t['workers']} x {t['clients']}",
                   fmt_rate(t["lowest"]), verdict(t["met"]) + (" [red](unreliable)[/red]" if t["unreliable"] else ""))
    tt.add_row("zero errors (any non-2xx, any transport error)", "0", str(errors), "", "", verdict(errors == 0 and not failed))
    if checks:
        tt.add_row((f"tree size = initial + acknowledged ({checks['expected_size']:,})" if not in_flight else
                    f"tree size: initial + acknowledged ({checks['expected_size']:,}) + at most {in_flight:,} cut off by wrk")
                   if checks.get("expected_size") else "tree size",
                   "", f"{checks['tree_size']:,}", "", "", verdict(bool(checks.get("size_ok"))))
        tt.add_row("glasslog verify log", "exit 0", f"exit {checks['verify_log_exit']}", "", "",
                   verdict(checks["verify_log_exit"] == 0))
    console.print(tt)
    if checks.get("verify_log_output"):
        console.print(f"[dim]{checks['verify_log_output'].splitlines()[-1]}[/dim]")
    for r in results:
        if r.get("failures"):
            console.print(f"[red]{r['workers']}w {r['clients']}c {r['operation']}: {r['failures'][:3]}[/red]")
    load_end = loadavg()
    console.print(f"1-min load average {load_start:.2f} at start, {load_end:.2f} at end")

    write_json(args.json, {
        "benchmark": "server",
        "machine": info,
        "load_average": {"start": load_start, "end": load_end},
        "other_benchmarks_at_start": others,
        "settings": {"workers": workers, "clients": clients, "duration": args.duration, "read_duration": args.read_duration,
                     "warmup": args.warmup, "reader": reader, "writer": writer, "nodelay_workaround": args.nodelay,
                     "stagger_ms": args.stagger_ms, "wrk_threads": args.wrk_threads, "batch": args.batch,
                     "accept_encoding": headers["Accept-Encoding"]},
        "results": [{k: v for k, v in r.items()} for r in results],
        "targets": targets,
        "unreliable_runs": sum(1 for r in results if r["unreliable"]),
        "min_requests_for_reliable": MIN_REQUESTS,
        "errors": errors,
        "checks": checks,
        "failed": failed,
    })
    if args.keep:
        console.print(f"kept {tmp}")
    else:
        shutil.rmtree(tmp, ignore_errors=True)
    ok = not failed and errors == 0 and checks.get("size_ok") and checks.get("verify_log_exit") == 0
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
