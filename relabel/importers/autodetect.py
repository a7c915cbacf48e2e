"""``--format auto``: which importer reads a path, from its layout and its first record."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from relabel.importers import browsergym, swe_agent, taubench, toolbench
from relabel.importers.base import TrajectoryImportError, load_json, parse_line

MESSAGE_KEYS = ("messages", "conversations", "history")


def detect(path: Path, mapping: dict[str, str] | None = None) -> str:
    """The format name for a file or folder; a TrajectoryImportError says why none fits."""
    if path.is_dir():
        if browsergym.is_task_folder(path) or any(
            browsergym.is_task_folder(p) for p in path.iterdir()
        ):
            return browsergym.NAME
        raise TrajectoryImportError(
            path, "cannot tell the format of this folder (not a BrowserGym results folder)"
        )
    if path.suffix.lower() in (".jsonl", ".ndjson"):
        return classify(_first_line(path), path, mapping)
    if swe_agent.looks_like(path):
        return swe_agent.NAME
    data = load_json(path)
    if toolbench.is_answer_file(data) or toolbench.is_eval_file(data):
        return toolbench.NAME
    if swe_agent.looks_like(path, data):
        return swe_agent.NAME
    first = data[0] if isinstance(data, list) and data else data
    return classify(first, path, mapping)


def classify(record: Any, path: Path, mapping: dict[str, str] | None = None) -> str:
    if taubench.looks_like(record):
        return taubench.NAME
    if isinstance(record, dict):
        if "original_prompt" in record or ("trajectory_id" in record and "steps" in record):
            return "agenther"
        if mapping or any(key in record for key in MESSAGE_KEYS):
            return "messages"
    raise TrajectoryImportError(
        path,
        "cannot tell the format: expected an agenther, browsergym, toolbench, tau-bench, "
        "messages or swe-agent file (name it with --format)",
        record="record 1",
    )


def _first_line(path: Path) -> Any:
    with path.open(encoding="utf-8", errors="replace") as f:
        for n, line in enumerate(f, 1):
            if line.strip():
                return parse_line(path, line, f"line {n}")
    raise TrajectoryImportError(path, "the file is empty")
