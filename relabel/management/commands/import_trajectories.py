"""``import_trajectories PATH [PATH ...] --dataset NAME [--format F] [--map KEY=FIELD ...]
[--json]``: the command-line face of relabel.importers.import_paths."""

from __future__ import annotations

import json
import sys
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from tqdm import tqdm

from relabel.importers import FORMATS, TrajectoryImportError, import_paths, parse_mapping


class Command(BaseCommand):
    help = (
        "Imports agent trajectories (agenther, browsergym, toolbench, tau-bench, messages) into a "
        "dataset, created on demand. Each file imports whole or not at all; importing the same "
        "data again adds nothing."
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
            help="messages format: where a field is, e.g. goal=question messages=history "
            "success=is_correct id=question_ID final_answer=answer.",
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
        self.stdout.write(summary.line())
