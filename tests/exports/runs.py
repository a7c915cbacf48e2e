"""Exports made as an admin makes them, through the commands: import, relabel with the rules
backend, a reviewer accepting what the gate sent for review (import_verdicts), then export."""

from __future__ import annotations

import io
import json
from dataclasses import dataclass
from pathlib import Path

from django.contrib.auth.models import User
from django.core.management import call_command

from relabel.models import Candidate, Run
from tests.conftest import make_user

# Everything the rules backend can relabel becomes a candidate (no severity discards), so every
# source format yields rows to check.
EVERY_FAILURE = 'backend = "rules"\nseverity_delta = 0.0\n'


@dataclass
class Export:
    run: Run
    folders: dict[str, Path]  # format -> export folder

    def manifest(self, fmt: str) -> dict:
        return json.loads((self.folders[fmt] / "manifest.json").read_text())


def command_json(*args: str) -> dict:
    out = io.StringIO()
    call_command(*args, "--json", stdout=out, stderr=io.StringIO())
    return json.loads(out.getvalue().strip().splitlines()[-1])


def import_and_relabel(
    paths: list[Path],
    dataset: str,
    tmp: Path,
    *,
    fmt: str = "auto",
    maps: tuple = (),
    config="",
    backend: str = "rules",
) -> Run:
    """Needs django_capture_on_commit_callbacks(execute=True) around it (the run's tasks are
    enqueued on commit and run eagerly without a broker)."""
    mapping = [arg for m in maps for arg in ("--map", m)]
    command_json(
        "import_trajectories", *map(str, paths), "--dataset", dataset, "--format", fmt, *mapping
    )
    args = ["relabel", "--dataset", dataset, "--backend", backend]
    if config:
        (tmp / "run.toml").write_text(config)
        args += ["--config", str(tmp / "run.toml")]
    return Run.objects.get(pk=command_json(*args)["run"])


def accept_what_awaits_review(run: Run, tmp: Path) -> int:
    """A reviewer accepts every candidate the gate sent for review, via import_verdicts."""
    reviewer = "export-reviewer"
    if not User.objects.filter(username=reviewer).exists():
        make_user(reviewer, "annotator")
    waiting = Candidate.objects.filter(run=run, gate=Candidate.Gate.NEEDS_REVIEW)
    lines = [
        json.dumps({"run": run.pk, "trajectory": t, "rater": reviewer, "verdict": "accept"})
        for t in waiting.values_list("trajectory__external_id", flat=True)
    ]
    if lines:
        path = tmp / f"accept-{run.pk}.jsonl"
        path.write_text("\n".join(lines) + "\n")
        call_command("import_verdicts", str(path), stdout=io.StringIO())
    return len(lines)


def export_formats(run: Run, tmp: Path) -> Export:
    folders = {}
    for fmt in ("sft", "dpo", "sharegpt"):
        folders[fmt] = tmp / f"run{run.pk}-{fmt}"
        successes = ["--include-successes"] if fmt != "dpo" else []
        command_json(
            "export", "--run", str(run.pk), "--format", fmt, "--out", str(folders[fmt]), *successes
        )
    return Export(run, folders)
