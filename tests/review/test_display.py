"""What the review page makes of a candidate: the goal diff and tool-call inputs."""

from __future__ import annotations

from relabel.display import pretty_arguments, word_diff


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
