"""The raters' majority: the one rule that turns a candidate's verdicts into its review state.

Verdicts are append-only. An undo cancels the verdict it points at, and an undo that is itself
undone cancels nothing, so the verdict it pointed at stands again. Skips say nothing about
validity. The effective rating of a (candidate, rater) is their latest verdict that is neither
cancelled, an undo nor a skip. A candidate is valid when more of its raters say valid than
invalid: a tie is invalid, the cautious side.

Adjudication: when a candidate's raters disagree (some approve it, some reject it) it goes to an
adjudicator, who sees every verdict and decides. The adjudicator's effective verdict (kind
``adjudication``) is final: it sets the review state and the exported goal, and it is the
candidate's validity in every precision figure, whatever the raters' majority says. Until it is in,
the majority (and its tie rule) stands.

The review state stored on the candidate (what is exported) and every precision figure come from
these functions, so the exported set is the set the figures describe.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Protocol

from relabel.models import Candidate

UNDO = "undo"
ADJUDICATION = "adjudication"
# Which decisions say the goal is valid; strict precision counts an edit as invalid.
STRICT = {"accept": True, "valid": True, "edit": False, "reject": False, "invalid": False}
LENIENT = {**STRICT, "edit": True}
# Decisions that approve the candidate for export (an edit approves the edited goal).
APPROVING = {"accept", "edit", "valid"}


@dataclass(frozen=True)
class VerdictRow:
    """A verdict as the rule reads it (``Verdict.objects.rows()`` gives them in time order)."""

    id: int
    candidate_id: int
    rater_id: int
    kind: str
    decision: str
    undoes_id: int | None
    edited_goal: str = ""


@dataclass(frozen=True)
class Rating:
    """The effective verdict of one rater on one candidate; ``order`` is its place in time."""

    candidate_id: int
    rater_id: int
    kind: str
    decision: str
    order: int
    edited_goal: str = ""

    def valid(self, *, lenient: bool = False) -> bool:
        return (LENIENT if lenient else STRICT)[self.decision]


class Undoable(Protocol):
    id: int
    decision: str
    undoes_id: int | None


def cancelled_ids(rows: Sequence[Undoable]) -> set[int]:
    """Ids of the verdicts an effective undo cancels; ``rows`` (VerdictRows, or Verdicts) are in
    time order."""
    cancelled: set[int] = set()
    for row in reversed(rows):
        if row.id not in cancelled and row.decision == UNDO and row.undoes_id:
            cancelled.add(row.undoes_id)
    return cancelled


def effective_ratings(rows: Sequence[VerdictRow]) -> list[Rating]:
    """The latest rating per (candidate, rater), oldest first; ``rows`` are in time order."""
    cancelled = cancelled_ids(rows)
    latest: dict[tuple[int, int], Rating] = {}
    for order, row in enumerate(rows):
        if row.id in cancelled or row.decision not in STRICT:
            continue
        latest[(row.candidate_id, row.rater_id)] = Rating(
            row.candidate_id, row.rater_id, row.kind, row.decision, order, row.edited_goal
        )
    return sorted(latest.values(), key=lambda r: r.order)


def majority(ratings: Iterable[Rating], *, lenient: bool = False) -> bool:
    """Valid when more raters say valid than invalid; a tie is invalid."""
    votes = [r.valid(lenient=lenient) for r in ratings]
    return sum(votes) * 2 > len(votes)


def adjudication(ratings: Sequence[Rating]) -> Rating | None:
    """The adjudicator's effective verdict on the candidate, if there is one."""
    decided = [r for r in ratings if r.kind == ADJUDICATION]
    return decided[-1] if decided else None


def raters_ratings(ratings: Sequence[Rating]) -> list[Rating]:
    """The raters' own ratings: everything but the adjudication."""
    return [r for r in ratings if r.kind != ADJUDICATION]


def is_valid(ratings: Sequence[Rating], *, lenient: bool = False) -> bool:
    """The candidate's validity: the adjudication when there is one, else the raters' majority."""
    final = adjudication(ratings)
    if final is not None:
        return final.valid(lenient=lenient)
    return majority(raters_ratings(ratings), lenient=lenient)


def disagree(ratings: Sequence[Rating]) -> bool:
    """Some raters approve the candidate and some reject it (an edit approves, as it does for
    the review state: two approvals with different goals are not a disagreement)."""
    approvals = {r.decision in APPROVING for r in raters_ratings(ratings)}
    return len(approvals) == 2


def needs_adjudication(ratings: Sequence[Rating]) -> bool:
    return disagree(ratings) and adjudication(ratings) is None


def reference_validity(ratings: Sequence[Rating], rater_id: int) -> bool | None:
    """What ``rater_id``'s rating is measured against: the adjudication (by someone else) when
    there is one, else the majority of the other raters (a tie is invalid, as always); None when
    nobody else rated the candidate. Lenient: the question is whether the goal is exportable."""
    final = adjudication(ratings)
    if final is not None and final.rater_id != rater_id:
        return final.valid(lenient=True)
    others = [r for r in raters_ratings(ratings) if r.rater_id != rater_id]
    return majority(others, lenient=True) if others else None


def review_outcome(ratings: Sequence[Rating], hindsight_goal: str) -> tuple[str, str]:
    """(review_state, final_goal) of a candidate from its effective ratings.

    An adjudication decides alone: accept, edit (its goal is exported) or reject. Otherwise,
    approved by the majority: edited when one of the approving raters edited the goal (the latest
    edit is the goal exported), otherwise accepted. Not approved: rejected.
    """
    state = Candidate.ReviewState
    final = adjudication(ratings)
    if final is not None:
        ratings = [final]
    if not ratings:
        return state.UNREVIEWED, hindsight_goal
    approving = [r for r in ratings if r.decision in APPROVING]
    if len(approving) * 2 <= len(ratings):
        return state.REJECTED, hindsight_goal
    edits = [r for r in approving if r.decision == "edit"]
    if edits:
        return state.EDITED, edits[-1].edited_goal
    return state.ACCEPTED, hindsight_goal
