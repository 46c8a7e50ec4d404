"""Proof verification: inclusion and consistency proofs verified per second.

What a receipt holder or a monitor does offline: check an inclusion proof
against a signed root (``glasslog.ledger.merkle.verify_inclusion``) and a
consistency proof between two roots (``glasslog.ledger.merkle.verify_consistency``).
The baseline is pymerkle 7.0.0's ``verify_inclusion`` / ``verify_consistency``
on pymerkle's own proofs of the same positions in a tree of the same entries.

Proofs are generated before timing, from the cached fixtures (the same ones
``bench/proofs.py`` uses), at random (fixed seed) positions against the full
tree: inclusion of entry ``i`` uniform in ``[0, n)``, consistency from ``m``
uniform in ``[1, n)`` to ``n``. Verification is pure computation (SHA-256 and
Python), so it depends on the proof length (about log2 n hashes), not on storage.
The four workloads run in interleaved rounds (see ``common.measure``); the
table shows the median round rate (wall clock) and the rate per CPU second.

A tampered proof is checked to be rejected by both verifiers.

    .venv/bin/python bench/verify.py
    .venv/bin/python bench/verify.py --sizes 1000000 --proofs 50000 --json bench/results/verify.json
"""

from __future__ import annotations

import argparse
import random
import sys
from pathlib import Path

from rich.table import Table

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import (  # noqa: E402
    DEFAULT_SEED,
    DEFAULT_WORK_DIR,
    console,
    fmt_rate,
    fmt_ratio,
    loadavg,
    machine_info,
    measure,
    open_pymerkle,
    print_machine,
    progress,
    require_pymerkle,
    wait_for_quiet,
    write_json,
)
from proofs import ensure_fixtures, parse_sizes  # noqa: E402

