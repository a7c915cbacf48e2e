"""The one place prompts are built: versioned, with a JSON schema per stage, budgeted in tokens.

Three principles decide the shape of every prompt (see the README, "Prompts and cost"):

- **Lean.** The detect stage's request also asks for the extraction when both stages use the
  same model and endpoint (``assess_prompt``): the whole run is read once. The relabel attempts
  and the judges work from the steps the extraction's achievements cite (``cited_view``), not
  from the whole trajectory again.
- **Honest judges.** A judge reads those steps whole, then every other step in outline: each
  call the agent made, so a later call that undoes an achievement is in front of it
  (``outline_view``); never the extraction's account of the steps (its achievements, which the
  relabel attempts read after the steps), nor the original goal. Free text outside the cited
  steps is stage 3b's (relabel.pipeline.consistency reads every turn). A run can have its judges
  read the whole run instead (``judge_view = "run"``, ``run_view``), at twice the tokens.
- **Cache-friendly.** A prompt is ``[system, view, task]``: the system text is the same for every
  stage and trajectory; the view is the trajectory as that stage's model sees it, and the steps
  come first in it, byte-identical for every call that reads them (detection and extraction
  share the whole-run rendering, the relabel attempts and the judges the cited steps); the
  stage's instructions come last. Retries only ever append
  (a refused goal and the reason, a malformed reply and the reason), so an endpoint's prefix cache
  (OpenAI caches repeated prefixes of 1,024+ tokens; vLLM and llama.cpp cache prefixes too) serves
  everything a retry repeats.

Steps are shown as relabel.chat renders them, each under a ``### Step N`` header (N is the
0-based Step.index the stages ground achievements to), with observations, thoughts and arguments
cut so that the whole prompt stays within ``max_prompt_tokens`` (estimated offline by
relabel.tokens). The reply's JSON schema travels in ``response_format`` (JSON-schema mode); in
JSON-object mode the client appends it as text (``schema_text``).

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
# The evidence (achievements and the steps they cite) gets this share of the prompt budget: the
# relabel prompt and every judge's prompt carry it, so it is what a trajectory pays K + judges
# times.
EVIDENCE_SHARE = 0.25
EVIDENCE_LIST_ITEMS = 6
# A judge reading the evidence also gets the outline of every other step (outline_view): this
# share of the budget, each call's arguments cut to this many characters.
OUTLINE_SHARE = 0.1
OUTLINE_CALL_CHARS = 40


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
# A run whose outcome was not recorded: first whether it succeeded, then the same diagnosis.
SCHEMAS["detect_unknown"] = _object(
    {"succeeded": {"type": "boolean"}, **SCHEMAS["detect"]["properties"]}
)
# Detection and extraction in one reply, for the one request that reads the whole trajectory.
SCHEMAS["detect+extract"] = _object(
    {"detection": SCHEMAS["detect"], "extraction": SCHEMAS["extract"]}
)

SYSTEM = (
    "You review an AI agent's run for AgentHER. The run comes first (its steps headed ### Step "
    "N), then your task: answer with one JSON object only."
)

# The failure types are the schema's enum (in JSON-object mode, the schema text appended): the
# instructions do not list them again.
_DIAGNOSIS = (
    "failure_type: the kind of failure. severity in [0, 1]: 1 catastrophic (nothing usable "
    "achieved), 0 a minor slip in a sound run. recoverable: whether the run still shows "
    "coherent, correct behaviour that fully satisfies some other goal. explanation: one or two "
    "sentences."
)
_DETECT = f"Classify the failure of this run, which its benchmark marked as failed. {_DIAGNOSIS}"
_DETECT_UNKNOWN = (
    "This is a run whose outcome was not recorded. succeeded: whether the run fully and "
    "correctly accomplished its original goal. If it did not, classify the failure (if it did, "
    f"describe the run the same way, with severity 0). {_DIAGNOSIS}"
)
_EXTRACT = (
    "what the agent actually achieved, whatever it was asked. achievements: short statements, "
    "each with the numbers of the steps whose actions or observations show it; claim nothing "
    "the steps do not show. key_observations: facts the agent saw that matter. limitations: "
    "what it did not do or got wrong."
)
INSTRUCTIONS = {
    "detect": _DETECT,
    "detect_unknown": _DETECT_UNKNOWN,
    "extract": f"List {_EXTRACT}",
    "detect+extract": (
        "Assess this run, which its benchmark marked as failed. detection: "
        f"{_DIAGNOSIS}\nextraction: {_EXTRACT}"
    ),
    "relabel": (
        "Write a hindsight goal: a task instruction, as a user would give it, that this run "
        "satisfies completely and correctly, as the achievements and cited steps show. It must "
        "be a different task from the original goal below and must not mention, quote or refer "
        "to it. rationale: why the run satisfies it, citing step numbers. confidence in [0, 1]: "
        "that the run satisfies it completely."
    ),
    "judge": (
        "Judge whether this run fully and correctly accomplishes the goal below, as if the agent "
        "had been given it. Reject if a part of it is not shown by the steps or is undone by a "
        "later call, or if it is vague or trivial. accept: your verdict. confidence in [0, 1]. "
        "reason: one or two sentences citing step numbers. contradictions: each shown step whose "
        "thought, message or user reply contradicts the goal or pursues another task (step "
        "number, the words, why); empty if none."
    ),
    "consistency": (
        "This failed run is being relabelled with the new goal below, which it did achieve. The "
        "turns above are the agent's own free text (thoughts, messages to the user, the final "
        "answer) that still refer to the goal it was first given. Rewrite each so that it fits "
        "the new goal: keep what it says about what the agent saw, reasoned and did; remove or "
        "reword whatever restates, pursues or names the original goal (its wording, constraints "
        "and entities); never write 'the user wants' or 'the goal is'; invent nothing. Reply "
        "with each turn by its label (e.g. 'step 3', 'final answer') and its new text. Only "
        "these turns: actions, tool calls, their arguments, observations and user messages are "
        "never changed, and a reply that contains or names one is refused."
    ),
}


def task_line(stage: str) -> str:
    """The first line of a stage's task message; names the stage for servers without schemas."""
    return f"Task ({stage}, AgentHER prompts {PROMPT_VERSION}):"


