#!/usr/bin/env python
"""Throughput of a relabeling run against the test server: is the LLM the bottleneck, not us?

    .venv/bin/python bench/relabel_throughput.py [--n 1000] [--latency-ms 200] [--concurrency 32]
                                                 [--steps 6] [--database-url URL] [--json]
                                                 [--broker redis://... --workers 2]

It creates N synthetic failed trajectories in a throwaway SQLite database (or the one given),
starts ``manage.py llm_test_server`` in its own process with the given latency, runs the openai
backend with C calls in flight, and prints the wall time, the ideal time (calls x latency / C)
and their ratio. Without ``--broker`` the run's task processes the items in this process (a
bounded thread pool, forked processes for a large run), as ``make demo`` and the contract check
do; with it, a Celery worker of ``--workers`` processes takes the run's tasks from the broker,
each process with C / workers calls in flight (the per-endpoint limit holds per process), as in
production (this needs PostgreSQL: ``--database-url``). Goals: at L=200 ms, C=32, ratio <= 1.25
at N=1000 without a broker, <= 1.3 at N=10,000 with a broker and two worker processes.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
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


def start_workers(processes: int, env: dict[str, str], log: Path) -> subprocess.Popen:
    """A Celery worker of ``processes`` pool processes on the bench's own queue, once ready."""
    celery = Path(sys.executable).with_name("celery")
    worker = subprocess.Popen(
        [str(celery), "-A", "agenther_site", "worker", "-Q", env["CELERY_TASK_DEFAULT_QUEUE"]]
        + [f"--concurrency={processes}", "--without-mingle", "--without-gossip", "-l", "info"],
        cwd=ROOT,
        env=env,
        stdout=log.open("w"),
        stderr=subprocess.STDOUT,
    )
    for _ in range(600):
        if " ready." in log.read_text():
            return worker
        if worker.poll() is not None:
            raise SystemExit(f"the worker did not start:\n{log.read_text()}")
        time.sleep(0.1)
    raise SystemExit("the worker did not get ready in 60 s")


def tree_cpu(pid: int) -> float:
    """CPU seconds of a process and its children, from /proc (Linux)."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0.0
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        total += (int(fields[11]) + int(fields[12])) / tick
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except OSError:
        return total
    return total + sum(tree_cpu(int(child)) for child in children)


def stop_workers(worker: subprocess.Popen) -> None:
    worker.send_signal(signal.SIGTERM)
    try:
        worker.wait(60)
    except subprocess.TimeoutExpired:
        worker.kill()
        worker.wait(10)


def synthetic_dataset(n: int, steps: int):
    """N failed trajectories, each with ``steps`` tool steps; every fifth has a 40 KB page."""
    from relabel.models import Dataset, Step, Trajectory, compress_json

    nonce = time.time_ns()  # in every goal: a run never meets the responses of an earlier one
    dataset = Dataset.objects.create(name=f"bench-{n}-{nonce}")
    trajectories = Trajectory.objects.bulk_create(
        Trajectory(
            dataset=dataset,
            external_id=f"bench-{i}",
            source_format="agenther",
            goal=f"Find a supplier of part {i} under ${i % 50 + 5}, delivery in {i % 9 + 2} days"
            f" (bench {nonce})",
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


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=1000)
    parser.add_argument("--latency-ms", type=float, default=200.0)
    parser.add_argument("--concurrency", type=int, default=32, help="Calls in flight in all.")
    parser.add_argument("--steps", type=int, default=6)
    parser.add_argument(
        "--processes", type=int, default=0, help="Without a broker: processes (0 = one per CPU)."
    )
    parser.add_argument("--broker", help="A Celery broker URL: the run goes to a worker.")
    parser.add_argument("--workers", type=int, default=2, help="The worker's processes.")
    parser.add_argument("--chunk-size", type=int, help="With a broker: items a task (config's).")
    parser.add_argument("--database-url", help="Default: a throwaway SQLite database.")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    if args.broker and not args.database_url:
        parser.error("--broker needs --database-url (PostgreSQL): the workers are other processes")
    return args


def setup(args: argparse.Namespace, port: int) -> None:
    workdir = tempfile.mkdtemp(prefix="relabel-bench.")
    for name in ("CELERY_BROKER_URL", "DEBUG", "DJANGO_DEBUG"):
        os.environ.pop(name, None)
    os.environ.update(
        DATABASE_URL=args.database_url or f"sqlite:///{workdir}/bench.sqlite3",
        # Not DEBUG: Django then logs every query, which costs more CPU than the queries.
        SECRET_KEY="relabel-throughput-bench-" + "x" * 40,
        OPENAI_BASE_URL=f"http://127.0.0.1:{port}/v1",
        OPENAI_API_KEY="bench-key",
    )
    if args.broker:
        os.environ.update(
            CELERY_BROKER_URL=args.broker,
            CELERY_TASK_DEFAULT_QUEUE=f"relabel-bench-{uuid.uuid4().hex[:8]}",
        )
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


def relabel(args: argparse.Namespace, dataset) -> tuple[object, float, float]:
    """The run, its wall time and the CPU it took (this process's, or the workers')."""
    from relabel.pipeline.summary import wait_for
    from relabel.runs import start_run

    if not args.broker:
        config = {"concurrency": args.concurrency, "processes": args.processes}
        started, cpu = time.monotonic(), process_cpu()
        run = start_run(dataset, backend="openai", config=config)
        return run, time.monotonic() - started, process_cpu() - cpu
    per_process = math.ceil(args.concurrency / args.workers)
    config = {"concurrency": per_process}
    if args.chunk_size:
        config["chunk_size"] = args.chunk_size
    log = Path(tempfile.mkdtemp(prefix="relabel-bench-worker.")) / "worker.log"
    print(f"worker log: {log}", file=sys.stderr)
    worker = start_workers(args.workers, dict(os.environ), log)
    try:
        cpu = tree_cpu(worker.pid)
        run = start_run(dataset, backend="openai", config=config)
        wait_for(run, poll=0.5)
        run.refresh_from_db()
        cpu = tree_cpu(worker.pid) - cpu
    finally:
        stop_workers(worker)
    return run, (run.finished_at - run.started_at).total_seconds(), cpu


def main() -> int:
    args = parse_args()
    port = free_port()
    setup(args, port)
    from django.db.models import Avg

    from relabel.models import LLMCall
    from relabel.pipeline.summary import run_summary

    server = start_server(port, args.latency_ms, dict(os.environ))
    try:
        dataset = synthetic_dataset(args.n, args.steps)
        run, wall, cpu = relabel(args, dataset)
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
        "mode": f"broker, {args.workers} worker processes" if args.broker else "in-process",
    }
    if args.json:
        print(json.dumps(result))
    else:
        print(
            f"N={args.n} L={args.latency_ms:g} ms C={args.concurrency} ({result['mode']}): "
            f"{calls} calls, wall {wall:.2f} s, ideal {ideal:.2f} s, ratio {result['ratio']}, "
            f"our CPU {cpu:.2f} s, mean call {latency:.0f} ms "
            f"({summary['candidates']} candidates, {summary['errors']} errors)"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
