"""The rules backend: every stage offline, deterministic, from the trajectory alone.

It is the demo's backend and a baseline to compare models against. What it does:

- detect: error observations, give-up answers, a missing final answer and a partial reward map
  to a failure type; severity grows with the share of failed steps and when nothing was answered.
- extract: each step whose action returned something other than an error becomes an achievement
  grounded to that step; the final answer is an achievement grounded to the last step.
- relabel: attempt 1 turns the final answer into a "find and report" goal, attempt 2 the last
  successful observation, attempt 3 the sequence of actions. Confidence follows how much of the
  goal the observations show, and falls with the share of failed steps and the severity.
- the panel: "rules-grounding" (vetoes goals whose content the steps do not show) and
  "rules-specificity" (vetoes goals too vague or too long to be an instruction, or that paste
  raw markup or JSON instead of asking for something).
"""

from __future__ import annotations

import json
import re
from typing import Any

from relabel.backends import ItemContext
from relabel.models import Step

ERROR = re.compile(
    r"\b(error|exception|traceback|failed|failure|not found|invalid|timed? ?out|denied|"
    r"unavailable|forbidden|errno)\b",
    re.I,
)
GIVE_UP = re.compile(r"give[ _]?up|gave up|unable to|cannot|can't|could not|not possible", re.I)
MARKUP = re.compile(
    r"RootWebArea|\[\d+\] (link|button|textbox|heading)|<(html|div|span)\b|\{\"\w+\": "
)
TAGS = re.compile(r"</?\w+[^>]*>")
SPACE = re.compile(r"\s+")
PANEL = [
    {"name": "rules-grounding", "model": "rules", "endpoint": "offline"},
    {"name": "rules-specificity", "model": "rules", "endpoint": "offline"},
]


def clean(text: str, limit: int) -> str:
    """One line of at most ``limit`` characters, markup and runs of space removed."""
    text = SPACE.sub(" ", TAGS.sub(" ", text or "")).strip()
    return text if len(text) <= limit else text[: limit - 3].rstrip() + "..."


def first_sentence(text: str, limit: int = 140) -> str:
    text = clean(text, 2000)
    match = re.match(r"(.+?[.!?])(\s|$)", text)
    return clean(match.group(1) if match else text, limit)


def is_error(step: Step) -> bool:
    return bool(ERROR.search(step.observation[:2000]))


def action_phrase(step: Step) -> str:
    """``search "copper wire supplier"``: the action and its first short argument."""
    arguments = step.action_input
    if isinstance(arguments, str):
        try:
            arguments = json.loads(arguments)
        except ValueError:
            return (
                clean(arguments, 60)
                if step.action in arguments
                else clean(f"{step.action} {arguments}", 60)
            )
    values = arguments.values() if isinstance(arguments, dict) else [arguments]
    shown = [v for v in values if isinstance(v, str | int | float) and str(v).strip()]
    if shown:
        return clean(f'{step.action} "{shown[0]}"', 60)
    return step.action


def error_share(steps: list[Step]) -> float:
    acted = [s for s in steps if s.action]
    return sum(is_error(s) for s in acted) / len(acted) if acted else 0.0


CONTENT = re.compile(r"[a-z]{4,}|\d+(?:[.,]\d+)*", re.I)
TEMPLATE_WORDS = {
    "using",
    "find",
    "report",
    "following",
    "carry",
    "these",
    "actions",
    "order",
    "then",
    "what",
    "returns",
    "with",
}


def content_words(text: str) -> set[str]:
    return {w.lower() for w in CONTENT.findall(text)} - TEMPLATE_WORDS


def evidence(steps: list[Step]) -> set[str]:
    """Words the environment showed or the agent typed: observations and action arguments."""
    words: set[str] = set()
    for step in steps:
        words |= content_words(step.observation[:4000])
        words |= content_words(json.dumps(step.action_input)[:1000])
    return words


def support(text: str, steps: list[Step]) -> float:
    """The share of ``text``'s content words that the steps show (1.0 when it has none)."""
    words = content_words(text) - {s.action.lower() for s in steps}
    return len(words & evidence(steps)) / len(words) if words else 1.0


