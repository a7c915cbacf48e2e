"""What every importer shares: the error type, the parsed form of a trajectory, reading JSON and
JSONL, turning chat messages into steps, and saving one source file in one transaction.

An importer module parses one *unit* (a file, or a BrowserGym task folder) into a list of
``Parsed`` and ``Skipped`` records without touching the database; ``save_unit`` then writes the
unit whole, or raises and writes nothing.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from django.db import DataError, IntegrityError, transaction

from relabel.models import Dataset, Step, Trajectory, compress_json


class TrajectoryImportError(ValueError):
    """Bad input, located: which file, which record (index and/or id) and which field."""

    def __init__(
        self, path: Path | str, message: str, *, record: str = "", field: str = ""
    ) -> None:
        self.path = str(path)
        self.record = record
        self.field = field
        self.message = message
        super().__init__(str(self))

    def __str__(self) -> str:
        where = [self.path]
        if self.record:
            where.append(self.record)
        if self.field:
            where.append(f"field '{self.field}'")
        return f"{': '.join(where)}: {self.message}"


@dataclass
class Parsed:
    """One trajectory read from a source, ready to save: ``steps`` are unsaved ``Step``s."""

    external_id: str
    goal: str
    steps: list[Step]
    success: bool | None  # None: the source recorded no outcome (see Trajectory.success)
    raw: Any
    reward: float | None = None
    raw_label: str = ""
    final_answer: str = ""
    failure_reason: str = ""
    system_prompt: str = ""
    tools: list[dict[str, Any]] = field(default_factory=list)
    metadata: dict[str, Any] = field(default_factory=dict)

    def to_model(self, dataset: Dataset, source_format: str, source_file: str) -> Trajectory:
        return Trajectory(
            dataset=dataset,
            external_id=self.external_id[:300],
            source_format=source_format,
            source_file=source_file[-500:],
            goal=self.goal,
            system_prompt=self.system_prompt,
            tools=self.tools,
            final_answer=self.final_answer,
            success=self.success,
            reward=self.reward,
            raw_label=self.raw_label[:200],
            failure_reason=self.failure_reason,
            metadata=self.metadata,
            step_count=len(self.steps),
            raw=compress_json(self.raw),
        )


@dataclass
class Skipped:
    """A source record deliberately not imported, and why (it is reported, never silently lost)."""

    external_id: str
    reason: str


@dataclass
class ImportOptions:
    """What the user said about the files: ``--map KEY=FIELD`` and ``--success-score``."""

    mapping: dict[str, str] = field(default_factory=dict)
    success_score: SuccessScore | None = None


@dataclass(frozen=True)
class SuccessScore:
    """``--success-score NAME>=VALUE``: the score (Langfuse) or feedback key (LangSmith) that
    says whether a run succeeded, and the threshold it must pass."""

    name: str
    op: str
    threshold: float

    OPERATORS = {
        ">=": lambda a, b: a >= b,
        ">": lambda a, b: a > b,
        "<=": lambda a, b: a <= b,
        "<": lambda a, b: a < b,
        "==": lambda a, b: a == b,
        "=": lambda a, b: a == b,
    }

    @classmethod
    def parse(cls, text: str) -> SuccessScore:
        match = re.fullmatch(r"\s*([^<>=]+?)\s*(>=|<=|==|>|<|=)\s*([-+0-9.eE]+)\s*", text or "")
        try:
            return cls(match.group(1), match.group(2), float(match.group(3)))
        except (AttributeError, ValueError):
            raise TrajectoryImportError(
                "--success-score", f"{text!r} is not NAME>=VALUE (e.g. correctness>=0.5)"
            ) from None

    def passed(self, value: Any) -> bool:
        """Whether a score's value means success; booleans and "True"/"False" count as 1 / 0.
        Raises ValueError for a value that is neither a number nor a label."""
        if isinstance(value, str):
            try:
                value = float(value)
            except ValueError:
                value = outcome_from(value)[0]
        if not isinstance(value, bool | int | float):
            raise ValueError(f"score {self.name!r} has no numeric value ({value!r})")
        return bool(self.OPERATORS[self.op](float(value), self.threshold))

    def __str__(self) -> str:
        return f"{self.name}{self.op}{self.threshold:g}"


@dataclass
class FileReport:
    """What one file (or BrowserGym task folder) was read as, why, and what came of it."""

    path: str
    format: str
    why: str
    imported: int = 0
    duplicates: int = 0
    skipped: int = 0
    successes: int = 0
    failures: int = 0
    unknown: int = 0

    def as_dict(self) -> dict[str, Any]:
        return dict(vars(self))


@dataclass
class ImportSummary:
    dataset: str
    format: str
    imported: int = 0
    duplicates: int = 0
    skipped: int = 0
    successes: int = 0
    failures: int = 0
    unknown: int = 0
    skipped_reasons: dict[str, int] = field(default_factory=dict)
    skipped_ids: list[str] = field(default_factory=list)
    files: list[FileReport] = field(default_factory=list)
    # NUL characters (which PostgreSQL cannot store in text) replaced by U+FFFD; the raw record
    # keeps the original.
    nul_replaced: int = 0

    MAX_SKIPPED_IDS = 50

    def add_skip(self, skip: Skipped) -> None:
        self.skipped += 1
        self.skipped_reasons[skip.reason] = self.skipped_reasons.get(skip.reason, 0) + 1
        if len(self.skipped_ids) < self.MAX_SKIPPED_IDS:
            self.skipped_ids.append(skip.external_id)

    def add(self, report: FileReport, result: UnitResult) -> None:
        """One file's result, into its report and the totals."""
        for name in ("imported", "duplicates", "successes", "failures", "unknown"):
            setattr(report, name, getattr(result, name))
            setattr(self, name, getattr(self, name) + getattr(result, name))
        self.nul_replaced += result.nul_replaced
        report.skipped = len(result.skipped)
        for skip in result.skipped:
            self.add_skip(skip)
        self.files.append(report)

    def as_dict(self) -> dict[str, Any]:
        return {
            "dataset": self.dataset,
            "format": self.format,
            "imported": self.imported,
            "duplicates": self.duplicates,
            "skipped": self.skipped,
            "successes": self.successes,
            "failures": self.failures,
            "unknown": self.unknown,
            "skipped_reasons": dict(self.skipped_reasons),
            "skipped_ids": list(self.skipped_ids),
            "files": [f.as_dict() for f in self.files],
            "nul_replaced": self.nul_replaced,
        }

    def line(self) -> str:
        text = (
            f"dataset {self.dataset} ({self.format}): imported {self.imported} "
            f"({self.successes} successes, {self.failures} failures, {self.unknown} unknown), "
            f"{self.duplicates} duplicates, {self.skipped} skipped from {len(self.files)} file(s)"
        )
        if self.skipped_reasons:
            reasons = "; ".join(f"{n} x {why}" for why, n in self.skipped_reasons.items())
            text += f" [skipped: {reasons}: {', '.join(self.skipped_ids)}]"
        if self.nul_replaced:
            text += f"; {self.nul_replaced} NUL character(s) replaced by U+FFFD"
        return text


