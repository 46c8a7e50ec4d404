"""``glasslog serve`` with two worker processes on PostgreSQL against the same on SQLite: decisions/s in batches of 100.

Runs ``bench/server.py`` twice in one go, the same way each time (a fresh demo log, an operator key, POSTs of 100
decisions with their outputs to the private deployment, 2 workers, the given clients), first on the embedded SQLite
file, then with ``GLASSLOG_STORE`` pointing at a fresh database of a throwaway PostgreSQL server started from
Debian's binaries (``tests/pgserver.py``; or ``--url`` for your own), and prints both figures and their ratio.
Each run ends with ``glasslog verify log`` on its log.

    .venv/bin/python bench/server_postgres.py                     # about 2 minutes
    .venv/bin/python bench/server_postgres.py --clients 32 --duration 10
    .venv/bin/python bench/server_postgres.py --batch 1 --clients 64 --warmup 10   # one decision per request
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(Path(__file__).resolve().parent))
from postgres import load_pgserver  # noqa: E402


def run_bench(args, env: dict, out: Path) -> dict:
    cmd = [sys.executable, str(ROOT / "bench" / "server.py"), "--workers", "2", "--clients", str(args.clients),
           "--writes", "1", "--reads", "none", "--duration", str(args.duration), "--warmup", str(args.warmup),
           "--batch", str(args.batch), "--wait", "5", "--json", str(out)]
    subprocess.run(cmd, env=env, check=False, stdout=subprocess.DEVNULL if not args.verbose else None)
    data = json.loads(out.read_text())
    write = next(r for r in data["results"] if r["kind"] == "write")
    return {"decisions_per_s": write["ops_per_s"], "p50_ms": write["p50_ms"], "p99_ms": write["p99_ms"],
            "errors": sum(r["errors"] for r in data["results"]), "checks": data.get("checks", {})}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--clients", type=int, default=32)
    ap.add_argument("--duration", type=float, default=6)
    ap.add_argument("--warmup", type=float, default=3)
    ap.add_argument("--batch", type=int, default=100, help="decisions per POST (default 100; 1 for one decision per request)")
    ap.add_argument("--url", help="an existing PostgreSQL server's base URL (a fresh database is created in it)")
    ap.add_argument("--verbose", action="store_true", help="show bench/server.py's own tables")
    ap.add_argument("--json", help="write both results here")
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="server-pg-"))
    env = {k: v for k, v in os.environ.items() if k != "GLASSLOG_STORE"}
    print(f"{os.cpu_count()} cores, 1-min load {os.getloadavg()[0]:.2f}; 2 workers, {args.clients} clients, batches of {args.batch}")
    sqlite = run_bench(args, env, work / "sqlite.json")
    server = None
    if args.url:
        import psycopg

        base = args.url
    else:
        pgserver = load_pgserver()
        server = pgserver.PgServer()
        server.start()
        base = server.url
    try:
        name = "bench_" + uuid.uuid4().hex[:12]
        if server is not None:
            url = server.create_database(name)
        else:
            with psycopg.connect(base, autocommit=True) as conn:
                conn.execute(f'CREATE DATABASE "{name}"')
            url = base.rsplit("/", 1)[0] + "/" + name
        pg = run_bench(args, {**env, "GLASSLOG_STORE": url}, work / "postgres.json")
    finally:
        if server is not None:
            server.close()
    for label, r in (("SQLite", sqlite), ("PostgreSQL", pg)):
        print(f"{label:11} {r['decisions_per_s']:8,.0f} decisions/s  p50 {r['p50_ms']:7.1f} ms  p99 {r['p99_ms']:7.1f} ms  "
              f"errors {r['errors']}  verify log exit {r['checks'].get('verify_log_exit', '?')}, tree size ok {r['checks'].get('size_ok', '?')}")
    ratio = pg["decisions_per_s"] / sqlite["decisions_per_s"]
    print(f"PostgreSQL / SQLite: {ratio:.2f}  (target: at least 1.00)  1-min load {os.getloadavg()[0]:.2f} at end")
    if args.json:
        Path(args.json).write_text(json.dumps({"sqlite": sqlite, "postgres": pg, "ratio": ratio, "args": vars(args)}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
