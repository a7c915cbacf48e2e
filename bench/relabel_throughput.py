#!/usr/bin/env python
"""Throughput of a relabeling run against the test server: is the LLM the bottleneck, not us?

    .venv/bin/python bench/relabel_throughput.py [--n 1000] [--latency-ms 200] [--concurrency 32]
                                                 [--steps 6] [--database-url URL] [--json]

It creates N synthetic failed trajectories in a throwaway SQLite database (or the one given),
starts ``manage.py llm_test_server`` in its own process with the given latency, runs the openai
backend with C calls in flight (no broker: the run's task processes the items with a bounded
thread pool, as ``make demo`` and the contract check do), and prints the wall time, the ideal
time (calls x latency / C) and their ratio. The goal: at N=1000, L=200 ms, C=32, ratio <= 1.25.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def process_cpu() -> float:
    """CPU seconds of this process and of the children it has waited for (the run's processes;
    the test server is waited for only at the end)."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def start_server(port: int, latency_ms: float, env: dict[str, str]) -> subprocess.Popen:
    server = subprocess.Popen(
        [sys.executable, "manage.py", "llm_test_server", "--port", str(port)]
        + ["--latency-ms", str(latency_ms)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
    )
    for _ in range(200):
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/v1/models", timeout=1)
            return server
        except OSError:
            if server.poll() is not None:
                raise SystemExit("the test server did not start") from None
            time.sleep(0.05)
    raise SystemExit("the test server did not answer")


def synthetic_dataset(n: int, steps: int):
    """N failed trajectories, each with ``steps`` tool steps; every fifth has a 40 KB page."""
    from relabel.models import Dataset, Step, Trajectory, compress_json

    dataset = Dataset.objects.create(name=f"bench-{n}-{time.time_ns()}")
    trajectories = Trajectory.objects.bulk_create(
        Trajectory(
            dataset=dataset,
            external_id=f"bench-{i}",
            source_format="agenther",
            goal=f"Find a supplier of part {i} under ${i % 50 + 5}, delivery in {i % 9 + 2} days",
            final_answer=f"Supplier S{i} sells part {i} at ${i % 50 + 7}, delivery {i % 9 + 4}d",
            success=False,
            reward=0.0,
            step_count=steps,
            raw=compress_json({"i": i}),
        )
        for i in range(n)
    )
    page = "<div class='row'>supplier listing</div>\n" * 1000
    rows = []
    for t in trajectories:
        for k in range(steps):
            big = k == steps - 1 and t.pk % 5 == 0
            observation = page if big else f"Result {k} for part {t.external_id}: price ${k + 7}"
            rows.append(
                Step.build(
                    trajectory=t,
                    index=k,
                    thought=f"Step {k}: look further for {t.external_id}",
                    action="search" if k % 2 == 0 else "open_page",
                    action_input={"query": f"{t.external_id} supplier page {k}"},
                    observation=observation,
                )
            )
    Step.objects.bulk_create(rows, batch_size=2000)
    return dataset


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=1000)
    parser.add_argument("--latency-ms", type=float, default=200.0)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--steps", type=int, default=6)
    parser.add_argument(
        "--processes", type=int, default=0, help="Processes for the run (0 = one per CPU)."
    )
    parser.add_argument("--database-url", help="Default: a throwaway SQLite database.")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    workdir = tempfile.mkdtemp(prefix="relabel-bench.")
    port = free_port()
    os.environ.update(
        DATABASE_URL=args.database_url or f"sqlite:///{workdir}/bench.sqlite3",
        # Not DEBUG: Django then logs every query, which costs more CPU than the queries.
        SECRET_KEY="relabel-throughput-bench-" + "x" * 40,
        OPENAI_BASE_URL=f"http://127.0.0.1:{port}/v1",
        OPENAI_API_KEY="bench-key",
    )
    for name in ("CELERY_BROKER_URL", "DEBUG", "DJANGO_DEBUG"):
        os.environ.pop(name, None)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "agenther_site.settings")
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    from django.conf import settings
    from django.core.management import call_command

    options = settings.DATABASES["default"].setdefault("OPTIONS", {})
    if settings.DATABASES["default"]["ENGINE"].endswith("sqlite3"):
        # WAL lets the pool's threads read while one of them writes.
        options["init_command"] = "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;"
    call_command("migrate", verbosity=0)

    from django.db.models import Avg

    from relabel.models import LLMCall
    from relabel.pipeline.summary import run_summary
    from relabel.runs import start_run

    server = start_server(port, args.latency_ms, dict(os.environ))
    try:
        dataset = synthetic_dataset(args.n, args.steps)
        config = {"concurrency": args.concurrency, "processes": args.processes}
        started, cpu = time.monotonic(), process_cpu()
        run = start_run(dataset, backend="openai", config=config)
        wall, cpu = time.monotonic() - started, process_cpu() - cpu
    finally:
        server.terminate()
        server.wait(10)
    summary = run_summary(run)
    made = LLMCall.objects.filter(run=run, cached=False)
    calls = made.count()
    latency = made.aggregate(avg=Avg("latency_ms"))["avg"] or 0
    ideal = calls * args.latency_ms / 1000 / args.concurrency
    result = {
        "n": args.n,
        "latency_ms": args.latency_ms,
        "concurrency": args.concurrency,
        "calls": calls,
        "wall_seconds": round(wall, 2),
        "ideal_seconds": round(ideal, 2),
        "ratio": round(wall / ideal, 3) if ideal else None,
        "cpu_seconds": round(cpu, 2),
        "mean_call_ms": round(latency, 1),
        "candidates": summary["candidates"],
        "errors": summary["errors"],
        "cpus": os.cpu_count(),
        "processes": args.processes or "auto",
    }
    if args.json:
        print(json.dumps(result))
    else:
        print(
            f"N={args.n} L={args.latency_ms:g} ms C={args.concurrency}: {calls} calls, "
            f"wall {wall:.2f} s, ideal {ideal:.2f} s, ratio {result['ratio']}, "
            f"our CPU {cpu:.2f} s, mean call {latency:.0f} ms "
            f"({summary['candidates']} candidates, {summary['errors']} errors)"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
