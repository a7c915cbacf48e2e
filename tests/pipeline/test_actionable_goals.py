"""Rules goals a person could act on: each asks for what the run delivered (a fact it found, a
change it made), never for a timing or a page title that means nothing for the run, and the
rules judges reject a goal whose answer the run does not state. On ../shared/data (when
present) the WebArena and tau-bench rows a default run exports quote no six words of their
original goal."""

from __future__ import annotations

from typing import Any

import pytest

from relabel.backends import ItemContext
from relabel.backends.rules import NAMED_OBJECT, PANEL, VAGUE_ASK, RulesBackend
from relabel.config import default_config
from relabel.importers import import_paths
from relabel.llm.client import CallLog
from relabel.models import Candidate, Dataset, RunItem
from relabel.pipeline.consistency import Reference, find, message_turns
from review.exports import rows, sft
from review.exports.options import ExportOptions
from tests.factories import make_trajectory

pytestmark = pytest.mark.django_db

OSM = "URL: https://www.openstreetmap.org/directions\nRootWebArea 'OpenStreetMap'\n"
FORM = OSM + "\t[194] textbox 'From'\n\t[199] textbox 'To'\n\t[200] button 'Go'\n"
ROUTE = [
    {
        "action": "fill",
        "action_input": {"bid": "194", "value": "Schenley Park"},
        "observation": FORM,
    },
    {
        "action": "fill",
        "action_input": {"bid": "199", "value": "University of Pittsburgh"},
        "observation": FORM,
    },
    {
        "action": "press",
        "action_input": {"bid": "199", "key_comb": "Enter"},
        "observation": FORM + "\tStaticText 'Distance: 4.4km. Time: 0:12.'",
    },
]


def context(trajectory, outcome: dict[str, Any] | None = None) -> tuple[RulesBackend, Any]:
    backend = RulesBackend({})
    steps = list(trajectory.ordered_steps())
    ctx = ItemContext(trajectory, steps, default_config(), CallLog(None, trajectory.pk))
    ctx.memo["severity"] = 0.35
    ctx.memo["outcome"] = outcome or backend.extract(ctx)
    return backend, ctx


def goals(trajectory) -> list[str]:
    backend, ctx = context(trajectory)
    replies = [backend.relabel(ctx, ctx.memo["outcome"], attempt=k, temperature=0, refused=[])
               for k in range(3)]  # fmt: skip
    return [r["hindsight_goal"] for r in replies if r["hindsight_goal"]]


def test_directions_are_asked_as_a_route_and_its_travel_time_never_how_long_it_takes():
    trajectory = make_trajectory(
        goal="Minimum travel time?",
        steps=ROUTE,
        final_answer="0:12",
        metadata={"initial_observation": FORM},  # the page the first fill typed into
    )
    found = goals(trajectory)
    assert found[0] == (
        "On www.openstreetmap.org, get directions from 'Schenley Park' to "
        "'University of Pittsburgh' and report the travel time"
    )
    assert not any("how long it takes" in goal for goal in found)


def test_a_duration_of_nothing_the_run_names_is_no_goal():
    steps = [dict(ROUTE[2], action_input={"bid": "12", "key_comb": "Enter"})]
    trajectory = make_trajectory(goal="How long is it?", steps=steps, final_answer="12 minutes")
    assert not any("how long" in goal or "the result" in goal for goal in goals(trajectory))


def test_an_address_is_asked_for_by_the_place_it_belongs_to():
    answer = (
        "Pittsburgh International Airport, Airport Blvd, Moon Township, PA, 15231, United States"
    )
    trajectory = make_trajectory(goal="Airports near CMU?", steps=ROUTE[:1], final_answer=answer)
    assert goals(trajectory)[0] == (
        "On www.openstreetmap.org, find the full address of Pittsburgh International Airport"
    )


def test_a_page_the_run_only_read_gives_no_page_title_or_vague_result_goal():
    page = (
        "URL: http://shop.local/admin\nRootWebArea 'Dashboard / Magento Admin'\n[897] 'hollister'"
    )
    steps = [{"action": "send_msg_to_user", "action_input": {"text": "x"}, "observation": page}]
    trajectory = make_trajectory(goal="Top brand?", steps=steps, final_answer="hollister (19 uses)")
    for goal in goals(trajectory):
        assert "report the result" not in goal and "open the 'Dashboard" not in goal, goal


def test_the_grounding_judge_rejects_a_goal_whose_answer_the_run_does_not_state():
    trajectory = make_trajectory(goal="Find the cheapest shoe", steps=ROUTE, final_answer="$39.99")
    backend, ctx = context(trajectory)
    grounding = PANEL[0]
    asked = (
        "On www.openstreetmap.org, get directions from 'Schenley Park' and report the coordinates"
    )
    verdict = backend.judge(ctx, grounding, asked)
    assert verdict["accept"] is False
    assert (
        verdict["reason"]
        == "the goal asks for the coordinates, which the run's answer does not state"
    )
    stated = "On www.openstreetmap.org, get directions from 'Schenley Park' and report the amount"
    assert backend.judge(ctx, grounding, stated)["accept"] is True


def test_the_specificity_judge_rejects_a_result_of_nothing_in_particular():
    trajectory = make_trajectory(goal="x", steps=ROUTE, final_answer="0:12")
    backend, ctx = context(trajectory)
    verdict = backend.judge(ctx, PANEL[1], "Browse www.openstreetmap.org and report the result")
    assert verdict == {
        "accept": False,
        "confidence": 0.1,
        "reason": "the goal asks for 'the result' without saying of what",
    }


# -- on the real benchmark files ----------------------------------------------------------------


def default_run_rows(relabel_now, name: str, paths: list) -> list[tuple[Candidate, dict]]:
    """Every candidate the gate did not reject, as the SFT row an export writes for it."""
    import_paths(paths, name)
    run = relabel_now(Dataset.objects.get(name=name), "rules")
    candidates = Candidate.objects.filter(run=run).exclude(gate=Candidate.Gate.REJECTED)
    options = ExportOptions("sft")
    return [(c, sft.candidate_row(c, options)) for c in rows.iter_candidates(candidates)]


def quotes_six_words(row: dict[str, Any]) -> bool:
    original = row["metadata"]["original_goal"]
    reference = Reference.of(original, "")  # six-word runs only: the goal is irrelevant here
    assert reference.run_length == 6 or len(original.split()) < 6
    return any(
        f.turn == "thought" and f.reason.startswith("repeats")
        for f in find(reference, message_turns(row["messages"]))
    )


@pytest.mark.shared_data
@pytest.mark.parametrize(
    ("name", "path"),
    [("webarena", "webarena-browsergym"), ("tau", "tau-bench/gpt-4o-airline.json")],
)
def test_on_the_real_benchmarks_no_row_quotes_six_words_of_its_original_goal(
    shared_data, relabel_now, name, path
):
    found = default_run_rows(relabel_now, name, [shared_data / path])
    assert found
    quoting = [c.trajectory.external_id for c, row in found if quotes_six_words(row)]
    assert quoting == []
    for candidate, _ in found:
        goal = candidate.hindsight_goal
        assert "how long it takes" not in goal, goal
        assert not (VAGUE_ASK.search(goal) and not NAMED_OBJECT.search(goal)), goal
    assert not RunItem.objects.filter(status=RunItem.Status.ERROR).exists()