PAGE_TITLE = re.compile(r"RootWebArea '([^'\n]{0,200})'")
PAGE_URL = re.compile(r"^URL: (\S+)", re.M)
# Bidirectional marks, as characters or as the literal escapes some exports keep.
INVISIBLE = re.compile(r"[\u200b-\u200f\u202a-\u202e\u2066-\u2069]|\\u20(0[b-f]|2[a-e]|6[6-9])")
ACKNOWLEDGEMENT = re.compile(
    r"\b(ok|okay|done|submitted|completed|finished|successful|success)\b", re.I
)
# Actions that talk to the user rather than act on the environment.
MESSAGE_ACTIONS = {"send_msg_to_user", "finish", "Finish", "final_answer", "answer", "respond"}


def page_of(observation: str) -> tuple[str, str] | None:
    """(title, site) of a web page observation (BrowserGym's "URL: ..." and accessibility tree)."""
    url = PAGE_URL.search(observation[:2000])
    if not url or not url.group(1).startswith("http"):
        return None
    title = PAGE_TITLE.search(observation[:4000])
    site = url.group(1).split("/")[2]
    return clean(INVISIBLE.sub("", title.group(1)) if title else "", 100), site


def last_page(steps: list[Step]) -> tuple[str, str] | None:
    for step in reversed(steps):
        page = page_of(step.observation)
        if page:
            return page
    return None


def final_answer(ctx: ItemContext) -> str:
    answer = ctx.trajectory.final_answer.strip()
    return "" if GIVE_UP.search(answer[:300]) else answer