def schema_name(stage: str) -> str:
    return f"agenther_{stage.replace('+', '_')}_{PROMPT_VERSION}"


@functools.cache
def schema_text(stage: str) -> str:
    """What JSON-object mode adds to the task message: the schema the reply must match."""
    schema = json.dumps(SCHEMAS[stage], separators=(",", ":"))
    return f"\nReply with one JSON object only, matching this JSON schema:\n{schema}"


@dataclass
class Prompt:
    """One request: the stage, its messages, the schema its reply must match."""

    stage: str
    messages: list[dict[str, Any]]
    schema: dict[str, Any] = field(repr=False)
    estimated_tokens: int = 0
    # "unknown": the detect prompt of a run whose outcome was not recorded (its own schema).
    variant: str = ""

    @property
    def key(self) -> str:
        """The stage's key in SCHEMAS and INSTRUCTIONS."""
        return f"{self.stage}_{self.variant}" if self.variant else self.stage

    @property
    def schema_name(self) -> str:
        return schema_name(self.key)


def system_message() -> dict[str, str]:
    return {"role": "system", "content": SYSTEM}


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


def render_steps(steps: Sequence[Step], budget: int) -> str:
    """The steps within ``budget`` estimated tokens.

    Observations share the budget equally; if that leaves each too little, fewer steps are
    shown (always the first few and the last ones).
    """
    if not steps:
        return "(The agent took no steps.)"
    limit = MAX_SHOWN_STEPS
    while True:
        shown, note = _shown_steps(steps, limit)
        per_step = (budget - 50) // len(shown)
        observation_tokens = max(MIN_OBSERVATION_TOKENS, per_step - 60)
        parts = [render_step(step, observation_tokens) for step in shown[:HEAD_STEPS]]
        parts += [note] if note else []
        parts += [render_step(step, observation_tokens) for step in shown[HEAD_STEPS:]]
        body = "\n\n".join(parts)
        if estimate_tokens(body) <= budget or limit <= HEAD_STEPS + 1:
            return body
        limit = max(HEAD_STEPS + 1, limit // 2)


def _final_answer(trajectory: Trajectory) -> str:
    answer = trajectory.final_answer.strip() or "(none)"
    return f"### Final answer\n{truncate_to_tokens(answer, 200)}"


def _benchmark_signal(trajectory: Trajectory) -> str:
    parts = [f"reward: {trajectory.reward}" if trajectory.reward is not None else "reward: none"]
    if trajectory.raw_label:
        parts.append("label: " + truncate_to_tokens(trajectory.raw_label, 40))
    if trajectory.failure_reason:
        parts.append("failure reason: " + truncate_to_tokens(trajectory.failure_reason, 150))
    return "; ".join(parts)


def _original_goal(trajectory: Trajectory) -> str:
    return truncate_to_tokens(trajectory.goal, 300)


# What every prompt needs besides its view: the system text, the longest task message (with the
# schema, which JSON-object mode adds; relabel's carries the original goal), and the repair turn
# a malformed reply adds. Computed, not guessed, so the budget holds whatever the wording.
GOAL_TOKENS = 300
HEAD_TOKENS = 520  # the original goal and the benchmark verdict after the whole-run view
REPAIR_TOKENS = 560  # a malformed reply is echoed back cut to 2,000 characters, plus the reason


@functools.cache
def fixed_tokens() -> int:
    tasks = [estimate_tokens(task_line(s) + INSTRUCTIONS[s] + schema_text(s)) for s in INSTRUCTIONS]
    return estimate_tokens(SYSTEM) + max(tasks) + GOAL_TOKENS + REPAIR_TOKENS + 40


def view_budget(max_prompt_tokens: int) -> int:
    """Tokens for the whole-run view (steps, final answer, and for detection and extraction
    the original goal and verdict)."""
    return max(300, max_prompt_tokens - fixed_tokens())


def evidence_budget(max_prompt_tokens: int, attempts: int = 3) -> int:
    """Tokens for the evidence view; relabel retries append the refused goals after it."""
    # After the evidence, a relabel prompt appends the refused goals, a judge's the outline.
    after = max((attempts - 1) * 160, outline_budget(max_prompt_tokens))
    room = max_prompt_tokens - fixed_tokens() - after
    return max(200, min(int(max_prompt_tokens * EVIDENCE_SHARE), room))


def outline_budget(max_prompt_tokens: int) -> int:
    """Tokens for the outline of the steps the evidence does not show (outline_view)."""
    return max(60, int(max_prompt_tokens * OUTLINE_SHARE))


def run_view(
    trajectory: Trajectory, steps: Sequence[Step], max_tokens: int, memo: dict | None = None
) -> str:
    """The whole run (steps and final answer), byte-identical for detection, extraction and
    every judge (memoized): the prefix they share."""
    key = ("run_view", max_tokens)
    if memo is not None and key in memo:
        return memo[key]
    final = _final_answer(trajectory)
    budget = view_budget(max_tokens) - HEAD_TOKENS - estimate_tokens(final) - 5
    text = f"Trajectory:\n{render_steps(steps, max(100, budget))}\n\n{final}"
    if memo is not None:
        memo[key] = text
    return text


def trajectory_view(
    trajectory: Trajectory, steps: Sequence[Step], max_tokens: int, memo: dict | None = None
) -> str:
    """The whole run as detection and extraction see it: the run, then what it was asked and
    what its benchmark said."""
    return (
        f"{run_view(trajectory, steps, max_tokens, memo)}\n\n"
        f"Original goal: {_original_goal(trajectory)}\n"
        f"Benchmark verdict: {_benchmark_signal(trajectory)}"
    )


def outcome_text(outcome: dict[str, Any], max_tokens: int = 400) -> str:
    """The extraction's grounded achievements (with the steps they cite), observations and
    limitations; ungrounded claims are never shown as evidence."""
    lines = ["Achievements:"]
    for a in outcome.get("achievements", []):
        lines.append(f"- {a['text']} (steps {', '.join(str(s) for s in a['steps'])})")
    if len(lines) == 1:
        lines.append("- (none grounded in the steps)")
    for title, key in (("Key observations", "key_observations"), ("Limitations", "limitations")):
        items = outcome.get(key, [])[:EVIDENCE_LIST_ITEMS]
        if items:
            lines.append(f"{title}:")
            lines += [f"- {item}" for item in items]
    return truncate_to_tokens("\n".join(lines), max_tokens)


def cited_steps[S](steps: Sequence[S], outcome: dict[str, Any]) -> tuple[list[S], str]:
    """The steps the achievements cite; with none, the last steps (which show the outcome).
    What the relabel attempts and the judges read in full; the review pages name them too
    (``steps``: Step, or anything with its ``index``)."""
    cited = {index for a in outcome.get("achievements", []) for index in a["steps"]}
    shown = [step for step in steps if step.index in cited]
    if shown:
        return shown, "The steps that show what it achieved"
    return list(steps[-HEAD_STEPS:]), "No achievement cites a step; its last steps"


def cited_view(
    trajectory: Trajectory,
    steps: Sequence[Step],
    outcome: dict[str, Any],
    max_tokens: int,
    attempts: int = 3,
    memo: dict | None = None,
) -> str:
    """The steps the extraction's achievements cite, whole, and the final answer: what the
    relabel attempts and every judge read first, byte-identical (memoized), in the evidence
    budget less the achievements' third."""
    key = ("cited_view", max_tokens, attempts)
    if memo is not None and key in memo:
        return memo[key]
    budget = evidence_budget(max_tokens, attempts)
    shown, title = cited_steps(steps, outcome)
    head = f"The run has {len(steps)} steps. {title} ({len(shown)}):\n"
    final = _final_answer(trajectory)
    rest = budget - _achievements_budget(budget) - estimate_tokens(head) - estimate_tokens(final)
    text = f"{head}{render_steps(shown, max(80, rest))}\n\n{final}"
    if memo is not None:
        memo[key] = text
    return text


def _achievements_budget(evidence_budget: int) -> int:
    return max(100, evidence_budget // 3)


def evidence_view(
    trajectory: Trajectory,
    steps: Sequence[Step],
    outcome: dict[str, Any],
    max_tokens: int,
    attempts: int = 3,
    memo: dict | None = None,
) -> str:
    """The run as the relabel attempts see it: the cited steps (cited_view), then the
    extraction's grounded achievements, observations and limitations. A judge reads the same
    steps but not the extraction's account of them: it judges the steps themselves."""
    budget = _achievements_budget(evidence_budget(max_tokens, attempts))
    return (
        f"{cited_view(trajectory, steps, outcome, max_tokens, attempts, memo)}\n\n"
        f"What it achieved, from an analysis of all its steps:\n{outcome_text(outcome, budget)}"
    )


def _calls(step: Step) -> list[str]:
    """The step's tool calls, each ``name(arguments)`` with the arguments cut short."""
    calls = []
    for message in step_messages(step):
        for call in message.get("tool_calls", []) if message["role"] == "assistant" else []:
            arguments = call["function"]["arguments"]
            if len(arguments) > OUTLINE_CALL_CHARS:
                arguments = arguments[:OUTLINE_CALL_CHARS].rstrip() + "…"
            calls.append(f"{call['function']['name']}({arguments})")
    return calls


def outline_view(steps: Sequence[Step], outcome: dict[str, Any], max_tokens: int) -> str:
    """Every step the evidence does not show, in one line: what the agent called there (cut
    short), or that it only talked. A judge reading the evidence thereby sees every action of
    the run, one that undoes an achievement above included, at a fraction of the run's
    tokens; the free text of these steps is stage 3b's to check (relabel.pipeline.consistency
    reads every turn). Within ``outline_budget``: the last steps are kept, which show the end."""
    shown = {step.index for step in cited_steps(steps, outcome)[0]}
    rest = [step for step in steps if step.index not in shown]
    if not rest:
        return "The evidence shows every step of the run."
    lines, talk = [], []
    for step in rest:
        calls = _calls(step)
        if calls:
            lines.append(f"Step {step.index}: {'; '.join(calls)}")
        else:
            talk.append(step.index)
    others = f"The {len(rest)} other steps" if len(rest) > 1 else "The other step"
    head = f"{others}, in outline (calls only):\n"
    room = outline_budget(max_tokens) - estimate_tokens(head) - 10
    if talk:
        numbers = _ranges(talk)
        said = f"Step{'s' * (len(talk) > 1)} {numbers}: messages only"
        said = said if estimate_tokens(said) <= room // 3 else cut(said, room // 3)
        room -= estimate_tokens(said) + 1
    # The last calls fit: the end of a run shows what stands at its end.
    kept: list[str] = []
    for line in reversed(lines):
        room -= estimate_tokens(line) + 1
        if room < 0:
            kept.append("(the earliest calls omitted for length)")
            break
        kept.append(line)
    return head + "\n".join([*reversed(kept), *([said] if talk else [])])


def _ranges(numbers: list[int]) -> str:
    """``[0, 1, 2, 5, 7, 8]`` as ``0-2, 5, 7-8``."""
    parts: list[str] = []
    start = previous = numbers[0]
    for n in [*numbers[1:], None]:
        if n is not None and n == previous + 1:
            previous = n
            continue
        parts.append(str(start) if start == previous else f"{start}-{previous}")
        if n is not None:
            start = previous = n
    return ", ".join(parts)


def _tokens(text: str, memo: dict | None) -> int:
    if memo is None:
        return estimate_tokens(text)
    key = ("tokens", text)
    if key not in memo:
        memo[key] = estimate_tokens(text)
    return memo[key]


@functools.cache
def _system_tokens() -> int:
    return estimate_tokens(SYSTEM)


def _prompt(stage: str, view: str, task: str, memo: dict | None, variant: str = "") -> Prompt:
    """``[system, view + task]``: the view first, so calls that share it share a prefix. One
    user message, not two: some chat templates refuse two user turns in a row."""
    task = f"{task_line(stage)} {task}"
    messages = [system_message(), {"role": "user", "content": f"{view}\n\n{task}"}]
    tokens = _system_tokens() + _tokens(view, memo) + estimate_tokens(task) + 8
    key = f"{stage}_{variant}" if variant else stage
    return Prompt(stage, messages, SCHEMAS[key], estimated_tokens=tokens, variant=variant)


def _instructions(stage: str) -> str:
    return INSTRUCTIONS[stage]


def detect_prompt(
    trajectory: Trajectory, steps: Sequence[Step], max_tokens: int, memo: dict | None = None
) -> Prompt:
    view = trajectory_view(trajectory, steps, max_tokens, memo)
    if trajectory.success is None:
        return _prompt("detect", view, _instructions("detect_unknown"), memo, "unknown")
    return _prompt("detect", view, _instructions("detect"), memo)


def extract_prompt(
    trajectory: Trajectory, steps: Sequence[Step], max_tokens: int, memo: dict | None = None
) -> Prompt:
    view = trajectory_view(trajectory, steps, max_tokens, memo)
    return _prompt("extract", view, _instructions("extract"), memo)


def assess_prompt(
    trajectory: Trajectory, steps: Sequence[Step], max_tokens: int, memo: dict | None = None
) -> Prompt:
    """Detection and extraction in one request: the whole trajectory is read once."""
    view = trajectory_view(trajectory, steps, max_tokens, memo)
    return _prompt("detect+extract", view, _instructions("detect+extract"), memo)


def _refusal_turns(refused: Sequence[dict[str, Any]]) -> list[dict[str, str]]:
    """Each refused attempt as the model's reply and the refusal: appended, never inserted, so
    attempt k's prompt starts with attempt k-1's whole prompt."""
    turns = []
    for attempt in refused:
        reply = {
            "hindsight_goal": truncate_to_tokens(attempt["goal"], 100),
            "rationale": truncate_to_tokens(attempt.get("rationale", ""), 40),
            "confidence": attempt.get("confidence", 0.0),
        }
        turns.append({"role": "assistant", "content": json.dumps(reply, ensure_ascii=False)})
        turns.append(
            {
                "role": "user",
                "content": f"Refused: {attempt['refused']}. Write a different goal (same JSON).",
            }
        )
    return turns


def relabel_prompt(
    trajectory: Trajectory,
    steps: Sequence[Step],
    outcome: dict[str, Any],
    max_tokens: int,
    refused: Sequence[dict[str, Any]] = (),
    memo: dict | None = None,
    attempts: int = 3,
) -> Prompt:
    view = evidence_view(trajectory, steps, outcome, max_tokens, attempts, memo)
    task = (
        f"{_instructions('relabel')}\n"
        f"Original goal (do not repeat, quote or mention it): {_original_goal(trajectory)}"
    )
    prompt = _prompt("relabel", view, task, memo)
    turns = _refusal_turns(refused[-(attempts - 1) :] if attempts > 1 else ())
    prompt.messages += turns
    prompt.estimated_tokens += sum(estimate_tokens(t["content"]) + 4 for t in turns)
    return prompt


def judge_prompt(
    trajectory: Trajectory,
    steps: Sequence[Step],
    goal: str,
    max_tokens: int,
    memo: dict | None = None,
    *,
    view: str = "evidence",
    outcome: dict[str, Any] | None = None,
    attempts: int = 3,
) -> Prompt:
    """Every judge gets the same prompt, then the goal: a judge is its model and endpoint, not
    its wording. It reads the cited steps, as the relabel attempts read them first, then the
    outline of every other step (``view="evidence"``, the default), or the whole run as detection
    read it (``view="run"``, the run's ``judge_view``)."""
    if view == "evidence":
        outcome = outcome if outcome is not None else (memo or {}).get("outcome", {})
        cited = cited_view(trajectory, steps, outcome, max_tokens, attempts, memo)
        shown = f"{cited}\n\n{outline_view(steps, outcome, max_tokens)}"
    else:
        shown = run_view(trajectory, steps, max_tokens, memo)
    task = f"{_instructions('judge')}\nGoal to judge: {truncate_to_tokens(goal, GOAL_TOKENS)}"
    return _prompt("judge", shown, task, memo)


def consistency_prompt(
    trajectory: Trajectory, goal: str, turns: Sequence[dict[str, Any]]
) -> Prompt:
    """Stage 3b's rewrite: the offered turns whole (a rewrite replaces the whole text; the
    caller offers only what fits the budget), with what is wrong with each, then the goals."""
    view = "Turns to rewrite:\n\n" + "\n\n".join(
        f"### Turn {t['label']}\nProblems: {'; '.join(t['problems'])}\nText:\n{t['text']}"
        for t in turns
    )
    task = (
        f"{_instructions('consistency')}\n"
        f"New goal (every turn must fit it): {truncate_to_tokens(goal, GOAL_TOKENS)}\n"
        f"Original goal (no turn may restate, pursue or name it): {_original_goal(trajectory)}"
    )
    return _prompt("consistency", view, task, None)


def with_schema_text(messages: list[dict[str, Any]], prompt: Prompt) -> list[dict[str, Any]]:
    """The messages with the reply's schema appended to the first user turn (after the view, so
    the shared prefix stays shared), for endpoints in JSON-object mode."""
    text = schema_text(prompt.key)
    out, added = [], False
    for message in messages:
        if message["role"] == "user" and not added:
            message, added = {**message, "content": message["content"] + text}, True
        out.append(message)
    return out
