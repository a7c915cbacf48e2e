"""The one place prompts are built: versioned, with a JSON schema per stage, budgeted in tokens.

Every prompt shows the trajectory the same way: the steps as relabel.chat renders them, each
under a ``### Step N`` header (N is the 0-based Step.index the stages ground achievements to),
with observations, thoughts and arguments cut to a budget so that the whole prompt stays within
``max_prompt_tokens`` (estimated offline by relabel.tokens). A WebArena step carries tens of KB
of accessibility tree and HTML: a prompt gets a few hundred tokens of it, head and tail.

Changing any wording or schema here means bumping PROMPT_VERSION: the version is part of every
run's configuration, and of the cache key through the messages themselves.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from relabel.chat import step_messages
from relabel.config import PROMPT_VERSION
from relabel.models import RunItem, Step, Trajectory
from relabel.tokens import TRUNCATION_MARK, estimate_tokens, truncate_to_tokens

FAILURE_TYPES = [code for code, _ in RunItem.FAILURE_TYPES]
MAX_SHOWN_STEPS = 40
HEAD_STEPS = 3
THOUGHT_TOKENS = 200
ARGUMENT_TOKENS = 120
MIN_OBSERVATION_TOKENS = 40


def _object(properties: dict[str, Any]) -> dict[str, Any]:
    # Strict JSON-schema mode wants every property required and nothing else allowed.
    return {
        "type": "object",
        "properties": properties,
        "required": list(properties),
        "additionalProperties": False,
    }


UNIT = {"type": "number", "minimum": 0, "maximum": 1}
TEXT_LIST = {"type": "array", "items": {"type": "string"}, "maxItems": 12}

SCHEMAS: dict[str, dict[str, Any]] = {
    "detect": _object(
        {
            "failure_type": {"type": "string", "enum": FAILURE_TYPES},
            "severity": UNIT,
            "recoverable": {"type": "boolean"},
            "explanation": {"type": "string"},
        }
    ),
    "extract": _object(
        {
            "achievements": {
                "type": "array",
                "maxItems": 12,
                "items": _object(
                    {
                        "text": {"type": "string"},
                        "steps": {"type": "array", "items": {"type": "integer", "minimum": 0}},
                    }
                ),
            },
            "key_observations": TEXT_LIST,
            "limitations": TEXT_LIST,
        }
    ),
    "relabel": _object(
        {
            "hindsight_goal": {"type": "string"},
            "rationale": {"type": "string"},
            "confidence": UNIT,
        }
    ),
    "judge": _object(
        {
            "accept": {"type": "boolean"},
            "confidence": UNIT,
            "reason": {"type": "string"},
            # Stage 3b: turns that contradict the goal (relabel.pipeline.consistency).
            "contradictions": {
                "type": "array",
                "maxItems": 12,
                "items": _object(
                    {
                        "step": {"type": "integer", "minimum": 0},
                        "quote": {"type": "string"},
                        "reason": {"type": "string"},
                    }
                ),
            },
        }
    ),
    "consistency": _object(
        {
            "turns": {
                "type": "array",
                "maxItems": 40,
                "items": _object({"turn": {"type": "string"}, "text": {"type": "string"}}),
            }
        }
    ),
}
# A run whose outcome was not recorded: the same diagnosis, and first whether it succeeded.
SCHEMAS["detect_unknown"] = _object(
    {"succeeded": {"type": "boolean"}, **SCHEMAS["detect"]["properties"]}
)

INSTRUCTIONS = {
    "detect": (
        "You analyse one run of an AI agent that its benchmark marked as failed. Classify the "
        "failure. failure_type is one of: {types}. severity is in [0, 1]: 1 means catastrophic "
        "(the run achieved nothing usable), 0 means a minor slip in an otherwise sound run. "
        "recoverable says whether the run still demonstrates a coherent, correct behaviour that "
        "some other goal would be fully satisfied by."
    ),
    "extract": (
        "You list what the agent in this run actually achieved, whatever it was asked. "
        "achievements: each a short statement with the step numbers (from the '### Step N' "
        "headers) whose actions or observations show it; claim nothing the steps do not show. "
        "key_observations: facts the agent saw that matter. limitations: what it did not do or "
        "got wrong."
    ),
    "relabel": (
        "You write a hindsight goal for this agent run: a task instruction, as a user would give "
        "it, that the run satisfies completely and correctly. Base it only on the achievements "
        "and the steps. It must be a different task from the original goal, and must not "
        "mention, quote or refer to the original goal. rationale: why the run satisfies it, "
        "citing step numbers. confidence in [0, 1]: how sure you are that the run satisfies the "
        "goal completely."
    ),
    "detect_unknown": (
        "You analyse one run of an AI agent whose outcome was not recorded. succeeded: whether "
        "the run fully and correctly accomplished its original goal. If it did not, classify "
        "the failure (if it did, describe the run the same way, with severity 0). failure_type "
        "is one of: {types}. severity is in [0, 1]: 1 means catastrophic (the run achieved "
        "nothing usable), 0 means a minor slip in an otherwise sound run. recoverable says "
        "whether the run still demonstrates a coherent, correct behaviour that some other goal "
        "would be fully satisfied by."
    ),
    "judge": (
        "You judge whether an agent run fully and correctly accomplishes the goal below, as if "
        "the agent had been given that goal. Reject if any part of the goal is not shown by the "
        "steps, or if the goal is vague or trivial. accept: your verdict. confidence in [0, 1]. "
        "reason: one or two sentences citing step numbers. contradictions: every step whose "
        "thought, message or user reply contradicts the goal or pursues a different task (its "
        "step number, the words that do, and why); an empty list when none does."
    ),
    "consistency": (
        "A failed agent run is being relabelled with a new goal that it did achieve. The turns "
        "below are the agent's own free text (thoughts, messages to the user, the final answer) "
        "that still refer to the goal it was first given. Rewrite each so that it fits the new "
        "goal: keep what it says about what the agent saw, reasoned and did; remove or reword "
        "whatever restates, pursues or names the original goal (its wording, constraints and "
        "entities); never write 'the user wants' or 'the goal is'; invent nothing. Reply with "
        "each turn by its label (e.g. 'step 3', 'final answer') and its new text. Only these "
        "turns: actions, tool calls, their arguments, observations and user messages are never "
        "changed, and a reply that contains or names one is refused."
    ),
}


@dataclass
class Prompt:
    """One request: the stage, its messages, the schema its reply must match."""

    stage: str
    messages: list[dict[str, Any]]
    schema: dict[str, Any] = field(repr=False)
    estimated_tokens: int = 0
    variant: str = ""  # "unknown": the detect prompt of a run whose outcome was not recorded

    @property
    def schema_name(self) -> str:
        variant = f"_{self.variant}" if self.variant else ""
        return f"agenther_{self.stage}{variant}_{PROMPT_VERSION}"


def system_message(stage: str, variant: str = "") -> dict[str, str]:
    key = f"{stage}_{variant}" if variant else stage
    text = INSTRUCTIONS[key].format(types=", ".join(FAILURE_TYPES))
    schema = json.dumps(SCHEMAS[key], separators=(",", ":"))
    return {
        "role": "system",
        "content": f"Stage: {stage} (AgentHER prompts {PROMPT_VERSION}).\n{text}\n"
        f"Reply with one JSON object only, matching this JSON schema:\n{schema}",
    }


def cut(text: str, max_tokens: int) -> str:
    """truncate_to_tokens, without counting every token of a text far over the budget.

    A 12,000-character page excerpt cut to 300 tokens only needs its density (characters per
    token), which a sample gives as well as the whole; counting it all, for every step of every
    prompt, was the largest CPU cost of a run after the HTTP client itself.
    """
    if len(text) <= 4 * max_tokens + 2000:
        return truncate_to_tokens(text, max_tokens)
    sample = text[:1000] + text[-1000:]
    ratio = max(1.0, len(sample) / max(1, estimate_tokens(sample)))
    keep = max(1, int(max_tokens * ratio) - len(TRUNCATION_MARK) - 10)
    head, tail = keep * 3 // 4, keep // 4
    omitted = len(text) - head - tail
    return text[:head] + TRUNCATION_MARK.format(omitted=omitted) + (text[-tail:] if tail else "")


def _render_message(message: dict[str, Any], observation_tokens: int) -> list[str]:
    lines = []
    if message["role"] == "assistant":
        if message.get("content"):
            lines.append("thought: " + cut(message["content"], THOUGHT_TOKENS))
        for call in message.get("tool_calls", []):
            arguments = cut(call["function"]["arguments"], ARGUMENT_TOKENS)
            lines.append(f"action: {call['function']['name']}({arguments})")
    else:
        who = "observation" if message["role"] == "tool" else "user reply"
        lines.append(f"{who}: " + cut(message["content"], observation_tokens))
    return lines


def render_step(step: Step, observation_tokens: int) -> str:
    lines = [f"### Step {step.index}"]
    for message in step_messages(step):
        lines += _render_message(message, observation_tokens)
    if step.observation_chars > len(step.observation):  # only the excerpt is stored inline
        lines.append(f"(observation was {step.observation_chars} characters in full)")
    return "\n".join(lines)


def _shown_steps(steps: Sequence[Step], limit: int) -> tuple[list[Step], str]:
    """At most ``limit`` steps: the first few and the last ones, which show the outcome."""
    if len(steps) <= limit:
        return list(steps), ""
    head, tail = list(steps[:HEAD_STEPS]), list(steps[-(limit - HEAD_STEPS) :])
    note = f"[steps {head[-1].index + 1} to {tail[0].index - 1} omitted for length]"
    return head + tail, note


def render_transcript(
    trajectory: Trajectory, steps: Sequence[Step], budget: int, memo: dict | None = None
) -> str:
    """The steps and the final answer within ``budget`` estimated tokens.

    Observations share the budget equally; if that leaves each too little, fewer steps are
    shown (always the first few and the last ones). ``memo`` (one dict per trajectory) keeps
    renderings for the stages that use the same budget.
    """
    if memo is not None:
        key = ("transcript", budget)
        if key not in memo:
            text = render_transcript(trajectory, steps, budget)
            memo[key] = text
            memo[("tokens", text)] = estimate_tokens(text)
        return memo[key]
    if not steps:
        body = "(The agent took no steps.)"
    else:
        limit = MAX_SHOWN_STEPS
        while True:
            shown, note = _shown_steps(steps, limit)
            per_step = (budget - 150) // len(shown)
            observation_tokens = max(MIN_OBSERVATION_TOKENS, per_step - 60)
            parts = [render_step(step, observation_tokens) for step in shown[:HEAD_STEPS]]
            parts += [note] if note else []
            parts += [render_step(step, observation_tokens) for step in shown[HEAD_STEPS:]]
            body = "\n\n".join(parts)
            if estimate_tokens(body) <= budget - 100 or limit <= HEAD_STEPS + 1:
                break
            limit = max(HEAD_STEPS + 1, limit // 2)
    answer = trajectory.final_answer.strip() or "(none)"
    return f"{body}\n\n### Final answer\n{truncate_to_tokens(answer, 200)}"


def _benchmark_signal(trajectory: Trajectory) -> str:
    parts = [f"reward: {trajectory.reward}" if trajectory.reward is not None else "reward: none"]
    if trajectory.raw_label:
        parts.append(f"label: {trajectory.raw_label}")
    if trajectory.failure_reason:
        parts.append("failure reason: " + truncate_to_tokens(trajectory.failure_reason, 150))
    return "; ".join(parts)


@functools.cache
def _system(stage: str, variant: str = "") -> tuple[dict[str, str], int]:
    message = system_message(stage, variant)
    return message, estimate_tokens(message["content"])


def _prompt(stage: str, head: str, transcript: str, memo: dict | None, variant: str = "") -> Prompt:
    system, system_tokens = _system(stage, variant)
    known = (memo or {}).get(("tokens", transcript))
    tokens = known if known is not None else estimate_tokens(transcript)
    user = f"{head}\nTrajectory:\n{transcript}"
    messages = [dict(system), {"role": "user", "content": user}]
    tokens += system_tokens + estimate_tokens(head) + 3
    schema = SCHEMAS[f"{stage}_{variant}" if variant else stage]
    return Prompt(stage, messages, schema, estimated_tokens=tokens, variant=variant)


SYSTEM_ALLOWANCE = 700  # the longest system message (instructions + schema), rounded up
HEAD_ALLOWANCE = 400  # goal, benchmark signal; the relabel stage's outcome is budgeted apart


def _budget(max_prompt_tokens: int, head: str) -> int:
    """Tokens left for the transcript. Stages with short heads share one budget (and so one
    rendering of the trajectory); a longer head takes its excess from the transcript."""
    excess = max(0, estimate_tokens(head) - HEAD_ALLOWANCE)
    return max(300, max_prompt_tokens - SYSTEM_ALLOWANCE - HEAD_ALLOWANCE - excess)


def _original_goal(trajectory: Trajectory) -> str:
    return truncate_to_tokens(trajectory.goal, 300)


def detect_prompt(
    trajectory: Trajectory, steps: Sequence[Step], max_tokens: int, memo: dict | None = None
) -> Prompt:
    head = (
        f"Original goal: {_original_goal(trajectory)}\n"
        f"Benchmark signal: {_benchmark_signal(trajectory)}\n"
    )
    transcript = render_transcript(trajectory, steps, _budget(max_tokens, head), memo)
    variant = "unknown" if trajectory.success is None else ""
    return _prompt("detect", head, transcript, memo, variant)


def extract_prompt(
    trajectory: Trajectory, steps: Sequence[Step], max_tokens: int, memo: dict | None = None
) -> Prompt:
    head = f"Original goal: {_original_goal(trajectory)}\n"
    transcript = render_transcript(trajectory, steps, _budget(max_tokens, head), memo)
    return _prompt("extract", head, transcript, memo)


def outcome_text(outcome: dict[str, Any]) -> str:
    lines = ["Achievements:"]
    lines += [f"- {a['text']} (steps {a['steps']})" for a in outcome.get("achievements", [])]
    lines.append("Key observations:")
    lines += [f"- {o}" for o in outcome.get("key_observations", [])]
    lines.append("Limitations:")
    lines += [f"- {x}" for x in outcome.get("limitations", [])]
    return truncate_to_tokens("\n".join(lines), 800)


def relabel_prompt(
    trajectory: Trajectory,
    steps: Sequence[Step],
    outcome: dict[str, Any],
    max_tokens: int,
    refused: Sequence[dict[str, Any]] = (),
    memo: dict | None = None,
) -> Prompt:
    head = (
        f"Original goal (do not repeat, quote or mention it): {_original_goal(trajectory)}\n\n"
        f"{outcome_text(outcome)}\n"
    )
    if refused:
        head += "\nRefused earlier attempts (write something else):\n"
        head += "".join(f"- {a['goal'][:300]!r}: {a['refused']}\n" for a in refused)
    transcript = render_transcript(trajectory, steps, _budget(max_tokens, head) // 2, memo)
    return _prompt("relabel", head, transcript, memo)


def judge_prompt(
    trajectory: Trajectory,
    steps: Sequence[Step],
    goal: str,
    max_tokens: int,
    memo: dict | None = None,
) -> Prompt:
    head = f"Goal to judge: {truncate_to_tokens(goal, 300)}\n"
    transcript = render_transcript(trajectory, steps, _budget(max_tokens, head), memo)
    return _prompt("judge", head, transcript, memo)


def consistency_prompt(
    trajectory: Trajectory, goal: str, turns: Sequence[dict[str, Any]]
) -> Prompt:
    """Stage 3b's rewrite: the offered turns whole (a rewrite replaces the whole text; the
    caller offers only what fits the budget), with what is wrong with each."""
    head = (
        f"New goal (every turn must fit it): {truncate_to_tokens(goal, 300)}\n"
        f"Original goal (no turn may restate, pursue or name it): {_original_goal(trajectory)}\n"
    )
    parts = [
        f"### Turn {t['label']}\nProblems: {'; '.join(t['problems'])}\nText:\n{t['text']}"
        for t in turns
    ]
    body = "\n\n".join(parts)
    system, system_tokens = _system("consistency")
    user = f"{head}\nTurns to rewrite:\n\n{body}"
    messages = [dict(system), {"role": "user", "content": user}]
    tokens = system_tokens + estimate_tokens(user) + 3
    return Prompt("consistency", messages, SCHEMAS["consistency"], tokens)
