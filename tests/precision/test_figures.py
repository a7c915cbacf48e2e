"""run_figures on runs built through the ORM, with verdicts created directly."""

from __future__ import annotations

import json

import pytest
from django.contrib.auth.models import User

from relabel.models import RunItem
from review.models import Verdict
from review.precision.figures import run_figures
from review.precision.format import show
from review.precision.stats import wilson
from review.precision.table import figures_csv
from tests.factories import make_candidate, make_run, make_trajectory

pytestmark = pytest.mark.django_db


def rate(candidate, rater, decision: str, kind: str = "curation", **fields) -> Verdict:
    return Verdict.objects.create(
        candidate=candidate, rater=rater, kind=kind, decision=decision, **fields
    )


@pytest.fixture
def raters(db):
    # Created without a password: hashing one takes longer than these tests.
    return [User.objects.create(username=f"rater{i}") for i in range(3)]


def test_strict_and_lenient_precision_count_an_edit_differently(raters):
    run = make_run()
    decisions = ["accept"] * 8 + ["edit"] * 3 + ["reject"] * 1
    for decision in decisions:
        rate(make_candidate(run), raters[0], decision)
    f = run_figures(run)
    strict, lenient = wilson(8, 12), wilson(11, 12)
    assert f["precision_strict"] | {"enough": True} == {**strict.as_dict(), "enough": True}
    assert f["precision_lenient"]["value"] == pytest.approx(lenient.value)
    assert f["precision_lenient"]["low"] == pytest.approx(lenient.low)
    assert f["verdicts"]["by_decision"] == {"accept": 8, "edit": 3, "reject": 1}
    assert f["precision_strict"]["n"] == f["verdicts"]["total"] == 12


def test_an_undone_verdict_no_longer_counts_and_the_verdict_after_it_does(raters):
    run = make_run()
    c = make_candidate(run)
    first = rate(c, raters[0], "accept")
    rate(c, raters[0], "undo", undoes=first)
    rate(c, raters[0], "reject")
    f = run_figures(run, min_n=1)
    assert f["precision_strict"]["n"] == 1 and f["precision_strict"]["value"] == 0.0
    assert f["verdicts"]["undone"] == 1 and f["verdicts"]["recorded"] == 3


def test_undoing_an_undo_restores_the_verdict(raters):
    run = make_run()
    c = make_candidate(run)
    accept = rate(c, raters[0], "accept")
    undo = rate(c, raters[0], "undo", undoes=accept)
    rate(c, raters[0], "undo", undoes=undo)
    f = run_figures(run, min_n=1)
    assert (f["precision_strict"]["k"], f["precision_strict"]["n"]) == (1, 1)


def test_an_undo_of_the_only_verdict_leaves_the_candidate_unrated(raters):
    run = make_run()
    c = make_candidate(run)
    rate(c, raters[0], "undo", undoes=rate(c, raters[0], "reject"))
    f = run_figures(run)
    assert f["precision_strict"]["n"] == 0 and f["precision_strict"]["value"] is None
    assert f["verdicts"]["rated_candidates"] == 0


def test_a_skip_says_nothing_about_validity(raters):
    run = make_run()
    c = make_candidate(run)
    rate(c, raters[0], "accept")
    rate(c, raters[0], "skip")
    rate(make_candidate(run), raters[0], "skip")
    f = run_figures(run, min_n=1)
    assert (f["precision_strict"]["k"], f["precision_strict"]["n"]) == (1, 1)
    assert f["verdicts"]["skips"] == 2


def test_the_latest_verdict_of_a_rater_replaces_their_earlier_one(raters):
    run = make_run()
    c = make_candidate(run)
    rate(c, raters[0], "reject")
    rate(c, raters[0], "accept")
    assert run_figures(run, min_n=1)["precision_strict"]["k"] == 1


