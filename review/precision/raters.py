"""Each rater's figures: how much they decided, how fast, how, how far they agree with the others,
how often they are right against adjudications and against blind audits by others, and how that
moves over time.

Ratings are the effective ones of review.majority (undone verdicts and skips do not count as
decisions; skips are counted apart). Agreement and accuracy are on validity: strict for Cohen's
kappa (as the run's agreement figure), lenient for accuracy (is the goal exportable), so an
accept and an edit agree there.
"""

from __future__ import annotations

import statistics
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from django.contrib.auth import get_user_model
from django.db.models import QuerySet

from relabel.models import Run
from review import majority
from review.models import Verdict
from review.precision import stats
from review.precision.format import show, show_kappa

# Decisions per point of the drift plot.
DRIFT_BLOCK = 20
SHARE_OF = {"valid": "accept", "invalid": "reject"}  # blind answers are the same keys


@dataclass
class Loaded:
    """The verdicts of a set of candidates, read once: effective ratings per candidate and per
    rater, when and how fast each was made, and each rater's standing skips."""

    by_candidate: dict[int, list[majority.Rating]] = field(default_factory=dict)
    by_rater: dict[int, list[majority.Rating]] = field(default_factory=dict)
    made: dict[int, tuple[datetime, float | None]] = field(default_factory=dict)  # by order
    skips: Counter = field(default_factory=Counter)


def load(verdicts: QuerySet[Verdict]) -> Loaded:
    rows = verdicts.rows()
    cancelled = majority.cancelled_ids(rows)
    made = {pk: (at, s) for pk, at, s in verdicts.values_list("id", "created_at", "seconds_spent")}
    loaded = Loaded(by_candidate=defaultdict(list), by_rater=defaultdict(list))
    for rating in majority.effective_ratings(rows):
        loaded.by_candidate[rating.candidate_id].append(rating)
        loaded.by_rater[rating.rater_id].append(rating)
        row = rows[rating.order]
        loaded.made[rating.order] = made[row.id]
    for row in rows:
        if row.decision == Verdict.Decision.SKIP and row.id not in cancelled:
            loaded.skips[row.rater_id] += 1
    return loaded


def verdicts_in(run: Run | None, rater_id: int | None = None) -> QuerySet[Verdict]:
    """The verdicts the figures read: a run's (or all), and for one rater the verdicts of every
    candidate they rated (the others' verdicts there are what they are compared with)."""
    verdicts = Verdict.objects.all() if run is None else Verdict.objects.filter(candidate__run=run)
    if rater_id is not None:
        touched = verdicts.filter(rater_id=rater_id).values("candidate_id")
        verdicts = verdicts.filter(candidate_id__in=touched)
    return verdicts


def shares(mine: Sequence[majority.Rating], skips: int) -> dict[str, Any]:
    counts = Counter(SHARE_OF.get(r.decision, r.decision) for r in mine)
    counts["skip"] = skips
    total = sum(counts.values())
    return {
        name: {"n": counts[name], "share": counts[name] / total if total else None}
        for name in ("accept", "edit", "reject", "skip")
    }


def accuracy(pairs: Iterable[tuple[bool, bool]], min_n: int) -> dict[str, Any]:
    got = list(pairs)
    fig = {**stats.wilson(sum(a == b for a, b in got), len(got)).as_dict()}
    return {**fig, "enough": len(got) >= min_n, "text": show({**fig, "enough": len(got) >= min_n})}


def against_adjudication(loaded: Loaded, mine: Sequence[majority.Rating], min_n: int) -> dict:
    """My validity against the adjudicator's, where someone else adjudicated what I rated."""
    pairs = []
    for r in mine:
        final = majority.adjudication(loaded.by_candidate[r.candidate_id])
        if r.kind != majority.ADJUDICATION and final is not None and final.rater_id != r.rater_id:
            pairs.append((r.valid(lenient=True), final.valid(lenient=True)))
    return accuracy(pairs, min_n)


