from __future__ import annotations

import argparse
import json
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from relabel.models import Run
from review.precision.figures import DEFAULT_BINS, DEFAULT_TARGET, run_figures
from review.precision.format import report_lines


def probability(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not 0 < value < 1:
        raise argparse.ArgumentTypeError(f"{text} must lie strictly between 0 and 1")
    return value


class Command(BaseCommand):
    help = "Prints the precision figures of a run: the same numbers as its precision page."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--run", type=int, required=True, help="The run's id.")
        parser.add_argument(
            "--target",
            type=probability,
            default=DEFAULT_TARGET,
            help="Precision the recommended accept threshold must reach (lower bound), 0..1.",
        )
        parser.add_argument("--bins", type=int, default=DEFAULT_BINS, help="Calibration bins.")
        parser.add_argument(
            "--min-verdicts",
            type=int,
            default=None,
            help="Below this many verdicts a figure says 'not enough verdicts'.",
        )
        parser.add_argument("--json", action="store_true", help="Print one JSON object.")

    def handle(self, *args: Any, **opts: Any) -> None:
        run = Run.objects.select_related("dataset").filter(pk=opts["run"]).first()
        if run is None:
            raise CommandError(f"no run with id {opts['run']}")
        if opts["bins"] < 1:
            raise CommandError("--bins must be at least 1")
        figures = run_figures(
            run, target=opts["target"], bins=opts["bins"], min_n=opts["min_verdicts"]
        )
        if opts["json"]:
            self.stdout.write(json.dumps(figures, allow_nan=False))
            return
        for line in report_lines(figures):
            self.stdout.write(line)
