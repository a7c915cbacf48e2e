"""The precision figures as a flat table: the CSV download of the precision page."""

from __future__ import annotations

import csv
import io
from typing import Any

CSV_HEADER = ["figure", "group", "value", "low", "high", "n", "enough"]


def _row(figure: str, group: str, fig: dict[str, Any]) -> list[Any]:
    return [figure, group, *(fig.get(k) for k in ("value", "low", "high", "n", "enough"))]


def figure_rows(figures: dict[str, Any]) -> list[list[Any]]:
    """Every figure as one flat row: what the CSV download holds."""
    rows = [_row(f"precision_{w}", "all", figures[f"precision_{w}"]) for w in ("strict", "lenient")]
    for key in ("by_benchmark", "by_failure_type"):
        for group, pair in figures[key].items():
            rows += [_row(f"{key}_{w}", group, pair[w]) for w in ("strict", "lenient")]
    for b in figures["by_bucket"]:
        group = f"{b['low']:.2f}-{b['high']:.2f}"
        rows += [_row(f"by_bucket_{w}", group, b[w]) for w in ("strict", "lenient")]
    for key in ("audit_precision", "human_precision", "export_precision", "label_noise"):
        rows.append(_row(key, "all", figures[key]))
    adjudicated = figures["adjudication"]["precision_strict"]
    rows.append(_row("adjudicated_strict", "all", adjudicated))
    for study in figures["studies"]:
        rows.append(_row("study_precision", study["name"], study["precision"]))
        rows.append(_row("study_fleiss_kappa", study["name"], study["kappa"]))
    rows.append(_row(f"kappa_{figures['kappa']['method'] or 'none'}", "all", figures["kappa"]))
    rows.append(_row("ece", "all", {**figures["calibration"], "value": figures["ece"]}))
    rows.append(_row("recommended_threshold", "all", figures["threshold"]))
    for j in figures["judges"]:
        rows.append(_row("judge_agreement", j["name"], j["agreement"]))
        rows.append(_row("judge_kappa", j["name"], {**j["kappa"], "n": j["n"]}))
    for gate, n in figures["counts"]["by_gate"].items():
        rows.append(["count_gate", gate, n, None, None, n, True])
    for decision, n in figures["verdicts"]["by_decision"].items():
        rows.append(["count_verdict", decision, n, None, None, n, True])
    return rows


def figures_csv(figures: dict[str, Any]) -> str:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(CSV_HEADER)
    writer.writerows(
        [cell if cell is not None else "" for cell in row] for row in figure_rows(figures)
    )
    return out.getvalue()
