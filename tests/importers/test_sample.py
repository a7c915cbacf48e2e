from __future__ import annotations

import pytest

from relabel.chat import trajectory_messages
from relabel.importers import (
    SAMPLE_DIR,
    SAMPLE_PATHS,
    TrajectoryImportError,
    import_paths,
    import_sample,
)
from relabel.models import Step, Trajectory


@pytest.mark.django_db
def test_the_sample_imports_in_several_formats_with_failures_of_every_kind():
    summary = import_sample()
    assert all(path.exists() for path in SAMPLE_PATHS)
    assert summary.format == "agenther+browsergym+tau-bench"
    assert 12 <= summary.imported <= 20 and summary.skipped == 0
    assert summary.successes >= 3 and summary.failures >= 8
    kinds = set(
        Trajectory.objects.filter(metadata__has_key="failure_kind").values_list(
            "metadata__failure_kind", flat=True
        )
    )
    assert kinds == {
        "constraint_violation",
        "wrong_result",
        "incomplete",
        "tool_error",
        "hallucination",
        "off_topic",
    }
    assert Trajectory.objects.filter(reward=0.5, success=False).exists()  # partial credit
    assert Trajectory.objects.filter(failure_reason__startswith="crashed").exists()
    assert import_sample().imported == 0


@pytest.mark.django_db
def test_a_folder_of_several_formats_imports_each_file_by_its_own(tmp_path):
    summary = import_paths([SAMPLE_DIR], "whole-folder")  # README.md beside them is not data
    assert summary.format == "agenther+browsergym+tau-bench"
    assert summary.imported == import_sample("by-paths").imported
    reasons = {report.format: report.why for report in summary.files}
    assert reasons["browsergym"] == "a BrowserGym task folder"
    (tmp_path / "empty").mkdir()
    with pytest.raises(TrajectoryImportError, match="no .json, .jsonl, .traj or .yaml file"):
        import_paths([tmp_path / "empty"], "nothing")


@pytest.mark.django_db
def test_a_failed_sample_run_carries_the_markup_payloads_the_ui_must_escape():
    import_sample()
    step = Step.objects.get(observation__contains="<script>alert(1)</script>")
    assert "<img src=x onerror=alert(2)>" in step.observation
    assert step.trajectory.success is False


@pytest.mark.django_db
def test_every_sample_run_converts_to_chat_messages_ending_on_the_assistant():
    import_sample()
    for trajectory in Trajectory.objects.all():
        messages = trajectory_messages(trajectory)
        assert messages[-1]["role"] == "assistant"
        assert any(m.get("tool_calls") for m in messages) or trajectory.step_count <= 2
