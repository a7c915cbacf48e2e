"""From a trace file to training data, through the commands and the review pages: a trace's tool
calls become steps with actions, arguments and observations that the review page shows, and the
sft export writes them as assistant ``tool_calls`` answered by ``tool`` messages, each assistant
turn named after the agent that took it."""

from __future__ import annotations

import io
import json
import time
from pathlib import Path

import pytest
from django.core.management import call_command
from django.urls import reverse

from review.models import ReviewTask

pytestmark = pytest.mark.django_db(transaction=True)  # the commands commit, work runs on commit

FIXTURES = Path(__file__).resolve().parent.parent / "importers" / "fixtures"


def command(name: str, *args: str) -> dict:
    out = io.StringIO()
    call_command(name, *args, "--json", stdout=out)
    return json.loads(out.getvalue().strip().splitlines()[-1])


def sft_rows(run_id: int, out: Path, *extra: str) -> dict[str, list[dict]]:
    command("export", "--run", str(run_id), "--format", "sft", "--out", str(out), *extra)
    return {
        f.name: [json.loads(line) for line in f.read_text().splitlines()]
        for f in sorted(out.glob("*.jsonl"))
    }


def tool_turns(messages: list[dict]) -> list[tuple[str, str, str]]:
    """(agent name, tool called, what came back) for each tool call, answers matched by id (None
    where nothing came back in the row)."""
    answers = {m["tool_call_id"]: m["content"] for m in messages if m["role"] == "tool"}
    return [
        (m.get("name", ""), call["function"]["name"], answers.get(call["id"]))
        for m in messages
        if m["role"] == "assistant"
        for call in m.get("tool_calls", [])
    ]


def test_a_multi_agent_otel_trace_is_reviewed_and_exported_with_tool_calls_and_names(
    annotator_client, tmp_path
):
    imported = command(
        "import_trajectories", str(FIXTURES / "otel" / "sdk-spans.json"), "--dataset", "travel"
    )
    assert imported["format"] == "otel" and imported["failures"] == 1
    run = command("relabel", "--dataset", "travel", "--backend", "rules", "--wait")
    assert run["candidates"] == 1 and run["needs_review"] == 1

    page = annotator_client.get(reverse("review")).content.decode()
    assert '<span class="role role-agent">booking_agent</span>' in page
    assert '<code class="tool-name">search_flights</code>' in page
    assert "&quot;to&quot;: &quot;OSL&quot;" in page
    assert "TP1234 departs 08:05, direct, 342 EUR" in page
    task = ReviewTask.objects.get(leased_to__username="alice")
    data = {"decision": "accept", "started_at": f"{time.time() - 7:.3f}"}
    annotator_client.post(reverse("decide", args=[task.pk]), data)

    (row,) = sft_rows(run["run"], tmp_path / "sft")["sft.jsonl"]
    messages = row["messages"]
    assert tool_turns(messages) == [
        (
            "travel_planner",
            "search_flights",
            "TP1234 departs 08:05, direct, 342 EUR; SK1801 departs 11:40, one stop, 255 EUR",
        ),
        # The run stopped on this call: the row ends on the agent's last turn, and the error that
        # came back, which no agent ever answered, is dropped and noted (nothing after it).
        ("booking_agent", "book_flight", None),
    ]
    assert row["metadata"]["conversation"]["ended_without_answer"] is True
    (dropped,) = row["metadata"]["conversation"]["dropped_turns"]
    assert dropped["role"] == "tool"
    booking = next(m for m in messages if m.get("name") == "booking_agent")
    arguments = json.loads(booking["tool_calls"][0]["function"]["arguments"])
    assert arguments == {"flight": "TP1234", "passengers": 1}
    assert row["metadata"]["source_format"] == "otel"


@pytest.mark.shared_data
def test_a_shared_multi_agent_langfuse_trace_exports_as_a_named_success(shared_data, tmp_path):
    trace = shared_data / "langfuse" / "pydantic-ai-tools-2025-12-04.trace.json"
    # The application's own verdict, recorded on the root observation's output.
    imported = command(
        "import_trajectories",
        str(trace),
        "--dataset",
        "jokes",
        "--map",
        "success=observations.0.output.success",
    )
    assert imported["successes"] == 1
    run = command("relabel", "--dataset", "jokes", "--backend", "rules", "--wait")
    assert run["successes"] == 1 and run["candidates"] == 0

    files = sft_rows(run["run"], tmp_path / "sft", "--include-successes")
    (row,) = files["sft_successes.jsonl"]
    turns = tool_turns(row["messages"])
    assert [(name, tool) for name, tool, _ in turns] == [
        ("joke_agent", "get_pun_suggestion"),
        ("joke_agent", "get_dad_joke_suggestion"),
        ("joke_agent", "get_one_liner_suggestion"),
        ("evaluator_agent", "final_result"),
    ]
    assert turns[0][2].startswith("Pun idea: Play on words related to 'programming'")
    assert row["metadata"]["verified_by"]["method"] == "benchmark"
