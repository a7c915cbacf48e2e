#!/usr/bin/env python
"""A worker killed mid-run (SIGKILL), then the run resumed: how many calls were paid twice, and
how many paid calls are missing from the cost figures.

    .venv/bin/python bench/killed_worker.py [--trajectories 60] [--concurrency 4]
                                            [--database-url URL]

Makes N failed trajectories in a throwaway SQLite database (or the given one), runs
`manage.py relabel --backend openai` against the offline test server (30 ms a call) in a child
process, kills it with SIGKILL once about half the calls are answered, resumes the run with
`relabel --resume`, and compares what the server answered with what the database recorded.
The server counts each distinct request it answered, so "paid twice" is what the endpoint
billed twice, recorded or not. Prints one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import benchdjango  # noqa: E402  (bench/ is on sys.path when run as a script)

STEPS = [
    {
        "thought": "TEST-SEVERITY=0.1",
        "action": "search",
        "action_input": {"query": "copper wire"},
        "observation": "MicroMetals: $5.30/kg, MOQ 10 kg.",
    }
]


def seed(n: int) -> None:
    from django.core.management import call_command

    from relabel.models import Dataset, Step, Trajectory

    call_command("migrate", verbosity=0)
    dataset = Dataset.objects.create(name="killed")
    for i in range(n):
        trajectory = Trajectory.objects.create(
            dataset=dataset, external_id=f"k{i}", goal=f"Find supplier {i}", success=False
        )
        Step.objects.create(trajectory=trajectory, index=0, **STEPS[0])


ANSWERED: Counter[str] = Counter()


def count_answers() -> None:
    """Every request the server answers, by its content (answered: billed, whoever listens)."""
    from relabel.llm import offline_server

    original = offline_server.Handler.completion

    def completion(self, body, malformed):
        ANSWERED[json.dumps(body, sort_keys=True)] += 1
        return original(self, body, malformed)

    offline_server.Handler.completion = completion


def figures(server, started: int) -> dict:
    from django.db.models import Count

    from relabel.models import LLMCall, Run

    run = Run.objects.get()
    calls = LLMCall.objects.filter(run=run)
    paid = calls.filter(cached=False, error="")
    twice = paid.values("cache_key").annotate(n=Count("id")).filter(n__gt=1).count()
    return {
        "answered_by_server": sum(ANSWERED.values()),
        "billed_twice_by_server": sum(n - 1 for n in ANSWERED.values()),
        "answered_before_the_kill": started,
        "recorded_calls": calls.filter(cached=False).count(),
        "recorded_paid_twice": twice,
        "cached_on_resume": calls.filter(cached=True).count(),
        "missing_from_cost": sum(ANSWERED.values()) - calls.filter(cached=False).count(),
        "run_status": run.status,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trajectories", type=int, default=60)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--database-url", default="")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        url = args.database_url or f"sqlite:///{tmp}/bench.sqlite3"
        benchdjango.setup_django(url, "killed")
        from relabel.llm.offline_server import start_in_thread

        seed(args.trajectories)
        count_answers()
        server = start_in_thread(latency_ms=30)
        config = Path(tmp) / "run.toml"
        config.write_text(f"concurrency = {args.concurrency}\nprocesses = 1\n")
        env = {**os.environ, "DATABASE_URL": url, "OPENAI_BASE_URL": server.base_url}
        env.update(OPENAI_API_KEY="bench", DEBUG="1")
        env.pop("CELERY_BROKER_URL", None)
        manage = [sys.executable, "manage.py", "relabel"]
        worker = subprocess.Popen(
            [*manage, "--dataset", "killed", "--backend", "openai", "--config", str(config)],
            cwd=ROOT,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        while server.behaviour.requests < 2 * args.trajectories:  # about half of ~4 per item
            time.sleep(0.01)
        worker.send_signal(signal.SIGKILL)
        worker.wait()
        killed_at = server.behaviour.requests
        from relabel.models import Run

        run = Run.objects.get()
        subprocess.run(
            [*manage, "--resume", str(run.pk), "--json"], cwd=ROOT, env=env, check=True,
            capture_output=True,
        )  # fmt: skip
        print(json.dumps({"trajectories": args.trajectories, **figures(server, killed_at)}))
        server.shutdown()


if __name__ == "__main__":
    main()
