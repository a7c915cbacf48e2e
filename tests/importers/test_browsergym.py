from __future__ import annotations

import pytest

from relabel.importers import TrajectoryImportError
from relabel.importers.browsergym import parse_action, split_action
from relabel.models import Trajectory
from tests.importers.conftest import bg_step, browsergym_task

GOAL = "What is the cheapest red kettle?"


def act(code: str, think: str = "Looking") -> str:
    return f"<think>\n{think}\n</think>\n<action>\n```{code}```\n</action>"


def three_step_task(root, name="task_7", reward=1.0, summary=None):
    return browsergym_task(
        root,
        name,
        [
            bg_step(0, GOAL, "[1] searchbox 'Search'", act("fill('1', 'red kettle')", "Search it")),
            bg_step(1, GOAL, "[1] searchbox value='red kettle'", act("press('1', 'Enter')")),
            bg_step(2, GOAL, "[9] link 'Kettle A $20'", act("send_msg_to_user('$20')"), 0.0),
            bg_step(3, GOAL, "[9] link 'Kettle A $20'", act("noop()"), reward),
        ],
        summary,
    )


def test_it_turns_step_files_into_executed_steps(tmp_path, run_import):
    run_import(three_step_task(tmp_path), fmt="browsergym")
    t = Trajectory.objects.get(external_id="task_7")
    assert t.goal == GOAL and t.success and t.reward == 1.0 and t.raw_label == "cum_reward=1.0"
    steps = list(t.ordered_steps())
    # The last file's action (noop) never ran.
    assert [s.action for s in steps] == ["fill", "press", "send_msg_to_user"]
    assert steps[0].thought == "Search it"
    assert steps[0].action_input == {"bid": "1", "value": "red kettle"}
    # What came back from action t is the observation of file t+1: the accessibility tree.
    assert "value='red kettle'" in steps[0].observation
    assert "<html>" not in steps[0].observation
    assert steps[2].metadata["reward"] == 1.0
    assert t.final_answer == "$20"
    assert t.metadata["action_not_run"] == "noop()"
    assert "searchbox 'Search'" in t.metadata["initial_observation"]


def test_it_sorts_step_files_numerically(tmp_path, run_import):
    steps = [bg_step(k, GOAL, f"page {k}", act(f"click('{k}')")) for k in range(12)]
    run_import(browsergym_task(tmp_path, "task_1", steps), fmt="browsergym")
    t = Trajectory.objects.get()
    assert [s.action_input["bid"] for s in t.ordered_steps()] == [str(k) for k in range(11)]
    assert t.ordered_steps().last().observation.endswith("page 11")


def test_it_keeps_the_pruned_html_in_raw_but_not_screenshots(tmp_path, run_import):
    run_import(three_step_task(tmp_path), fmt="browsergym")
    raw = Trajectory.objects.get().raw_record
    assert raw["steps_info"][0]["obs"]["pruned_html"].startswith("<html>")
    assert "screenshot" not in raw["steps_info"][0]["obs"]
    assert raw["summary_info"]["cum_reward"] == 1.0


def test_it_counts_partial_credit_as_a_failure_that_keeps_its_reward(tmp_path, run_import):
    summary = run_import(three_step_task(tmp_path, reward=0.5), fmt="browsergym")
    t = Trajectory.objects.get()
    assert (summary.successes, summary.failures) == (0, 1)
    assert t.reward == 0.5 and "partial credit" in t.failure_reason


def test_it_skips_a_run_that_crashed_before_its_first_page_with_the_reason(tmp_path, run_import):
    three_step_task(tmp_path, "task_1")
    browsergym_task(
        tmp_path,
        "task_2",
        [],
        {"n_steps": 0, "cum_reward": 0, "err_msg": "Exception uncaught\nTimeoutError:\nPage.goto"},
    )
    summary = run_import(tmp_path, fmt="browsergym")
    assert (summary.imported, summary.skipped) == (1, 1)
    assert summary.skipped_ids == ["task_2"]
    [reason] = summary.skipped_reasons
    assert "TimeoutError" in reason


def test_it_imports_a_run_that_crashed_after_its_first_page_as_a_failure(tmp_path, run_import):
    browsergym_task(
        tmp_path,
        "task_3",
        [bg_step(0, GOAL, "[1] searchbox", act("click('1')"))],
        {"n_steps": 0, "cum_reward": 0, "err_msg": "Exception uncaught\nRateLimitError:\nlimit"},
    )
    summary = run_import(tmp_path, fmt="browsergym")
    t = Trajectory.objects.get()
    assert (summary.failures, t.step_count) == (1, 0)
    assert "RateLimitError" in t.failure_reason and t.metadata["err_msg"]


def test_it_reads_one_task_folder_as_well_as_a_results_folder(tmp_path, run_import):
    folder = three_step_task(tmp_path)
    assert run_import(folder).format == "browsergym"
    assert run_import(tmp_path, dataset="other").imported == 1


def test_it_rejects_a_task_without_a_goal(tmp_path, run_import):
    step = bg_step(0, "", "tree", act("click('1')"))
    browsergym_task(tmp_path, "task_9", [step, bg_step(1, "", "tree", None)])
    with pytest.raises(TrajectoryImportError) as err:
        run_import(tmp_path, fmt="browsergym")
    assert "steps_info_0.json" in str(err.value) and err.value.field == "obs.goal"


def test_it_reports_a_folder_with_no_task_in_it(tmp_path, run_import):
    (tmp_path / "empty").mkdir()
    with pytest.raises(TrajectoryImportError, match="no BrowserGym task folder"):
        run_import(tmp_path / "empty", fmt="browsergym")


@pytest.mark.parametrize(
    ("text", "thought", "code"),
    [
        ("<think>\nA\n</think>\n<action>\n```click('5')```\n</action>", "A", "click('5')"),
        ("<think>B</think><action>```go_back()```", "B", "go_back()"),
        ("scroll(0, 200)", "", "scroll(0, 200)"),
    ],
)
def test_it_splits_thought_from_action_code(text, thought, code):
    assert split_action(text) == (thought, code)


def test_it_names_action_arguments_and_keeps_code_it_cannot_read():
    assert parse_action("select_option('7', 'Blue')") == (
        "select_option",
        {"bid": "7", "options": "Blue"},
    )
    assert parse_action('click("3", button="right")') == ("click", {"bid": "3", "button": "right"})
    assert parse_action("click('1')\nclick('2')") == ("code", {"code": "click('1')\nclick('2')"})
