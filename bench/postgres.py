"""The PostgreSQL back end: append throughput and inclusion proofs, side by side with SQLite and a plain table.

Append (``--append-entries``, default 100,000; batches of ``--batch``, default
1,000, each batch one durable transaction), three stores given the same
realistic decision entries (``common.decision_objects``), batch by batch, the
order rotated every batch:

* ``ledger on PostgreSQL``  ``Ledger.append`` of pre-validated ``Entry``
  objects on ``storage/postgres``: entries (binary COPY), stored-hash strips,
  signed checkpoint, the ``log_state`` row lock and compare-and-swap, one
  transaction per batch;
* ``ledger on SQLite``  the same on the embedded back end (WAL, synchronous=FULL);
* ``plain PostgreSQL table``  the same canonical bytes into
  ``(idx bigint primary key, data bytea)`` on the same server, with the same
  insert (binary COPY), one transaction per batch: the baseline. Target: the
  ledger on PostgreSQL takes at most 2x the plain table's time.

Inclusion proofs (``--entries``, default 1,000,000): a PostgreSQL log of that
many decision entries is built in batches of ``--build-batch`` (default
50,000; the build time is printed), and a SQLite log of the same entries for
comparison (``--no-sqlite-proofs`` to skip). Then ``Ledger.inclusion_proof(i, n)``
at random positions (fixed seed), a cold pass right after opening and a warm
pass, interleaved in rounds (``common.measure``): over TCP (127.0.0.1, what a
server on another host sees, minus the network) and, when this script runs
the server, over its unix socket. Each proof is two statements (the tree size,
then the strips holding the proof's hashes). Target: >= 5,000 proofs/s over TCP.

The server is a throwaway one from ``tests/pgserver.py`` (initdb in a
temporary directory, fsync on), unless ``--url`` names a database to use (it
must be empty; the benchmark's tables are dropped afterwards unless ``--keep``).

    .venv/bin/python bench/postgres.py
    .venv/bin/python bench/postgres.py --entries 100000 --append-entries 20000 --json bench/results/postgres.json
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import random
import shutil
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
    console,
    decision_objects,
    fmt_rate,
    fmt_ratio,
    loadavg,
    machine_info,
    make_entries,
    measure,
    print_machine,
    progress,
    verdict,
    wait_for_quiet,
    write_json,
)

from glasslog.ledger import Entry, Ledger, merkle  # noqa: E402

TARGET_OVERHEAD = 2.0
TARGET_PROOFS = 5_000
ROOT = Path(__file__).resolve().parents[1]


def load_pgserver():
    """tests/pgserver.py, imported by path (the tests package is not installed)."""
    spec = importlib.util.spec_from_file_location("glasslog_bench_pgserver", ROOT / "tests" / "pgserver.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


class ServerCPU:
    """CPU seconds used so far by the throwaway server's processes (postmaster and backends, from /proc).

    On a shared machine wall-clock figures depend on what else runs; CPU per
    operation, client and server, does much less.
    """

    def __init__(self, server, pgserver):
        self.server, self.pgserver = server, pgserver
        self.tick = os.sysconf("SC_CLK_TCK")

    def seconds(self) -> float:
        pid = self.server.postmaster_pid()
        total = 0
        for p in [pid, *self.pgserver._descendants(pid)]:
            try:
                stat = Path(f"/proc/{p}/stat").read_text()
                fields = stat[stat.rindex(")") + 2:].split()
                total += int(fields[11]) + int(fields[12])  # utime, stime
            except (OSError, ValueError, IndexError):
                continue
        return total / self.tick


class PlainTable:
    """The baseline: the same bytes in ``(idx bigint primary key, data bytea)``, binary COPY, one transaction a batch."""

    def __init__(self, url: str, table: str):
        import psycopg

        self.conn = psycopg.connect(url, autocommit=True)
        self.table = table
        self.conn.execute(f"CREATE TABLE {table} (idx bigint PRIMARY KEY, data bytea NOT NULL)")
        self.n = 0

    def append(self, rows: list[bytes]) -> None:
        with self.conn.transaction(), self.conn.cursor() as cur, \
                cur.copy(f"COPY {self.table} (idx, data) FROM STDIN (FORMAT BINARY)") as cp:
            cp.set_types(["int8", "bytea"])
            for i, data in enumerate(rows):
                cp.write_row((self.n + i, data))
        self.n += len(rows)

    def drop(self) -> None:
        self.conn.execute(f"DROP TABLE IF EXISTS {self.table}")
        self.conn.close()


def fresh_database(server, url: str | None, name: str) -> str:
    """A new database on our server, or the given URL (whose log tables must not exist yet)."""
    return server.create_database(name) if server is not None else url


def drop_log_tables(url: str) -> None:
    import psycopg

    from glasslog.storage.postgres.store import _TABLES

    with psycopg.connect(url, autocommit=True) as conn:
        for t in _TABLES:
            conn.execute(f"DROP TABLE IF EXISTS {t}")


def bench_append(args, server, work: Path) -> dict:
    n, batch = args.append_entries, args.batch
    entries = make_entries(n, args.seed, "entries for the append run")
    raw = [e.data for e in entries]
    url = fresh_database(server, args.url, "bench_append")
    pg = Ledger.create(work / "append-pg", ORIGIN, store=url)
    lite = Ledger.create(work / "append-sqlite", ORIGIN)
    plain = PlainTable(url, "bench_plain_entries")
    names = ["ledger on PostgreSQL", "ledger on SQLite", "plain PostgreSQL table"]
    ops = {names[0]: lambda s, e: pg.append(entries[s:e]),
           names[1]: lambda s, e: lite.append(entries[s:e]),
           names[2]: lambda s, e: plain.append(raw[s:e])}
    totals = {k: 0.0 for k in names}
    cpu = {k: 0.0 for k in names}
    server_cpu = {k: 0.0 for k in names}
    per_batch: dict[str, list[float]] = {k: [] for k in names}
    perf, process = time.perf_counter, time.process_time
    sampler = args.server_cpu
    with progress() as p:
        task = p.add_task(f"appending {n:,} entries x 3 stores", total=n)
        for b, s in enumerate(range(0, n, batch)):
            e = min(s + batch, n)
            r = b % len(names)
            for name in names[r:] + names[:r]:
                srv = sampler.seconds() if sampler else 0.0
                c0, t0 = process(), perf()
                ops[name](s, e)
                dt = perf() - t0
                cpu[name] += process() - c0
                if sampler:
                    server_cpu[name] += sampler.seconds() - srv
                totals[name] += dt
                per_batch[name].append(dt)
            p.advance(task, e - s)
            if b % 10 == 9:
                p.refresh()
    assert pg.size == lite.size == plain.n == n, "stores disagree on the number of entries"
    assert pg.root() == lite.root(), "the PostgreSQL and SQLite ledgers have different roots"
    pg.close()
    lite.close()
    if args.url:
        plain.drop()
        if not args.keep:
            drop_log_tables(url)
    else:
        plain.conn.close()

    def median(xs: list[float]) -> float:
        xs = sorted(xs)
        return xs[len(xs) // 2]

    out = {}
    for name in names:
        out[name] = {"entries": n, "seconds": totals[name], "decisions_per_s": n / totals[name],
                     "median_batch_ms": 1000 * median(per_batch[name]),
                     "time_vs_plain": totals[name] / totals["plain PostgreSQL table"],
                     "time_vs_sqlite_ledger": totals[name] / totals["ledger on SQLite"],
                     "client_cpu_ms_per_batch": 1000 * cpu[name] / len(per_batch[name]),
                     "server_cpu_ms_per_batch": (1000 * server_cpu[name] / len(per_batch[name])) if sampler else None}
    return out


def build_pg_log(args, server, work: Path) -> tuple[Path, str, float]:
    """A PostgreSQL log of ``--entries`` decision entries, appended in batches of ``--build-batch``."""
    n, step = args.entries, args.build_batch
    url = fresh_database(server, args.url, "bench_proofs")
    data_dir = work / "proofs-pg"
    t = time.perf_counter()
    lg = Ledger.create(data_dir, ORIGIN, store=url)
    with progress() as p:
        task = p.add_task(f"building the {n:,}-entry PostgreSQL log (batches of {step:,})", total=n)
        for s in range(0, n, step):
            m = min(step, n - s)
            lg.append([Entry.from_object(o) for o in decision_objects(m, args.seed, s)])
            p.advance(task, m)
            p.refresh()
    lg.close()
    return data_dir, url, time.perf_counter() - t


def build_sqlite_log(args, work: Path) -> tuple[Path, float]:
    n, step = args.entries, args.build_batch
    data_dir = work / "proofs-sqlite"
    t = time.perf_counter()
    lg = Ledger.create(data_dir, ORIGIN)
    with progress() as p:
        task = p.add_task(f"building the {n:,}-entry SQLite log (batches of {step:,})", total=n)
        for s in range(0, n, step):
            m = min(step, n - s)
            lg.append([Entry.from_object(o) for o in decision_objects(m, args.seed, s)])
            p.advance(task, m)
            p.refresh()
    lg.close()
    return data_dir, time.perf_counter() - t


def bench_proofs(args, server, work: Path) -> dict:
    n = args.entries
    data_dir, url, pg_build = build_pg_log(args, server, work)
    result: dict = {"entries": n, "build_seconds": {"PostgreSQL": pg_build}}
    opened = {"PostgreSQL (TCP)": Ledger.open(data_dir, store=url)}
    if server is not None:
        opened["PostgreSQL (unix socket)"] = Ledger.open(data_dir, store=server.url_for("bench_proofs", unix_socket=True))
    if not args.no_sqlite_proofs:
        lite_dir, lite_build = build_sqlite_log(args, work)
        result["build_seconds"]["SQLite"] = lite_build
        opened["SQLite"] = Ledger.open(lite_dir)
    roots = {name: lg.root(n) for name, lg in opened.items()}
    assert len(set(roots.values())) == 1, "the logs have different roots"
    root = next(iter(roots.values()))
    rng = random.Random(args.seed)
    check = opened["PostgreSQL (TCP)"]
    for i in rng.sample(range(n), min(200, n)):  # proofs verify before they are timed
        merkle.verify_inclusion(i, n, check.leaf_hash(i), check.inclusion_proof(i, n), root)
    passes = {}
    for label in ("cold", "warm"):
        jobs = [(rng.randrange(n), n) for _ in range(args.proofs)]
        contenders = {name: (lg.inclusion_proof, jobs) for name, lg in opened.items()}
        passes[label] = measure(f"inclusion proofs, {label} pass, n={n:,}", contenders)
    # A solo run on PostgreSQL over TCP (nothing interleaved), for the CPU each proof costs the client and the server.
    lg = opened["PostgreSQL (TCP)"]
    jobs = [rng.randrange(n) for _ in range(min(args.proofs, 10_000))]
    sampler = args.server_cpu
    srv = sampler.seconds() if sampler else 0.0
    c0, t0 = time.process_time(), time.perf_counter()
    for i in jobs:
        lg.inclusion_proof(i, n)
    wall, client = time.perf_counter() - t0, time.process_time() - c0
    result["solo_tcp"] = {"proofs": len(jobs), "per_s": len(jobs) / wall, "client_cpu_us": 1e6 * client / len(jobs),
                          "server_cpu_us": (1e6 * (sampler.seconds() - srv) / len(jobs)) if sampler else None}
    for lg in opened.values():
        lg.close()
    result["passes"] = passes
    if args.url and not args.keep:
        drop_log_tables(url)
    return result


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--entries", type=int, default=1_000_000, help="entries of the log proofs are made from (default 1,000,000)")
    ap.add_argument("--append-entries", type=int, default=100_000, help="entries appended per store in the append run")
    ap.add_argument("--batch", type=int, default=1_000, help="entries per batch in the append run (default 1,000)")
    ap.add_argument("--build-batch", type=int, default=50_000, help="entries per batch when building the proof log")
    ap.add_argument("--proofs", type=int, default=20_000, help="inclusion proofs per store per pass (default 20,000)")
    ap.add_argument("--no-sqlite-proofs", action="store_true", help="skip the SQLite log of the proof run")
    ap.add_argument("--skip-append", action="store_true")
    ap.add_argument("--skip-proofs", action="store_true")
    ap.add_argument("--url", help="use this (empty) PostgreSQL database instead of starting a throwaway server")
    ap.add_argument("--seed", type=int, default=DEFAULT_SEED)
    ap.add_argument("--work-dir", type=Path, default=DEFAULT_WORK_DIR)
    ap.add_argument("--keep", action="store_true", help="keep the databases and logs")
    ap.add_argument("--json", metavar="PATH", help="write results as JSON")
    ap.add_argument("--wait", type=float, default=60, metavar="SECONDS",
                    help="wait up to this long for the machine to be quiet before timing (default 60; 0 = don't)")
    args = ap.parse_args()
    if min(args.entries, args.append_entries, args.batch, args.build_batch, args.proofs) <= 0:
        ap.error("sizes must be positive")

    info = machine_info(args.work_dir)
    print_machine(info)
    server = None
    if args.url is None:
        pgserver = load_pgserver()
        reason = pgserver.skip_reason()
        if reason:
            console.print(f"[red]cannot start a PostgreSQL server: {reason}[/red] (or give --url)")
            return 2
        server = pgserver.PgServer()
        with console.status("starting a throwaway PostgreSQL server (initdb, pg_ctl start)"):
            server.start()
        info["postgres"] = f"{server.bin_dir} (throwaway, fsync on, {server.root})"
        args.server_cpu = ServerCPU(server, pgserver)
    else:
        from glasslog.storage.postgres.url import redact

        info["postgres"] = redact(args.url)
        args.server_cpu = None
    import psycopg

    with psycopg.connect(args.url or server.url, autocommit=True) as conn:
        info["postgres_version"] = conn.execute("SHOW server_version").fetchone()[0]
    console.print(f"[dim]PostgreSQL {info['postgres_version']}: {info['postgres']}[/dim]")

    args.work_dir.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="postgres-", dir=args.work_dir))
    load_start = wait_for_quiet(args.wait)
    params = {k: v for k, v in vars(args).items() if k != "server_cpu"}
    payload = {"benchmark": "postgres", "machine": info, "params": params | {"work_dir": str(args.work_dir),
                                                                              "url": bool(args.url)}}
    targets = []
    try:
        if not args.skip_append:
            append = bench_append(args, server, work)
            payload["append"] = append
            t = Table(title=f"Append: {args.append_entries:,} decisions, batches of {args.batch:,}, "
                            "each batch one durable transaction")
            for col in ("store", "seconds", "decisions/s", "median batch (ms)", "time / plain table", "time / SQLite ledger",
                        "client CPU ms/batch", "server CPU ms/batch"):
                t.add_column(col, justify="left" if col == "store" else "right")
            for name, r in append.items():
                srv = r["server_cpu_ms_per_batch"]
                t.add_row(name, f"{r['seconds']:.2f}", fmt_rate(r["decisions_per_s"]), f"{r['median_batch_ms']:.2f}",
                          fmt_ratio(r["time_vs_plain"]), fmt_ratio(r["time_vs_sqlite_ledger"]),
                          f"{r['client_cpu_ms_per_batch']:.2f}",
                          "-" if srv is None or name == "ledger on SQLite" else f"{srv:.2f}")
            console.print(t)
            pg = append["ledger on PostgreSQL"]
            targets.append((f"ledger on PostgreSQL: <= {TARGET_OVERHEAD:.0f}x the plain table's time",
                            f"{pg['time_vs_plain']:.2f}x", pg["time_vs_plain"] <= TARGET_OVERHEAD))
        if not args.skip_proofs:
            proofs = bench_proofs(args, server, work)
            payload["proofs"] = proofs
            builds = ", ".join(f"{k} {v:.1f} s ({args.entries / v:,.0f} entries/s)" for k, v in proofs["build_seconds"].items())
            console.print(f"built the {args.entries:,}-entry logs in batches of {args.build_batch:,}: {builds}")
            t = Table(title=f"Inclusion proofs per second at {args.entries:,} entries "
                            "(Ledger.inclusion_proof, random positions; cold: whole pass; warm: median of rounds)")
            t.add_column("store")
            t.add_column("cold", justify="right")
            t.add_column("warm (median)", justify="right")
            t.add_column("warm min / max", justify="right")
            t.add_column("warm per CPU s", justify="right")
            t.add_column("warm vs SQLite", justify="right")
            lite = proofs["passes"]["warm"].get("SQLite", {}).get("median")
            for name, warm in proofs["passes"]["warm"].items():
                cold = proofs["passes"]["cold"][name]
                t.add_row(name, fmt_rate(cold["total"]), fmt_rate(warm["median"]),
                          f"{fmt_rate(warm['min'])} / {fmt_rate(warm['max'])}", fmt_rate(warm["cpu"]),
                          fmt_ratio(warm["median"] / lite) if lite else "-")
            console.print(t)
            solo = proofs["solo_tcp"]
            console.print(f"PostgreSQL (TCP), {solo['proofs']:,} proofs alone: {solo['per_s']:,.0f}/s; CPU per proof: client "
                          f"{solo['client_cpu_us']:.0f} us" + (f", server {solo['server_cpu_us']:.0f} us"
                                                               if solo["server_cpu_us"] is not None else ""))
            tcp = proofs["passes"]["warm"]["PostgreSQL (TCP)"]["median"]
            targets.append((f"inclusion proofs on PostgreSQL (TCP) at {args.entries:,}: >= {TARGET_PROOFS:,}/s",
                            f"{tcp:,.0f}/s", tcp >= TARGET_PROOFS))
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
        else:
            console.print(f"data directories kept in {work} (a throwaway server's databases go with it)")
        if server is not None:
            server.close()
    tt = Table(title="Targets")
    tt.add_column("target")
    tt.add_column("measured", justify="right")
    tt.add_column("")
    for label, measured, ok in targets:
        tt.add_row(label, measured, verdict(ok))
    console.print(tt)
    console.print(f"1-min load average {load_start:.2f} at start, {loadavg():.2f} at end")
    payload["load_average"] = {"start": load_start, "end": loadavg()}
    payload["targets"] = [{"target": label, "measured": m, "met": ok} for label, m, ok in targets]
    write_json(args.json, payload)
    return 0


if __name__ == "__main__":
    sys.exit(main())
