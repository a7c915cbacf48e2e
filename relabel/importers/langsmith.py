"""LangSmith runs: the SDK's run payloads (``{"post": [...], "patch": [...]}``, patches merged
into their runs), run trees (``child_runs`` nested), and lists of runs as the API returns them
(``parent_run_id``, ``trace_id``, ``dotted_order``). One trace (a root run and everything under
it) is one trajectory, its id the root run's.

Child runs are the steps, in ``dotted_order`` (else start time): ``llm`` runs are the model
calls (their input messages and output: a chat completion, LangChain generations, a Responses
or Anthropic message), ``tool`` and ``retriever`` runs the observations answering the calls
(or calls of their own when no model call asked for them); ``chain`` and the other run types
only hold the others.

Goal: ``--map goal=FIELD``, else the root run's input (its first user message, or its
``input`` / ``question`` / ``query`` text), else the first user message. Success: ``--map
success=FIELD`` (a path into the root run, e.g. ``outputs.passed``), else ``--success-score
KEY>=VALUE`` on the root run's feedback (``feedback_stats`` averages, or a ``feedback`` list),
else an ``error`` on the root run or on its last model call or tool, else unknown.
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from typing import Any

from relabel.importers.base import (
    ImportOptions,
    Parsed,
    Skipped,
    TrajectoryImportError,
    read_records,
    text_of,
)
from relabel.importers.dialects import decode, openai_messages, openai_tools
from relabel.importers.traces import (
    MAP_KEYS,
    TraceRun,
    Transcript,
    decide,
    explicit_goal,
    explicit_outcome,
    json_safe,
    score_outcome,
    signal_outcome,
    trajectory,
)

NAME = "langsmith"
__all__ = ["MAP_KEYS", "NAME", "looks_like", "parse"]
TOOL_RUNS = ("tool", "retriever")
GOAL_KEYS = ("input", "question", "query", "prompt", "task")


def looks_like(record: Any) -> str:
    """Why this record is LangSmith data ("" when it is not)."""
    if isinstance(record, dict) and (
        isinstance(record.get("post"), list) or isinstance(record.get("patch"), list)
    ):
        return "LangSmith run payloads: post + patch"
    if isinstance(record, dict) and "run_type" in record and ("inputs" in record or "id" in record):
        return "a LangSmith run (run_type, inputs)"
    return ""


def parse(path: Path, options: ImportOptions) -> list[Parsed | Skipped]:
    runs: list[dict[str, Any]] = []
    for locator, record in read_records(path):
        for item in record if isinstance(record, list) else [record]:
            runs += _runs(item, path, locator)
    if not runs:
        raise TrajectoryImportError(path, "no LangSmith run in this file")
    return [
        _parse_trace(path, n, trace, options) for n, trace in enumerate(_traces(runs).values(), 1)
    ]


def _runs(item: Any, path: Path, where: str) -> list[dict[str, Any]]:
    if not isinstance(item, dict):
        raise TrajectoryImportError(path, "a LangSmith run must be a JSON object", record=where)
    if "post" in item or "patch" in item:
        return _merge(item.get("post") or [], item.get("patch") or [], path, where)
    return _flatten(item, None)


def _merge(posts: list[Any], patches: list[Any], path: Path, where: str) -> list[dict]:
    """Each patch (the run's end: outputs, error, end time) onto the run it finishes, found by
    id, else by dotted_order, else by trace id."""
    runs = []
    for i, post in enumerate(posts):
        if not isinstance(post, dict):
            raise TrajectoryImportError(
                path, "a run must be an object", record=where, field=f"post[{i}]"
            )
        runs += _flatten(post, None)
    for i, patch in enumerate(patches):
        if not isinstance(patch, dict):
            raise TrajectoryImportError(
                path, "a run must be an object", record=where, field=f"patch[{i}]"
            )
        target = next(
            (
                r
                for key in ("id", "dotted_order", "trace_id")
                for r in runs
                if patch.get(key) and r.get(key) == patch[key]
            ),
            None,
        )
        if target is None:
            runs.append(dict(patch))
        else:
            target.update({k: v for k, v in patch.items() if v is not None})
    return runs


def _flatten(run: dict[str, Any], parent: Any) -> list[dict[str, Any]]:
    """A run tree as a list of runs, each child knowing its parent."""
    own = {k: v for k, v in run.items() if k != "child_runs"}
    if parent is not None:
        own.setdefault("parent_run_id", parent)
    out = [own]
    for child in run.get("child_runs") or []:
        if isinstance(child, dict):
            out += _flatten(child, run.get("id"))
    return out


def _traces(runs: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    by_id = {r.get("id"): r for r in runs if r.get("id")}
    traces: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for run in runs:
        root, hops = run, 0
        while root.get("parent_run_id") in by_id and hops < 1000:
            root, hops = by_id[root["parent_run_id"]], hops + 1
        traces[str(run.get("trace_id") or root.get("id") or "trace")].append(run)
    return traces


def _order(run: dict[str, Any]) -> str:
    return str(run.get("dotted_order") or run.get("start_time") or "")


def _parse_trace(
    path: Path, n: int, runs: list[dict[str, Any]], options: ImportOptions
) -> Parsed | Skipped:
    runs = sorted(runs, key=_order)
    ids = {r.get("id") for r in runs}
    root = next((r for r in runs if r.get("parent_run_id") not in ids), runs[0])
    external_id = str(root.get("trace_id") or root.get("id") or f"{path.stem}:{n}")
    where = f"trace {n} (id {external_id!r})"
    transcript = Transcript()
    for run in runs:
        _read(run, transcript)
    steps = [r for r in runs if r.get("run_type") in ("llm", *TOOL_RUNS)]
    ends = [root, *(s for s in steps[-1:] if s is not root)]  # the run ended on these
    errors = [_error(r) for r in ends if r.get("error")]
    outputs = decode(root.get("outputs"))
    run = TraceRun(
        external_id=external_id,
        transcript=transcript,
        outcome=decide(
            explicit_outcome([root], options, path, where),
            score_outcome(_feedback(root), options, path, where, "feedback_stats"),
            signal_outcome(errors, transcript, "error"),
        ),
        raw=json_safe(runs),
        goal=explicit_goal(root, options, path, where) or _goal(root),
        final_answer=_answer(outputs),
        metadata={
            "trace_id": external_id,
            "root_run": root.get("name"),
            "run_type": root.get("run_type"),
            "feedback": _feedback(root),
            "errors": [_error(r) for r in runs if r.get("error")],
            "tags": root.get("tags") or [],
            "model": _model(runs),
        },
    )
    return trajectory(run, path, where, NAME)


def _read(run: dict[str, Any], transcript: Transcript) -> None:
    kind = run.get("run_type")
    inputs = decode(run.get("inputs")) or {}
    outputs = decode(run.get("outputs"))
    if kind == "llm":
        if isinstance(inputs, dict):
            transcript.tools = transcript.tools or openai_tools(inputs.get("tools"))
            prompts = inputs.get("prompts")
            inputs = prompts if isinstance(prompts, list) else inputs
        transcript.exchange(inputs, outputs or [], "")
    elif kind in TOOL_RUNS:
        arguments = inputs.get("input", inputs) if isinstance(inputs, dict) else inputs
        result = outputs.get("output", outputs) if isinstance(outputs, dict) else outputs
        if isinstance(result, dict) and "content" in result:  # a LangChain ToolMessage
            result = result["content"]
        call_id = inputs.get("tool_call_id") if isinstance(inputs, dict) else ""
        error = text_of(run["error"]) if run.get("error") else ""
        transcript.tool_result(
            str(call_id or ""), str(run.get("name") or kind), decode(arguments), result, error
        )


def _feedback(root: dict[str, Any]) -> dict[str, Any]:
    """Feedback key -> value: ``feedback_stats`` averages, or a ``feedback`` list's scores."""
    out: dict[str, Any] = {}
    for item in root.get("feedback") or []:
        if isinstance(item, dict) and item.get("key"):
            out[str(item["key"])] = item.get("score", item.get("value"))
    for key, stats in (root.get("feedback_stats") or {}).items():
        out[str(key)] = stats.get("avg", stats.get("score")) if isinstance(stats, dict) else stats
    return out


def _goal(root: dict[str, Any]) -> str:
    inputs = decode(root.get("inputs"))
    if isinstance(inputs, dict):
        for key in GOAL_KEYS:
            if isinstance(inputs.get(key), str) and inputs[key].strip():
                return inputs[key].strip()
    users = [m for m in openai_messages(inputs, "user") if m["role"] == "user"]
    return users[0]["content"].strip() if users else ""


def _answer(outputs: Any) -> str:
    if isinstance(outputs, str):
        return outputs
    if isinstance(outputs, dict):
        for key in ("output", "answer", "result"):
            if isinstance(outputs.get(key), str):
                return outputs[key]
    return ""


def _error(run: dict[str, Any]) -> str:
    return f"{run.get('run_type', 'run')} {run.get('name', '')!r}: {text_of(run.get('error'))}"


def _model(runs: list[dict[str, Any]]) -> str | None:
    for run in runs:
        metadata = (run.get("extra") or {}).get("metadata") or {}
        if metadata.get("ls_model_name"):
            return str(metadata["ls_model_name"])
    return None