def test_several_raters_count_once_per_candidate_by_majority_and_a_tie_is_invalid(raters):
    run = make_run()
    majority_valid, tie = make_candidate(run), make_candidate(run)
    for rater, decision in zip(raters, ["accept", "accept", "reject"], strict=True):
        rate(majority_valid, rater, decision)
    rate(tie, raters[0], "accept")
    rate(tie, raters[1], "reject")
    f = run_figures(run, min_n=1)
    assert (f["precision_strict"]["k"], f["precision_strict"]["n"]) == (1, 2)
    assert f["verdicts"]["total"] == 5


def test_a_figure_on_too_few_verdicts_says_so(raters):
    run = make_run()
    for _ in range(3):
        rate(make_candidate(run), raters[0], "accept")
    f = run_figures(run)
    assert f["precision_strict"]["n"] == 3 and f["precision_strict"]["enough"] is False
    assert run_figures(run, min_n=3)["precision_strict"]["enough"] is True


def test_figures_are_split_by_benchmark_failure_type_and_confidence_bucket(raters):
    run = make_run()
    tau = make_trajectory(run.dataset, source_format="tau-bench")
    rate(make_candidate(run, trajectory=tau, failure_type="wrong_result", confidence=0.35),
         raters[0], "reject")  # fmt: skip
    rate(make_candidate(run, failure_type="incomplete", confidence=0.92), raters[0], "accept")
    f = run_figures(run, min_n=1)
    assert f["by_benchmark"]["tau-bench"]["strict"]["value"] == 0.0
    assert f["by_benchmark"]["agenther"]["strict"]["value"] == 1.0
    assert set(f["by_failure_type"]) == {"wrong_result", "incomplete"}
    assert f["by_bucket"][3]["strict"]["n"] == 1 and f["by_bucket"][9]["strict"]["k"] == 1
    assert len(f["by_bucket"]) == 10


def test_counts_cover_every_gate_and_discarded_items(raters):
    run = make_run()
    make_candidate(run, confidence=0.9)
    make_candidate(run, confidence=0.3)
    make_candidate(run, confidence=0.1)
    RunItem.objects.create(
        run=run, trajectory=make_trajectory(run.dataset), status=RunItem.Status.DISCARDED
    )
    counts = run_figures(run)["counts"]
    assert counts["by_gate"] == {
        "auto_accepted": 1,
        "needs_review": 1,
        "rejected": 1,
        "discarded": 1,
    }
    assert counts["items"] == 4


def build_audited_run(raters):
    """An auto-accepted pool of 100 (accept threshold 0.5, four strata of 0.125): 40 in
    0.5-0.625 whose audit finds 8 of 10 valid, 60 in 0.875-1 whose audit finds 10 of 10 valid;
    and 20 needs-review candidates, 15 accepted or edited by a human and 5 rejected."""
    run = make_run()
    for i in range(40):
        c = make_candidate(run, confidence=0.55)
        if i < 10:
            rate(c, raters[0], "valid" if i < 8 else "invalid", kind="audit")
    for i in range(60):
        c = make_candidate(run, confidence=0.95)
        if i < 10:
            rate(c, raters[0], "valid", kind="audit")
    for i in range(20):
        decision = "accept" if i < 12 else "edit" if i < 15 else "reject"
        rate(make_candidate(run, confidence=0.3), raters[1], decision)
    return run


def test_the_audit_estimates_the_auto_accepted_pool_stratum_by_stratum(raters):
    f = run_figures(build_audited_run(raters))
    audit = f["audit_precision"]
    assert audit["value"] == pytest.approx(0.4 * 0.8 + 0.6 * 1.0)
    assert audit["n"] == 20 and audit["pool"] == 100 and audit["enough"] is True
    assert audit["low"] < audit["value"] < audit["high"]
    assert [s["size"] for s in audit["strata"]] == [40, 0, 0, 60]


def second_opinions(run, rater, disagree_on: int) -> None:
    """A second rater on every curated candidate of ``build_audited_run``: they reject
    ``disagree_on`` of the ones the first rater approved, and agree on everything else."""
    curated = Verdict.objects.filter(candidate__run=run, kind="curation").order_by("id")
    approvals = 0
    for verdict in curated:
        approving = verdict.decision in ("accept", "edit")
        approvals += approving
        rate(verdict.candidate, rater, "reject" if not approving or approvals <= disagree_on
             else "accept")  # fmt: skip


