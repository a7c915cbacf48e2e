#!/usr/bin/env python
"""The check that finishes a run, at scale: the items' way (``exists()`` on the pending items)
against the run's counter, on PostgreSQL.

    .venv/bin/python bench/finish_check.py --database-url postgres://postgres@127.0.0.1:5432/NAME
                                           [--n 100000] [--chunk 32]

It creates a run of N items (statistics taken while all are pending, as autovacuum takes them
after the items are created), then marks them processed in id order, as the workers do, and
every 10% of the way times both checks and prints PostgreSQL's plan for the items' way. With a
broker the check runs after every task of ``--chunk`` items: N / chunk checks over a run, whose
database time is estimated from the mean of the measured points.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time

from benchdjango import setup_django


def timed(check, repeat: int = 20) -> float:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        check()
        times.append(time.perf_counter() - started)
    return statistics.median(times) * 1000


def make_run(n: int):
    from relabel.models import Dataset, Run, RunItem, Trajectory

    dataset = Dataset.objects.create(name=f"finish-bench-{time.time_ns()}")
    Trajectory.objects.bulk_create(
        (
            Trajectory(
                dataset=dataset,
                external_id=str(i),
                source_format="agenther",
                goal="g",
                success=False,
            )
            for i in range(n)
        ),
        batch_size=5000,
    )
    run = Run.objects.create(dataset=dataset, backend="rules", config={}, prompt_version="v2")
    ids = dataset.trajectories.values_list("id", flat=True)
    RunItem.objects.bulk_create((RunItem(run=run, trajectory_id=t) for t in ids), batch_size=5000)
    run.recount_pending()
    return run


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--database-url", required=True, help="A PostgreSQL database.")
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--chunk", type=int, default=32)
    args = parser.parse_args()
    setup_django(args.database_url, "finish-check")
    from django.core.management import call_command
    from django.db import connection
    from django.db.models import F

    from relabel.models import Run, RunItem

    call_command("migrate", verbosity=0)
    run = make_run(args.n)
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE relabel_runitem")
    ids = list(RunItem.objects.filter(run=run).order_by("id").values_list("id", flat=True))
    items = RunItem.objects.filter(run=run).pending()
    print(f"N={args.n}, statistics taken while all items were pending")
    done, old_times, new_times = 0, [], []
    for tenth in range(11):
        upto = args.n * tenth // 10
        RunItem.objects.filter(pk__in=ids[done:upto]).update(status="candidate")
        Run.objects.filter(pk=run.pk).update(pending_items=F("pending_items") - (upto - done))
        done = upto
        old_times.append(timed(items.exists))
        new_times.append(timed(lambda: Run.objects.filter(pk=run.pk, pending_items__gt=0).exists()))
        print(f"{tenth * 10:4d}% done: items' way {old_times[-1]:7.2f} ms, ", end="")
        print(f"counter {new_times[-1]:5.2f} ms")
    print(items.values("id")[:1].explain())
    checks = args.n / args.chunk
    old, new = statistics.mean(old_times), statistics.mean(new_times)
    print(
        f"over a run: {checks:.0f} checks, items' way ~{checks * old / 1000:.0f} s of database "
        f"time (mean {old:.1f} ms), counter ~{checks * new / 1000:.1f} s (mean {new:.2f} ms)"
    )
    dataset = run.dataset
    run.delete()
    dataset.delete()
    return 0


if __name__ == "__main__":
    sys.exit(main())