# --- reading ---------------------------------------------------------------------------------


# Deeper than this, a record is refused: no real trajectory nests so far, and a few hundred
# levels more would crash the JSON reader (Python's recursion limit) or the database.
MAX_DEPTH = 100
NUL = "\x00"


def load_json(path: Path) -> Any:
    try:
        with path.open("rb") as f:
            data = json.load(f)
    except json.JSONDecodeError as err:
        raise TrajectoryImportError(
            path, f"not valid JSON (line {err.lineno}, column {err.colno}: {err.msg})"
        ) from None
    except UnicodeDecodeError as err:
        raise TrajectoryImportError(path, f"not UTF-8 text ({err.reason})") from None
    except RecursionError:
        raise TrajectoryImportError(path, too_deep_message(to_read=True)) from None
    for i, record in enumerate(data if isinstance(data, list) else [data], 1):
        check_depth(path, record, f"record {i}")
    return data


def too_deep_message(*, to_read: bool = False) -> str:
    return f"nested too deeply{' to read' if to_read else ''} (more than {MAX_DEPTH} levels)"


def deepest_path(value: Any, limit: int = MAX_DEPTH) -> str | None:
    """Where ``value`` first nests deeper than ``limit`` levels ("" for its top), or None.

    A loop, not recursion: the point is to survive what recursion cannot.
    """
    stack: list[tuple[Any, str, int]] = [(value, "", 1)]
    while stack:
        node, where, depth = stack.pop()
        if not isinstance(node, dict | list):
            continue
        if depth > limit:
            return where
        items = node.items() if isinstance(node, dict) else enumerate(node)
        for key, child in items:
            step = f"[{key}]" if isinstance(node, list) else (f".{key}" if where else str(key))
            stack.append((child, where + step, depth + 1))
    return None


