"""Shared helpers for the glasslog benchmarks: realistic decision entries,
machine description, cached fixtures (ledgers and pymerkle trees), Rich output
and JSON results.

Run the benchmarks themselves, not this module:

    .venv/bin/python bench/append.py  [--entries N]
    .venv/bin/python bench/proofs.py  [--sizes 10000,100000,1000000]
    .venv/bin/python bench/verify.py  [--sizes 10000,100000,1000000]
"""

from __future__ import annotations

import json
import os
import platform
import random
import shutil
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from glasslog.ledger import Entry, Ledger

BENCH_DIR = Path(__file__).resolve().parent
DEFAULT_WORK_DIR = BENCH_DIR / ".cache"
ORIGIN = "bench.example/credit-decisions"
DEFAULT_SEED = 20261129

# Wide enough for the result tables when output goes to a file or pipe.
console = Console(width=None if sys.stdout.isatty() else 160)

# A handful of deployments and registered models, as a bank running several
# credit-scoring services would have; each decision names one of each.
_DEPLOYMENTS = [
    "bank.example/credit-scoring/eu-west",
    "bank.example/credit-scoring/eu-central",
    "bank.example/overdraft-limit/eu-west",
]


def decision_objects(n: int, seed: int = DEFAULT_SEED, start: int = 0) -> Iterator[dict]:
    """Yield ``n`` realistic glasslog decision entries (JSON objects), deterministically.

    Schema as in ``glasslog.records.decision_entry``: type "decision",
    v 1, model / input / subject as ``sha256:<64 hex>`` commitments, a
    deployment string, an RFC 3339 UTC time with microseconds, and an output
    ``{"label": 0|1, "score": float}``.
    """
    rng = random.Random(f"{seed}:{start}")
    models = ["sha256:" + random.Random(f"model{k}").randbytes(32).hex() for k in range(len(_DEPLOYMENTS))]
    t0 = datetime(2026, 3, 2, 8, 0, 0, tzinfo=timezone.utc)
    for i in range(start, start + n):
        k = rng.randrange(len(_DEPLOYMENTS))
        score = rng.random()
        t = t0 + timedelta(microseconds=i * 37_000 + rng.randrange(37_000))
        yield {
            "type": "decision",
            "v": 1,
            "model": models[k],
            "deployment": _DEPLOYMENTS[k],
            "time": t.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
            "input": "sha256:" + rng.randbytes(32).hex(),
            "subject": "sha256:" + rng.randbytes(32).hex(),
            "output": {"label": int(score >= 0.5), "score": score},
        }


def make_entries(n: int, seed: int = DEFAULT_SEED, label: str = "validating entries") -> list[Entry]:
    """``n`` decision entries validated and canonicalised with ``Entry.from_object`` (with a progress bar)."""
    out: list[Entry] = []
    with progress() as p:
        task = p.add_task(label, total=n)
        chunk = 10_000
        for start in range(0, n, chunk):
            m = min(chunk, n - start)
            out.extend(Entry.from_object(o) for o in decision_objects(m, seed, start))
            p.advance(task, m)
            p.refresh()
    return out


