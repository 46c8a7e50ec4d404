"""The ``anomalies`` monitor: gaps, bursts, out-of-order and future timestamps among a deployment's decisions.

Method: ``docs/monitors.md`` (anomalies).
"""

from __future__ import annotations

import math
from datetime import datetime, timezone

import numpy as np
from scipy import stats as _st

from ...findings import Finding
from ..views import DeploymentData
from .common import Monitor, iso, span
from .common import finding as _finding
from .config import MonitorConfig

__all__ = ["check_anomalies", "MONITOR"]


def check_anomalies(view: DeploymentData, cfg: MonitorConfig, now: datetime) -> tuple[list[Finding], str | None]:
    """Gaps, bursts, out-of-order and future timestamps among a deployment's decisions (``docs/monitors.md``)."""
    t = view.time
    ok = ~np.isnat(t)
    window = {"current": span(view, np.arange(view.n))}
    us = t[ok].astype(np.int64)  # microseconds since the epoch
    idx = view.index[ok]
    common = {"decisions": view.n, "unparsable_times": int((~ok).sum()), "alpha": cfg.alpha}
    out = []

    # out of order: a decision timed before the previous one (log order), beyond the tolerance
    tol_us = int(cfg.order_tolerance * 1e6)
    back = np.nonzero(np.diff(us) < -tol_us)[0] + 1 if len(us) > 1 else np.array([], dtype=int)
    ot = view.outcome_time
    has_ot = ~np.isnat(ot) & ok
    early = np.nonzero(has_ot & (ot.astype("datetime64[us]") < t - np.timedelta64(tol_us, "us")))[0] if view.n else []
    n_bad = len(back) + len(early)
    ev = {**common, "out_of_order": len(back), "first_out_of_order": [int(i) for i in idx[back][:20]],
          "max_step_back_seconds": float(-np.diff(us).min() / 1e6) if len(back) else 0.0,
          "outcomes_before_decision": len(early), "first_outcomes_before_decision": [int(i) for i in view.index[early][:20]],
          "tolerance_seconds": cfg.order_tolerance}
    out.append(_finding(view, "anomaly.order", "out_of_order", n_bad, 0, "alert" if n_bad else "ok",
                        "medium" if n_bad else "info", window, ev))

    # in the future
    now_us = int(np.datetime64(now.astimezone(timezone.utc).replace(tzinfo=None), "us").astype(np.int64))
    future = np.nonzero(us > now_us + int(cfg.future_tolerance * 1e6))[0]
    ev = {**common, "future": len(future), "first_future": [int(i) for i in idx[future][:20]],
          "latest": iso(np.datetime64(int(us.max()), "us")) if len(us) else None, "run_time": iso(np.datetime64(now_us, "us")),
          "tolerance_seconds": cfg.future_tolerance,
          "max_ahead_seconds": float((us.max() - now_us) / 1e6) if len(future) else 0.0}
    out.append(_finding(view, "anomaly.future", "future_timestamps", len(future), 0, "alert" if len(future) else "ok",
                        "high" if len(future) else "info", window, ev))

    # gaps and bursts, over batches (distinct times: an SDK call logs its decisions with one time)
    events, sizes = np.unique(us, return_counts=True)
    intervals = np.diff(events) / 1e6
    m = len(intervals)
    if m < 20:
        why = {"reason": f"{m + 1} distinct batch times; gap and burst checks need at least 21"}
        out.append(_finding(view, "anomaly.gap", "longest_gap_seconds", float(intervals.max()) if m else None,
                            cfg.gap_seconds, "insufficient-data", "info", window, {**common, **why}))
        out.append(_finding(view, "anomaly.burst", "poisson_tail_p", None, None, "insufficient-data", "info", window,
                            {**common, **why}))
        return out, None
    median = float(np.median(intervals))
    rate = math.log(2) / median  # batches per second, robust to the gaps and bursts themselves
    if cfg.gap_seconds is not None:
        gap_limit, rule = float(cfg.gap_seconds), "fixed threshold"
    else:
        gap_limit = median * math.log(m / cfg.alpha) / math.log(2)
        rule = "Poisson batches, rate ln2 / median interval: P(any of m intervals > limit) < alpha"
    longest = int(np.argmax(intervals))
    gaps = np.nonzero(intervals > gap_limit)[0]
    ev = {**common, "batches": len(events), "median_interval_seconds": median, "rule": rule,
          "gaps": [{"after": iso(np.datetime64(int(events[g]), "us")), "before": iso(np.datetime64(int(events[g + 1]), "us")),
                    "seconds": float(intervals[g])} for g in gaps[np.argsort(-intervals[gaps])][:20]]}
    out.append(_finding(view, "anomaly.gap", "longest_gap_seconds", float(intervals[longest]), gap_limit,
                        "alert" if len(gaps) else "ok", "medium" if len(gaps) else "info", window, ev))

    width = cfg.burst_seconds or 10 * median
    duration = (events[-1] - events[0]) / 1e6
    n_bins = int(duration // width) + 1
    if n_bins < 10:
        out.append(_finding(view, "anomaly.burst", "poisson_tail_p", None, None, "insufficient-data", "info", window,
                            {**common, "bin_seconds": width, "reason": f"{n_bins} bins of {width:g} s; needs 10"}))
        return out, None
    which = ((events - events[0]) / 1e6 // width).astype(np.int64)
    batch_counts = np.bincount(which, minlength=n_bins)
    decision_counts = np.bincount(which, weights=sizes, minlength=n_bins).astype(np.int64)
    mu = rate * width
    top = int(np.argmax(batch_counts))
    tail = float(_st.poisson.sf(batch_counts[top] - 1, mu))
    limit = cfg.alpha / n_bins
    bursts = np.nonzero(_st.poisson.sf(batch_counts - 1, mu) < limit)[0]
    ev = {**common, "bin_seconds": width, "bins": n_bins, "expected_batches_per_bin": mu,
          "largest_bin": {"start": iso(np.datetime64(int(events[0] + top * width * 1e6), "us")),
                          "batches": int(batch_counts[top]), "decisions": int(decision_counts[top])},
          "decisions_per_bin_median": float(np.median(decision_counts)), "bursts": len(bursts),
          "rule": "Poisson batches per bin: upper tail probability < alpha / bins",
          "burst_bins": [{"start": iso(np.datetime64(int(events[0] + b * width * 1e6), "us")), "batches": int(batch_counts[b]),
                          "decisions": int(decision_counts[b])} for b in bursts[:20]]}
    out.append(_finding(view, "anomaly.burst", "poisson_tail_p", tail, limit, "alert" if len(bursts) else "ok",
                        "medium" if len(bursts) else "info", window, ev))
    return out, None


MONITOR = Monitor("anomalies", "gaps, bursts, out-of-order and future timestamps of decisions",
                  lambda view, cfg, ctx: check_anomalies(view, cfg, ctx.now))
