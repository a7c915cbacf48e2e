"""A study queue's figures: the paper's protocol (a random sample of N candidates, K raters each,
blind) gives its own precision and Fleiss' kappa, from the study raters' verdicts only."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from relabel.models import Run
from review import majority
from review.models import ReviewQueue, Verdict
from review.precision import stats
from review.precision.format import show, show_kappa


def study_figure(queue: ReviewQueue, min_n: int) -> dict[str, Any]:
    ratings = majority.effective_ratings(Verdict.objects.filter(task__queue=queue).rows())
    by_candidate: dict[int, list[majority.Rating]] = defaultdict(list)
    for rating in ratings:
        by_candidate[rating.candidate_id].append(rating)
    rated = list(by_candidate.values())
    valid = sum(majority.majority(group) for group in rated)
    precision = {**stats.wilson(valid, len(rated)).as_dict(), "enough": len(rated) >= min_n}
    multi = [group for group in rated if len(group) >= 2]
    table = stats.counts_table([[r.valid() for r in group] for group in multi], [True, False])
    kappa = {**stats.fleiss_kappa(table).as_dict(), "enough": len(multi) >= min_n}
    return {
        "queue": queue.pk,
        "name": queue.name,
        "sample": queue.tasks.values("candidate_id").distinct().count(),
        "raters_per_item": queue.overlap,
        "rated": len(rated),
        "complete": sum(len(group) >= queue.overlap for group in rated),
        "precision": precision,
        "kappa": kappa,
        "precision_text": show(precision),
        "kappa_text": show_kappa(kappa),
    }


def study_figures(run: Run, min_n: int) -> list[dict[str, Any]]:
    """Every study queue of the run: precision by the study raters' majority (a tie is invalid),
    Fleiss' kappa over the items with two or more of them (bootstrap interval, fixed seed)."""
    studies = ReviewQueue.objects.for_run(run).filter(purpose=ReviewQueue.Purpose.STUDY)
    return [study_figure(queue, min_n) for queue in studies.order_by("id")]
