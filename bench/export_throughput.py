#!/usr/bin/env python
"""Export throughput: seeds N approved candidates and times the SFT export of them.

    .venv/bin/python bench/export_throughput.py [--rows 100000] [--database-url URL] [--keep]

By default it builds a throwaway SQLite database in a temporary folder (quickest to set up, no
server needed); pass --database-url postgres://postgres@127.0.0.1:5432/SOME_EMPTY_DB to measure
on PostgreSQL instead (the database must exist; its tables are created by migrate).

The export runs in a child process so that its peak memory (that process's VmHWM) is the
export's alone, not the seeding's. Prints one JSON object: rows, seconds, rows per second, peak
memory in MB. Goal: 100k rows in under 60 s with a peak under 300 MB.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import benchdjango  # noqa: E402  (bench/ is on sys.path when run as a script)

BATCH = 5000


def setup_django(database_url: str) -> None:
    benchdjango.setup_django(database_url, "export")


def seed(rows: int) -> int:
    """N failed trajectories of 3 tool steps each, every one with an auto-accepted candidate."""
    from django.core.management import call_command

    from relabel.config import default_config
    from relabel.models import Candidate, Dataset, Run, RunItem, Step, Trajectory, compress_json

    call_command("migrate", verbosity=0)
    dataset = Dataset.objects.create(name=f"bench-{time.time_ns()}")
    config = default_config()
    run = Run.objects.create(
        dataset=dataset, backend="rules", config=config, prompt_version="v1", status="finished"
    )
    raw = compress_json({"bench": True})
    observation = "MicroMetals: $5.30/kg, MOQ 10 kg. " * 40  # ~1.4k characters per step
    for start in range(0, rows, BATCH):
        n = min(BATCH, rows - start)
        trajectories = Trajectory.objects.bulk_create(
            Trajectory(
                dataset=dataset,
                external_id=f"bench-{start + i}",
                source_format="agenther",
                goal=f"Find copper wire suppliers under $5/kg, case {start + i}",
                final_answer="MicroMetals at $5.30/kg, MOQ 10 kg",
                success=False,
                step_count=3,
                raw=raw,
            )
            for i in range(n)
        )
        Step.objects.bulk_create(
            Step(
                trajectory=t,
                index=k,
                thought=f"Step {k}: look up suppliers",
                action="search",
                action_input={"query": "copper wire", "page": k},
                observation=observation,
                observation_chars=len(observation),
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
            )
            for t in trajectories
        )
        Candidate.objects.bulk_create(
            Candidate(
                item=item,
                run=run,
                trajectory=item.trajectory,
                hindsight_goal="Compare suppliers by price per kg and MOQ",
                final_goal="Compare suppliers by price per kg and MOQ",
                generator_confidence=0.9,
                confidence=0.9,
                judges=[{"name": "judge-a", "accept": True, "confidence": 0.9}],
                gate="auto_accepted",
            )
            for item in items
        )
    return run.pk


def peak_memory_mb() -> float:
    """This process's peak resident memory. VmHWM belongs to the process's own address space,
    unlike ru_maxrss, which keeps the high-water mark of the parent it was forked from."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def export_only(run_id: int, out: str) -> None:
    from relabel.models import Run
    from review.exports.options import ExportOptions
    from review.exports.writer import export_to_directory

    started = time.perf_counter()
    manifest = export_to_directory(Run.objects.get(pk=run_id), ExportOptions("sft"), Path(out))
    seconds = time.perf_counter() - started
    print(
        json.dumps({"rows": manifest["total_rows"], "seconds": seconds, "peak": peak_memory_mb()})
    )


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rows", type=int, default=100_000)
    ap.add_argument("--database-url", default=None)
    ap.add_argument("--keep", action="store_true", help="Keep the temporary folder.")
    ap.add_argument("--export-only", nargs=2, metavar=("RUN_ID", "OUT"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.export_only:
        setup_django(args.database_url)
        export_only(int(args.export_only[0]), args.export_only[1])
        return 0
    work = Path(tempfile.mkdtemp(prefix="export-bench."))
    database_url = args.database_url or f"sqlite:///{work / 'bench.sqlite3'}"
    setup_django(database_url)
    started = time.perf_counter()
    run_id = seed(args.rows)
    seeded = time.perf_counter() - started
    child = subprocess.run(
        [
            sys.executable,
            __file__,
            "--database-url",
            database_url,
            "--export-only",
            str(run_id),
            str(work / "out"),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    if child.returncode:
        print(child.stderr, file=sys.stderr)
        return 1
    measured = json.loads(child.stdout.strip().splitlines()[-1])
    peak_mb = measured["peak"]
    size_mb = (work / "out" / "sft.jsonl").stat().st_size / 1e6
    print(
        json.dumps(
            {
                "database": "postgresql" if database_url.startswith("postgres") else "sqlite",
                "rows": measured["rows"],
                "seed_seconds": round(seeded, 1),
                "export_seconds": round(measured["seconds"], 1),
                "rows_per_second": round(measured["rows"] / measured["seconds"]),
                "peak_memory_mb": round(peak_mb, 1),
                "file_mb": round(size_mb, 1),
                "goal_met": measured["seconds"] < 60 and peak_mb < 300,
            }
        )
    )
    if not args.keep:
        import shutil

        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
