#!/usr/bin/env python
"""What a run costs per trajectory, on real data: tokens counted by the endpoint, cache, dollars.

    .venv/bin/python bench/cost.py [--data ../shared/data] [--config relabel/sample-config.toml]
                                   [--mode sync|batch|both] [--judge-view run|evidence|both]
                                   [--salts N] [--database-url URL] [--json]

It imports the failed and successful tau-bench airline runs and the WebArena runs of
../shared/data into a throwaway SQLite database (or the one given), starts the project's
OpenAI-compatible test server (relabel.llm.offline_server) in this process, points every stage and
judge of the sample configuration (two judges, K=3) at it, and relabels each dataset
synchronously and through the Batch API, with the judges reading the whole run and the evidence.
For each it reports, per processed failed trajectory and per fully processed one (through
detection, extraction, relabeling and the judges): prompt and completion tokens as the endpoint
counted them (stages 1-3 apart: the reference code has no stage 3b), the share of prompt tokens
the endpoint served from its prefix cache, the cost at the configured prices (cached tokens at
the cached rate, batch calls at the batch rate), the cost per accepted pair, the share of
candidates the gate accepted and how many stage 3b flagged. The LLM response cache is emptied
between runs, so every call is made and paid for.

The test server's verdicts are draws from a hash of what each stage reads, so any change to a
prompt redraws them: one run's accepted share says little about a prompt change. ``--salts N``
relabels each dataset synchronously N times, each with the server's answers drawn anew (its
``salt``), and reports the share the gate accepts on confidence and the judges (before stage
3b's flags) over all of them.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

# The measurement of the reference code (alphadl/AgentHER) on the same data and server.
REFERENCE_PROMPT_TOKENS = {"tau-bench": 7917, "webarena": 16636}
DATASETS = {
    "tau-bench": ("tau-bench/gpt-4o-airline.json", "tau-bench"),
    "webarena": ("webarena-browsergym", "browsergym"),
}


def setup(database_url: str) -> None:
    os.environ["DATABASE_URL"] = database_url
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "agenther_site.settings")
    os.environ["SECRET_KEY"] = "cost-bench-" + "x" * 40
    for name in ("CELERY_BROKER_URL", "DEBUG", "DJANGO_DEBUG"):
        os.environ.pop(name, None)
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)


def bench_config(path: Path, base_url: str, batch: bool, judge_view: str) -> dict[str, Any]:
    """The sample configuration with every endpoint pointed at the test server."""
    from django.conf import settings

    from relabel.config import load_config

    # Every endpoint the sample configuration names, declared at the test server.
    settings.OPENAI_BASE_URL = base_url
    settings.AGENTHER_ENDPOINTS = {"vllm": {"base_url": base_url}}
    config = load_config(path, overrides={"malformed_retries": 4, "judge_view": judge_view})
    if batch:
        # The test server finishes a batch after --batch-delay-ms; check as often.
        config.update(batch=True, batch_poll_seconds=0.2)
    return config


def import_datasets(data: Path) -> dict[str, Any]:
    from relabel.importers import import_paths
    from relabel.models import Dataset

    found = {}
    for name, (relative, fmt) in DATASETS.items():
        path = data / relative
        if not path.exists():
            print(f"skipping {name}: {path} is absent", file=sys.stderr)
            continue
        if not Dataset.objects.filter(name=name).exists():
            import_paths([path], name, fmt)
        found[name] = Dataset.objects.get(name=name)
    return found


def measure(run) -> dict[str, Any]:
    """The run's figures from its recorded calls (the endpoint's own usage)."""
    from django.db.models import Count, Q, Sum

    from relabel.models import Candidate, LLMCall, RunItem

    items = RunItem.objects.filter(run=run, is_failure=True)
    full = items.filter(status__in=[RunItem.Status.CANDIDATE, RunItem.Status.NO_CANDIDATE])
    # Every call the endpoint answered (malformed replies are billed too); failed attempts
    # carry no tokens and no cost, and the response cache was emptied before the run.
    calls = LLMCall.objects.filter(run=run, cached=False)
    sums = dict(
        prompt=Sum("prompt_tokens"),
        cached=Sum("cached_tokens"),
        completion=Sum("completion_tokens"),
        cost=Sum("cost_usd"),
        calls=Count("id"),
    )
    every = calls.aggregate(**sums)
    fully = calls.filter(trajectory_id__in=full.values("trajectory_id")).aggregate(**sums)
    stages = {
        row["stage"]: row
        for row in calls.filter(trajectory_id__in=full.values("trajectory_id"))
        .values("stage")
        .annotate(prompt=Sum("prompt_tokens"), n=Count("id"))
    }
    candidates = Candidate.objects.filter(run=run).aggregate(
        n=Count("id"),
        accepted=Count("id", filter=Q(gate=Candidate.Gate.AUTO_ACCEPTED)),
        # Stage 3b: a turn it could not make fit the goal sends the candidate to review.
        flagged=Count("id", filter=Q(consistency__flagged=True)),
        # What the gate accepts on confidence and the judges alone (before stage 3b's flags):
        # the figure that says whether leaner prompts changed the judges' verdicts.
        confident=Count(
            "id",
            filter=Q(confidence__gte=run.config["accept_threshold"])
            & ~Q(gate=Candidate.Gate.REJECTED),
        ),
    )
    # Stages 1-3 only: what the reference code does (it has no stage 3b).
    core = sum(row["prompt"] for stage, row in stages.items() if stage != "consistency")
    processed, complete = items.count(), full.count()
    cost = float(every["cost"] or 0)
    return {
        "failed_trajectories": processed,
        "fully_processed": complete,
        "calls": every["calls"],
        "prompt_tokens_per_processed": round((every["prompt"] or 0) / max(1, processed)),
        "prompt_tokens_per_fully_processed": round((fully["prompt"] or 0) / max(1, complete)),
        "prompt_tokens_stages_1_to_3": round(core / max(1, complete)),
        "completion_tokens_per_processed": round((every["completion"] or 0) / max(1, processed)),
        "completion_tokens_per_fully_processed": round(
            (fully["completion"] or 0) / max(1, complete)
        ),
        "cached_share": round((every["cached"] or 0) / max(1, every["prompt"] or 0), 3),
        "cost_per_processed_usd": round(cost / max(1, processed), 6),
        "cost_per_accepted_pair_usd": round(cost / candidates["accepted"], 6)
        if candidates["accepted"]
        else None,
        "candidates": candidates["n"],
        "accepted": candidates["accepted"],
        "accepted_share": round(candidates["accepted"] / max(1, candidates["n"]), 3),
        "flagged_by_consistency": candidates["flagged"],
        "accepted_before_consistency": candidates["confident"],
        "prompt_tokens_per_stage": {
            stage: round(row["prompt"] / max(1, complete)) for stage, row in sorted(stages.items())
        },
    }


def accepted_over_salts(dataset, config: dict[str, Any], server, salts: int) -> dict[str, Any]:
    """What the gate accepts before stage 3b's flags, over ``salts`` sets of the server's draws
    (the first is the one every other figure comes from)."""
    counts, candidates = [], 0
    try:
        for i in range(salts):
            server.behaviour.salt = f"salt-{i}" if i else ""
            r = relabel(dataset, config, server)
            counts.append(r["accepted_before_consistency"])
            candidates += r["candidates"]
    finally:
        server.behaviour.salt = ""
    return {
        "accepted_before_consistency_by_salt": counts,
        "accepted_share_before_consistency_over_salts": round(sum(counts) / max(1, candidates), 3),
    }


def relabel(dataset, config: dict[str, Any], server) -> dict[str, Any]:
    from relabel.models import LLMCacheEntry, Run
    from relabel.runs import start_run

    LLMCacheEntry.objects.all().delete()  # every call is made and paid for
    server.cache.clear()  # and no run finds the endpoint's prefix cache warmed by another
    started = time.monotonic()
    run = start_run(dataset, backend="openai", config=config)
    run.refresh_from_db()
    if run.status != Run.Status.FINISHED:
        raise SystemExit(f"run {run.pk} on {dataset.name} ended {run.status}: {run.error}")
    wall = round(time.monotonic() - started, 1)
    return {"run": run.pk, "wall_seconds": wall, "batches": run.batches.count(), **measure(run)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    parser.add_argument("--config", type=Path, default=ROOT / "relabel" / "sample-config.toml")
    parser.add_argument("--mode", choices=["sync", "batch", "both"], default="both")
    parser.add_argument("--batch-delay-ms", type=float, default=200.0)
    parser.add_argument(
        "--malformed-rate",
        type=float,
        default=0.0,
        help="Share of replies the server breaks (their re-asks repeat the prompt: the cache).",
    )
    parser.add_argument(
        "--judge-view",
        choices=["run", "evidence", "both"],
        default="both",
        help="What the judges read (the run's judge_view): the whole run (the default), the "
        "evidence, or each in turn.",
    )
    parser.add_argument(
        "--salts",
        type=int,
        default=1,
        help="Synchronous runs per dataset and view, each with the test server's answers drawn "
        "anew, for the accepted share (default 1).",
    )
    parser.add_argument("--database-url", help="Default: a throwaway SQLite database.")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    workdir = tempfile.mkdtemp(prefix="cost-bench.")
    setup(args.database_url or f"sqlite:///{workdir}/cost.sqlite3")
    os.environ.setdefault("VLLM_API_KEY", "bench-key")  # the sample config's second judge

    from relabel.llm.offline_server import start_in_thread

    server = start_in_thread(batch_delay_ms=args.batch_delay_ms, malformed_rate=args.malformed_rate)
    modes = ["sync", "batch"] if args.mode == "both" else [args.mode]
    views = ["run", "evidence"] if args.judge_view == "both" else [args.judge_view]
    results: dict[str, Any] = {}
    try:
        datasets = import_datasets(args.data)
        for name, dataset in datasets.items():
            for view in views:
                for mode in modes:
                    config = bench_config(args.config, server.base_url, mode == "batch", view)
                    figures = relabel(dataset, config, server)
                    figures["reference_prompt_tokens"] = REFERENCE_PROMPT_TOKENS[name]
                    figures["ratio_to_reference"] = round(
                        figures["prompt_tokens_stages_1_to_3"] / REFERENCE_PROMPT_TOKENS[name], 3
                    )
                    if mode == "sync" and args.salts > 1:
                        figures |= accepted_over_salts(dataset, config, server, args.salts)
                    results[f"{name}/judges read {view}/{mode}"] = figures
    finally:
        server.shutdown()
        server.server_close()
    if args.json:
        print(json.dumps(results))
    else:
        for key, r in results.items():
            print(
                f"{key}: {r['fully_processed']}/{r['failed_trajectories']} fully processed; "
                f"prompt tokens {r['prompt_tokens_per_fully_processed']} per fully processed, "
                f"{r['prompt_tokens_stages_1_to_3']} in stages 1-3 ({r['ratio_to_reference']}x "
                f"the reference's {r['reference_prompt_tokens']}), "
                f"{r['prompt_tokens_per_processed']} per processed; completion "
                f"{r['completion_tokens_per_processed']}; cached {r['cached_share']:.1%}; "
                f"${r['cost_per_processed_usd']:.6f} per processed, "
                f"${r['cost_per_accepted_pair_usd']} per accepted pair; accepted "
                f"{r['accepted']}/{r['candidates']} ({r['accepted_share']:.1%}), "
                f"{r['flagged_by_consistency']} flagged by stage 3b (accepted without its flags: "
                f"{r['accepted_before_consistency']}); "
                f"stages {r['prompt_tokens_per_stage']}"
            )
            if "accepted_before_consistency_by_salt" in r:
                print(
                    f"  over {len(r['accepted_before_consistency_by_salt'])} draws of the "
                    f"server's answers: accepted before stage 3b "
                    f"{r['accepted_before_consistency_by_salt']}, "
                    f"{r['accepted_share_before_consistency_over_salts']:.1%} of candidates"
                )
    return 0


if __name__ == "__main__":
    sys.exit(main())
