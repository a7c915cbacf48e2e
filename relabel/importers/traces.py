"""What the trace importers (otel, langfuse, langsmith, anthropic, openai-responses) share.

A trace records an agent run as many model calls and tool executions, not as one conversation.
``Transcript`` pieces the conversation back together in time order; ``Outcome`` says whether the
run succeeded, from the strongest signal there is; ``trajectory`` turns both into a ``Parsed``
record (or a ``Skipped`` one, when the trace holds no goal).
"""

from __future__ import annotations

import itertools
import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from relabel.importers.base import (
    ImportOptions,
    Parsed,
    Skipped,
    SuccessScore,
    TrajectoryImportError,
    conversation_from_messages,
    outcome_from,
    text_of,
)
from relabel.importers.dialects import call, decode, openai_messages, tool_message

# Keys an explicit mapping may use with a trace format.
MAP_KEYS = ("goal", "success")
GIVE_UP_TOOLS = ("give_up", "giveup", "give_up_and_restart")


def _fingerprint(message: dict[str, Any]) -> tuple:
    text = " ".join(str(message.get("content") or "").split())
    if message["role"] == "assistant":
        calls = message.get("tool_calls") or []
        ids = tuple(c["id"] for c in calls if c["id"])
        named = tuple((c["function"]["name"], c["function"]["arguments"]) for c in calls)
        return ("assistant", text, ids or named)
    if message["role"] == "tool":
        return ("tool", message.get("tool_call_id") or text)
    return (message["role"], text)


class Transcript:
    """One conversation pieced together from model calls and tool executions, in time order.

    Every model call of an agent loop is sent the history so far, so a call's input repeats what
    earlier calls produced: each message is kept once (by role, text and tool-call ids; a message
    said twice in one input is kept twice). A tool execution recorded on its own (an OTel
    ``execute_tool`` span, a Langfuse TOOL observation, a LangSmith tool run) answers the pending
    call with its id, else the oldest pending call of its tool; one nobody asked for becomes a
    call of its own.
    """

    def __init__(self) -> None:
        self.messages: list[dict[str, Any]] = []
        self.system_prompt = ""
        self.tools: list[dict[str, Any]] = []
        self.pending: dict[str, str] = {}  # call id -> tool name, oldest first
        self.answered: set[str] = set()
        self.counts: Counter[tuple] = Counter()
        self._ids = itertools.count(1)

    def exchange(self, inputs: Any, outputs: Any, speaker: str = "") -> None:
        """One model call: what it was sent, and what it answered."""
        seen_here: Counter[tuple] = Counter()
        for message in openai_messages(inputs, "user"):
            key = _fingerprint(message)
            seen_here[key] += 1
            if seen_here[key] > self.counts[key]:
                self._add(message)
        for message in openai_messages(outputs, "assistant"):
            if speaker and message["role"] == "assistant":
                message["name"] = speaker
            self._add(message)

    def tool_result(
        self, call_id: str, name: str, arguments: Any, output: Any, error: str = ""
    ) -> None:
        """A tool execution recorded on its own."""
        if call_id and call_id in self.answered:
            return
        target = call_id if call_id in self.pending else self._pending_named(name)
        if target is None:
            target = call_id or self._new_id()
            self._add(
                {"role": "assistant", "content": "", "tool_calls": [call(target, name, arguments)]}
            )
        text = output if isinstance(output, str) else text_of(output)
        if error:
            text = f"{text}\n{error}".strip() if text else error
        self._add(tool_message(target, text, name, error=bool(error)))

    def _pending_named(self, name: str) -> str | None:
        named = [cid for cid, tool in self.pending.items() if tool == name]
        return named[0] if named else None

    def _new_id(self) -> str:
        return f"call_{next(self._ids)}"

    def _add(self, message: dict[str, Any]) -> None:
        self.counts[_fingerprint(message)] += 1
        role = message["role"]
        if role == "system":
            self.system_prompt = self.system_prompt or message["content"]
            return
        if role == "assistant":
            for c in message.get("tool_calls") or []:
                c["id"] = c["id"] or self._new_id()
                self.pending[c["id"]] = c["function"]["name"]
        if role == "tool":
            cid = message.get("tool_call_id") or self._pending_named(message.get("name", ""))
            cid = cid or next(iter(self.pending), "")
            if cid in self.answered:
                return
            message = {**message, "tool_call_id": cid}
            if cid:  # an answer to no call at all stays unmatched (see base._StepsBuilder)
                self.pending.pop(cid, None)
                self.answered.add(cid)
        self.messages.append(message)

    def last_call_names(self) -> list[str]:
        for message in reversed(self.messages):
            if message["role"] == "assistant":
                return [c["function"]["name"] for c in message.get("tool_calls") or []]
        return []


@dataclass
class Outcome:
    """Whether a run succeeded, and what said so. ``success`` None: nothing did."""

    success: bool | None = None
    reward: float | None = None
    raw_label: str = ""
    failure_reason: str = ""
    source: str = "none"