def test_human_approval_is_not_assumed_right(raters):
    export = run_figures(build_audited_run(raters))["export_precision"]
    assert export["available"] is False and export["value"] is None
    assert export["reason"].startswith("the raters' accuracy is unmeasured")
    assert export["text"] == export["reason"] and export["reason"].endswith("n=0")
    assert run_figures(build_audited_run(raters))["label_noise"]["available"] is False


def test_the_exportable_set_mixes_its_strata_each_from_its_own_evidence(raters):
    run = build_audited_run(raters)
    second_opinions(run, User.objects.create(username="second"), disagree_on=2)
    f = run_figures(run)
    export = f["export_precision"]
    # Exported: 80 unrated auto-accepted (30 at 0.8 and 50 at 1.0 by the audit), 18 audited
    # valid and 13 approved by both curators (the 2 disagreements are ties: rejected until
    # adjudicated). Checked approvals: the first curator's 15 (13 confirmed), the second's 13.
    assert (export["estimated"], export["human_approved"], export["exportable"]) == (80, 31, 111)
    assert (export["approvals_confirmed"], export["approvals_checked"]) == (26, 28)
    assert export["available"] is True
    assert export["value"] == pytest.approx((30 * 0.8 + 50 * 1.0 + 31 * 26 / 28) / 111)
    assert export["low"] < export["value"] < export["high"] < 1
    assert [p["size"] for p in export["parts"]] == [80, 31, 0]
    noise = f["label_noise"]
    assert noise["value"] == pytest.approx(1 - export["value"])
    assert noise["low"] == pytest.approx(1 - export["high"])
    assert f["human_precision"]["value"] == pytest.approx(26 / 28)
    assert f["adjudication"]["pending"] == 2


def test_an_all_valid_sample_never_gives_a_zero_width_interval(raters):
    run = make_run()
    first, second = raters[0], raters[1]
    for _ in range(30):
        c = make_candidate(run, confidence=0.3)
        rate(c, first, "accept")
        rate(c, second, "accept")
    export = run_figures(run)["export_precision"]
    assert export["value"] == 1.0 and export["high"] == 1.0
    assert 0.9 < export["low"] < 1.0


def test_adjudicated_items_are_their_own_stratum_and_the_adjudication_decides(raters):
    run = make_run()
    for i in range(12):
        c = make_candidate(run, confidence=0.3)
        rate(c, raters[0], "accept")
        rate(c, raters[1], "reject" if i < 4 else "accept")
        if i < 4:  # the disagreements, adjudicated: three approved, one rejected
            rate(c, raters[2], "accept" if i < 3 else "reject", kind="adjudication")
    f = run_figures(run)
    export = f["export_precision"]
    assert (export["human_approved"], export["adjudicated"]) == (8, 3)
    assert f["adjudication"] | {"precision_strict": None} == {
        "n": 4, "approved": 3, "rejected": 1, "overturned": 3, "pending": 0,
        "precision_strict": None,
    }  # fmt: skip
    # The first rater's 12 approvals: 11 confirmed (8 by the second rater, 3 by adjudication).
    assert (export["approvals_confirmed"], export["approvals_checked"]) == (19, 20)
    assert f["precision_strict"]["k"] == 11  # the adjudication, not the tie, decides validity


def test_curation_verdicts_on_auto_accepted_items_are_not_an_audit(raters):
    run = make_run()
    for _ in range(12):
        rate(make_candidate(run, confidence=0.9), raters[0], "accept")
    f = run_figures(run)
    assert f["audit_precision"]["n"] == 0 and f["audit_precision"]["value"] is None
    assert f["precision_strict"]["n"] == 12