from glasslog.ledger import Ledger, ProofError, merkle  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="10000,100000,1000000", help="comma-separated tree sizes (default 10000,100000,1000000)")
    ap.add_argument("--proofs", type=int, default=20_000, help="proofs per kind and size (default 20,000)")
    ap.add_argument("--no-pymerkle", action="store_true", help="skip the pymerkle baseline")
    ap.add_argument("--seed", type=int, default=DEFAULT_SEED)
    ap.add_argument("--work-dir", type=Path, default=DEFAULT_WORK_DIR, help="fixture cache (default bench/.cache)")
    ap.add_argument("--json", metavar="PATH", help="write results as JSON")
    ap.add_argument("--wait", type=float, default=60, metavar="SECONDS",
                    help="wait up to this long for the machine to be quiet before timing (1-min load < 0.5; default 60; 0 = don't)")
    args = ap.parse_args()
    sizes = parse_sizes(args.sizes)
    k = args.proofs
    with_pm = not args.no_pymerkle
    if with_pm:
        require_pymerkle("bench/verify.py")

    info = machine_info(args.work_dir)
    print_machine(info)
    args.work_dir.mkdir(parents=True, exist_ok=True)
    fixtures = ensure_fixtures(args.work_dir, sizes, args.seed, with_pymerkle=with_pm)
    load_start = wait_for_quiet(args.wait)
    import pymerkle

    results: dict[int, dict] = {}
    for n in sizes:
        ledger_dir, pm_db = fixtures[n]
        rng = random.Random(f"{args.seed}:verify:{n}")
        idx = [rng.randrange(n) for _ in range(k)]
        olds = [rng.randrange(1, n) for _ in range(k)]
        res: dict = {}

        # ---- untimed: glasslog proofs, leaf hashes and roots
        with Ledger.open(ledger_dir) as ledger:
            root = ledger.root(n)
            with progress() as p:
                task = p.add_task(f"generating glasslog proofs, n={n:,}", total=2 * k)
                inc = []
                for i in idx:
                    inc.append((i, n, ledger.leaf_hash(i), ledger.inclusion_proof(i, n), root))
                    p.advance(task)
                    if p.tasks[0].completed % 1000 == 0:
                        p.refresh()
                con = []
                for m in olds:
                    con.append((m, n, ledger.root(m), root, ledger.consistency_proof(m, n)))
                    p.advance(task)
                    if p.tasks[0].completed % 1000 == 0:
                        p.refresh()
        avg_len = {"inclusion": sum(len(j[3]) for j in inc) / k, "consistency": sum(len(j[4]) for j in con) / k}

        # tampered proofs must fail
        i, _, leaf, proof, _ = inc[0]
        bad = [bytes(32)] + list(proof[1:]) if proof else proof
        if proof:
            try:
                merkle.verify_inclusion(i, n, leaf, bad, root)
                raise AssertionError("glasslog accepted a tampered inclusion proof")
            except ProofError:
                pass

        contenders = {"glasslog_inclusion": (merkle.verify_inclusion, inc),
                      "glasslog_consistency": (merkle.verify_consistency, con)}

        if with_pm:
            tree = open_pymerkle(pm_db)
            with progress() as p:
                task = p.add_task(f"generating pymerkle proofs, n={n:,}", total=2 * k)
                pinc = []
                for (i, _, leaf, _, _) in inc:
                    pinc.append((leaf, root, tree.prove_inclusion(i + 1, n), i + 1, n))
                    p.advance(task)
                    if p.tasks[0].completed % 1000 == 0:
                        p.refresh()
                pcon = []
                for (m, _, old_root, _, _) in con:
                    pcon.append((old_root, root, tree.prove_consistency(m, n), m, n))
                    p.advance(task)
                    if p.tasks[0].completed % 1000 == 0:
                        p.refresh()
            tree.close()
            # same roots and leaf hashes as glasslog: pymerkle's proofs must verify against them
            pymerkle.verify_inclusion(*pinc[0][:3], index=pinc[0][3], size=n)
            leaf0 = pinc[0][0]
            try:
                pymerkle.verify_inclusion(bytes(32) if leaf0 != bytes(32) else b"\x01" * 32, root, pinc[0][2], index=pinc[0][3], size=n)
                raise AssertionError("pymerkle accepted a wrong leaf")
            except pymerkle.InvalidProof:
                pass

            def pm_inc(base, rt, proof, index, size):
                pymerkle.verify_inclusion(base, rt, proof, index=index, size=size)

            def pm_con(prior, later, proof, prior_size, later_size):
                pymerkle.verify_consistency(prior, later, proof, prior_size=prior_size, later_size=later_size)

            contenders["pymerkle_inclusion"] = (pm_inc, pinc)
            contenders["pymerkle_consistency"] = (pm_con, pcon)
        res.update(measure(f"verifying, n={n:,}", contenders))
        res["avg_proof_hashes"] = avg_len
        results[n] = res

    t = Table(title=f"Proof verification (proofs verified/s; {k:,} proofs per kind and size, random positions)")
    for col, just in (("tree size", "right"), ("proof", "left"), ("avg hashes", "right"),
                      ("glasslog /s wall", "right"), ("pymerkle /s wall", "right"), ("glasslog / pymerkle wall", "right"),
                      ("glasslog /CPU s", "right"), ("pymerkle /CPU s", "right"), ("glasslog / pymerkle CPU", "right")):
        t.add_column(col, justify=just)
    for n, res in results.items():
        for kind in ("inclusion", "consistency"):
            g, gc = res[f"glasslog_{kind}"]["median"], res[f"glasslog_{kind}"]["cpu"]
            pm = res.get(f"pymerkle_{kind}", {})
            pw, pc = pm.get("median"), pm.get("cpu")
            t.add_row(f"{n:,}", kind, f"{res['avg_proof_hashes'][kind]:.1f}", fmt_rate(g), fmt_rate(pw),
                      fmt_ratio(g / pw if pw else None), fmt_rate(gc), fmt_rate(pc), fmt_ratio(gc / pc if pc and gc else None))
    console.print(t)
    console.print("wall: median of 20 rounds, glasslog and pymerkle rounds interleaved (robust to bursts of other work on the machine);"
                  " CPU: proofs per CPU second of this process (leaves out time spent waiting for a core). Totals are in the JSON.")
    console.print(f"1-min load average {load_start:.2f} at start, {loadavg():.2f} at end")

    write_json(args.json, {
        "benchmark": "verify",
        "machine": info,
        "load_average": {"start": load_start, "end": loadavg()},
        "params": {"sizes": sizes, "proofs": k, "seed": args.seed, "pymerkle": with_pm},
        "results": {str(n): r for n, r in results.items()},
    })
    return 0


if __name__ == "__main__":
    sys.exit(main())
