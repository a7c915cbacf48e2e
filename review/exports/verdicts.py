"""The verdicts table: every candidate of a run whatever its state, plus the trajectories the run
discarded as severe failures, for researchers' own analysis (and the precision tools' input).

One JSON object a line, or the same columns as CSV (nested lists as JSON text).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

from relabel.models import Candidate, Run, RunItem
from review.exports import rows
from review.exports.options import ExportOptions

FILE = "verdicts.jsonl"
CSV_FILE = "verdicts.csv"
COLUMNS = [
    "run",
    "trajectory",
    "dataset",
    "source_format",
    "gate",
    "confidence",
    "generator_confidence",
    "hindsight_goal",
    "final_goal",
    "original_goal",
    "review_state",
    "approved",
    "item_status",
    "failure_type",
    "severity",
    "weight",
    "gate_reason",
    "reason",
    "judges",
    "verdicts",
    "consistency",
    "rewrites",
]


def candidate_record(candidate: Candidate) -> dict[str, Any]:
    trajectory, item = candidate.trajectory, candidate.item
    return {
        "run": candidate.run_id,
        "trajectory": trajectory.external_id,
        "dataset": candidate.dataset_name,
        "source_format": trajectory.source_format,
        "gate": candidate.gate,
        "confidence": candidate.confidence,
        "generator_confidence": candidate.generator_confidence,
        "hindsight_goal": candidate.hindsight_goal,
        "final_goal": candidate.final_goal,
        "original_goal": trajectory.goal,
        "review_state": candidate.review_state,
        "approved": candidate.is_approved,
        "item_status": item.status,
        "failure_type": item.failure_type or None,
        "severity": item.severity,
        "weight": item.weight,
        "gate_reason": candidate.gate_reason or None,
        "reason": item.reason or None,
        "judges": candidate.judges or [],
        "verdicts": [rows.verdict_record(v) for v in rows.verdicts_of(candidate)],
        # Stage 3b: the findings and the generated rewrites (the original text is the steps').
        "consistency": candidate.consistency or {},
        "rewrites": candidate.rewrites or {},
    }


def discarded_record(item: RunItem) -> dict[str, Any]:
    trajectory = item.trajectory
    return {
        "run": item.run_id,
        "trajectory": trajectory.external_id,
        "dataset": item.dataset_name,
        "source_format": trajectory.source_format,
        "gate": "discarded",
        "confidence": None,
        "generator_confidence": None,
        "hindsight_goal": None,
        "final_goal": None,
        "original_goal": trajectory.goal,
        "review_state": None,
        "approved": False,
        "item_status": item.status,
        "failure_type": item.failure_type or None,
        "severity": item.severity,
        "weight": item.weight,
        "gate_reason": None,
        "reason": item.reason or None,
        "judges": [],
        "verdicts": [],
        "consistency": {},
        "rewrites": {},
    }


def csv_cells(record: dict[str, Any]) -> list[Any]:
    """A record as CSV cells: nested values as JSON text, missing values as empty cells."""
    cells = []
    for column in COLUMNS:
        value = record[column]
        if isinstance(value, list | dict):
            value = json.dumps(value, ensure_ascii=False)
        cells.append("" if value is None else value)
    return cells


def records(run: Run) -> Iterator[dict[str, Any]]:
    candidates = Candidate.objects.filter(run=run).with_approval().order_by("id")
    for candidate in rows.iter_candidates(candidates, with_steps=False):
        yield candidate_record(candidate)
    for item in rows.iter_items(rows.discarded_items(run), with_steps=False):
        yield discarded_record(item)


def count(run: Run) -> int:
    return Candidate.objects.filter(run=run).count() + rows.discarded_items(run).count()


def files(run: Run, options: ExportOptions) -> list[tuple[str, int, Iterator[dict[str, Any]]]]:
    return [(CSV_FILE if options.csv else FILE, count(run), records(run))]
