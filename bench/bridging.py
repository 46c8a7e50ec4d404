"""Bridging ranking of flags (glasslog.oversight.bridging) against ranking by helpful share (Wilson lower bound).

Synthetic two-camp rater populations (camp A three times camp B; flags that both camps find helpful, that
only one camp does, and that nobody does; seeded), at three sizes. For each it prints, side by side:

- quality: in how many of the seeds a flag only one camp likes ranks above a flag both camps support
  (bridging vs Wilson), and how many both-camp / one-camp flags are confirmed;
- cost: seconds to score and rank all flags (bridging fit vs Wilson only) and the ratio.

Run: python bench/bridging.py [--seeds 5]
"""

from __future__ import annotations

import argparse
import platform
import subprocess
import time

import numpy as np

from glasslog.oversight.bridging import BridgingParams, score_flags

SIZES = [  # (camp A raters, camp B raters, flags, probability that a rater rates a flag)
    (30, 10, 28, 0.75),
    (300, 100, 200, 0.2),
    (1500, 500, 1000, 0.05),
]


def population(seed: int, n_a: int, n_b: int, n_flags: int, p_rate: float):
    rng = np.random.default_rng(seed)
    kinds = rng.choice(["both", "A", "B", "spam"], n_flags, p=[0.15, 0.2, 0.15, 0.5])
    raters = [("A", k) for k in range(n_a)] + [("B", k) for k in range(n_b)]
    ratings = []
    for flag, kind in enumerate(kinds):
        rated = rng.random(len(raters)) < p_rate
        draws = rng.random(len(raters))
        for (camp, k), r, x in zip(raters, rated, draws):
            if not r:
                continue
            p = {"both": 0.9, "spam": 0.1}.get(kind, 0.95 if camp == kind else 0.05)
            ratings.append((flag, (camp, k), "helpful" if x < p else "not-helpful"))
    return list(kinds), ratings


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", type=int, default=5)
    args = ap.parse_args()
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    print(f"machine: {platform.machine()}, {platform.python_implementation()} {platform.python_version()}; commit {commit}")
    # Wilson only: filters that keep every rater and flag out of the model.
    wilson_only = BridgingParams(min_ratings_per_rater=10**9)
    print(f"{'raters':>6} {'flags':>5} {'ratings':>7} | {'inversions bridging':>19} {'wilson':>6} | "
          f"{'confirmed both/one':>18} | {'s bridging':>10} {'s wilson':>8} {'ratio':>6}")
    for n_a, n_b, n_flags, p_rate in SIZES:
        inv_b = inv_w = 0
        conf_both = conf_one = 0
        t_b = t_w = 0.0
        n_ratings = 0
        for seed in range(args.seeds):
            kinds, ratings = population(seed, n_a, n_b, n_flags, p_rate)
            n_ratings += len(ratings)
            t0 = time.perf_counter()
            board = score_flags(list(range(n_flags)), ratings)
            t1 = time.perf_counter()
            plain = score_flags(list(range(n_flags)), ratings, wilson_only)
            t2 = time.perf_counter()
            t_b, t_w = t_b + t1 - t0, t_w + t2 - t1
            for b, counter in ((board, "b"), (plain, "w")):
                by = b.by_flag()
                both = [by[i].rank for i, k in enumerate(kinds) if k == "both"]
                one = [by[i].rank for i, k in enumerate(kinds) if k in ("A", "B")]
                inverted = bool(both and one and min(one) < max(both))
                if counter == "b":
                    inv_b += inverted
                else:
                    inv_w += inverted
            by = board.by_flag()
            conf_both += sum(by[i].status == "confirmed" for i, k in enumerate(kinds) if k == "both")
            conf_one += sum(by[i].status == "confirmed" for i, k in enumerate(kinds) if k in ("A", "B"))
        s = args.seeds
        print(f"{n_a + n_b:>6} {n_flags:>5} {n_ratings // s:>7} | {f'{inv_b}/{s}':>19} {f'{inv_w}/{s}':>6} | "
              f"{f'{conf_both}/{conf_one}':>18} | {t_b / s:>10.3f} {t_w / s:>8.4f} {t_b / max(t_w, 1e-9):>6.0f}")


if __name__ == "__main__":
    main()
