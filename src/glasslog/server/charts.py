"""Small server-rendered SVG charts for the web register (no JavaScript, no external assets).

Each function returns an inline ``<svg>`` as ``markupsafe.Markup`` with
``role="img"``, a ``<title>`` and a ``<desc>`` naming every figure, so screen
readers get the numbers; the pages also print the same figures as a table.
Colours meet WCAG 2.1 AA non-text contrast (3:1) against white.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence

from markupsafe import Markup, escape

__all__ = ["time_bars", "horizontal_bars", "accuracy_chart"]

BAR = "#1f5fa8"          # 6.3:1 on white
CLAIM = "#a4262c"        # 7.0:1 on white
AXIS = "#4d4d4d"
_ids = itertools.count()


def _svg(width: int, height: int, title: str, desc: str, body: list[str]) -> Markup:
    n = next(_ids)
    return Markup(
        f'<svg class="chart" viewBox="0 0 {width} {height}" width="100%" role="img" '
        f'aria-labelledby="chart-t{n} chart-d{n}" xmlns="http://www.w3.org/2000/svg">'
        f'<title id="chart-t{n}">{escape(title)}</title><desc id="chart-d{n}">{escape(desc)}</desc>'
        + "".join(body) + "</svg>")


def _nice_max(value: float) -> float:
    """The smallest 1, 2 or 5 times a power of ten that is >= ``value`` (axis top)."""
    if value <= 0:
        return 1.0
    exp = math.floor(math.log10(value))
    for m in (1, 2, 5, 10):
        top = m * 10 ** exp
        if top >= value:
            return float(top)
    return float(10 ** (exp + 1))


def time_bars(title: str, buckets: Sequence[tuple[str, int]], unit: str) -> Markup:
    """Vertical bars: decisions per time bucket.

    Args:
        title: the chart's title.
        buckets: ``(bucket label, count)`` in time order, e.g. ``("2026-05-04", 120)``.
        unit: what a bucket is (``day``, ``hour``, ``minute``), for the description.

    Returns:
        An inline SVG, 640 x 220 user units.
    """
    width, height, left, bottom, top = 640, 220, 48, 40, 12
    plot_w, plot_h = width - left - 8, height - bottom - top
    peak = _nice_max(max((c for _, c in buckets), default=0))
    body = [f'<line x1="{left}" y1="{top + plot_h}" x2="{width - 8}" y2="{top + plot_h}" stroke="{AXIS}"/>',
            f'<line x1="{left}" y1="{top}" x2="{left}" y2="{top + plot_h}" stroke="{AXIS}"/>']
    for frac in (0.0, 0.5, 1.0):
        y = top + plot_h * (1 - frac)
        label = f"{peak * frac:g}"
        body.append(f'<text x="{left - 6}" y="{y + 4:.1f}" text-anchor="end" font-size="11" fill="{AXIS}">{label}</text>')
    n = max(len(buckets), 1)
    slot = plot_w / n
    bar_w = max(min(slot * 0.8, 60), 1)
    for i, (label, count) in enumerate(buckets):
        h = plot_h * count / peak
        x = left + slot * i + (slot - bar_w) / 2
        body.append(f'<rect x="{x:.1f}" y="{top + plot_h - h:.1f}" width="{bar_w:.1f}" height="{h:.1f}" fill="{BAR}">'
                    f'<title>{escape(label)}: {count}</title></rect>')
    step = max(1, math.ceil(n / 6))
    for i in range(0, len(buckets), step):
        x = left + slot * i + slot / 2
        body.append(f'<text x="{x:.1f}" y="{height - bottom + 16}" text-anchor="middle" font-size="11" fill="{AXIS}">'
                    f'{escape(buckets[i][0])}</text>')
    desc = f"{len(buckets)} {unit}{'' if len(buckets) == 1 else 's'}" + (": " + "; ".join(f"{lab} {c}" for lab, c in buckets[:40]) if buckets else ": no decisions")
    return _svg(width, height, title, desc, body)


def horizontal_bars(title: str, items: Sequence[tuple[str, int]]) -> Markup:
    """Horizontal bars with counts and shares, e.g. decisions per output label.

    Args:
        items: ``(label, count)`` pairs, drawn in the given order.
    """
    row, left, width = 28, 150, 640
    total = sum(c for _, c in items) or 1
    peak = max((c for _, c in items), default=1) or 1
    height = row * max(len(items), 1) + 8
    body = []
    for i, (label, count) in enumerate(items):
        y = 4 + i * row
        w = (width - left - 120) * count / peak
        body.append(f'<text x="{left - 8}" y="{y + 17}" text-anchor="end" font-size="13" fill="#1a1a1a">{escape(label)}</text>')
        body.append(f'<rect x="{left}" y="{y + 4}" width="{w:.1f}" height="{row - 10}" fill="{BAR}"/>')
        body.append(f'<text x="{left + w + 6:.1f}" y="{y + 17}" font-size="13" fill="#1a1a1a">{count} ({count / total:.0%})</text>')
    desc = "; ".join(f"{lab}: {c} of {total}" for lab, c in items) or "no data"
    return _svg(width, height, title, desc, body)


def accuracy_chart(title: str, rows: Sequence[dict]) -> Markup:
    """Realised accuracy (with its 95 % interval) against the claimed accuracy, one row per model and deployment.

    Args:
        rows: dicts with ``label`` (text), ``realised``, ``lo``, ``hi`` (fractions, the Wilson 95 % interval),
            ``claimed`` (fraction or None) and ``n`` (decisions with an outcome).
    """
    row, left, width, right = 52, 12, 640, 16
    scale = width - left - right
    height = row * max(len(rows), 1) + 30
    body = []
    for t in (0.0, 0.25, 0.5, 0.75, 1.0):
        x = left + scale * t
        body.append(f'<line x1="{x:.1f}" y1="4" x2="{x:.1f}" y2="{height - 24}" stroke="#d0d0d0"/>')
        body.append(f'<text x="{x:.1f}" y="{height - 8}" text-anchor="{"start" if t == 0 else "end" if t == 1 else "middle"}" '
                    f'font-size="11" fill="{AXIS}">{t:.0%}</text>')
    for i, r in enumerate(rows):
        y = 4 + i * row
        body.append(f'<text x="{left}" y="{y + 12}" font-size="12" fill="#1a1a1a">{escape(r["label"])}</text>')
        bar_y = y + 18
        mid = bar_y + 8
        body.append(f'<rect x="{left}" y="{bar_y}" width="{scale * r["realised"]:.1f}" height="16" fill="{BAR}">'
                    f'<title>realised {r["realised"]:.3f}, n={r["n"]}</title></rect>')
        lo, hi = left + scale * r["lo"], left + scale * r["hi"]
        body.append(f'<line x1="{lo:.1f}" y1="{mid}" x2="{hi:.1f}" y2="{mid}" stroke="#1a1a1a" stroke-width="2"/>')
        for x in (lo, hi):
            body.append(f'<line x1="{x:.1f}" y1="{mid - 6}" x2="{x:.1f}" y2="{mid + 6}" stroke="#1a1a1a" stroke-width="2"/>')
        if r.get("claimed") is not None:
            cx = left + scale * r["claimed"]
            body.append(f'<line x1="{cx:.1f}" y1="{bar_y - 4}" x2="{cx:.1f}" y2="{bar_y + 20}" stroke="{CLAIM}" stroke-width="3" '
                        f'stroke-dasharray="4 2"><title>claimed {r["claimed"]:.3f}</title></line>')
    desc = "; ".join(
        f'{r["label"]}: realised {r["realised"]:.1%} (95% interval {r["lo"]:.1%} to {r["hi"]:.1%}, n={r["n"]})'
        + (f', claimed {r["claimed"]:.1%}' if r.get("claimed") is not None else ", no claim")
        for r in rows) or "no outcomes yet"
    return _svg(width, height, title, desc, body)
