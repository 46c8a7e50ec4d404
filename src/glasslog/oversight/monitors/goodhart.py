"""The ``goodhart`` monitor: a proxy metric the deployer reports improving while realised outcomes worsen.

Method: ``docs/monitors.md`` (goodhart).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy import stats as _st

from ... import stats
from ...findings import Finding
from ..views import DeploymentData
from .common import Monitor, iso, span
from .common import finding as _finding
from .config import MonitorConfig

__all__ = ["check_goodhart", "MONITOR"]


def check_goodhart(view: DeploymentData, cfg: MonitorConfig) -> tuple[list[Finding], str | None]:
    """Deployer-reported proxy metrics improving while realised accuracy worsens (``docs/monitors.md``)."""
    if not view.metrics:
        return [], "the deployer reported no metric entries for this deployment and model"
    if not view.sees_outputs:
        return [], f"role {view.role} does not see the outputs and outcomes of this {view.visibility} deployment"
    out = []
    by_name: dict[str, list] = {}
    for m in view.metrics:
        by_name.setdefault(m.name, []).append(m)
    times = view.time
    has = ~np.isnan(view.outcome) & ~np.isnan(view.predicted)
    correct = (view.predicted == view.outcome) & has
    for name, reports in by_name.items():
        reports = sorted(reports, key=lambda m: (m.end or m.time, m.index))
        periods = []
        prev_end = None
        for m in reports:
            end = np.datetime64((m.end or m.time).rstrip("Z"), "us")
            start = np.datetime64(m.start.rstrip("Z"), "us") if m.start else prev_end
            mask = (times <= end) & has
            if start is not None:
                mask &= times > start if m.start is None else times >= start
            n = int(mask.sum())
            periods.append({"report_index": m.index, "start": iso(start) if start is not None else None, "end": iso(end),
                            "proxy": m.value, "decisions_with_outcome": n, "correct": int(correct[mask].sum())})
            prev_end = end
        usable = [p for p in periods if p["decisions_with_outcome"] >= 10]
        for p in usable:
            p["accuracy"] = p["correct"] / p["decisions_with_outcome"]
        better = reports[-1].better
        window = {"current": span(view, np.arange(view.n)),
                  "reports": {"first_index": reports[0].index, "last_index": reports[-1].index, "count": len(reports)}}
        ev: dict[str, Any] = {"proxy": name, "better": better, "alpha": cfg.alpha, "periods": periods,
                              "method": "Kendall tau of the proxy over periods (one-sided) and Cochran-Armitage trend of "
                                        "realised accuracy (one-sided, decreasing); intersection-union test (Berger 1982)"}
        if len(usable) < 4:
            out.append(_finding(view, "goodhart", "intersection_union_p", None, cfg.alpha, "insufficient-data", "info",
                                window, {**ev, "reason": f"{len(usable)} periods with 10 or more outcomes; needs 4"}))
            continue
        order = np.arange(len(usable))
        proxy = np.array([p["proxy"] for p in usable]) * (1 if better == "higher" else -1)
        tau, p_proxy = _st.kendalltau(order, proxy, alternative="greater")
        p_proxy = 1.0 if not np.isfinite(p_proxy) else float(p_proxy)
        z, p_real = stats.cochran_armitage_trend(np.array([p["correct"] for p in usable]),
                                                 np.array([p["decisions_with_outcome"] for p in usable]))
        acc = np.array([p["accuracy"] for p in usable])
        rho = _st.spearmanr(proxy, acc).statistic if len(set(acc)) > 1 and len(set(proxy)) > 1 else None
        ev.update(kendall_tau_proxy=float(tau) if np.isfinite(tau) else None, p_proxy_improves=p_proxy,
                  cochran_armitage_z=z, p_realised_worsens=p_real, spearman_proxy_vs_accuracy=rho)
        p_iut = max(p_proxy, p_real)
        if p_iut < cfg.alpha:
            verdict, severity = "alert", "high"
            ev["direction"] = f"{name} improves while realised accuracy falls"
        else:
            verdict, severity = "ok", "info"
        out.append(_finding(view, "goodhart", "intersection_union_p", p_iut, cfg.alpha, verdict, severity, window, ev))
    return out, None


MONITOR = Monitor("goodhart", "a reported proxy improving while realised accuracy falls",
                  lambda view, cfg, ctx: check_goodhart(view, cfg))
