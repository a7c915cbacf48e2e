"""What the review queue and the candidate page show of the consistency check (stage 3b).

``consistency_display(candidate, steps)`` returns the context of templates/relabel/_consistency.html
(each turn that refers to the original goal, its findings, and its rewrite as a word diff of the
original and the rewritten text) and marks the findings in the trajectory: each StepView gets
``marked_thought`` / ``marked_reply`` (parts of the text, the findings' spans with their
reasons), which templates/relabel/_marked.html renders. Everything stays plain text in plain
structures; templates escape it, nothing from a trajectory is marked safe.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from relabel.display import DiffPart, StepView, word_diff
from relabel.models import Candidate

# A textarea per rewritten turn is posted as "rewrite:<key>" (review.forms.DecisionForm).
REWRITE_FIELD = "rewrite:"


@dataclass
class MarkedPart:
    text: str
    reason: str = ""  # a finding's reason when this part is one of its spans


@dataclass
class RewrittenTurn:
    """A turn of the agent's free text that refers to the original goal, and its rewrite."""

    key: str
    label: str
    reasons: list[str]
    text: str  # what is exported for this turn (the edit box starts with it)
    original: list[DiffPart] = field(default_factory=list)
    rewritten: list[DiffPart] = field(default_factory=list)
    is_rewritten: bool = False

    @property
    def field_name(self) -> str:
        return f"{REWRITE_FIELD}{self.key}"

    @property
    def dropped(self) -> bool:
        return self.is_rewritten and not self.text.strip()


def marked_parts(text: str, findings: list[dict[str, Any]]) -> list[MarkedPart]:
    """``text`` cut at the findings' spans (overlapping spans merged, reasons joined)."""
    spans: list[list[Any]] = []
    for f in sorted(findings, key=lambda f: tuple(f.get("span") or (0, 0))):
        start, end = (max(0, min(len(text), int(x))) for x in (f.get("span") or (0, 0)))
        if end <= start:
            continue
        if spans and start <= spans[-1][1]:
            spans[-1][1] = max(spans[-1][1], end)
            spans[-1][2] = list(dict.fromkeys([*spans[-1][2], f["reason"]]))
        else:
            spans.append([start, end, [f["reason"]]])
    parts, at = [], 0
    for start, end, reasons in spans:
        if start > at:
            parts.append(MarkedPart(text[at:start]))
        parts.append(MarkedPart(text[start:end], "; ".join(reasons)))
        at = end
    if at < len(text):
        parts.append(MarkedPart(text[at:]))
    return parts


def _by_turn(findings: list[dict[str, Any]]) -> dict[tuple[str, Any], list[dict[str, Any]]]:
    grouped: dict[tuple[str, Any], list[dict[str, Any]]] = {}
    for finding in findings:
        grouped.setdefault((finding.get("turn"), finding.get("step")), []).append(finding)
    return grouped


def _mark_steps(steps: list[StepView], grouped: dict[tuple[str, Any], list[dict]]) -> None:
    for step in steps:
        thought = grouped.get(("thought", step.index))
        reply = grouped.get(("user", step.index))
        step.marked_thought = marked_parts(step.thought, thought) if thought else []
        step.marked_reply = marked_parts(step.observation, reply) if reply else []


def _turn(candidate: Candidate, key: str, original: str, findings: list[dict]) -> RewrittenTurn:
    rewrites = candidate.rewrites or {}
    label = "Final answer" if key == "final_answer" else f"Step {key}"
    text = rewrites.get(key, original)
    turn = RewrittenTurn(
        key,
        label,
        list(dict.fromkeys(f["reason"] for f in findings)),
        text,
        is_rewritten=key in rewrites,
    )
    if turn.is_rewritten:
        turn.original, turn.rewritten = word_diff(original, text)
    return turn


def rewritten_turns(
    candidate: Candidate, steps: list[StepView], grouped: dict[tuple[str, Any], list[dict]]
) -> list[RewrittenTurn]:
    """The agent's turns that were rewritten or have findings, in trajectory order."""
    keys = set(candidate.rewritable_keys())
    turns = [
        _turn(candidate, str(s.index), s.thought, grouped.get(("thought", s.index), []))
        for s in steps
        if str(s.index) in keys
    ]
    if "final_answer" in keys:
        findings = grouped.get(("final_answer", None), [])
        turns.append(_turn(candidate, "final_answer", candidate.trajectory.final_answer, findings))
    return turns


def consistency_display(candidate: Candidate, steps: list[StepView]) -> dict[str, Any]:
    """The context of the consistency partial; marks the findings in ``steps`` in place."""
    record = candidate.consistency or {}
    findings = record.get("findings", [])
    grouped = _by_turn(findings)
    _mark_steps(steps, grouped)
    final = grouped.get(("final_answer", None))
    environment = [f for f in findings if f.get("turn") in ("user", "step")]
    return {
        "consistency": {
            "checked": bool(record) and record.get("policy") != "off",
            "policy": record.get("policy", ""),
            "method": record.get("method", ""),
            "flagged": bool(record.get("flagged")),
            "findings": len(findings),
            "unresolved": record.get("unresolved", []),
            "refused": record.get("refused", ""),
            "turns": rewritten_turns(candidate, steps, grouped),
            "environment": environment,
        },
        "marked_final_answer": (
            marked_parts(candidate.trajectory.final_answer, final) if final else []
        ),
    }
