"""``manage.py import_verdicts FILE.jsonl``: verdicts collected elsewhere, all or nothing.

One JSON object a line::

    {"run": RUN_ID, "trajectory": EXTERNAL_ID, "rater": USERNAME,
     "verdict": "accept"|"edit"|"reject"|"valid"|"invalid", "edited_goal": ..., "reason": ...}

Every line is checked before anything is written; the first problem stops the import with an
error naming the file, the line and the field. valid/invalid are audit verdicts, the others
curation verdicts; they update the candidate like the review UI does. A line identical to a
verdict imported before is skipped, so importing a file twice adds nothing.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import transaction
from django.utils import timezone

from relabel.models import Candidate, Run
from review import majority
from review.models import ReviewTask, Verdict

KINDS = {
    "accept": "curation",
    "edit": "curation",
    "reject": "curation",
    "valid": "audit",
    "invalid": "audit",
}
FIELDS = {"run", "trajectory", "rater", "verdict", "edited_goal", "reason"}


@dataclass
class Row:
    line: int
    run_id: int
    trajectory: str
    rater: str
    decision: str
    edited_goal: str
    reason: str

    @property
    def kind(self) -> str:
        return KINDS[self.decision]


class BadLine(CommandError):
    def __init__(self, path: Path, line: int, field: str | None, message: str) -> None:
        where = f"{path}, line {line}" + (f", field {field!r}" if field else "")
        super().__init__(f"{where}: {message}")


def text_field(record: dict[str, Any], name: str, path: Path, line: int) -> str:
    value = record.get(name)
    if value is None:
        return ""
    if not isinstance(value, str):
        raise BadLine(path, line, name, f"must be a string, not {type(value).__name__}")
    return value.strip()


def parse_line(path: Path, line: int, text: str) -> Row:
    try:
        record = json.loads(text)
    except ValueError as exc:
        raise BadLine(path, line, None, f"not valid JSON ({exc})") from None
    if not isinstance(record, dict):
        raise BadLine(path, line, None, "expected a JSON object")
    for name in ("run", "trajectory", "rater", "verdict"):
        if record.get(name) in (None, ""):
            raise BadLine(path, line, name, "is missing")
    if unknown := sorted(set(record) - FIELDS):
        raise BadLine(
            path, line, unknown[0], f"unknown field (expected {', '.join(sorted(FIELDS))})"
        )
    run = record["run"]
    if isinstance(run, bool) or not (isinstance(run, int) or str(run).isdigit()):
        raise BadLine(path, line, "run", f"must be a run id, not {run!r}")
    if record["verdict"] not in KINDS:
        raise BadLine(
            path, line, "verdict", f"{record['verdict']!r} is not one of {', '.join(KINDS)}"
        )
    if not isinstance(record["trajectory"], str | int) or not isinstance(record["rater"], str):
        field = "rater" if isinstance(record["trajectory"], str | int) else "trajectory"
        raise BadLine(path, line, field, "must be a string")
    row = Row(
        line=line,
        run_id=int(run),
        trajectory=str(record["trajectory"]),
        rater=record["rater"],
        decision=record["verdict"],
        edited_goal=text_field(record, "edited_goal", path, line),
        reason=text_field(record, "reason", path, line),
    )
    if row.decision == "edit" and not row.edited_goal:
        raise BadLine(path, line, "edited_goal", "an edit needs the edited goal")
    return row


def read_rows(path: Path) -> list[Row]:
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise CommandError(f"{path}: cannot read it ({exc})") from None
    rows = [parse_line(path, n, text) for n, text in enumerate(lines, 1) if text.strip()]
    if not rows:
        raise CommandError(f"{path}: no verdict in the file")
    return rows


def resolve(path: Path, rows: list[Row]) -> tuple[dict[str, Any], dict[tuple[int, str], int]]:
    """Raters by username and candidate ids by (run, trajectory); unknown ones are errors."""
    User = get_user_model()
    users = {u.username: u for u in User.objects.filter(username__in={r.rater for r in rows})}
    runs = set(Run.objects.filter(pk__in={r.run_id for r in rows}).values_list("pk", flat=True))
    candidates: dict[tuple[int, str], int] = {}
    vetoed: set[tuple[int, str]] = set()
    for run_id in runs:
        wanted = {r.trajectory for r in rows if r.run_id == run_id}
        found = Candidate.objects.filter(run_id=run_id, trajectory__external_id__in=wanted)
        for pk, external_id, gate in found.values_list("pk", "trajectory__external_id", "gate"):
            candidates[(run_id, external_id)] = pk
            if gate == Candidate.Gate.REJECTED:
                vetoed.add((run_id, external_id))
    for r in rows:
        if r.rater not in users:
            raise BadLine(path, r.line, "rater", f"no user named {r.rater!r}")
        if r.run_id not in runs:
            raise BadLine(path, r.line, "run", f"no run {r.run_id}")
        if (r.run_id, r.trajectory) not in candidates:
            raise BadLine(
                path, r.line, "trajectory", f"{r.trajectory!r} has no candidate in run {r.run_id}"
            )
        if (r.run_id, r.trajectory) in vetoed:
            # The gate's rejection (a judge's veto, or too low a confidence) is binding: such a
            # candidate is never reviewed, so a verdict must not bring it back into the export.
            raise BadLine(
                path,
                r.line,
                "trajectory",
                f"{r.trajectory!r} was rejected by the gate in run "
                f"{r.run_id}: it is not for review",
            )
    return users, candidates


def plan(path: Path, rows: list[Row], users: dict, candidates: dict) -> tuple[list[Verdict], int]:
    """The verdicts to create, after refusing a second opinion of one rater on one candidate."""
    # One verdict per rater and candidate, whatever its kind (curation or audit).
    existing: dict[tuple[int, int], Verdict] = {}
    standing = Verdict.objects.standing().filter(candidate_id__in=set(candidates.values()))
    for v in standing.exclude(decision=Verdict.Decision.SKIP):
        existing[(v.candidate_id, v.rater_id)] = v
    seen: dict[tuple[int, int], int] = {}
    new, skipped = [], 0
    for r in rows:
        rater, cid = users[r.rater], candidates[(r.run_id, r.trajectory)]
        key = (cid, rater.pk)
        if key in seen:
            raise BadLine(path, r.line, "rater", f"{r.rater} already rated it on line {seen[key]}")
        seen[key] = r.line
        if old := existing.get(key):
            same = (old.decision, old.edited_goal, old.reason) == (
                r.decision, r.edited_goal, r.reason,
            )  # fmt: skip
            if same and old.source == Verdict.Source.IMPORT:
                skipped += 1
                continue
            raise BadLine(
                path, r.line, "rater", f"{r.rater} already gave verdict {old.pk} ({old.decision})"
            )
        new.append(
            Verdict(
                candidate_id=cid,
                rater=rater,
                kind=r.kind,
                decision=r.decision,
                edited_goal=r.edited_goal if r.decision == "edit" else "",
                reason=r.reason,
                source=Verdict.Source.IMPORT,
            )
        )
    return new, skipped


def close_task(verdict: Verdict, now: Any) -> None:
    """Marks one open queue slot of the candidate done, so nobody is asked to rate it again: the
    rater's own lease first, else a free slot; never a slot someone else is rating right now."""
    open_tasks = ReviewTask.objects.open().filter(
        candidate_id=verdict.candidate_id, kind=verdict.kind
    )
    open_task = (
        open_tasks.filter(leased_to=verdict.rater).first()
        or open_tasks.filter(ReviewTask.free_at(now)).order_by("slot").first()
    )
    if open_task is not None:
        open_task.done_at, open_task.done_by, open_task.leased_to = now, verdict.rater, None
        open_task.save(update_fields=["done_at", "done_by", "leased_to"])
        Verdict.objects.filter(pk=verdict.pk).update(task=open_task)


