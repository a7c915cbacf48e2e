"""Stage 3, first half: up to K relabel attempts, refusing goals that restate the original.

Every attempt is recorded (goal, temperature, confidence, and why it was refused), so a reviewer
sees what the generator tried.
"""

from __future__ import annotations

import re
from typing import Any

from relabel.backends import Backend, ItemContext

# Words in any script; scripts written without spaces (Chinese, Japanese; Korean syllables too)
# count each character as a word, so the quoting checks still see runs of them.
WORD = re.compile(r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af]|(?:[^\W_]|[$%.])+")
SHARED_RUN = 6  # this many consecutive words of the original goal count as quoting it
MENTIONS = re.compile(
    r"\b(original|initial|given|assigned)\s+(goal|task|instruction|request|question)\b", re.I
)


def word_spans(text: str) -> list[tuple[str, int, int]]:
    """The words of ``text`` as the quoting checks compare them (lower case, no trailing dots),
    each with its character offsets in ``text``; the consistency check marks spans with them."""
    spans = []
    for match in WORD.finditer(text):
        word = match.group().lower().strip(".")
        if word:
            start = match.start() + (len(match.group()) - len(match.group().lstrip(".")))
            spans.append((word, start, start + len(match.group().strip("."))))
    return spans


def _words(text: str) -> list[str]:
    return [word for word, _, _ in word_spans(text)]


def _ngrams(words: list[str], n: int) -> set[tuple[str, ...]]:
    return {tuple(words[i : i + n]) for i in range(len(words) - n + 1)}


def goal_problem(goal: str, original: str) -> str:
    """Why ``goal`` cannot be a hindsight goal for a run given ``original``; "" if it can."""
    words, original_words = _words(goal), _words(original)
    if len(words) < 3:
        return "the goal is empty or too short to be an instruction"
    if words == original_words:
        return "the goal is the original goal"
    if MENTIONS.search(goal):
        return "the goal refers to the original goal"
    text, original_text = " ".join(words), " ".join(original_words)
    if len(original_words) >= 3 and original_text in text:
        return "the goal quotes the original goal"
    n = min(SHARED_RUN, len(original_words))
    if n >= 3 and _ngrams(words, n) & _ngrams(original_words, n):
        return f"the goal quotes {n} consecutive words of the original goal"
    overlap = len(set(words) & set(original_words)) / max(1, len(set(words) | set(original_words)))
    if overlap >= 0.8:
        return f"the goal restates the original goal ({overlap:.0%} of the words are shared)"
    return ""


def relabel_attempts(
    backend: Backend, ctx: ItemContext, outcome: dict[str, Any]
) -> tuple[dict[str, Any] | None, list[dict[str, Any]]]:
    """The first acceptable attempt (or None) and the record of every attempt."""
    temperatures = ctx.config["temperatures"]
    attempts: list[dict[str, Any]] = []
    for k in range(int(ctx.config["attempts"])):
        temperature = float(temperatures[min(k, len(temperatures) - 1)])
        refused = [a for a in attempts if a["refused"]]
        reply = backend.relabel(ctx, outcome, attempt=k, temperature=temperature, refused=refused)
        goal = str(reply.get("hindsight_goal", "")).strip()
        record = {
            "attempt": k + 1,
            "temperature": temperature,
            "goal": goal,
            "rationale": str(reply.get("rationale", "")),
            "confidence": min(1.0, max(0.0, float(reply.get("confidence", 0.0)))),
            "refused": goal_problem(goal, ctx.trajectory.goal),
        }
        attempts.append(record)
        if not record["refused"]:
            return record, attempts
    return None, attempts
