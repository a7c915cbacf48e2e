"""Start or resume a relabeling run.

    manage.py relabel --dataset NAME [--backend rules|openai] [--config FILE.toml] [--batch]
                      [--wait] [--json]
    manage.py relabel --resume RUN_ID [--wait] [--json]

Without a broker (CELERY_BROKER_URL unset) the work runs in this process and the command returns
when it is done; with one, it is enqueued for the workers and ``--wait`` follows the progress.
``--batch`` sends each stage's requests through the endpoints' Batch API (half the price; without
a broker this command checks the batches until the run is done).
With ``--json`` the last thing printed is the run's summary as one JSON object.
"""

from __future__ import annotations

import json
import sys
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from tqdm import tqdm

from relabel.config import BACKENDS, ConfigError, load_config
from relabel.models import Dataset, Run
from relabel.pipeline.summary import run_summary, wait_for
from relabel.runs import resume_run, start_run


class Command(BaseCommand):
    help = "Relabel a dataset's failed trajectories (or resume a run) and print its summary."

    def add_arguments(self, parser: CommandParser) -> None:
        what = parser.add_mutually_exclusive_group(required=True)
        what.add_argument("--dataset", help="The dataset's name.")
        what.add_argument("--resume", type=int, metavar="RUN_ID", help="Finish this run.")
        parser.add_argument("--backend", choices=BACKENDS, help="Default: the config's, or rules.")
        parser.add_argument("--config", metavar="FILE.toml", help="Run configuration (TOML).")
        parser.add_argument(
            "--batch",
            action="store_true",
            help="Send the requests through the endpoints' Batch API (half price, slower).",
        )
        parser.add_argument("--wait", action="store_true", help="Wait until the run is done.")
        parser.add_argument("--json", action="store_true", help="Print the summary as JSON.")

    def handle(self, *args: Any, **options: Any) -> None:
        run = self._resume(options) if options["resume"] else self._start(options)
        summary = run_summary(run)
        if options["wait"] and summary["status"] == Run.Status.RUNNING:
            summary = self._wait(run, show=not options["json"] and sys.stderr.isatty())
        if options["json"]:
            self.stdout.write(json.dumps(summary))
        else:
            self.stdout.write(self._describe(summary))
        if summary["status"] == Run.Status.INTERRUPTED:
            run.refresh_from_db(fields=["error"])
            raise CommandError(
                f"run {run.pk} was interrupted ({run.error}); finish it with "
                f"`manage.py relabel --resume {run.pk}`"
            )

    def _start(self, options: dict[str, Any]) -> Run:
        name = options["dataset"]
        dataset = Dataset.objects.filter(name=name).first()
        if dataset is None:
            known = ", ".join(Dataset.objects.values_list("name", flat=True)[:20]) or "none yet"
            raise CommandError(f"no dataset named {name!r} (known: {known})")
        try:
            overrides = {"batch": True} if options["batch"] else None
            config = load_config(options["config"], backend=options["backend"], overrides=overrides)
            return start_run(dataset, backend=config["backend"], config=config)
        except ConfigError as exc:
            raise CommandError(str(exc)) from None

    def _resume(self, options: dict[str, Any]) -> Run:
        if options["backend"] or options["config"] or options["batch"]:
            raise CommandError(
                "--resume keeps the run's frozen configuration: drop --backend/--config/--batch"
            )
        run = Run.objects.filter(pk=options["resume"]).first()
        if run is None:
            raise CommandError(f"no run with id {options['resume']}")
        return resume_run(run)

    def _wait(self, run: Run, *, show: bool) -> dict[str, Any]:
        with tqdm(total=None, unit="traj", file=sys.stderr, disable=not show) as bar:

            def progress(summary: dict[str, Any]) -> None:
                bar.total = summary["total"]
                bar.n = summary["done"]
                bar.set_postfix(candidates=summary["candidates"], errors=summary["errors"])
                bar.refresh()

            return wait_for(run, on_progress=progress)

    def _describe(self, s: dict[str, Any]) -> str:
        lines = [
            f"run {s['run']} ({s['status']}): {s['done']}/{s['total']} trajectories done",
            f"  {s['successes']} successes kept, {s['failures']} failures: {s['candidates']} "
            f"candidates ({s['auto_accepted']} auto-accepted, {s['needs_review']} to review, "
            f"{s['rejected']} rejected), {s['discarded']} discarded, {s['errors']} errors",
            f"  {s['unknown']} with no recorded outcome ({s['set_aside']} set aside undecided: "
            "an openai run decides them)",
            f"  {s['llm_calls']} LLM calls ({s['cached_calls']} cached), {s['prompt_tokens']} + "
            f"{s['completion_tokens']} tokens, ${s['cost_usd']:.4f}, {s['wall_seconds']:.1f} s",
        ]
        return "\n".join(lines)