def check_depth(path: Path, record: Any, locator: str) -> None:
    where = deepest_path(record)
    if where is not None:
        shown = where if len(where) <= 60 else where[:60] + "…"
        raise TrajectoryImportError(path, too_deep_message(), record=locator, field=shown)


def read_records(path: Path) -> Iterator[tuple[str, Any]]:
    """Records of a JSON array, a single JSON object, or JSONL, each with a locator for errors.

    The locator is "record N" (1-based) for JSON and "line N" for JSONL. JSONL is read a line at
    a time, never whole.
    """
    if path.suffix.lower() in (".jsonl", ".ndjson"):
        yield from _read_jsonl(path)
        return
    data = load_json(path)
    if isinstance(data, list):
        for i, record in enumerate(data, 1):
            yield f"record {i}", record
    else:
        yield "record 1", data


def _read_jsonl(path: Path) -> Iterator[tuple[str, Any]]:
    with path.open("rb") as f:
        for n, raw in enumerate(f, 1):
            locator = f"line {n}"
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as err:
                raise TrajectoryImportError(
                    path, f"not UTF-8 text ({err.reason})", record=locator
                ) from None
            if line.strip():
                yield locator, parse_line(path, line, locator)


def parse_line(path: Path, line: str, locator: str) -> Any:
    """One JSONL line as a value, or an error naming the line."""
    try:
        value = json.loads(line)
    except json.JSONDecodeError as err:
        raise TrajectoryImportError(
            path, f"not valid JSON (column {err.colno}: {err.msg})", record=locator
        ) from None
    except RecursionError:
        raise TrajectoryImportError(path, too_deep_message(to_read=True), record=locator) from None
    check_depth(path, value, locator)
    return value


def record_number(locator: str) -> int:
    return int(locator.rsplit(" ", 1)[-1])


def with_id(locator: str, external_id: Any) -> str:
    return f"{locator} (id {external_id!r})" if external_id not in (None, "") else locator


TEXT_PARTS = ("text", "input_text", "output_text")