class RulesBackend:
    name = "rules"

    def __init__(self, config: dict[str, Any]):
        self.config = config

    # -- stage 1 -------------------------------------------------------------------------------

    def detect(self, ctx: ItemContext) -> dict[str, Any]:
        t, steps = ctx.trajectory, ctx.steps
        errors = error_share(steps)
        text = " ".join([t.failure_reason, t.raw_label, t.final_answer[:300]])
        if not steps:
            kind, severity, why = "incomplete", 0.95, "the agent took no step"
        elif steps and is_error(steps[-1]) and errors >= 0.5:
            kind, severity, why = "tool_error", 0.5 + 0.4 * errors, "most actions returned errors"
        elif GIVE_UP.search(text):
            kind, severity, why = "incomplete", 0.55, "the agent gave up"
        elif t.reward is not None and 0 < t.reward < 1:
            kind, severity, why = "constraint_violation", 0.6 * (1 - t.reward), "partial reward"
        elif not t.final_answer.strip():
            kind, severity, why = "incomplete", 0.45, "no final answer"
        elif support(t.final_answer, steps) < 0.35:
            kind, severity, why = "hallucination", 0.75, "the answer is not shown by any step"
        elif errors > 0:
            kind, severity, why = "tool_error", 0.3 + 0.4 * errors, "some actions returned errors"
        else:
            kind, severity, why = "wrong_result", 0.35, "the answer was judged wrong"
        if 0 < len(steps) < 2:
            severity += 0.1
        severity = round(min(1.0, severity), 2)
        return {
            "failure_type": kind,
            "severity": severity,
            "recoverable": severity < 0.7,
            "explanation": f"{why} ({len(steps)} steps, {errors:.0%} with errors)",
        }

    # -- stage 2 -------------------------------------------------------------------------------

    def extract(self, ctx: ItemContext) -> dict[str, Any]:
        steps = ctx.steps
        achievements = []
        for step in steps[-8:]:
            if not step.action or is_error(step):
                continue
            seen = first_sentence(step.observation, 120)
            text = f"Ran {action_phrase(step)}" + (f" and got: {seen}" if seen else "")
            achievements.append({"text": text, "steps": [step.index]})
        answer = final_answer(ctx)
        if answer and steps:
            achievements.append(
                {"text": f"Answered: {clean(answer, 200)}", "steps": [steps[-1].index]}
            )
        observations = [
            first_sentence(s.observation) for s in steps[-3:] if s.observation and not is_error(s)
        ]
        limitations = [
            f"Step {s.index} failed: {first_sentence(s.observation, 100)}"
            for s in steps
            if s.action and is_error(s)
        ][:5]
        if not ctx.trajectory.final_answer.strip():
            limitations.append("The agent gave no final answer.")
        if ctx.trajectory.failure_reason:
            limitations.append(clean(ctx.trajectory.failure_reason, 200))
        return {
            "achievements": achievements,
            "key_observations": observations,
            "limitations": limitations,
        }

    # -- stage 3 -------------------------------------------------------------------------------

    def relabel(
        self,
        ctx: ItemContext,
        outcome: dict[str, Any],
        *,
        attempt: int,
        temperature: float,
        refused: list[dict[str, Any]],
    ) -> dict[str, Any]:
        templates = [self._from_answer, self._from_observation, self._from_actions]
        goal, rationale, base = templates[attempt % len(templates)](ctx)
        severity = float(ctx.memo.get("severity", 0.5))
        confidence = base * (1 - 0.7 * error_share(ctx.steps)) * (1.1 - 0.8 * severity)
        return {
            "hindsight_goal": goal,
            "rationale": rationale,
            "confidence": round(min(1.0, max(0.0, confidence)), 3),
        }

    def _tools(self, ctx: ItemContext) -> str:
        names = list(dict.fromkeys(s.action for s in ctx.steps if s.action))
        return ", ".join(names[:4]) or "the conversation"

    def _where(self, ctx: ItemContext) -> str:
        """Where the answer was found: the last web page's title and site, or the tools used."""
        page = last_page(ctx.steps)
        if page:
            title, site = page
            return f"On the page '{title}' ({site})" if title else f"On {site}"
        return f"Using {self._tools(ctx)}"

    def _from_answer(self, ctx: ItemContext) -> tuple[str, str, float]:
        answer = final_answer(ctx)
        # "Review submitted." says that something happened, not what: no goal to report it.
        acknowledgement = ACKNOWLEDGEMENT.search(answer) and len(answer.split()) <= 4
        if not content_words(answer) or acknowledgement:
            return "", "no informative final answer to build on", 0.0
        goal = f"{self._where(ctx)}, find and report the following: {clean(answer, 200)}"
        grounded = support(answer, ctx.steps)
        why = f"The final answer states it; the steps show {grounded:.0%} of its content."
        return goal, why, 0.3 + 0.65 * grounded

    def _from_observation(self, ctx: ItemContext) -> tuple[str, str, float]:
        for step in reversed(ctx.steps):
            if not step.action or step.action in MESSAGE_ACTIONS or is_error(step):
                continue
            page = page_of(step.observation)
            if page and page[0]:
                title, site = page
                goal = f"Navigate {site} to the page titled '{title}'"
                return goal, f"Step {step.index} reached that page.", 0.6
            seen = first_sentence(step.observation, 160)
            if seen and not MARKUP.search(seen):
                goal = f"Run {action_phrase(step)} and report what it returns: {seen}"
                return goal, f"Step {step.index} returned it.", 0.6
        return "", "no successful action to build on", 0.0

    def _from_actions(self, ctx: ItemContext) -> tuple[str, str, float]:
        acted = [s for s in ctx.steps if s.action and not is_error(s)][-5:]
        if not acted:
            return "", "no successful action to build on", 0.0
        plan = "; then ".join(action_phrase(s) for s in acted)
        steps = [s.index for s in acted]
        return f"Carry out these actions in order: {plan}.", f"Steps {steps} did this.", 0.4

    # -- judges --------------------------------------------------------------------------------

    def panel(self) -> list[dict[str, Any]]:
        return PANEL

    def judge(self, ctx: ItemContext, judge: dict[str, Any], goal: str) -> dict[str, Any]:
        if judge["name"] == "rules-grounding":
            return self._judge_grounding(ctx, goal)
        return self._judge_specificity(goal)

    def _judge_grounding(self, ctx: ItemContext, goal: str) -> dict[str, Any]:
        achievements = ctx.memo.get("outcome", {}).get("achievements", [])
        if not achievements:
            return {"accept": False, "confidence": 0.0, "reason": "no grounded achievement"}
        shown = support(goal, ctx.steps)
        if shown < 0.25:
            reason = f"the steps show only {shown:.0%} of what the goal asks for"
            return {"accept": False, "confidence": round(shown, 3), "reason": reason}
        grounded = len({s for a in achievements for s in a["steps"]})
        confidence = min(1.0, 0.4 + 0.15 * grounded) * (1 - 0.5 * error_share(ctx.steps))
        confidence *= 0.5 + 0.5 * shown
        return {
            "accept": True,
            "confidence": round(confidence, 3),
            "reason": f"{len(achievements)} achievements grounded to {grounded} steps; "
            f"the steps show {shown:.0%} of the goal's content",
        }

    def _judge_specificity(self, goal: str) -> dict[str, Any]:
        words = len(goal.split())
        if words < 6 or words > 90:
            return {"accept": False, "confidence": 0.1, "reason": f"{words} words: not a task"}
        if MARKUP.search(goal):
            reason = "the goal pastes raw markup or JSON instead of asking for something"
            return {"accept": False, "confidence": 0.1, "reason": reason}
        return {"accept": True, "confidence": 0.9, "reason": f"a specific {words}-word task"}
