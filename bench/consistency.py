#!/usr/bin/env python
"""How many exported SFT rows still restate the goal their run failed, per benchmark and policy.

    .venv/bin/python bench/consistency.py [--data ../shared/data] [--database-url URL] [--json]

Imports WebArena (BrowserGym results), tau-bench (airline) and ToolBench (DFS answers,
StableToolBench, the converted CoT eval file) from ``--data`` into a throwaway SQLite database,
relabels each with the rules backend and the default configuration under every ``consistency``
policy (off = before; rewrite, strip, flag = after), and reads the SFT rows the export writes
(review/exports/sft.py, the rewrites overlaid as in every export).

A row restates its original goal when an assistant message (thought, message to the user, final
answer) holds six or more consecutive words of it (case and punctuation ignored), or names a
constraint or entity of it (a number, an id, a quoted string, a proper name) that the row's goal
does not, and that nothing the agent saw before had shown (relabel.pipeline.consistency's own
rule; a number is never excused).

Two sets of rows: "exported", what an export holds with no person involved (auto-accepted
candidates), and "if accepted", every candidate the gate did not reject, as if reviewers accepted
all they were sent: the upper bound of what reaches training data. Prints a table (or JSON).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import benchdjango  # noqa: E402  (bench/ is on sys.path when run as a script)

POLICIES = ("off", "rewrite", "strip", "flag")
BENCHMARKS = {
    "WebArena": ["webarena-browsergym"],
    "tau-bench": ["tau-bench/gpt-4o-airline.json"],
    "ToolBench": ["toolbench/answer", "toolbench/tooleval", "stabletoolbench"],
}
SIX = 6


def six_word_runs(original: str) -> set[tuple[str, ...]]:
    from relabel.pipeline.hindsight import word_spans

    words = [w for w, _, _ in word_spans(original)]
    return {tuple(words[i : i + SIX]) for i in range(len(words) - SIX + 1)}


def quotes_six_words(text: str, runs: set[tuple[str, ...]]) -> bool:
    from relabel.pipeline.hindsight import word_spans

    words = [w for w, _, _ in word_spans(text)]
    return any(tuple(words[i : i + SIX]) in runs for i in range(len(words) - SIX + 1))


def row_restates(messages: list[dict[str, Any]], original: str) -> dict[str, bool]:
    """Whether an assistant message of the row quotes six words of the original goal, names an
    entity of it that the row's goal does not, or either."""
    from relabel.pipeline.consistency import Reference, find, message_turns

    goal = next(m["content"] for m in messages if m["role"] == "user")
    runs = six_word_runs(original)
    assistant = [m.get("content") or "" for m in messages if m["role"] == "assistant"]
    six = any(quotes_six_words(text, runs) for text in assistant)
    findings = find(Reference.of(original, goal), message_turns(messages))
    entity = any(f.turn == "thought" and f.reason.startswith("names") for f in findings)
    return {"six_words": six, "entity": entity, "either": six or entity}


def import_benchmarks(data: Path) -> dict[str, str]:
    from relabel.importers import import_paths

    names = {}
    for name, paths in BENCHMARKS.items():
        present = [data / p for p in paths if (data / p).exists()]
        if present:
            import_paths(present, name)
            names[name] = name
    return names


def relabel(dataset_name: str, policy: str) -> Any:
    from relabel.models import Dataset
    from relabel.runs import start_run

    dataset = Dataset.objects.get(name=dataset_name)
    return start_run(dataset, backend="rules", config={"consistency": policy})


def measure(run: Any) -> dict[str, Any]:
    """The run's candidates as SFT rows, counted in the two sets."""
    from relabel.models import Candidate
    from review.exports import rows, sft
    from review.exports.options import ExportOptions

    options = ExportOptions("sft")
    candidates = Candidate.objects.filter(run=run).exclude(gate=Candidate.Gate.REJECTED)
    sets: dict[str, dict[str, int]] = {
        "exported": _zero(),
        "if_accepted": _zero(),
    }
    for candidate in rows.iter_candidates(candidates.order_by("id")):
        row = sft.candidate_row(candidate, options)
        found = row_restates(row["messages"], candidate.trajectory.goal)
        state = rows.row_consistency(candidate)
        views = ["if_accepted"] + (["exported"] if candidate.gate == "auto_accepted" else [])
        for view in views:
            tally = sets[view]
            tally["rows"] += 1
            tally["six_words"] += found["six_words"]
            tally["entity"] += found["entity"]
            tally["either"] += found["either"]
            tally["rewritten"] += bool(state.rewrites)
            tally["flagged"] += state.flagged
            # Restating, yet nobody would be told: what could reach training data unseen.
            tally["either_unflagged"] += found["either"] and not state.flagged
    return sets


def _zero() -> dict[str, int]:
    keys = ("rows", "six_words", "entity", "either", "either_unflagged", "rewritten", "flagged")
    return dict.fromkeys(keys, 0)


def share(part: int, whole: int) -> str:
    return f"{part}/{whole} ({100 * part / whole:.0f}%)" if whole else "0/0"


def table(results: dict[str, dict[str, dict[str, Any]]]) -> str:
    lines = [
        "| benchmark | policy | rows exported (auto) | restating (6 words / entity / either) "
        "| rows if reviewers accepted all | restating (6 words / entity / either) "
        "| rewritten | flagged | restating, not flagged |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for name, by_policy in results.items():
        for policy, sets in by_policy.items():
            auto, every = sets["exported"], sets["if_accepted"]
            lines.append(
                f"| {name} | {policy} | {auto['rows']} | "
                f"{share(auto['six_words'], auto['rows'])} / {share(auto['entity'], auto['rows'])} "
                f"/ {share(auto['either'], auto['rows'])} | {every['rows']} | "
                f"{share(every['six_words'], every['rows'])} / "
                f"{share(every['entity'], every['rows'])} / {share(every['either'], every['rows'])}"
                f" | {every['rewritten']} | {every['flagged']} | {every['either_unflagged']} |"
            )
    return "\n".join(lines)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    ap.add_argument("--database-url", default=None, help="Default: a throwaway SQLite file.")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    if not args.data.is_dir():
        print(f"{args.data} is absent", file=sys.stderr)
        return 1
    work = Path(tempfile.mkdtemp(prefix="consistency-bench."))
    benchdjango.setup_django(args.database_url or f"sqlite:///{work / 'bench.sqlite3'}", "cons")
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    results: dict[str, dict[str, Any]] = {}
    for name in import_benchmarks(args.data):
        results[name] = {policy: measure(relabel(name, policy)) for policy in POLICIES}
    print(json.dumps(results, indent=2) if args.json else table(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
