"""``--format auto``: which importer reads a path, from its layout and its first record, and
why (the reason is reported per file)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from relabel.importers import (
    anthropic,
    browsergym,
    langfuse,
    langsmith,
    openai_responses,
    otel,
    recordings,
    swe_agent,
    taubench,
    toolbench,
)
from relabel.importers.base import TrajectoryImportError, load_json, parse_line

MESSAGE_KEYS = ("messages", "conversations", "history")
# Trace formats, most distinctive first: each says why a record is its own, or "".
TRACE_FORMATS: list[tuple[str, Callable[[Any], str]]] = [
    (otel.NAME, otel.looks_like),
    (langfuse.NAME, langfuse.looks_like),
    (langsmith.NAME, langsmith.looks_like),
    (openai_responses.NAME, openai_responses.looks_like),
    (anthropic.NAME, anthropic.looks_like),
]
KNOWN = (
    "agenther, browsergym, toolbench, tau-bench, messages, swe-agent, otel, langfuse, langsmith, "
    "anthropic or openai-responses"
)


def detect(path: Path, mapping: dict[str, str] | None = None) -> tuple[str, str]:
    """(format name, why) for a file or folder; a TrajectoryImportError says why none fits."""
    if path.is_dir():
        if browsergym.is_task_folder(path) or any(
            browsergym.is_task_folder(p) for p in path.iterdir()
        ):
            return (
                browsergym.NAME,
                "a BrowserGym results folder (task folders of steps_info_K.json)",
            )
        raise TrajectoryImportError(
            path, "cannot tell the format of this folder (not a BrowserGym results folder)"
        )
    suffix = path.suffix.lower()
    if suffix in (".jsonl", ".ndjson"):
        return classify(_first_line(path), path, mapping)
    if suffix in recordings.YAML_SUFFIXES:
        return _recording(path)
    if swe_agent.looks_like(path):
        return swe_agent.NAME, "a SWE-agent .traj file"
    data = load_json(path)
    if toolbench.is_answer_file(data):
        return toolbench.NAME, "a ToolBench answer file (answer_generation)"
    if toolbench.is_eval_file(data):
        return toolbench.NAME, "a ToolBench converted eval file (runs keyed by query id)"
    if swe_agent.looks_like(path, data):
        return swe_agent.NAME, "a SWE-agent trajectory (trajectory + info)"
    found = _trace_format(data)
    if found:
        return found
    first = data[0] if isinstance(data, list) and data else data
    return classify(first, path, mapping)


def classify(record: Any, path: Path, mapping: dict[str, str] | None = None) -> tuple[str, str]:
    """The format of one record (a JSONL line, a JSON file's first element)."""
    found = _trace_format(record)
    if found:
        return found
    if taubench.looks_like(record):
        return taubench.NAME, "a tau-bench run (task_id, traj)"
    if isinstance(record, dict):
        if "original_prompt" in record or ("trajectory_id" in record and "steps" in record):
            return "agenther", "the AgentHER schema (original_prompt / trajectory_id + steps)"
        key = next((k for k in MESSAGE_KEYS if k in record), None)
        if key:
            return "messages", f"a message log: a {key!r} list"
        if mapping:
            return "messages", "a record read through --map"
    raise TrajectoryImportError(
        path,
        f"cannot tell the format: expected an {KNOWN} file (name it with --format)",
        record="record 1",
    )


def _trace_format(record: Any) -> tuple[str, str] | None:
    candidates = [record]
    if isinstance(record, list) and record:
        candidates.append(record[0])  # a list of spans, runs, observations or pairs
    for name, looks_like in TRACE_FORMATS:
        for candidate in candidates:
            why = looks_like(candidate)
            if why:
                return name, why
    return None


def _recording(path: Path) -> tuple[str, str]:
    _, record = recordings.load(path)[0]
    for name, looks_like in (
        (anthropic.NAME, anthropic.looks_like),
        (openai_responses.NAME, openai_responses.looks_like),
    ):
        why = looks_like(record)
        if why:
            return name, why
    raise TrajectoryImportError(
        path,
        "cannot tell the format: a YAML file that is not a recorded Anthropic Messages or "
        "OpenAI Responses cassette (name it with --format)",
    )


def _first_line(path: Path) -> Any:
    with path.open(encoding="utf-8", errors="replace") as f:
        for n, line in enumerate(f, 1):
            if line.strip():
                return parse_line(path, line, f"line {n}")
    raise TrajectoryImportError(path, "the file is empty")
