"""python manage.py export --run RUN_ID --format sft|dpo|sharegpt|verdicts --out DIR [filters]"""

from __future__ import annotations

import getpass
import json
import sys
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from tqdm import tqdm

from relabel.models import Run
from review.exports.options import DEFAULT_OBSERVATION_TOKENS, FORMATS, ExportError, ExportOptions
from review.exports.writer import export_to_directory


class Command(BaseCommand):
    help = "Exports a run's approved data (sft, dpo, sharegpt) or its verdicts table into DIR."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--run", required=True, type=int, help="The run's id.")
        parser.add_argument("--format", required=True, help=f"One of {', '.join(FORMATS)}.")
        parser.add_argument("--out", required=True, type=Path, help="The directory to write.")
        parser.add_argument(
            "--human-verified-only",
            action="store_true",
            help="Only candidates a person accepted, edited or found valid.",
        )
        parser.add_argument(
            "--min-confidence", type=float, default=None, help="Only confidence >= X (0..1)."
        )
        parser.add_argument(
            "--include-successes",
            action="store_true",
            help="Also write the run's successful trajectories (sft/sharegpt), as a separate file.",
        )
        parser.add_argument(
            "--observation-tokens",
            type=int,
            default=DEFAULT_OBSERVATION_TOKENS,
            help=f"Cut observations to this many tokens (default {DEFAULT_OBSERVATION_TOKENS}).",
        )
        parser.add_argument(
            "--consistent-only",
            action="store_true",
            help="Leave out rows with turns that still refer to the original goal (unresolved "
            "consistency findings).",
        )
        parser.add_argument("--csv", action="store_true", help="verdicts as CSV instead of JSONL.")
        parser.add_argument(
            "--overwrite", action="store_true", help="Replace an export already in DIR."
        )
        parser.add_argument("--by", default=None, help="Who to record in the manifest.")
        parser.add_argument("--json", action="store_true", help="Print the manifest as JSON.")

    def handle(self, *args: Any, **opts: Any) -> None:
        try:
            options = ExportOptions.from_filters(opts["format"], opts)
        except ExportError as exc:
            raise CommandError(str(exc)) from None
        run = Run.objects.select_related("dataset").filter(pk=opts["run"]).first()
        if run is None:
            raise CommandError(f"--run {opts['run']}: no such run")
        quiet = opts["json"] or not sys.stderr.isatty()
        with tqdm(total=0, unit="row", desc=f"{options.format} export", disable=quiet) as bar:

            def progress(done: int, total: int) -> None:
                bar.total = total
                bar.n = done
                bar.refresh()

            try:
                result = export_to_directory(
                    run,
                    options,
                    opts["out"],
                    created_by=opts["by"] or f"{getpass.getuser()} (command line)",
                    progress=progress,
                    overwrite=opts["overwrite"],
                )
            except ExportError as exc:
                raise CommandError(str(exc)) from None
        if opts["json"]:
            summary = {"directory": str(opts["out"]), **result}
            self.stdout.write(json.dumps(summary, ensure_ascii=False))
            return
        for name, count in result["counts"].items():
            self.stdout.write(f"{count} rows -> {opts['out'] / name}")
        self.stdout.write(f"manifest: {opts['out'] / 'manifest.json'}")