class Command(BaseCommand):
    help = "Imports verdicts from a JSONL file (all or nothing)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("file", type=Path)
        parser.add_argument("--json", action="store_true", help="Print the summary as JSON.")

    def handle(self, *args: Any, **opts: Any) -> None:
        path: Path = opts["file"]
        rows = read_rows(path)
        users, candidates = resolve(path, rows)
        new, skipped = plan(path, rows, users, candidates)
        now = timezone.now()
        with transaction.atomic():
            created = Verdict.objects.bulk_create(new, batch_size=1000)
            for verdict in created:
                close_task(verdict, now)
            rated = {v.candidate_id for v in created if v.decision in majority.STRICT}
            for candidate in Candidate.objects.filter(pk__in=rated):
                Verdict.objects.update_review_state(candidate)
        summary = {
            "file": str(path),
            "imported": len(created),
            "skipped": skipped,
            "curation": sum(v.kind == "curation" for v in created),
            "audit": sum(v.kind == "audit" for v in created),
            "by_verdict": dict(Counter(v.decision for v in created)),
        }
        if opts["json"]:
            self.stdout.write(json.dumps(summary))
            return
        counts = ", ".join(f"{k} {n}" for k, n in sorted(summary["by_verdict"].items()))
        self.stdout.write(
            f"imported {summary['imported']} verdicts from {path} ({counts or 'none'}); "
            f"{skipped} already imported"
        )