def mapped_value(record: Any, dotted: str) -> tuple[bool, Any]:
    """A field of a record by dotted path (list indexes allowed), reading through JSON strings;
    an exact key with dots in it (OTel attribute names) is tried first."""
    value = decode(record)
    if isinstance(value, dict) and dotted in value:
        return True, value[dotted]
    for part in dotted.split("."):
        value = decode(value)
        if isinstance(value, dict) and part in value:
            value = value[part]
        elif isinstance(value, list) and part.isdigit() and int(part) < len(value):
            value = value[int(part)]
        else:
            return False, None
    return True, value


def explicit_outcome(
    sources: list[Any], options: ImportOptions, path: Path, where: str
) -> Outcome | None:
    """``--map success=FIELD``, looked up in each of ``sources`` in turn (the record first)."""
    name = options.mapping.get("success")
    if not name:
        return None
    for source in sources:
        found, value = mapped_value(source, name)
        if found:
            try:
                success, reward = outcome_from(decode(value))
            except ValueError as err:
                raise TrajectoryImportError(path, str(err), record=where, field=name) from None
            label = f"{name}={value}"
            return Outcome(success, reward, label[:200], _failed(success, label), "mapping")
    raise TrajectoryImportError(
        path, "missing (mapped by --map success=...)", record=where, field=name
    )


def score_outcome(
    scores: dict[str, Any], options: ImportOptions, path: Path, where: str, field_name: str
) -> Outcome | None:
    """``--success-score NAME>=VALUE`` against the run's scores or feedback (absent: None)."""
    score: SuccessScore | None = options.success_score
    if score is None or score.name not in scores:
        return None
    value = scores[score.name]
    try:
        success = score.passed(value)
    except ValueError as err:
        raise TrajectoryImportError(
            path, str(err), record=where, field=f"{field_name}.{score.name}"
        ) from None
    reward = (
        float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None
    )
    label = f"{score.name}={value} ({score})"
    return Outcome(success, reward, label[:200], _failed(success, label), "score")


def _failed(success: bool, label: str) -> str:
    return "" if success else label


def signal_outcome(errors: list[str], transcript: Transcript, status_label: str = "") -> Outcome:
    """Without an explicit signal: an error of the run or of its last step, or a give-up call,
    is a failure; otherwise the outcome is unknown (never silently a failure or a success)."""
    if errors:
        return Outcome(False, None, (status_label or "error")[:200], "; ".join(errors), "error")
    gave_up = [n for n in transcript.last_call_names() if n.lower() in GIVE_UP_TOOLS]
    if gave_up:
        return Outcome(
            False, None, f"gave_up={gave_up[0]}", f"the agent called {gave_up[0]}", "give_up"
        )
    return Outcome()


def decide(*outcomes: Outcome | None) -> Outcome:
    """The first signal there is, in the order given."""
    return next((o for o in outcomes if o is not None), Outcome())


@dataclass
class TraceRun:
    """One run read from a trace, ready to become a trajectory."""

    external_id: str
    transcript: Transcript
    outcome: Outcome
    raw: Any
    goal: str = ""
    final_answer: str = ""
    metadata: dict[str, Any] = field(default_factory=dict)


def explicit_goal(record: Any, options: ImportOptions, path: Path, where: str) -> str:
    """``--map goal=FIELD`` ("" when not mapped); a mapped field that is missing is an error."""
    name = options.mapping.get("goal")
    if not name:
        return ""
    found, value = mapped_value(record, name)
    if not found or not text_of(decode(value)).strip():
        raise TrajectoryImportError(
            path, "missing (mapped by --map goal=...)", record=where, field=name
        )
    return text_of(decode(value)).strip()


def trajectory(run: TraceRun, path: Path, where: str, benchmark: str) -> Parsed | Skipped:
    """The trajectory of one run: goal from the run or its first user message, steps from its
    transcript; a run with no goal anywhere is skipped with the reason."""
    conversation = conversation_from_messages(
        run.transcript.messages, path=path, record=where, field_name="messages"
    )
    goal = (run.goal or conversation.opening).strip()
    if not goal:
        return Skipped(
            run.external_id, f"{benchmark}: no goal (no user message or input in the trace)"
        )
    metadata = {"benchmark": benchmark, **run.metadata, "outcome_source": run.outcome.source}
    if run.goal and conversation.opening and conversation.opening.strip() != goal:
        metadata["opening_message"] = conversation.opening
    if run.outcome.success is None:
        metadata["label"] = "unknown"
    return Parsed(
        external_id=run.external_id,
        goal=goal,
        steps=conversation.steps,
        success=run.outcome.success,
        reward=run.outcome.reward,
        raw_label=run.outcome.raw_label,
        final_answer=run.final_answer or conversation.final_answer,
        failure_reason=run.outcome.failure_reason,
        system_prompt=run.transcript.system_prompt or conversation.system_prompt,
        tools=run.transcript.tools,
        metadata=metadata,
        raw=run.raw,
    )


def json_safe(value: Any) -> Any:
    """A value as JSON can store it (trace ids may be big integers, times datetimes)."""
    return json.loads(json.dumps(value, default=str))
