"""What the pages make of candidates, messages and summaries (relabel/display.py)."""

from __future__ import annotations

from relabel.display import (
    DIFF_MIN_SHARED,
    alternatives,
    attempt_goal,
    duration,
    goal_diff,
    import_result,
    message_blocks,
    plural,
    pretty_arguments,
    pretty_json,
    shared_words,
    word_diff,
)
from relabel.models import Candidate


def test_the_diff_marks_changed_phrases_and_keeps_every_character():
    original = "Find copper wire under $5/kg now"
    hindsight = "Compare copper wire prices now"
    left, right = word_diff(original, hindsight)
    assert "".join(p.text for p in left) == original
    assert "".join(p.text for p in right) == hindsight
    assert [(p.kind, p.text) for p in left] == [
        ("del", "Find "),
        ("same", "copper wire "),
        ("del", "under $5/kg "),
        ("same", "now"),
    ]
    assert [p.kind for p in right] == ["ins", "same", "ins", "same"]


def test_tool_inputs_are_indented_json_when_they_parse():
    assert pretty_arguments('{"q": "x", "n": 2}') == '{\n  "q": "x",\n  "n": 2\n}'
    assert pretty_arguments({"é": 1}) == '{\n  "é": 1\n}'
    assert pretty_arguments("not json <b>") == "not json <b>"


def test_markdown_is_cut_into_text_and_fenced_code_blocks_only():
    text = "Plan:\n- **one**\n- two\n\n```python\nprint('<hi>')\n```\nafter\n```\nunclosed"
    blocks = message_blocks(text)
    assert [(b.kind, b.text, b.lang) for b in blocks] == [
        ("text", "Plan:\n- **one**\n- two", ""),
        ("code", "print('<hi>')", "python"),
        ("text", "after", ""),
        ("code", "unclosed", ""),
    ]
    assert message_blocks("") == [] and message_blocks("``not a fence``")[0].kind == "text"


def test_json_is_pretty_printed_only_when_it_parses():
    assert pretty_json('{"a": [1, 2]}') == ('{\n  "a": [\n    1,\n    2\n  ]\n}', True)
    assert pretty_json('{"cut": "in the mid') == ('{"cut": "in the mid', False)
    assert pretty_json("plain words") == ("plain words", False)
    assert pretty_json("[]") == ("[]", True)


def test_the_diff_is_shown_only_when_the_goals_share_enough_words():
    assert goal_diff("Find copper wire under $5/kg", "Find copper wire near Lyon")["show_diff"]
    long_original = "You are mia and you want to fly from New York to Seattle on May 20 " * 5
    assert shared_words(long_original, "Book a flight to Seattle") < DIFF_MIN_SHARED
    assert goal_diff(long_original, "Book a flight to Seattle") == {"show_diff": False}


def test_words_for_counts_and_times():
    assert plural(1, "rater") == "1 rater" and plural(2, "rater") == "2 raters"
    assert plural(1, "trajectory", "trajectories") == "1 trajectory"
    assert plural(1200, "trajectory", "trajectories") == "1,200 trajectories"
    assert [duration(s) for s in (0.42, 12.4, 185, 7440)] == [
        "0.4 s",
        "12 s",
        "3 min 5 s",
        "2 h 4 min",
    ]


def test_an_import_summary_reads_as_sentences():
    summary = {
        "format": "browsergym", "imported": 19, "successes": 9, "failures": 10, "duplicates": 0,
        "skipped_reasons": {"crashed before its first observation": 1},
    }  # fmt: skip
    assert import_result(summary) == [
        "19 trajectories imported (9 successes, 10 failures) as browsergym.",
        "1 record skipped: crashed before its first observation.",
    ]
    assert import_result({}) == []


def test_alternatives_are_the_other_distinct_attempts_at_most_nine():
    run_attempts = [{"attempt": n, "goal": f"Goal {n % 12}", "refused": "x"} for n in range(1, 15)]
    candidate = Candidate(hindsight_goal="Goal 1", attempts=[*run_attempts, "junk", {"goal": "y"}])
    offered = alternatives(candidate)
    assert [a.number for a in offered] == list(range(1, 10))
    assert "Goal 1" not in [a.goal for a in offered]  # the proposed goal itself
    assert len({a.goal for a in offered}) == 9 and offered[0].attempt == 2
    assert attempt_goal(candidate, 2) == "Goal 2" and attempt_goal(candidate, 1) is None