def measure(label: str, contenders: dict[str, tuple], rounds: int = 20) -> dict[str, dict]:
    """Time several workloads side by side: ``{name: (fn, jobs)}``, each ``fn(*job)`` per job.

    Every workload is cut into ``rounds`` equal consecutive rounds, and the
    rounds are interleaved (round r of every workload, in an order rotated
    each round), so bursts of other work on a shared machine hit all of them
    alike. Returns per name, in calls per second: ``total`` (all jobs over
    their summed wall time), ``median`` / ``min`` / ``max`` over the rounds,
    and ``cpu`` (all jobs over this process's CPU time, which leaves out time
    the process spent waiting for a core).
    """
    perf, cpu = time.perf_counter, time.process_time
    names = list(contenders)
    chunks: dict[str, list[list]] = {}
    for name, (_, jobs) in contenders.items():
        size = max(1, -(-len(jobs) // rounds))
        chunks[name] = [jobs[s : s + size] for s in range(0, len(jobs), size)]
    walls: dict[str, list[tuple[int, float]]] = {k: [] for k in names}
    cpus = {k: 0.0 for k in names}
    with progress() as p:
        task = p.add_task(label, total=sum(len(j) for _, j in contenders.values()))
        for r in range(max(len(c) for c in chunks.values())):
            order = names[r % len(names):] + names[: r % len(names)]
            for name in order:
                if r >= len(chunks[name]):
                    continue
                fn, chunk = contenders[name][0], chunks[name][r]
                c0, t0 = cpu(), perf()
                for a in chunk:
                    fn(*a)
                walls[name].append((len(chunk), perf() - t0))
                cpus[name] += cpu() - c0
                p.advance(task, len(chunk))
                p.refresh()
    out = {}
    for name in names:
        n = sum(c for c, _ in walls[name])
        rates = sorted(c / w for c, w in walls[name])
        mid = len(rates) // 2
        median = rates[mid] if len(rates) % 2 else (rates[mid - 1] + rates[mid]) / 2
        out[name] = {"calls": n, "total": n / sum(w for _, w in walls[name]), "median": median,
                     "min": rates[0], "max": rates[-1], "cpu": n / cpus[name] if cpus[name] else None,
                     "rounds": len(rates)}
    return out


def progress() -> Progress:
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TaskProgressColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=console,
        transient=False,
        auto_refresh=False,  # no rendering thread competing for the GIL while timing; refreshed between rounds
    )


# ---------------------------------------------------------------- SQLite
def apply_pragmas(conn: sqlite3.Connection) -> None:
    """The ledger's durability settings: WAL and synchronous=FULL."""
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")


def db_bytes(db_path: Path) -> int:
    """Bytes of a SQLite database plus its WAL, after a TRUNCATE checkpoint."""
    conn = sqlite3.connect(db_path)
    try:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()
    finally:
        conn.close()
    total = db_path.stat().st_size
    wal = db_path.with_name(db_path.name + "-wal")
    if wal.exists():
        total += wal.stat().st_size
    return total


# -------------------------------------------------------------- fixtures
def store_digest() -> str:
    """Digest of the SQLite back end and the log front class: a cached ledger is rebuilt when the storage code changes."""
    import hashlib

    import glasslog.storage.sqlite.store as store

    return hashlib.sha256(Path(store.__file__).read_bytes()).hexdigest()[:16]


def _fixture_ok(path: Path, n: int, seed: int, store: str | None = None) -> bool:
    marker = path / "fixture.json"
    if not marker.is_file():
        return False
    try:
        info = json.loads(marker.read_text())
    except ValueError:
        return False
    return info.get("entries") == n and info.get("seed") == seed and (store is None or info.get("store") == store)


def ledger_fixture(work_dir: Path, n: int, seed: int = DEFAULT_SEED, entries: list[Entry] | None = None) -> Path:
    """A ledger of ``n`` decision entries, built once (in batches of 10,000 ``Entry`` objects) and reused.

    Rebuilt when ``store.py`` has changed since it was built (the storage layout may have).
    """
    path = work_dir / f"ledger-{n}-{seed}"
    if _fixture_ok(path, n, seed, store_digest()):
        return path
    if path.exists():
        shutil.rmtree(path)
    entries = entries if entries is not None else make_entries(n, seed, f"entries for the {n:,}-entry ledger")
    t = time.perf_counter()
    ledger = Ledger.create(path, ORIGIN)
    with progress() as p:
        task = p.add_task(f"building {n:,}-entry ledger", total=n)
        for start in range(0, n, 10_000):
            batch = entries[start : start + 10_000]
            ledger.append(batch)
            p.advance(task, len(batch))
            p.refresh()
    ledger.store.connection.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()
    ledger.close()
    (path / "fixture.json").write_text(json.dumps({"entries": n, "seed": seed, "store": store_digest(),
                                                   "build_seconds": time.perf_counter() - t}))
    return path


def pymerkle_fixture(work_dir: Path, n: int, seed: int = DEFAULT_SEED, entries: list[Entry] | None = None) -> Path:
    """A pymerkle 7 SqliteTree holding the same ``n`` entries, built once and reused."""
    from pymerkle import SqliteTree

    path = work_dir / f"pymerkle-{n}-{seed}"
    if _fixture_ok(path, n, seed):
        return path / "tree.db"
    if path.exists():
        shutil.rmtree(path)
    path.mkdir(parents=True)
    entries = entries if entries is not None else make_entries(n, seed, f"entries for the {n:,}-entry pymerkle tree")
    t = time.perf_counter()
    tree = SqliteTree(str(path / "tree.db"))
    apply_pragmas(tree.con)
    with progress() as p:
        task = p.add_task(f"building {n:,}-entry pymerkle tree", total=n)
        for start in range(0, n, 10_000):
            batch = [e.data for e in entries[start : start + 10_000]]
            tree.append_entries(batch)
            p.advance(task, len(batch))
            p.refresh()
    tree.con.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()
    tree.close()
    (path / "fixture.json").write_text(json.dumps({"entries": n, "seed": seed, "build_seconds": time.perf_counter() - t}))
    return path / "tree.db"


def open_pymerkle(db_path: Path):
    from pymerkle import SqliteTree

    tree = SqliteTree(str(db_path))
    apply_pragmas(tree.con)
    return tree


# --------------------------------------------------------------- machine
def _read(path: str) -> str:
    try:
        return Path(path).read_text()
    except OSError:
        return ""


def source_state() -> dict:
    """Which glasslog code is being measured: git HEAD, and whether src/glasslog/ledger differs from it.

    Others may be editing the working tree while a benchmark runs; the
    digest of the ledger sources at start identifies the code exactly.
    """
    import hashlib

    root = BENCH_DIR.parent
    ledger_src = root / "src" / "glasslog" / "ledger"
    digest = hashlib.sha256()
    for f in sorted(ledger_src.glob("*.py")):
        digest.update(f.name.encode() + b"\0" + f.read_bytes())
    state = {"ledger_sources_sha256": digest.hexdigest()[:16]}
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=root, capture_output=True, text=True, timeout=10)
        dirty = subprocess.run(["git", "diff", "--quiet", "HEAD", "--", "src/glasslog/ledger"], cwd=root, timeout=10)
        state["git_head"] = head.stdout.strip() or None
        state["ledger_sources_match_head"] = dirty.returncode == 0
    except (OSError, subprocess.SubprocessError):
        pass
    return state


