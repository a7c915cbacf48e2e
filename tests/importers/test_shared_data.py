"""Every real file in ../shared/data imports with the counts its own labels give (skipped when
the folder is absent)."""

from __future__ import annotations

import time

import pytest

from relabel.importers import import_paths, parse_mapping
from relabel.models import Trajectory

pytestmark = [pytest.mark.shared_data, pytest.mark.django_db]


def import_twice(paths, name, fmt="auto", mapping=None):
    first = import_paths(paths, name, fmt=fmt, mapping=mapping)
    again = import_paths(paths, name, fmt=fmt, mapping=mapping)
    assert again.imported == 0 and again.duplicates == first.imported
    return first


def test_webarena_runs_import_with_their_cum_rewards(shared_data):
    s = import_twice([shared_data / "webarena-browsergym"], "wa", fmt="browsergym")
    assert s.imported + s.skipped == 20 and s.successes == 9 and s.failures >= 9
    partial = Trajectory.objects.get(dataset__name="wa", reward__gt=0, reward__lt=1)
    assert partial.success is False and partial.raw_label.startswith("cum_reward=0.33")
    # Observations are the accessibility tree, never the pruned HTML.
    assert not Trajectory.objects.filter(steps__observation__contains="<head bid=").exists()


def test_toolbench_and_stabletoolbench_answers_import_with_their_win_labels(shared_data):
    paths = sorted(shared_data.glob("toolbench/answer/*/*.json"))
    paths += sorted(shared_data.glob("stabletoolbench/*/*.json"))
    s = import_twice(paths, "tb")
    assert s.format == "toolbench" and s.imported + s.skipped == 14 and s.successes == 9


def test_the_toolbench_eval_file_imports_one_trajectory_per_query(shared_data):
    s = import_twice(sorted(shared_data.glob("toolbench/tooleval/*.json")), "te")
    assert s.imported == 100
    gave_up = Trajectory.objects.filter(dataset__name="te", success=False)
    assert gave_up.count() == s.failures and 25 <= s.failures <= 75


def test_tau_bench_imports_quickly_with_its_rewards(shared_data):
    started = time.monotonic()
    s = import_paths([shared_data / "tau-bench" / "gpt-4o-airline.json"], "tau", fmt="tau-bench")
    elapsed = time.monotonic() - started
    assert s.imported == 200 and s.successes == 84 and s.failures >= 116
    assert elapsed < 15, f"tau-bench took {elapsed:.1f} s"
    assert Trajectory.objects.get(dataset__name="tau", external_id="0-0").goal.startswith("You are")


def test_who_and_when_logs_import_through_the_field_map(shared_data):
    mapping = parse_mapping(["goal=question", "messages=history", "success=is_correct"])
    paths = sorted(shared_data.glob("who-and-when/algorithm-generated/*.json"))
    s = import_twice(paths, "ww", fmt="messages", mapping=mapping)
    assert s.imported == 25 and s.successes == 0
    t = Trajectory.objects.filter(dataset__name="ww").first()
    assert t.metadata["mistake_agent"] and "mistake_step" in t.metadata


def test_swe_agent_runs_import_without_a_success_label(shared_data):
    s = import_twice([shared_data / "swe-agent"], "swe")
    assert s.format == "swe-agent" and s.imported == 3 and s.successes == 0
    labels = set(
        Trajectory.objects.filter(dataset__name="swe").values_list("metadata__label", flat=True)
    )
    assert labels == {"unknown"}
