"""Proof generation: inclusion and consistency proofs per second at several tree sizes.

For each size (default 10,000, 100,000 and 1,000,000 entries) a ledger and a
pymerkle 7.0.0 SqliteTree holding the same decision entries are built once
(cached under ``bench/.cache``) and reused. Each is opened fresh, then asked
for proofs at random (fixed seed) positions against the full tree size:

* inclusion: ``Ledger.inclusion_proof(i, n)`` vs ``SqliteTree.prove_inclusion(i + 1, n)``
  (pymerkle counts leaves from one), ``i`` uniform in ``[0, n)``;
* consistency: ``Ledger.consistency_proof(m, n)`` vs ``SqliteTree.prove_consistency(m, n)``,
  ``m`` uniform in ``[1, n)``.

Two passes with different random positions are timed for both stores: the
first right after opening ("cold": pymerkle computes subtree roots from its
leaves and fills its in-memory subroot cache; the figure is the whole pass),
the second after it ("warm": the median of its 20 equal rounds, which is
robust to bursts of other work on a shared machine). Within a pass the four
workloads (glasslog and pymerkle, inclusion and consistency) run in
interleaved rounds, so other work on the machine hits them alike. The glasslog ledger
keeps every complete subtree hash on disk, so it has no warm-up beyond
SQLite's page cache. The JSON holds every rate (total, median, min, max, and
per CPU second) for both passes.

Before timing, a sample of proofs is cross-checked: glasslog proofs verify
with ``glasslog.ledger.merkle.verify_*`` against ``Ledger.root``, the two
stores have the same root, and glasslog's audit paths equal pymerkle's.

    .venv/bin/python bench/proofs.py
    .venv/bin/python bench/proofs.py --sizes 10000,100000 --proofs 5000 --json bench/results/proofs.json
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
    _fixture_ok,
    console,
    fmt_rate,
    fmt_ratio,
    ledger_fixture,
    loadavg,
    machine_info,
    make_entries,
    measure,
    open_pymerkle,
    print_machine,
    pymerkle_fixture,
    require_pymerkle,
    store_digest,
    verdict,
    wait_for_quiet,
    write_json,
)

from glasslog.ledger import Ledger, merkle  # noqa: E402

TARGET_RATE = 10_000
FLAT_MIN = 0.75  # "flat in tree size": rate at the largest size >= 75% of the rate at the smallest


def parse_sizes(text: str) -> list[int]:
    return sorted({int(x.replace("_", "")) for x in text.split(",") if x.strip()})


def ensure_fixtures(work_dir: Path, sizes: list[int], seed: int, with_pymerkle: bool) -> dict[int, tuple[Path, Path | None]]:
    missing = [n for n in sizes if not _fixture_ok(work_dir / f"ledger-{n}-{seed}", n, seed, store_digest())
               or (with_pymerkle and not _fixture_ok(work_dir / f"pymerkle-{n}-{seed}", n, seed))]
    entries = make_entries(max(missing), seed, "entries for the fixtures") if missing else None
    out = {}
    for n in sizes:
        part = entries[:n] if entries is not None else None
        out[n] = (ledger_fixture(work_dir, n, seed, part), pymerkle_fixture(work_dir, n, seed, part) if with_pymerkle else None)
    return out


def cross_check(ledger: Ledger, tree, n: int, rng: random.Random, samples: int = 200) -> None:
    root = ledger.root(n)
    if tree is not None:
        assert tree.get_root(n) == root, f"pymerkle and glasslog roots differ at size {n}"
    for _ in range(samples):
        i = rng.randrange(n)
        proof = ledger.inclusion_proof(i, n)
        merkle.verify_inclusion(i, n, ledger.leaf_hash(i), proof, root)
        if tree is not None:
            assert tree.prove_inclusion(i + 1, n).path[1:] == proof, f"audit paths differ at index {i}, size {n}"
        if n > 1:
            m = rng.randrange(1, n)
            merkle.verify_consistency(m, n, ledger.root(m), root, ledger.consistency_proof(m, n))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="10000,100000,1000000", help="comma-separated tree sizes (default 10000,100000,1000000)")
    ap.add_argument("--proofs", type=int, default=20_000, help="proofs per kind, per pass, per size for glasslog (default 20,000)")
    ap.add_argument("--pymerkle-proofs", type=int, default=None, help="the same for pymerkle (default: same as --proofs; 0 to skip)")
    ap.add_argument("--seed", type=int, default=DEFAULT_SEED)
    ap.add_argument("--work-dir", type=Path, default=DEFAULT_WORK_DIR, help="fixture cache (default bench/.cache)")
    ap.add_argument("--json", metavar="PATH", help="write results as JSON")
    ap.add_argument("--wait", type=float, default=60, metavar="SECONDS",
                    help="wait up to this long for the machine to be quiet before timing (1-min load < 0.5; default 60; 0 = don't)")
    args = ap.parse_args()
    sizes = parse_sizes(args.sizes)
    k = args.proofs
    k_pm = k if args.pymerkle_proofs is None else args.pymerkle_proofs
    if k_pm > 0:
        require_pymerkle("bench/proofs.py")

    info = machine_info(args.work_dir)
    print_machine(info)
    args.work_dir.mkdir(parents=True, exist_ok=True)
    fixtures = ensure_fixtures(args.work_dir, sizes, args.seed, with_pymerkle=k_pm > 0)
    load_start = wait_for_quiet(args.wait)

    results: dict[int, dict] = {}
    for n in sizes:
        ledger_dir, pm_db = fixtures[n]
        rng = random.Random(f"{args.seed}:proofs:{n}")
        passes = {
            p: {
                "inclusion": [(rng.randrange(n), n) for _ in range(max(k, k_pm))],
                "consistency": [(rng.randrange(1, n), n) for _ in range(max(k, k_pm))] if n > 1 else [],
            }
            for p in ("cold", "warm")
        }
        res: dict = {"glasslog": {}, "pymerkle": {}}

        # ---- cross-check on separate connections, so the timed ones start cold
        # (the timed passes interleave glasslog and pymerkle, inclusion and consistency, round by round)
        with Ledger.open(ledger_dir) as chk:
            tree = open_pymerkle(pm_db) if pm_db is not None else None
            with console.status(f"cross-checking proofs at size {n:,}"):
                cross_check(chk, tree, n, random.Random(f"{args.seed}:check:{n}"))
            if tree is not None:
                tree.close()

        ledger = Ledger.open(ledger_dir)
        tree = open_pymerkle(pm_db) if pm_db is not None and k_pm else None
        for p in ("cold", "warm"):
            contenders = {
                "glasslog inclusion": (ledger.inclusion_proof, passes[p]["inclusion"][:k]),
                "glasslog consistency": (ledger.consistency_proof, passes[p]["consistency"][:k]),
            }
            if tree is not None:
                contenders["pymerkle inclusion"] = (lambda i, s, tree=tree: tree.prove_inclusion(i + 1, s), passes[p]["inclusion"][:k_pm])
                contenders["pymerkle consistency"] = (tree.prove_consistency, passes[p]["consistency"][:k_pm])
            contenders = {name: c for name, c in contenders.items() if c[1]}
            for name, stats in measure(f"{p} pass, n={n:,}", contenders).items():
                store, kind = name.split()
                res[store][f"{kind}_{p}"] = stats
        ledger.close()
        if tree is not None:
            res["pymerkle"]["cache"] = tree.get_cache_info()._asdict()
            tree.close()
        results[n] = res

    # ---- report: cold = the whole first pass (includes pymerkle filling its cache);
    # warm = median of the rounds of the second pass (robust to other work on the machine)
    def cold(d: dict, key: str) -> float | None:
        return d[key]["total"] if key in d else None

    def warm(d: dict, key: str) -> float | None:
        return d[key]["median"] if key in d else None

    t = Table(title=f"Proof generation, proofs/s ({k:,} glasslog and {k_pm:,} pymerkle proofs per kind, pass and size; random positions)")
    for col, just in (("tree size", "right"), ("proof", "left"), ("glasslog cold", "right"), ("glasslog warm", "right"),
                      ("pymerkle cold", "right"), ("pymerkle warm", "right"),
                      ("glasslog / pymerkle cold", "right"), ("glasslog / pymerkle warm", "right")):
        t.add_column(col, justify=just)
    for n, res in results.items():
        for kind in ("inclusion", "consistency"):
            g, pm = res["glasslog"], res["pymerkle"]
            gc, gw = cold(g, f"{kind}_cold"), warm(g, f"{kind}_warm")
            pc, pw = cold(pm, f"{kind}_cold"), warm(pm, f"{kind}_warm")
            t.add_row(f"{n:,}", kind, fmt_rate(gc), fmt_rate(gw), fmt_rate(pc), fmt_rate(pw),
                      fmt_ratio(gc / pc if gc and pc else None), fmt_ratio(gw / pw if gw and pw else None))
    console.print(t)
    console.print("cold: whole first pass right after opening; warm: median of the 20 rounds of a second pass at other positions;"
                  " glasslog and pymerkle rounds interleaved")
    console.print(f"1-min load average {load_start:.2f} at start, {loadavg():.2f} at end")

    targets = []
    lo, hi = sizes[0], sizes[-1]
    for kind in ("inclusion", "consistency"):
        for p, get in (("warm", warm), ("cold", cold)):
            worst = min(get(results[n]["glasslog"], f"{kind}_{p}") or float("inf") for n in sizes)
            targets.append((f"glasslog {kind} ({p}): >= {TARGET_RATE:,} proofs/s at every size", f"{worst:,.0f}", worst >= TARGET_RATE))
        if hi != lo:
            a = warm(results[lo]["glasslog"], f"{kind}_warm")
            b = warm(results[hi]["glasslog"], f"{kind}_warm")
            if a and b:
                targets.append((f"glasslog {kind}: flat, warm rate at {hi:,} >= {FLAT_MIN:.0%} of rate at {lo:,}",
                                f"{b / a:.0%}", b / a >= FLAT_MIN))
    tt = Table(title="Targets")
    tt.add_column("target")
    tt.add_column("measured", justify="right")
    tt.add_column("")
    for label, measured, ok in targets:
        tt.add_row(label, measured, verdict(ok))
    console.print(tt)

    write_json(args.json, {
        "benchmark": "proofs",
        "machine": info,
        "load_average": {"start": load_start, "end": loadavg()},
        "params": {"sizes": sizes, "proofs": k, "pymerkle_proofs": k_pm, "seed": args.seed},
        "results": {str(n): r for n, r in results.items()},
        "targets": [{"target": label, "measured": m, "met": ok} for label, m, ok in targets],
    })
    return 0


if __name__ == "__main__":
    sys.exit(main())
