"""`make demo`: everything a new user needs to see the product, with nothing configured."""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
import time
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandParser

from relabel.importers import import_sample
from relabel.models import Dataset, Run
from relabel.pipeline.summary import run_summary
from relabel.roles import grant_role
from relabel.runs import start_run

DEMO_USERS = [("admin", "admin"), ("annotator", "annotator"), ("researcher", "researcher")]


class Command(BaseCommand):
    help = (
        "Migrates, loads the bundled sample, relabels it and serves the UI (the `make demo` path)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--addrport", default="127.0.0.1:8000")
        parser.add_argument("--no-serve", action="store_true", help="Stop before serving the UI.")

    def handle(self, *args: Any, **opts: Any) -> None:
        self._say(f"database: {settings.DATABASES['default']['ENGINE'].rsplit('.', 1)[-1]}")
        call_command("migrate", verbosity=0)
        logins = self._users()
        summary = import_sample("sample")
        self._say(f"imported the bundled sample: {summary.as_dict()}")
        worker = self._start_worker()
        try:
            self._relabel()
            if not opts["no_serve"]:
                self._print_logins(logins, opts["addrport"])
                call_command("runserver", opts["addrport"], use_reloader=False)
        finally:
            if worker:
                worker.terminate()

    def _relabel(self):
        backend = "openai" if settings.OPENAI_BASE_URL else "rules"
        dataset = Dataset.objects.get(name="sample")
        run = start_run(dataset, backend=backend)
        where = "on the Celery worker" if settings.BROKER_CONFIGURED else "in-process"
        self._say(f"relabeling the sample with the {backend} backend {where} (run {run.pk})")
        self._wait(run)
        self._say(f"run {run.pk}: {run_summary(run)}")
        return run

    def _wait(self, run: Run, timeout: float = 600) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            run.refresh_from_db(fields=["status"])
            if run.status not in (Run.Status.PENDING, Run.Status.RUNNING):
                return
            time.sleep(0.5)
        self._say(f"run {run.pk} is still going after {timeout:.0f} s; the UI shows its progress")

    def _start_worker(self) -> subprocess.Popen | None:
        """With a broker configured, the demo brings its own worker so the run can finish."""
        if not settings.BROKER_CONFIGURED:
            self._say(
                "CELERY_BROKER_URL is not set: tasks run in-process (what you start from the UI "
                "runs on a background thread of the server, and its page shows the progress)"
            )
            return None
        self._say(f"starting a Celery worker on {settings.CELERY_BROKER_URL}")
        celery = os.path.join(os.path.dirname(sys.executable), "celery")
        return subprocess.Popen(
            [celery, "-A", "agenther_site", "worker", "-l", "warning", "--concurrency", "2"],
            env=os.environ.copy(),
        )

    def _users(self) -> list[tuple[str, str, str]]:
        logins = []
        User = get_user_model()
        for username, role in DEMO_USERS:
            password = secrets.token_urlsafe(9)
            user, _ = User.objects.get_or_create(username=username)
            user.set_password(password)
            user.is_staff = role == "admin"
            user.save()
            grant_role(user, role)
            logins.append((username, password, role))
        return logins

    def _print_logins(self, logins: list[tuple[str, str, str]], addrport: str) -> None:
        self.stdout.write("")
        self.stdout.write(self.style.SUCCESS(f"AgentHER Studio is at http://{addrport}/"))
        for username, password, role in logins:
            self.stdout.write(f"  log in as {username:<11} password {password:<14} ({role})")
        self.stdout.write("")

    def _say(self, text: str) -> None:
        self.stdout.write(f"[demo] {text}")