def test_two_raters_give_cohens_kappa_and_more_give_fleiss(raters):
    run = make_run()
    for decisions in [("accept", "accept"), ("reject", "reject"), ("accept", "reject")] * 4:
        c = make_candidate(run)
        for rater, decision in zip(raters, decisions, strict=False):
            rate(c, rater, decision)
    kappa = run_figures(run)["kappa"]
    assert kappa["method"] == "cohen" and kappa["n"] == 12
    # 8 of 12 agree; rater A says valid on 8 of 12, rater B on 4 of 12 -> p_e = 4/9.
    assert kappa["value"] == pytest.approx((8 / 12 - 4 / 9) / (1 - 4 / 9))
    c = make_candidate(run)
    for rater in raters:
        rate(c, rater, "accept")
    kappa = run_figures(run)["kappa"]
    assert kappa["method"] == "fleiss" and kappa["n"] == 13
    assert kappa["raters_per_item"] == {2: 12, 3: 1}


def test_each_judge_is_compared_with_the_humans(raters):
    run = make_run()
    for i in range(12):
        judges = [
            {"name": "always", "model": "m1", "endpoint": "e", "accept": True, "confidence": 0.9},
            {"name": "right", "model": "m2", "endpoint": "e", "accept": i % 2 == 0},
        ]
        rate(make_candidate(run, judges=judges), raters[0], "accept" if i % 2 == 0 else "reject")
    judges = {j["name"]: j for j in run_figures(run)["judges"]}
    assert judges["right"]["agreement"]["value"] == 1.0
    assert judges["right"]["kappa"]["value"] == pytest.approx(1.0)
    assert judges["always"]["agreement"]["value"] == 0.5
    assert judges["always"]["kappa"]["value"] == pytest.approx(0.0)


def test_the_threshold_recommendation_counts_what_it_would_newly_auto_accept(raters):
    run = make_run()  # accept threshold 0.5
    for _ in range(150):
        rate(make_candidate(run, confidence=0.8), raters[0], "accept")
    for i in range(10):
        rate(make_candidate(run, confidence=0.45), raters[0], "reject" if i < 5 else "accept")
    for _ in range(7):
        make_candidate(run, confidence=0.9)  # unrated, already auto-accepted
    make_candidate(run, confidence=0.95, gate="rejected")  # vetoed: stays rejected
    f = run_figures(run, target=0.97)
    assert f["recommended_threshold"] == 0.8
    t = f["threshold"]
    assert t["currently_accepted"] == 157 and t["would_accept"] == 157 and t["more"] == 0
    f = run_figures(run, target=0.9)
    assert f["recommended_threshold"] == 0.45
    assert f["threshold"]["would_accept"] == 167 and f["threshold"]["more"] == 10


def test_calibration_reports_ece_over_rated_candidates(raters):
    run = make_run()
    for conf, decision in (
        [(0.15, "reject"), (0.15, "accept")] + [(0.85, "accept")] * 3 + [(0.85, "reject")]
    ):
        rate(make_candidate(run, confidence=conf), raters[0], decision)
    f = run_figures(run, min_n=1)
    assert f["ece"] == pytest.approx(2 / 6 * 0.35 + 4 / 6 * 0.10)
    assert f["calibration"]["bins"][8]["n"] == 4


def test_the_figures_are_json_and_csv_serialisable(raters):
    f = run_figures(build_audited_run(raters))
    assert json.loads(json.dumps(f, allow_nan=False)) == f
    lines = figures_csv(f).splitlines()
    assert lines[0] == "figure,group,value,low,high,n,enough"
    assert any(line.startswith("export_precision,all,") for line in lines)


def test_an_empty_run_has_figures_without_numbers():
    f = run_figures(make_run())
    assert f["precision_strict"]["value"] is None and f["ece"] is None
    assert f["recommended_threshold"] is None and f["kappa"]["method"] is None
    assert f["export_precision"]["value"] is None


def test_an_export_estimate_short_of_audit_verdicts_says_the_audit_is_what_is_missing(raters):
    run = make_run()
    for _ in range(12):
        rate(make_candidate(run, confidence=0.3), raters[0], "accept")
    for i in range(20):
        c = make_candidate(run, confidence=0.9)
        if i < 4:
            rate(c, raters[1], "valid", kind="audit")
    export = run_figures(run)["export_precision"]
    assert export["enough"] is False and export["verified"] == 16
    assert show(export) == "not enough audit verdicts: n=4"
    assert export["available"] is False and export["text"] == "not enough audit verdicts: n=4"
