"""Recorded API calls: VCR cassettes (YAML or JSON ``interactions``, as vcrpy and pydantic-ai
write them) and request/response pairs, for the anthropic and openai-responses importers.

A recording holds one request body and one response body per call. Calls of one conversation
resend its history, so they are grouped by how their conversation starts (the system prompt or
instructions, and the first input message) or, for the Responses API, by
``previous_response_id``; each group becomes one trajectory, read through traces.Transcript.
"""

from __future__ import annotations

import gzip
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from relabel.importers.base import (
    ImportOptions,
    Parsed,
    Skipped,
    TrajectoryImportError,
    load_json,
    read_records,
)
from relabel.importers.traces import (
    Outcome,
    TraceRun,
    Transcript,
    decide,
    explicit_goal,
    explicit_outcome,
    signal_outcome,
    trajectory,
)

YAML_SUFFIXES = (".yaml", ".yml")


@dataclass
class Call:
    """One recorded API call."""

    where: str  # "interaction 2" or "line 3": names it in errors
    uri: str
    request: dict[str, Any]
    response: dict[str, Any] | None
    status: int = 200


def load(path: Path) -> list[tuple[str, Any]]:
    """The records of a file: a YAML cassette is one record; JSON and JSONL as base reads them."""
    if path.suffix.lower() not in YAML_SUFFIXES:
        if path.suffix.lower() in (".jsonl", ".ndjson"):
            return list(read_records(path))
        return [("record 1", load_json(path))]
    try:
        with path.open("rb") as f:
            return [("record 1", yaml.safe_load(f))]
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" (line {mark.line + 1})" if mark else ""
        raise TrajectoryImportError(path, f"not valid YAML{where}: {err}") from None


def is_cassette(record: Any) -> bool:
    return isinstance(record, dict) and isinstance(record.get("interactions"), list)


def cassette_uris(record: Any) -> list[str]:
    return [
        str((i.get("request") or {}).get("uri") or "")
        for i in record.get("interactions") or []
        if isinstance(i, dict)
    ]


def calls(record: dict[str, Any], path: Path, where: str) -> list[Call]:
    """A cassette's interactions, bodies decoded."""
    out = []
    for n, interaction in enumerate(record["interactions"], 1):
        at = f"{where}, interaction {n}"
        if not isinstance(interaction, dict):
            raise TrajectoryImportError(path, "an interaction must be an object", record=at)
        request = interaction.get("request") or {}
        response = interaction.get("response") or {}
        status = response.get("status") or {}
        out.append(
            Call(
                where=at,
                uri=str(request.get("uri") or ""),
                request=_body(request, path, at, "request.body"),
                response=_body(response, path, at, "response.body") or None,
                status=int(status.get("code", 200) if isinstance(status, dict) else status or 200),
            )
        )
    return out


def pair(record: dict[str, Any], path: Path, where: str) -> Call:
    """A ``{"request": {...}, "response": {...}}`` record (bodies, or VCR-style wrappers)."""
    request, response = record.get("request"), record.get("response")
    if not isinstance(request, dict):
        raise TrajectoryImportError(path, "must be an object", record=where, field="request")
    body = request.get("body", request.get("parsed_body", request))
    return Call(
        where=where,
        uri=str(request.get("uri") or request.get("url") or ""),
        request=_decoded(body, path, where, "request.body"),
        response=_decoded(response, path, where, "response") if response is not None else None,
        status=int(record.get("status") or 200),
    )


def _body(part: dict[str, Any], path: Path, where: str, field: str) -> dict[str, Any]:
    if isinstance(part.get("parsed_body"), dict):  # pydantic-ai's cassettes
        return part["parsed_body"]
    body = part.get("body", part.get("content"))
    if isinstance(body, dict) and "string" in body:  # vcrpy: {"string": "..."}
        body = body["string"]
    return _decoded(body, path, where, field) if body not in (None, "", b"") else {}


def _decoded(body: Any, path: Path, where: str, field: str) -> dict[str, Any]:
    if isinstance(body, bytes):
        try:
            body = gzip.decompress(body) if body[:2] == b"\x1f\x8b" else body
            body = body.decode("utf-8")
        except (OSError, UnicodeDecodeError) as err:
            raise TrajectoryImportError(
                path, f"cannot read the body ({err})", record=where, field=field
            ) from None
    if isinstance(body, str):
        try:
            body = json.loads(body)
        except json.JSONDecodeError:
            raise TrajectoryImportError(
                path,
                "not a JSON body (a streamed response is not supported)",
                record=where,
                field=field,
            ) from None
    if not isinstance(body, dict):
        raise TrajectoryImportError(path, "must be a JSON object", record=where, field=field)
    return body


def group(calls: list[Call], key: Any) -> list[list[Call]]:
    """Calls grouped into conversations by ``key(call)`` (first appearance order)."""
    groups: dict[Any, list[Call]] = {}
    for c in calls:
        groups.setdefault(key(c), []).append(c)
    return list(groups.values())


def first_message_key(messages: Any) -> str:
    """How a conversation starts: its first message, as canonical JSON."""
    first = messages[0] if isinstance(messages, list) and messages else messages
    return json.dumps(first, sort_keys=True, ensure_ascii=False, default=str)


def recorded_trajectory(
    recorded: Recorded, transcript: Transcript, failed: Outcome | None, name: str, **extra: Any
) -> Parsed | Skipped:
    """One recorded conversation (its calls, pieced into ``transcript``) as a trajectory: its
    outcome from --map first, then ``failed`` (the last call's own failure), then the signals;
    ``extra`` joins the metadata."""
    calls, record, where, path = recorded.calls, recorded.record, recorded.where, recorded.path
    last = calls[-1]
    # What --map reads: the record itself, or a recording's last call.
    source = record if record is not None else {**last.request, "response": last.response}
    options = recorded.options
    outcome = decide(
        explicit_outcome([source], options, path, where), failed, signal_outcome([], transcript)
    )
    raw = [{"request": c.request, "response": c.response} for c in calls]
    run = TraceRun(
        external_id=recorded.external_id,
        transcript=transcript,
        outcome=outcome,
        raw=record if record is not None else raw,
        goal=explicit_goal(source, options, path, where),
        metadata={
            "model": (last.response or {}).get("model") or last.request.get("model"),
            "calls": len(calls),
            **extra,
        },
    )
    return trajectory(run, path, where, name)


@dataclass
class Recorded:
    """The calls of one conversation as a file recorded them, and where they came from."""

    path: Path
    external_id: str
    where: str
    record: Any
    calls: list[Call]
    options: ImportOptions
