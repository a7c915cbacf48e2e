"""``import_trajectories PATH [PATH ...] --dataset NAME [--format F] [--map KEY=FIELD ...]
[--success-score NAME>=VALUE] [--json]``: the command-line face of
relabel.importers.import_paths. It says, per file, which format it read and why."""

from __future__ import annotations

import json
import sys
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from tqdm import tqdm

from relabel.importers import FORMATS, TrajectoryImportError, import_paths, parse_mapping


class Command(BaseCommand):
    help = (
        "Imports agent trajectories (benchmark files, message logs, and OTel / Langfuse / "
        "LangSmith / Anthropic / OpenAI Responses traces) into a dataset, created on demand. "
        "Each file imports whole or not at all; importing the same data again adds nothing."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("paths", nargs="+", metavar="PATH", help="Files or folders.")
        parser.add_argument("--dataset", required=True, help="Dataset name (created if new).")
        parser.add_argument(
            "--format",
            default="auto",
            choices=["auto", *FORMATS],
            help="The source format; auto (the default) detects it and says which it chose.",
        )
        parser.add_argument(
            "--map",
            action="append",
            default=[],
            metavar="KEY=FIELD",
            help="where a field is, e.g. goal=question messages=history success=is_correct "
            "id=question_ID final_answer=answer name=name (messages format); "
            "'role.Orchestrator (thought)=assistant' reads one role as user, assistant, tool or "
            "system; success=FIELD and goal=FIELD also for the trace formats.",
        )
        parser.add_argument(
            "--success-score",
            default="",
            metavar="NAME>=VALUE",
            help="the Langfuse score or LangSmith feedback that means success, e.g. "
            "correctness>=0.5 (also >, <=, <, =).",
        )
        parser.add_argument("--json", action="store_true", help="End with one JSON object.")

    def handle(self, *args: Any, **opts: Any) -> None:
        bar = None
        if not opts["json"] and sys.stderr.isatty():
            bar = tqdm(total=0, unit="file", file=sys.stderr, desc="importing")

        def progress(done: int, total: int) -> None:
            bar.total = total
            bar.n = done
            bar.refresh()

        try:
            summary = import_paths(
                opts["paths"],
                opts["dataset"],
                fmt=opts["format"],
                mapping=parse_mapping(opts["map"]),
                progress=progress if bar else None,
                success_score=opts["success_score"],
            )
        except TrajectoryImportError as err:
            raise CommandError(str(err)) from None
        finally:
            if bar:
                bar.close()
        if opts["json"]:
            self.stdout.write(json.dumps(summary.as_dict()))
            return
        how = "detected" if opts["format"] == "auto" else "as asked"
        self.stdout.write(f"format: {summary.format} ({how})")
        for f in summary.files:
            self.stdout.write(
                f"  {f.path}: {f.format} ({f.why}): {f.imported} imported, {f.duplicates} "
                f"duplicates, {f.skipped} skipped"
            )
        self.stdout.write(summary.line())
