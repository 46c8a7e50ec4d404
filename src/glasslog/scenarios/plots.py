"""The scenario lab report's plots: per scenario, bars by regime of detection, harm and false alarms, and the cost to
game; PNG (matplotlib, Agg backend) as base64 text for the HTML report."""

from __future__ import annotations

import base64
import io

from .runner import LabResult

__all__ = ["lab_plots"]


def _png(fig) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90, bbox_inches="tight", metadata={"Software": None})
    import matplotlib.pyplot as plt

    plt.close(fig)
    return base64.b64encode(buf.getvalue()).decode("ascii")


def lab_plots(res: LabResult) -> dict[str, list[str]]:
    """Scenario id -> its plots (base64 PNG): the results by regime, then the cost to game when measured."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plots: dict[str, list[str]] = {}
    for sr in res.scenarios:
        gs = list(sr.regimes)
        s = [sr.regimes[g] for g in gs]
        fig, axes = plt.subplots(1, 3, figsize=(12, 3.2))
        axes[0].bar(gs, [x.detect_p for x in s], yerr=[[x.detect_p - x.detect_lo for x in s], [x.detect_hi - x.detect_p for x in s]],
                    color="#4a7bb7", capsize=3)
        axes[0].set_title("detected (95 % CI)")
        axes[0].set_ylim(0, 1.05)
        hm = [x.harm_mean or 0 for x in s]
        axes[1].bar(gs, hm, yerr=[[max(0, (x.harm_mean or 0) - (x.harm_lo or 0)) for x in s],
                                  [max(0, (x.harm_hi or 0) - (x.harm_mean or 0)) for x in s]], color="#c0504d", capsize=3)
        axes[1].set_title("harm before detection (mean, 95 % CI)")
        axes[2].bar(gs, [x.false_alarm_p for x in s], color="#9bbb59")
        axes[2].set_title("control runs with a false alarm")
        axes[2].set_ylim(0, 1.05)
        for ax in axes:
            ax.tick_params(axis="x", rotation=30)
        plots[sr.scenario.id] = [_png(fig)]
        if sr.gaming:
            fig, ax = plt.subplots(figsize=(6, 3))
            keys = list(sr.gaming)
            ax.bar(keys, [sr.gaming[k]["mean_queries"] or 0 for k in keys], color="#8064a2")
            ax.set_title("queries to the deployed model to flip a refusal (mean)")
            ax.tick_params(axis="x", rotation=20)
            plots[sr.scenario.id].append(_png(fig))
    return plots
