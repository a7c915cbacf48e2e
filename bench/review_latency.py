#!/usr/bin/env python
"""Review latency: server time of the next-candidate request and of a decision, at scale.

    .venv/bin/python bench/review_latency.py [--candidates 100000] [--requests 200]
        [--server postgres://postgres@127.0.0.1:5432/postgres] [--keep NAME]

Creates a throwaway PostgreSQL database on that server (dropped at the end), seeds N candidates
with bulk_create (confidence uniform in [0, 1): about 30% need review, 50% are auto-accepted, of
which the default 10% join the queue as audit items), fills the queue with populate_queue, and
then times, through the Django test client in-process (middleware, view, queries, template; no
network), for five annotators taking turns:

- next: GET /review/ (lease the next task and render it),
- decide: POST an accept (record the verdict, close the task, redirect),
- decide+next (htmx): POST an accept with HX-Request (record it and render the next candidate).

Prints one JSON object with the median and p95 of each in milliseconds. Goal: under 50 ms each.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import statistics
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import benchdjango  # noqa: E402  (bench/ is on sys.path when run as a script)

BATCH = 5000
RATERS = 5
TASK_URL = re.compile(r'action="/review/tasks/(\d+)/"')


def with_database(url: str, name: str) -> str:
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, f"/{name}", "", ""))


def create_database(server: str, name: str) -> None:
    import psycopg

    with psycopg.connect(with_database(server, "postgres"), autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')


def database_exists(server: str, name: str) -> bool:
    import psycopg

    with psycopg.connect(with_database(server, "postgres"), autocommit=True) as conn:
        found = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone()
    return found is not None


def drop_database(server: str, name: str) -> None:
    import psycopg

    with psycopg.connect(with_database(server, "postgres"), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def setup_django(database_url: str) -> None:
    benchdjango.setup_django(database_url, "review")


def seed(n: int) -> None:
    """N failed trajectories of 3 steps, each with a candidate of random confidence."""
    from django.core.management import call_command

    from relabel.config import default_config
    from relabel.models import Candidate, Dataset, Run, RunItem, Step, Trajectory, compress_json
    from review.queue import populate_queue

    call_command("migrate", verbosity=0)
    rng = random.Random(7)
    dataset = Dataset.objects.create(name="review-bench")
    config = default_config()
    run = Run.objects.create(
        dataset=dataset, backend="rules", config=config, prompt_version="v1", status="finished"
    )
    raw = compress_json({"bench": True})
    observation = "MicroMetals: $5.30/kg, MOQ 10 kg. WireCo: $6.10/kg, MOQ 500 kg. " * 20
    judges = [
        {"name": "a", "model": "m", "accept": True, "confidence": 0.5, "reason": "grounded"},
        {"name": "b", "model": "m", "accept": True, "confidence": 0.5, "reason": "fine"},
    ]
    outcome = {"achievements": [{"text": "Found MicroMetals at $5.30/kg", "steps": [0, 1]}]}
    for start in range(0, n, BATCH):
        size = min(BATCH, n - start)
        trajectories = Trajectory.objects.bulk_create(
            Trajectory(
                dataset=dataset,
                external_id=f"bench-{start + i}",
                source_format="agenther",
                goal=f"Find copper wire suppliers under $5/kg with MOQ below 100 kg ({start + i})",
                final_answer="MicroMetals at $5.30/kg, MOQ 10 kg",
                success=False,
                step_count=3,
                raw=raw,
            )
            for i in range(size)
        )
        Step.objects.bulk_create(
            Step.build(
                trajectory=t,
                index=k,
                thought=f"Step {k}: look up suppliers",
                action="search",
                action_input={"query": "copper wire", "page": k},
                observation=observation,
            )
            for t in trajectories
            for k in range(3)
        )
        items = RunItem.objects.bulk_create(
            RunItem(
                run=run,
                trajectory=t,
                status="candidate",
                is_failure=True,
                failure_type="constraint_violation",
                severity=0.2,
                weight=0.8,
                outcome=outcome,
            )
            for t in trajectories
        )
        candidates = []
        for item in items:
            confidence = rng.random()
            gate = (
                "auto_accepted"
                if confidence >= run.accept_threshold
                else "needs_review"
                if confidence >= run.reject_threshold
                else "rejected"
            )
            goal = "Compare suppliers by price per kg and MOQ and report the lowest-MOQ option"
            candidates.append(
                Candidate(
                    item=item,
                    run=run,
                    trajectory_id=item.trajectory_id,
                    hindsight_goal=goal,
                    final_goal=goal,
                    generator_confidence=confidence,
                    confidence=confidence,
                    judges=judges,
                    gate=gate,
                    gate_reason=f"confidence {confidence:.2f}",
                )
            )
        Candidate.objects.bulk_create(candidates)
        print(f"seeded {start + size}/{n}", file=sys.stderr, flush=True)
    populate_queue(run)
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(share * (len(ordered) - 1))))]


def figures(values: list[float]) -> dict[str, float]:
    return {
        "median_ms": round(statistics.median(values), 2),
        "p95_ms": round(percentile(values, 0.95), 2),
        "n": len(values),
    }


def timed(call) -> tuple[float, object]:
    start = time.perf_counter()
    result = call()
    return (time.perf_counter() - start) * 1000, result


def next_task_plan(client) -> list[str]:
    """PostgreSQL's plan of the query that picks a free task (the one that must stay fast)."""
    from django.contrib.auth.models import User
    from django.utils import timezone

    from review.models import ReviewTask

    user = User.objects.get(pk=client.session["_auth_user_id"])
    plan = ReviewTask.objects.open_for(user, timezone.now())[:1].explain(analyze=True)
    return [line.strip() for line in plan.splitlines() if "Scan" in line or "Execution" in line]