def text_of(value: Any) -> str:
    """Message content as text: strings as they are, text parts joined (OpenAI, Responses,
    Anthropic and OpenTelemetry spell them differently), anything else as JSON."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    parts = isinstance(value, list)
    if parts and all(isinstance(p, dict) and ("type" in p or "text" in p) for p in value):
        return "\n".join(
            str(p.get("text", p.get("content", "")))
            for p in value
            if p.get("type", "text") in TEXT_PARTS
        )
    return json.dumps(value, ensure_ascii=False)


def parse_arguments(arguments: Any) -> Any:
    """Tool-call arguments as an object when they are JSON, else kept as they came (a string)."""
    if isinstance(arguments, dict):
        return arguments
    if isinstance(arguments, str):
        try:
            value = json.loads(arguments)
        except (json.JSONDecodeError, RecursionError):
            return arguments
        if deepest_path(value) is not None:
            return arguments  # kept as the text it came as: too deep to store as JSON
        return value if isinstance(value, dict) else arguments
    return {} if arguments is None else arguments


def outcome_from(value: Any) -> tuple[bool, float | None]:
    """(success, reward) from a label: booleans, "True"/"False" strings, or a numeric reward.

    Success is the full reward only: 0.33 is a failure that keeps its reward.
    """
    if isinstance(value, bool):
        return value, None
    if isinstance(value, int | float):
        return float(value) >= 1.0, float(value)
    if isinstance(value, str):
        lowered = value.strip().lower()
        if lowered in ("true", "yes", "1", "success", "correct", "pass"):
            return True, None
        if lowered in ("false", "no", "0", "failure", "fail", "incorrect", ""):
            return False, None
        try:
            return outcome_from(float(lowered))
        except ValueError:
            pass
    raise ValueError(f"cannot read a success label from {value!r}")


def label(name: str, value: Any) -> str:
    return f"{name}={value}"


# --- chat messages to steps -------------------------------------------------------------------


@dataclass
class Conversation:
    system_prompt: str
    opening: str
    steps: list[Step]
    final_answer: str
    finish: dict[str, Any] | None = None


class _StepsBuilder:
    """Folds OpenAI-style messages into steps: one per assistant turn (one per tool call when a
    turn makes several), each answered by its tool result or by the user's reply."""

    def __init__(self, finish_tool: str | None) -> None:
        self.finish_tool = finish_tool
        self.steps: list[dict[str, Any]] = []
        self.waiting: list[dict[str, Any]] = []  # tool calls not answered yet, oldest first
        self.system: list[str] = []
        self.opening: list[str] = []
        self.finish: dict[str, Any] | None = None

    def add(self, index: int, message: dict[str, Any]) -> None:
        role = message["role"]
        if role == "system":
            if self.steps:
                self._reply(index, message["content"], "user", message)
            else:
                self.system.append(message["content"])
        elif role == "user":
            if not self.steps:
                self.opening.append(message["content"])
            else:
                self._reply(index, message["content"], "user", message)
        elif role == "assistant":
            self._assistant(index, message)
        else:
            self._tool_result(index, message)

    def _new_step(self, index: int, message: dict[str, Any], **fields: Any) -> dict[str, Any]:
        meta = {"message_index": index}
        if message.get("speaker"):
            meta["speaker"] = message["speaker"]
        step = {"thought": "", "action": "", "action_input": {}, "call_id": "", **fields}
        step.update(observation=None, observation_role="tool", metadata=meta)
        step.setdefault("reasoning", "")
        self.steps.append(step)
        if step["action"]:
            self.waiting.append(step)
        return step

    def _assistant(self, index: int, message: dict[str, Any]) -> None:
        thought, reasoning = message["content"], message.get("reasoning", "")
        calls = message["tool_calls"]
        for call in calls:
            if self.finish_tool and call["name"] == self.finish_tool:
                self.finish = parse_arguments(call["arguments"])
                if not isinstance(self.finish, dict):
                    self.finish = {"final_answer": text_of(self.finish)}
                continue
            self._new_step(
                index,
                message,
                thought=thought,
                reasoning=reasoning,
                action=call["name"],
                action_input=parse_arguments(call["arguments"]),
                call_id=call["id"],
            )
            thought = reasoning = ""  # the turn's thought belongs to its first call
        if thought or reasoning or not calls:
            self._new_step(index, message, thought=thought, reasoning=reasoning)

    def _tool_result(self, index: int, message: dict[str, Any]) -> None:
        waiting = self.waiting
        match = next((s for s in waiting if s["call_id"] and s["call_id"] == message["id"]), None)
        step = match or (waiting[0] if waiting else None)
        last = self.steps[-1] if self.steps else None
        if step is not None:
            waiting.remove(step)
        elif last and not last["action"] and last["observation"] is None:
            step = last  # no call asked for it: what came back to the last turn
        else:  # a result nobody asked for: keep it, as a reply to an empty turn
            step = self._new_step(index, message)
        step["observation"] = message["content"]
        step["observation_role"] = "tool"
        if message.get("speaker"):
            step["metadata"]["observed_from"] = message["speaker"]

    def _reply(self, index: int, text: str, role: str, message: dict[str, Any]) -> None:
        last = self.steps[-1]
        if not last["action"] and last["observation"] is None:
            last["observation"] = text
            last["observation_role"] = role
            if message.get("speaker"):
                last["metadata"]["observed_from"] = message["speaker"]
        elif not last["action"] and last["observation_role"] == role:
            last["observation"] += "\n\n" + text
        else:  # the reply follows a tool result: an empty assistant turn keeps the order
            step = self._new_step(index, {})
            step["observation"] = text
            step["observation_role"] = role
            if message.get("speaker"):
                step["metadata"]["observed_from"] = message["speaker"]

    def _final_answer(self) -> str:
        """The finish tool's answer, or a last plain assistant message (whose reasoning, if
        any, stays behind as the last step's thought)."""
        finish = text_of(self.finish.get("final_answer", "")) if self.finish else ""
        last = self.steps[-1] if self.steps else None
        if finish:
            return finish
        if not last or last["action"] or last["observation"] is not None or not last["thought"]:
            return ""
        final = last["thought"]
        if last["reasoning"]:
            last["thought"] = ""
        else:
            self.steps.pop()
        return final

    def conversation(self) -> Conversation:
        final = self._final_answer()
        steps = [
            Step.build(
                index=i,
                **{k: v for k, v in s.items() if k not in ("reasoning", "thought", "observation")},
                thought="\n\n".join(t for t in (s["reasoning"], s["thought"]) if t),
                observation=s["observation"] or "",
            )
            for i, s in enumerate(self.steps)
        ]
        return Conversation(
            system_prompt="\n\n".join(self.system),
            opening="\n\n".join(self.opening),
            steps=steps,
            final_answer=final,
            finish=self.finish,
        )