def against_audits(loaded: Loaded, mine: Sequence[majority.Rating], min_n: int) -> dict:
    """My validity against the blind audit verdicts others gave on what I rated."""
    pairs = []
    for r in mine:
        audits = [
            other
            for other in loaded.by_candidate[r.candidate_id]
            if other.kind == "audit" and other.rater_id != r.rater_id
        ]
        if audits and r.kind != majority.ADJUDICATION:
            pairs.append((r.valid(lenient=True), majority.majority(audits, lenient=True)))
    return accuracy(pairs, min_n)


def agreement_with_others(loaded: Loaded, rater_id: int, min_n: int) -> list[dict[str, Any]]:
    """Cohen's kappa (strict validity) with each rater who rated some of the same candidates."""
    pairs: dict[int, list[tuple[bool, bool]]] = defaultdict(list)
    for r in loaded.by_rater.get(rater_id, []):
        for other in majority.raters_ratings(loaded.by_candidate[r.candidate_id]):
            if other.rater_id != rater_id and r.kind != majority.ADJUDICATION:
                pairs[other.rater_id].append((r.valid(), other.valid()))
    names = dict(get_user_model().objects.filter(pk__in=pairs).values_list("pk", "username"))
    rows = []
    for other_id, got in sorted(pairs.items(), key=lambda item: names.get(item[0], "")):
        kappa = {**stats.cohen_kappa(got).as_dict(), "enough": len(got) >= min_n}
        rows.append(
            {
                "rater": other_id,
                "username": names.get(other_id, "?"),
                "n": len(got),
                "agreement": accuracy(got, min_n),
                "kappa": kappa,
                "kappa_text": show_kappa(kappa),
            }
        )
    return rows


def summary(loaded: Loaded, rater_id: int, min_n: int) -> dict[str, Any]:
    """One rater's figures that need no comparison over time."""
    mine = loaded.by_rater.get(rater_id, [])
    seconds = [loaded.made[r.order][1] for r in mine if loaded.made[r.order][1] is not None]
    return {
        "rater": rater_id,
        "decisions": len(mine),
        "by_kind": dict(sorted(Counter(r.kind for r in mine).items())),
        "median_seconds": statistics.median(seconds) if seconds else None,
        "shares": shares(mine, loaded.skips[rater_id]),
        "accuracy_adjudication": against_adjudication(loaded, mine, min_n),
        "accuracy_audit": against_audits(loaded, mine, min_n),
    }


def drift(loaded: Loaded, rater_id: int) -> list[dict[str, Any]]:
    """The rater's decisions in time order, in blocks of DRIFT_BLOCK: the share they approved
    and, where a reference exists, the share agreeing with it (review.majority)."""
    mine = loaded.by_rater.get(rater_id, [])
    blocks = []
    for start in range(0, len(mine), DRIFT_BLOCK):
        block = mine[start : start + DRIFT_BLOCK]
        checked = [
            (r.valid(lenient=True), ref)
            for r in block
            if (ref := majority.reference_validity(loaded.by_candidate[r.candidate_id], rater_id))
            is not None
        ]
        blocks.append(
            {
                "first": start + 1,
                "last": start + len(block),
                "since": loaded.made[block[0].order][0].isoformat(),
                "approved": stats.wilson(
                    sum(r.valid(lenient=True) for r in block), len(block)
                ).as_dict(),
                "agreement": stats.wilson(sum(a == b for a, b in checked), len(checked)).as_dict(),
            }
        )
    return blocks


def rater_figures(rater_id: int, run: Run | None, min_n: int) -> dict[str, Any]:
    """Everything the rater page shows, for a researcher."""
    loaded = load(verdicts_in(run, rater_id))
    return {
        **summary(loaded, rater_id, min_n),
        "agreement": agreement_with_others(loaded, rater_id, min_n),
        "drift": drift(loaded, rater_id),
        "drift_block": DRIFT_BLOCK,
    }


def team_figures(run: Run | None, min_n: int) -> list[dict[str, Any]]:
    """Every rater's summary (of a run, or of everything), read in one pass."""
    loaded = load(verdicts_in(run))
    raters = set(loaded.by_rater) | set(loaded.skips)
    names = dict(get_user_model().objects.filter(pk__in=raters).values_list("pk", "username"))
    rows = [{**summary(loaded, r, min_n), "username": names.get(r, "?")} for r in raters]
    return sorted(rows, key=lambda row: row["username"])