def measure(requests: int) -> dict[str, object]:
    from django.contrib.auth.models import User
    from django.test import Client

    from relabel.models import Candidate
    from relabel.roles import grant_role
    from review.models import ReviewTask

    clients = []
    batch = time.time_ns()  # a kept database gets new raters each time
    for i in range(RATERS):
        user = User.objects.create_user(f"bench-rater-{batch}-{i}")
        grant_role(user, "annotator")
        client = Client()
        client.force_login(user)
        clients.append(client)

    def decide(client: Client, task_id: str, **headers: str):
        data = {"decision": "accept", "started_at": f"{time.time() - 9:.3f}"}
        return client.post(f"/review/tasks/{task_id}/", data, **headers)

    results: dict[str, list[float]] = {"next": [], "decide": [], "decide+next (htmx)": []}
    warmup = 10
    for i in range(warmup + requests):
        client = clients[i % RATERS]
        ms_next, page = timed(lambda c=client: c.get("/review/"))
        assert page.status_code == 200, page.status_code
        task_id = TASK_URL.search(page.content.decode()).group(1)
        ms_decide, answer = timed(lambda c=client, t=task_id: decide(c, t))
        assert answer.status_code == 302, answer.status_code
        if i >= warmup:
            results["next"].append(ms_next)
            results["decide"].append(ms_decide)
    for client in clients:  # each takes a task, then decides with htmx swapping in the next
        client.task_id = TASK_URL.search(client.get("/review/").content.decode()).group(1)
    for i in range(warmup + requests):
        client = clients[i % RATERS]
        ms, answer = timed(lambda c=client: decide(c, c.task_id, HTTP_HX_REQUEST="true"))
        assert answer.status_code == 200, answer.status_code
        client.task_id = TASK_URL.search(answer.content.decode()).group(1)
        if i >= warmup:
            results["decide+next (htmx)"].append(ms)
    return {
        "plan_of_next_task": next_task_plan(clients[0]),
        "candidates": Candidate.objects.count(),
        "tasks": ReviewTask.objects.count(),
        "audit_tasks": ReviewTask.objects.filter(kind="audit").count(),
        **{name: figures(values) for name, values in results.items()},
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--candidates", type=int, default=100_000)
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument(
        "--server",
        default=os.environ.get("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/postgres"),
        help="A PostgreSQL URL; only its server is used (a throwaway database is created).",
    )
    parser.add_argument(
        "--keep",
        metavar="NAME",
        help="Seed database NAME once and keep it; later runs measure it again (for profiling).",
    )
    args = parser.parse_args()
    if not args.server.startswith(("postgres://", "postgresql://")):
        parser.error("--server must be a PostgreSQL URL")
    name = args.keep or f"agenther_review_bench_{os.getpid()}"
    fresh = not (args.keep and database_exists(args.server, name))
    if fresh:
        create_database(args.server, name)
    try:
        setup_django(with_database(args.server, name))
        started = time.perf_counter()
        if fresh:
            seed(args.candidates)
        seeded = time.perf_counter() - started
        report = {"seed_seconds": round(seeded, 1), **measure(args.requests)}
    finally:
        from django.db import connections

        connections.close_all()
        if not args.keep:
            drop_database(args.server, name)
    print(json.dumps(report))
    goal = all(report[k]["p95_ms"] < 50 for k in ("next", "decide"))
    return 0 if goal else 1


if __name__ == "__main__":
    sys.exit(main())