CHAT_ROLES = ("system", "user", "assistant", "tool")
# The role names logs use for the four chat roles (compared in lower case).
ROLE_ALIASES = {
    "system": "system",
    "developer": "system",
    "user": "user",
    "human": "user",
    "assistant": "assistant",
    "ai": "assistant",
    "gpt": "assistant",
    "bot": "assistant",
    "model": "assistant",
    "tool": "tool",
    "function": "tool",
    "observation": "tool",
    "tool_result": "tool",
}


@dataclass(frozen=True)
class Roles:
    """How a log's role strings read. The usual aliases map to the four chat roles; any other
    role is an agent's turn (multi-agent logs name the speaking agent in ``role``) that keeps
    the agent's name. ``overrides`` (``--map role.VALUE=ROLE``) win over both; ``name_field``
    (``--map name=FIELD``) is where a message keeps its agent's name beside a plain role."""

    overrides: dict[str, str] = field(default_factory=dict)
    name_field: str = "name"

    def resolve(self, role: str) -> tuple[str, str]:
        """(chat role, speaker): the speaker is the role itself when it names an agent."""
        alias = ROLE_ALIASES.get(role.strip().lower())
        chosen = self.overrides.get(role) or alias or "assistant"
        return chosen, "" if alias else role.strip()


DEFAULT_ROLES = Roles()


def normalise_message(
    message: Any, where: str, path: Path, record: str, roles: Roles = DEFAULT_ROLES
) -> dict[str, Any]:
    """One OpenAI message (new tool_calls or old function_call form) as a plain dict:
    ``{role, content, tool_calls, id, name, speaker, reasoning}``."""
    if not isinstance(message, dict):
        raise TrajectoryImportError(path, "a message must be an object", record=record, field=where)
    given = message.get("role")
    if not isinstance(given, str) or not given.strip():
        raise TrajectoryImportError(
            path, f"a message needs a role, not {given!r}", record=record, field=f"{where}.role"
        )
    role, speaker = roles.resolve(given)
    calls = []
    for j, call in enumerate(message.get("tool_calls") or []):
        fn = call.get("function") if isinstance(call, dict) else None
        if not isinstance(fn, dict) or not fn.get("name"):
            raise TrajectoryImportError(
                path,
                "a tool call needs function.name",
                record=record,
                field=f"{where}.tool_calls[{j}]",
            )
        calls.append({"id": str(call.get("id") or ""), **_call(fn)})
    if isinstance(message.get("function_call"), dict):
        calls.append({"id": "", **_call(message["function_call"])})
    name = message.get(roles.name_field)
    name = name.strip() if isinstance(name, str) else ""
    reasoning = message.get("reasoning", message.get("reasoning_content"))
    return {
        "role": role,
        "content": text_of(message.get("content")),
        "tool_calls": calls,
        "id": str(message.get("tool_call_id") or ""),
        "name": name,
        "speaker": name or speaker,
        "reasoning": text_of(reasoning) if role == "assistant" else "",
    }


def _call(fn: dict[str, Any]) -> dict[str, Any]:
    return {"name": str(fn.get("name")), "arguments": fn.get("arguments")}


def conversation_from_messages(
    messages: Any,
    *,
    path: Path,
    record: str,
    field_name: str = "messages",
    finish_tool: str | None = None,
    roles: Roles = DEFAULT_ROLES,
) -> Conversation:
    """Steps, system prompt, opening user message and final answer from a message list.

    The opening user message(s) before the first assistant turn are returned apart: the goal
    usually comes from there. A last plain assistant message becomes the final answer.
    ``finish_tool`` names a tool whose call ends the run with the final answer (ToolBench's
    Finish): it is read as the answer, not kept as a step. ``roles`` says how role strings read.
    """
    if not isinstance(messages, list):
        raise TrajectoryImportError(
            path, "must be a list of messages", record=record, field=field_name
        )
    builder = _StepsBuilder(finish_tool)
    for i, message in enumerate(messages):
        builder.add(i, normalise_message(message, f"{field_name}[{i}]", path, record, roles))
    return builder.conversation()