def _exe() -> str:
    rel = os.path.relpath(sys.executable)
    return sys.executable if rel.startswith("..") else rel


def machine_info(work_dir: Path | None = None) -> dict:
    """Cores, CPU model, RAM, disk, OS, Python and SQLite versions, date."""
    cpuinfo = _read("/proc/cpuinfo")
    fields: dict[str, str] = {}
    for line in cpuinfo.splitlines():
        if ":" in line:
            k, _, v = line.partition(":")
            fields.setdefault(k.strip(), v.strip())
    flags = set(fields.get("flags", "").split())
    mem_kib = 0
    for line in _read("/proc/meminfo").splitlines():
        if line.startswith("MemTotal:"):
            mem_kib = int(line.split()[1])
    disk = ""
    where = work_dir or BENCH_DIR
    try:
        out = subprocess.run(["df", "-hT", str(where)], capture_output=True, text=True, timeout=10).stdout.splitlines()
        if len(out) >= 2:
            dev, fstype, size = out[1].split()[:3]
            disk = f"{dev} ({fstype}, {size})"
    except (OSError, subprocess.SubprocessError):
        pass
    return {
        "cores": os.cpu_count(),
        "cpu_model": fields.get("model name", platform.processor() or "unknown"),
        "cpu_family_model": f"family {fields.get('cpu family', '?')} model {fields.get('model', '?')}",
        "cpu_mhz": fields.get("cpu MHz"),
        "sha_ni": "sha_ni" in flags,
        "ram_gib": round(mem_kib / 1024 / 1024, 1),
        "disk": disk,
        "os": platform.platform(),
        "python": sys.version.split()[0],
        "sqlite": sqlite3.sqlite_version,
        "date": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "command": " ".join([_exe()] + sys.argv),
        **source_state(),
    }


