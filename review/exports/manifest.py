"""``manifest.json``: what an export holds and where it came from.

Counts per file and in total, the rows each file left out and why, the length of its rows in
estimated tokens (median and max, per source format), the filters, the run's frozen
configuration, the precision estimate of the exported set with its interval, the sha256 of every
file, when and by whom.
"""

from __future__ import annotations

import logging
import math
import statistics
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from django.utils import timezone

from relabel.chat import estimated_tokens
from relabel.models import Run
from review.exports import rows
from review.exports.options import ExportOptions
from review.precision.figures import run_figures

FILE = "manifest.json"
logger = logging.getLogger("agenther.exports")
TOKEN_ESTIMATE = (
    "relabel.tokens offline estimate of the row as a chat template renders it (contents, tool "
    "calls, tool schemas, 4 tokens of markup per message); it errs on the high side of BPE "
    "tokenizers. Every row is measured in a file of up to 10,000 rows; in a larger one, one row "
    "in ceil(rows / 10,000) and every row longer in characters than all measured before it"
)
# Estimating tokens costs more than writing the row: past this many rows a file measures a sample
# (and every row that sets a new length record, so the longest rows are always among them).
MEASURED_ROWS = 10_000

RowTexts = Callable[[dict[str, Any]], tuple[list[str], int]]


@dataclass(frozen=True)
class LeftOut:
    """A row a format cannot hold, and why: counted in the manifest, never silently lost."""

    reason: str


class Rows:
    """A file's rows on their way to disk, with what the manifest says about them: the rows left
    out (by reason) and the estimated length of the rows written (by source format).

    ``texts`` gives a row's rendered texts and its number of messages; ``expected`` is about how
    many rows will come (it sets the sampling step of a large file).
    """

    def __init__(
        self, results: Iterable[dict[str, Any] | LeftOut], texts: RowTexts, expected: int
    ) -> None:
        self._results = results
        self._texts = texts
        self._step = max(1, math.ceil(expected / MEASURED_ROWS))
        self._longest = -1
        self._written = 0
        self.left_out: Counter[str] = Counter()
        self.written: Counter[str] = Counter()
        self.tokens: defaultdict[str, list[int]] = defaultdict(list)

    def __iter__(self) -> Iterator[dict[str, Any]]:
        for result in self._results:
            if isinstance(result, LeftOut):
                self.left_out[result.reason] += 1
                continue
            self._measure(result)
            yield result

    def _measure(self, row: dict[str, Any]) -> None:
        source = (row.get("metadata") or {}).get("source_format") or "unknown"
        self.written[source] += 1
        self._written += 1
        texts, messages = self._texts(row)
        chars = sum(len(text) for text in texts)
        if (self._written - 1) % self._step and chars <= self._longest:
            return
        self._longest = max(self._longest, chars)
        self.tokens[source].append(estimated_tokens(texts, messages))

    def figures(self) -> dict[str, Any]:
        every = [n for lengths in self.tokens.values() for n in lengths]
        by_source = {
            name: length_figures(self.written[name], self.tokens[name])
            for name in sorted(self.written)
        }
        return {
            "left_out": dict(self.left_out),
            "tokens": {
                **length_figures(sum(self.written.values()), every),
                "by_source_format": by_source,
            },
        }


def length_figures(rows: int, lengths: list[int]) -> dict[str, Any]:
    if not lengths:
        return {"rows": rows, "measured": 0, "median": None, "max": None}
    return {
        "rows": rows,
        "measured": len(lengths),
        "median": statistics.median(lengths),
        "max": max(lengths),
    }


def figures_of(records: Iterable[Any]) -> dict[str, Any]:
    """The figures of a written file's rows (none for a file that is not training rows)."""
    return records.figures() if isinstance(records, Rows) else {}


def precision_estimate(run: Run) -> dict[str, Any]:
    """The precision of the exported set, the very figure ``manage.py precision --json`` and the
    precision page give (``export_precision``: ``available``, value and interval, or the reason
    and n when there are too few verdicts). A failing estimate is recorded as such: it never
    costs the export itself.
    """
    try:
        figures = run_figures(run)
    except Exception as exc:  # the estimate is advisory; log it and keep the export
        logger.exception("precision estimate of run %s failed", run.pk)
        return {"available": False, "reason": f"{type(exc).__name__}: {exc}", "n": 0}
    return figures["export_precision"]


def run_record(run: Run) -> dict[str, Any]:
    return {
        "id": run.pk,
        "name": run.name,
        "dataset": run.dataset.name,
        "backend": run.backend,
        "prompt_version": run.prompt_version,
        "status": run.status,
        "created_at": run.created_at.isoformat() if run.created_at else None,
        "finished_at": run.finished_at.isoformat() if run.finished_at else None,
        "config": run.config,
    }


def _file_entry(written: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in written.items() if k not in ("left_out", "tokens")}


def build(
    run: Run,
    options: ExportOptions,
    files: list[dict[str, Any]],
    *,
    created_by: str | None,
) -> dict[str, Any]:
    data_files = [f for f in files if f.get("rows") is not None]
    figures = {f["name"]: f for f in data_files if "tokens" in f}
    return {
        "format": options.format,
        "total_rows": sum(f["rows"] for f in data_files),
        "counts": {f["name"]: f["rows"] for f in data_files},
        "left_out": {name: f["left_out"] for name, f in figures.items()},
        "row_tokens": {name: f["tokens"] for name, f in figures.items()},
        "row_tokens_method": TOKEN_ESTIMATE,
        "files": [_file_entry(f) for f in files],
        "filters": options.as_filters(),
        "run": run_record(run),
        "precision": precision_estimate(run),
        "consistency": rows.consistency_counts(run, options),
        "created_at": timezone.now().isoformat(),
        "created_by": created_by,
        "generator": "agenther-studio export",
    }


def per_trajectory_files(
    run: Run,
    options: ExportOptions,
    names: tuple[str, str],
    candidate_row: Callable[..., dict[str, Any] | LeftOut],
    success_row: Callable[..., dict[str, Any] | LeftOut],
    row_texts: RowTexts,
) -> list[rows.FileSpec]:
    """A per-trajectory format's files (rows.candidate_and_success_files), each measured for
    the manifest as it is written."""
    specs = rows.candidate_and_success_files(
        run, options, names=names, candidate_row=candidate_row, success_row=success_row
    )
    return [(name, n, Rows(results, row_texts, n)) for name, n, results in specs]