# --- saving ------------------------------------------------------------------------------------


@dataclass
class UnitResult:
    imported: int = 0
    duplicates: int = 0
    successes: int = 0
    failures: int = 0
    unknown: int = 0
    skipped: list[Skipped] = field(default_factory=list)
    nul_replaced: int = 0


def scrub(value: Any) -> tuple[Any, int]:
    """``value`` with every NUL character (PostgreSQL's text and jsonb cannot hold one) replaced
    by U+FFFD, in strings, keys and nested values alike; and how many were replaced."""
    if isinstance(value, str):
        count = value.count(NUL)
        return (value.replace(NUL, "\ufffd"), count) if count else (value, 0)
    if isinstance(value, list):
        pairs = [scrub(item) for item in value]
        return [v for v, _ in pairs], sum(n for _, n in pairs)
    if isinstance(value, dict):
        total, clean = 0, {}
        for key, item in value.items():
            (key, n), (item, m) = scrub(key), scrub(item)
            clean[key] = item
            total += n + m
        return clean, total
    return value, 0


SCRUBBED = ("external_id", "goal", "final_answer", "failure_reason", "system_prompt", "raw_label")
STEP_TEXT = ("thought", "action", "action_input", "call_id", "observation", "metadata")


def scrub_parsed(parsed: Parsed) -> int:
    """Scrubs what goes into text and JSON columns; ``raw`` (stored compressed, as bytes) and
    each step's full observation keep the source exactly."""
    total = 0
    for obj, names in [(parsed, (*SCRUBBED, "tools", "metadata"))] + [
        (step, STEP_TEXT) for step in parsed.steps
    ]:
        for name in names:
            value, count = scrub(getattr(obj, name))
            if count:
                setattr(obj, name, value)
                total += count
    return total


def save_unit(
    dataset_name: str,
    records: Iterable[Parsed | Skipped],
    *,
    source_format: str,
    source_file: str,
) -> UnitResult:
    """Saves one parsed unit in one transaction; known external ids count as duplicates."""
    result = UnitResult()
    parsed: list[Parsed] = []
    seen: set[str] = set()
    for record in records:
        if isinstance(record, Skipped):
            result.skipped.append(record)
            continue
        result.nul_replaced += scrub_parsed(record)
        if record.external_id in seen:
            result.duplicates += 1
        else:
            seen.add(record.external_id)
            parsed.append(record)
    try:
        with transaction.atomic():
            dataset, _ = Dataset.objects.get_or_create(name=dataset_name)
            known = set(
                Trajectory.objects.filter(dataset=dataset, external_id__in=seen).values_list(
                    "external_id", flat=True
                )
            )
            new = [p for p in parsed if p.external_id not in known]
            result.duplicates += len(parsed) - len(new)
            _create(dataset, new, source_format, source_file)
    except IntegrityError as err:
        raise TrajectoryImportError(
            source_file,
            f"could not be saved ({err}); another import into {dataset_name!r} may have run at "
            "the same time: run this one again (what is already there is skipped)",
        ) from None
    except DataError as err:
        # A value the database refuses (a name too long for its column, say): nothing of the
        # file was saved, and the message says why.
        raise TrajectoryImportError(source_file, f"could not be saved: {err}") from None
    result.imported = len(new)
    result.successes = sum(1 for p in new if p.success is True)
    result.failures = sum(1 for p in new if p.success is False)
    result.unknown = sum(1 for p in new if p.success is None)
    return result


STEP_BATCH = 1000


def _create(dataset: Dataset, new: list[Parsed], source_format: str, source_file: str) -> None:
    if not new:
        return
    trajectories = Trajectory.objects.bulk_create(
        [p.to_model(dataset, source_format, source_file) for p in new], batch_size=500
    )
    steps: list[Step] = []
    for trajectory, parsed in zip(trajectories, new, strict=True):
        for step in parsed.steps:
            step.trajectory = trajectory
            steps.append(step)
    Step.objects.bulk_create(steps, batch_size=STEP_BATCH)
