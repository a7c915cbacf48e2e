"""Geometry of the precision page's plots, drawn by the template as inline SVG.

Coordinates are computed here (plain numbers, rounded) and the template only places elements with
presentation attributes and classes, so the page needs no JavaScript and no inline styles.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from review.precision.format import show

# Interval chart: one row per figure, a [0, 1] axis.
LABEL_W, PLOT_W, ROW_H, TOP, BOTTOM = 230, 420, 22, 16, 30
# Reliability diagram: a square plot.
SIDE, MARGIN = 300, 44
# Drift of a rater over time: blocks of decisions along x, a share along y.
DRIFT_W, DRIFT_H, DRIFT_LEFT, DRIFT_TOP, DRIFT_BOTTOM = 520, 200, 44, 12, 34


def _r(x: float) -> float:
    return round(x, 2)


def headline(figures: dict[str, Any]) -> list[dict[str, Any]]:
    """The figures shown as interval bars, with their labels and wording."""
    rows = [
        ("Precision, strict", figures["precision_strict"]),
        ("Precision, lenient", figures["precision_lenient"]),
        ("Auto-accepted pool (audit)", figures["audit_precision"]),
        ("Raters' approvals (checked)", figures["human_precision"]),
        ("Exportable set (stratified)", figures["export_precision"]),
    ]
    for key in ("by_benchmark", "by_failure_type"):
        rows += [(f"{name} (strict)", pair["strict"]) for name, pair in figures[key].items()]
    return [{"label": label, "fig": fig, "text": show(fig)} for label, fig in rows]


def interval_chart(rows: Sequence[dict[str, Any]], series: int = 1) -> dict[str, Any]:
    """Rows of ``{"label", "figs": [fig per series]}``: one bar per series and row, drawn
    only where the figure rests on enough verdicts."""
    height = TOP + len(rows) * ROW_H + BOTTOM

    def x(v: float) -> float:
        return _r(LABEL_W + v * PLOT_W)

    out_rows = []
    for i, row in enumerate(rows):
        y = TOP + i * ROW_H + ROW_H / 2
        bars = []
        for s, fig in enumerate(row["figs"]):
            if fig.get("value") is None or not fig.get("enough", True):
                continue
            dy = _r(y + (s - (series - 1) / 2) * 6)
            bars.append(
                {
                    "series": s,
                    "y": dy,
                    "x1": x(fig["low"]),
                    "x2": x(fig["high"]),
                    "cx": x(fig["value"]),
                }
            )
        missing = not bars
        out_rows.append({"label": row["label"], "y": _r(y + 4), "bars": bars, "missing": missing})
    ticks = [{"x": x(t / 10), "label": f"{t * 10}%" if t % 2 == 0 else ""} for t in range(0, 11, 1)]
    return {
        "width": LABEL_W + PLOT_W + 20,
        "height": height,
        "rows": out_rows,
        "ticks": ticks,
        "axis_y": height - BOTTOM + 4,
        "tick_label_y": height - BOTTOM + 18,
        "plot_top": TOP,
        "plot_left": LABEL_W,
        "label_x": LABEL_W - 8,
        "plot_right": LABEL_W + PLOT_W,
        "missing_x": LABEL_W + 6,
    }


def reliability_chart(bins: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Bars of observed share valid per confidence bin, the bins' mean confidence as points,
    and the diagonal of perfect calibration."""

    def x(v: float) -> float:
        return _r(MARGIN + v * SIDE)

    def y(v: float) -> float:
        return _r(MARGIN / 2 + (1 - v) * SIDE)

    bars = [
        {
            "x": x(b["low"]) + 1,
            "width": _r((b["high"] - b["low"]) * SIDE - 2),
            "y": y(b["accuracy"]),
            "height": _r(b["accuracy"] * SIDE),
            "cx": x(b["mean_confidence"]),
            "n": b["n"],
            "label": f"{b['low']:.1f}-{b['high']:.1f}: {b['k']}/{b['n']} valid, "
            f"mean confidence {b['mean_confidence']:.2f}",
        }
        for b in bins
        if b["n"]
    ]
    ticks = [{"v": f"{t / 5:.1f}", "x": x(t / 5), "y": y(t / 5)} for t in range(6)]
    return {
        "width": SIDE + MARGIN + 16,
        "height": SIDE + MARGIN + 24,
        "bars": bars,
        "ticks": ticks,
        "x0": x(0),
        "x1": x(1),
        "y0": y(0),
        "y1": y(1),
        "xlabel_y": y(0) + 34,
        "xtick_y": y(0) + 16,
        "ytick_x": x(0) - 6,
        "ylabel_x": 12,
        "mid_x": x(0.5),
        "mid_y": y(0.5),
    }


def drift_chart(blocks: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """A rater's blocks of decisions in time order: for each, the share approved and the share
    agreeing with a reference (a point and its 95% interval each), joined by a line per series."""
    step = DRIFT_W / max(1, len(blocks))

    def y(v: float) -> float:
        return _r(DRIFT_TOP + (1 - v) * DRIFT_H)

    series = []
    for s, key in enumerate(("approved", "agreement")):
        points = []
        for i, block in enumerate(blocks):
            fig = block[key]
            if fig["value"] is None:
                continue
            points.append(
                {
                    "cx": _r(DRIFT_LEFT + (i + 0.5) * step),
                    "cy": y(fig["value"]),
                    "y1": y(fig["low"]),
                    "y2": y(fig["high"]),
                    "label": f"decisions {block['first']}-{block['last']}: {show(fig)}",
                }
            )
        line = " ".join(f"{p['cx']},{p['cy']}" for p in points)
        series.append({"series": s, "name": key, "points": points, "line": line})
    ticks = [{"v": f"{t / 4:.2f}", "y": y(t / 4)} for t in range(5)]
    labels = [
        {"x": _r(DRIFT_LEFT + (i + 0.5) * step), "text": str(block["last"])}
        for i, block in enumerate(blocks)
        if len(blocks) <= 12 or i % (len(blocks) // 12 + 1) == 0
    ]
    return {
        "width": DRIFT_LEFT + DRIFT_W + 12,
        "height": DRIFT_TOP + DRIFT_H + DRIFT_BOTTOM,
        "series": series,
        "ticks": ticks,
        "labels": labels,
        "x0": DRIFT_LEFT,
        "x1": DRIFT_LEFT + DRIFT_W,
        "y0": y(0),
        "label_y": y(0) + 16,
        "axis_label_y": y(0) + 30,
        "ytick_x": DRIFT_LEFT - 6,
        "mid_x": DRIFT_LEFT + DRIFT_W / 2,
    }