def print_machine(info: dict) -> None:
    console.print(
        f"[dim]{info['cores']} cores, {info['cpu_model']} ({info['cpu_family_model']}, {info['cpu_mhz']} MHz,"
        f" SHA-NI {'yes' if info['sha_ni'] else 'no'}), {info['ram_gib']} GiB RAM, disk {info['disk']},"
        f" Python {info['python']}, SQLite {info['sqlite']}, {info['date']};"
        f" glasslog {info.get('git_head')}{'' if info.get('ledger_sources_match_head') else ' + local changes'}"
        f" (ledger sources {info['ledger_sources_sha256']})[/dim]"
    )


def loadavg() -> float:
    """1-minute load average (other processes on the machine skew the figures)."""
    try:
        return os.getloadavg()[0]
    except OSError:
        return float("nan")


DEFAULT_WAIT = 60.0


def add_wait_argument(ap, default: float = DEFAULT_WAIT) -> None:
    """The ``--wait SECONDS`` option every benchmark shares (see ``wait_for_quiet``)."""
    ap.add_argument("--wait", type=float, default=default, metavar="SECONDS",
                    help=f"wait up to this long for the 1-minute load average to drop below 0.5 before timing,"
                         f" printing when it starts waiting and when it gives up (default {default:g}; 0 = don't wait)")


def require_pymerkle(script: str) -> None:
    """Exit 2 with the one-line install instruction when pymerkle (the ``bench`` extra) is missing."""
    try:
        import pymerkle  # noqa: F401
    except ImportError:
        print(f"{script} needs pymerkle 7.0.0 (its baseline): .venv/bin/pip install pymerkle==7.0.0", file=sys.stderr)
        raise SystemExit(2) from None


def wait_for_quiet(max_wait: float, threshold: float = 0.5) -> float:
    """Wait up to ``max_wait`` seconds for the 1-minute load average to drop below ``threshold``.

    The benchmarks are single-threaded, but on a 2-core machine another busy
    process still takes a share of CPU, disk and memory bandwidth. Prints a
    line when it starts waiting and one when it gives up (with the load).
    Returns the load average when the run starts (it is recorded with the
    results).
    """
    la = loadavg()
    if la < threshold or max_wait <= 0:
        if la >= threshold:
            console.print(f"[yellow]1-min load {la:.2f} >= {threshold:.1f}; not waiting (--wait 0): other processes"
                          f" may skew the figures[/yellow]")
        return la
    console.print(f"waiting up to {max_wait:.0f} s for the machine to be quiet: 1-min load {la:.2f} >= {threshold:.1f}"
                  f" (--wait SECONDS to change, --wait 0 to skip)")
    deadline = time.monotonic() + max_wait
    t0 = time.monotonic()
    with console.status("waiting for the machine to be quiet (1-min load < %.1f)" % threshold) as st:
        while (la := loadavg()) >= threshold and time.monotonic() < deadline:
            st.update(f"waiting for the machine to be quiet: 1-min load {la:.2f} >= {threshold:.1f}"
                      f" ({deadline - time.monotonic():.0f}s left; --wait 0 to skip)")
            time.sleep(min(5.0, max(0.1, deadline - time.monotonic())))
    if la >= threshold:
        console.print(f"[yellow]gave up waiting after {time.monotonic() - t0:.0f} s: starting with 1-min load {la:.2f}"
                      f" >= {threshold:.1f}; other processes may skew the figures[/yellow]")
    else:
        console.print(f"machine quiet after {time.monotonic() - t0:.0f} s: 1-min load {la:.2f}")
    return la


def write_json(path: str | None, payload: dict) -> None:
    if not path:
        return
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(json.dumps(payload, indent=2) + "\n")
    console.print(f"results written to {p}")


def fmt_rate(x: float | None) -> str:
    return "-" if x is None else f"{x:,.0f}"


def fmt_ratio(x: float | None) -> str:
    return "-" if x is None else f"{x:.2f}x"


def verdict(ok: bool) -> str:
    return "[green]met[/green]" if ok else "[red]MISSED[/red]"
