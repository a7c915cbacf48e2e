"""The trace importers (otel, langfuse, langsmith, anthropic, openai-responses) on the project's
own sample files (tests/importers/fixtures/, written for these tests)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from relabel.importers import TrajectoryImportError
from relabel.models import Trajectory
from tests.importers.conftest import write_json

FIXTURES = Path(__file__).resolve().parent / "fixtures"


def steps_of(external_id: str) -> list[tuple[str, object, str]]:
    t = Trajectory.objects.get(external_id=external_id)
    return [(s.action, s.action_input, s.observation) for s in t.ordered_steps()]


@pytest.mark.parametrize(
    ("folder", "fmt", "why"),
    [
        ("otel", "otel", "OTel SDK span JSON"),
        ("langfuse", "langfuse", "Langfuse"),
        ("langsmith", "langsmith", "LangSmith"),
        ("anthropic", "anthropic", "Anthropic"),
        ("openai-responses", "openai-responses", "Responses"),
    ],
)
def test_auto_detects_each_trace_format_and_says_why(run_import, folder, fmt, why):
    summary = run_import(FIXTURES / folder)
    assert summary.format == fmt and summary.imported >= 2
    assert all(f.format == fmt for f in summary.files)
    assert any(why in f.why for f in summary.files)


def test_an_otel_trace_becomes_one_trajectory_in_time_order_with_the_agents_names(run_import):
    summary = run_import(FIXTURES / "otel" / "sdk-spans.json")
    t = Trajectory.objects.get(external_id="4bf92f3577b34da6a3ce929d0e0e4736")
    assert summary.imported == 1 and t.source_format == "otel"
    assert t.goal == "Book a direct flight from Lisbon to Oslo on 12 May for under 300 EUR."
    assert t.system_prompt == "You plan trips and hand bookings to the booking agent."
    steps = list(t.ordered_steps())
    assert [(s.action, s.action_input) for s in steps] == [
        ("search_flights", {"from": "LIS", "to": "OSL", "date": "2025-05-12"}),
        ("book_flight", {"flight": "TP1234", "passengers": 1}),
    ]
    assert steps[0].observation.startswith("TP1234 departs 08:05, direct, 342 EUR")
    assert steps[0].thought == "First find the direct flights."  # a reasoning part
    assert [s.metadata["speaker"] for s in steps] == ["travel_planner", "booking_agent"]
    # The root agent's error status and the last tool's: a failure, with what went wrong.
    assert t.success is False and t.raw_label == "status=ERROR"
    assert "payment declined by the card issuer" in t.failure_reason
    assert "[error]" in steps[1].observation


def test_otlp_json_and_the_older_gen_ai_conventions_import(run_import):
    summary = run_import(FIXTURES / "otel" / "otlp-older-conventions.json")
    assert summary.imported == 2 and summary.unknown == 1 and summary.failures == 1
    weather = Trajectory.objects.get(external_id="5b8efff798038103d269b633813fc60c")
    assert weather.goal == "Will it rain in Bergen tomorrow?" and weather.success is None
    assert weather.system_prompt == "You answer weather questions with the tools you have."
    assert steps_of(weather.external_id) == [
        ("get_forecast", {"city": "Bergen", "days": 1}, "Bergen tomorrow: rain 14 mm, 9 C")
    ]
    assert weather.final_answer.startswith("Yes: about 14 mm of rain")
    assert weather.metadata["label"] == "unknown"
    # Flat gen_ai.prompt.N / gen_ai.completion.N attributes, and an OTLP error status code.
    fx = Trajectory.objects.get(external_id="0af7651916cd43dd8448eb211c80319c")
    assert fx.goal == "Convert 250 USD to NOK at today's rate."
    assert steps_of(fx.external_id)[0][:2] == ("exchange_rate", {"base": "USD", "quote": "NOK"})
    assert fx.success is False and "rate limit exceeded" in fx.failure_reason


def test_a_lone_tool_span_has_no_goal_and_is_skipped_with_the_reason(tmp_path, run_import):
    span = {
        "gen_ai.operation.name": "execute_tool",
        "gen_ai.tool.name": "get_weather",
        "input": '{"city": "Oslo"}',
        "output": "sunny",
    }
    summary = run_import(write_json(tmp_path, "span.json", span))
    assert summary.imported == 0 and summary.skipped == 1
    assert "no goal" in next(iter(summary.skipped_reasons))


def test_a_mapped_attribute_decides_the_success_of_an_otel_trace(tmp_path, run_import):
    span = {
        "gen_ai.operation.name": "chat",
        "gen_ai.input.messages": [{"role": "user", "parts": [{"type": "text", "content": "Hi"}]}],
        "gen_ai.output.messages": [
            {"role": "assistant", "parts": [{"type": "text", "content": "Hello"}]}
        ],
        "app.task.passed": True,
    }
    path = write_json(tmp_path, "span.json", span)
    summary = run_import(path, mapping={"success": "app.task.passed"})
    t = Trajectory.objects.get()
    assert summary.successes == 1 and t.success is True and t.raw_label == "app.task.passed=True"
    assert t.metadata["outcome_source"] == "mapping"


def test_a_langfuse_trace_reads_generations_and_tools_in_time_order(run_import):
    run_import(FIXTURES / "langfuse" / "support-triage.trace.json")
    t = Trajectory.objects.get(external_id="lf-trace-support-7")
    assert t.goal.startswith("Find the open tickets of customer ACME")
    assert [(a, i) for a, i, _ in steps_of(t.external_id)] == [
        ("list_tickets", {"customer": "ACME", "status": "open"}),
        ("escalate_ticket", {"ticket": 311, "tier": 2}),
    ]
    assert steps_of(t.external_id)[1][2] == '{"ticket": 311, "tier": 2, "status": "escalated"}'
    assert t.final_answer == "Escalated ticket 311 to tier 2."
    assert [tool["function"]["name"] for tool in t.tools] == ["list_tickets", "escalate_ticket"]
    # No score was named as the success signal: the outcome stays unknown, the scores are kept.
    assert t.success is None
    assert {s["name"]: s["value"] for s in t.metadata["scores"]} == {
        "resolved": 0,
        "tone": "polite",
    }


def test_a_langfuse_score_decides_success_when_named(run_import):
    path = FIXTURES / "langfuse" / "support-triage.trace.json"
    summary = run_import(path, success_score="resolved>=1")
    t = Trajectory.objects.get()
    assert summary.failures == 1 and t.success is False and t.metadata["outcome_source"] == "score"
    assert t.raw_label == "resolved=0 (resolved>=1)" and t.reward == 0


def test_langfuse_observations_without_a_trace_group_by_trace_and_an_error_level_fails(
    run_import,
):
    run_import(FIXTURES / "langfuse" / "observations.jsonl")
    t = Trajectory.objects.get(external_id="lf-trace-refund-2")
    assert t.goal == "Refund order 5521 to the original card."
    assert t.success is False and "payments API timed out" in t.failure_reason
    assert steps_of(t.external_id)[0][0] == "issue_refund"


def test_a_langsmith_run_tree_imports_child_runs_as_steps_with_its_feedback(run_import):
    run_import(FIXTURES / "langsmith" / "run-tree.json", success_score="correctness>=0.5")
    t = Trajectory.objects.get()
    assert t.goal == "Which EU country had the highest solar share of electricity in 2023?"
    assert t.system_prompt == "Answer with data from the tools."
    assert steps_of(t.external_id) == [
        (
            "energy_stats",
            {"metric": "solar_share", "year": 2023, "region": "EU"},
            "Greece 18.6%, Spain 17.1%, Netherlands 17.0%",
        )
    ]
    assert t.final_answer == "Spain, with about 17% of its electricity from solar."
    assert t.success is False and t.metadata["feedback"] == {
        "correctness": 0.0,
        "helpfulness": 0.75,
    }


def test_langsmith_feedback_can_mean_success(run_import):
    run_import(FIXTURES / "langsmith" / "run-tree.json", success_score="helpfulness>=0.5")
    assert Trajectory.objects.get().success is True


def test_langsmith_payloads_merge_their_patches_and_an_error_is_a_failure(run_import):
    run_import(FIXTURES / "langsmith" / "payloads.json")
    t = Trajectory.objects.get(external_id="a0000000-0000-4000-8000-00000000000a")
    assert t.goal == "How many orders shipped late in May?"
    action, arguments, observation = steps_of(t.external_id)[0]
    assert action == "run_sql" and arguments["query"].startswith("SELECT count(*)")
    assert observation == "[error] OperationalError: no such column: month"
    assert t.success is False and "no such column" in t.failure_reason


def test_an_anthropic_cassette_is_one_conversation_with_thinking_as_thought(run_import):
    summary = run_import(FIXTURES / "anthropic" / "currency.cassette.yaml")
    t = Trajectory.objects.get()
    assert summary.imported == 1 and t.external_id == "currency.cassette"
    assert t.goal == "How many Swiss francs is 1,250 euros?"
    steps = list(t.ordered_steps())
    assert [(s.action, s.action_input, s.observation) for s in steps] == [
        ("get_rate", {"base": "EUR", "quote": "CHF"}, "0.9412"),
        ("multiply", {"a": 1250, "b": 0.9412}, "1176.5"),
    ]
    assert steps[0].thought == (
        "I need the EUR to CHF rate first, then multiply.\n\nLet me look up the rate."
    )
    assert t.final_answer == "1,250 EUR is about 1,176.50 CHF at 0.9412."
    assert t.tools[0]["function"]["name"] == "get_rate"
    assert t.tools[0]["function"]["parameters"]["required"] == ["base", "quote"]
    assert t.success is None and t.metadata["calls"] == 3


def test_an_anthropic_conversation_cut_at_max_tokens_is_a_failure(run_import):
    run_import(FIXTURES / "anthropic" / "release-notes.json")
    t = Trajectory.objects.get()
    steps = steps_of(t.external_id)
    # A tool_result with is_error is an observation the agent recovered from, not the outcome.
    assert steps[0][2] == "[error] 403 Forbidden: token lacks repo scope"
    assert steps[1][1] == {"number": 4812, "public": True}
    assert t.success is False and t.raw_label == "stop_reason=max_tokens"


def test_openai_agents_items_import_with_reasoning_as_thought(run_import):
    run_import(FIXTURES / "openai-responses" / "agent-items.json")
    t = Trajectory.objects.get()
    step = t.ordered_steps().get()
    assert (step.thought, step.action, step.action_input) == (
        "Look the order up before answering.",
        "track_order",
        {"order_id": "8841"},
    )
    assert json.loads(step.observation)["eta"] == "2025-06-14"
    assert t.final_answer == "Order 8841 is in transit with DHL and should arrive on 14 June."
    assert t.success is None


def test_responses_chained_by_previous_response_id_are_one_run_and_incomplete_fails(run_import):
    summary = run_import(FIXTURES / "openai-responses" / "chained-calls.jsonl")
    t = Trajectory.objects.get()
    assert summary.imported == 1 and t.system_prompt == "You manage calendars."
    assert steps_of(t.external_id)[0][:2] == ("find_event", {"with": "Dana", "time": "15:00"})
    assert t.success is False and "incomplete (max_output_tokens)" in t.failure_reason


def test_importing_a_trace_twice_adds_nothing(run_import):
    first = run_import(FIXTURES / "langfuse")
    again = run_import(FIXTURES / "langfuse")
    assert again.imported == 0 and again.duplicates == first.imported == 2


@pytest.mark.parametrize(
    ("fmt", "data", "record", "field"),
    [
        ("langfuse", {"trace": {"id": "t"}, "observations": "none"}, "record 1", "observations"),
        ("langsmith", {"post": ["not a run"]}, "record 1", "post[0]"),
        (
            "otel",
            {"resourceSpans": [{"scopeSpans": [{"spans": [{"name": "chat"}]}]}]},
            "record 1",
            "resourceSpans[0].scopeSpans[0].spans[0]",
        ),
    ],
)
def test_a_bad_trace_is_refused_naming_file_record_and_field(
    tmp_path, run_import, fmt, data, record, field
):
    name = f"{fmt}.json"
    with pytest.raises(TrajectoryImportError) as err:
        run_import(write_json(tmp_path, name, data), fmt=fmt)
    assert err.value.path.endswith(name) and err.value.field == field
    assert err.value.record.startswith(record)
    assert not Trajectory.objects.exists()


def test_a_cassette_whose_body_is_not_json_is_refused_naming_the_interaction(tmp_path, run_import):
    cassette = tmp_path / "c.yaml"
    cassette.write_text(
        "interactions:\n- request: {uri: 'https://api.anthropic.com/v1/messages',"
        ' body: \'{"messages": [{"role": "user", "content": "hi"}]}\'}\n'
        "  response: {status: {code: 200}, body: {string: 'event: message_start'}}\n"
    )
    with pytest.raises(TrajectoryImportError) as err:
        run_import(cassette)
    assert err.value.record == "record 1, interaction 1" and err.value.field == "response.body"


def test_a_success_score_is_refused_for_formats_without_scores(run_import):
    with pytest.raises(TrajectoryImportError, match="Langfuse scores and LangSmith feedback"):
        run_import(FIXTURES / "anthropic", success_score="quality>=1")


@pytest.mark.parametrize("text", ["quality", ">=1", "quality>=high"])
def test_a_success_score_that_does_not_parse_is_refused(run_import, text):
    with pytest.raises(TrajectoryImportError, match="NAME>=VALUE"):
        run_import(FIXTURES / "langfuse", success_score=text)


def test_otel_spans_one_per_jsonl_line_make_the_same_trajectory(tmp_path, run_import):
    spans = json.loads((FIXTURES / "otel" / "sdk-spans.json").read_text())["spans"]
    path = tmp_path / "console.jsonl"
    path.write_text("".join(json.dumps(span) + "\n" for span in reversed(spans)))
    summary = run_import(path)
    t = Trajectory.objects.get()
    assert summary.format == "otel" and "one span" in summary.files[0].why
    assert [s.action for s in t.ordered_steps()] == ["search_flights", "book_flight"]
