from __future__ import annotations

import io
import json

import pytest
from django.core.management import CommandError, call_command

from tests.exports.checks import read_jsonl
from tests.factories import make_candidate, make_run


def run_export(*args: str) -> tuple[str, str]:
    out, err = io.StringIO(), io.StringIO()
    call_command("export", *args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


@pytest.fixture
def run_without_reviews(db):
    run = make_run()
    for confidence in (0.9, 0.8, 0.6, 0.3, 0.1):
        make_candidate(run, confidence=confidence)
    return run


def test_with_no_reviews_sft_rows_equal_the_auto_accepted_count(run_without_reviews, tmp_path):
    out, err = run_export(
        "--run", str(run_without_reviews.pk), "--format", "sft", "--out", str(tmp_path), "--json"
    )
    summary = json.loads(out.strip().splitlines()[-1])
    assert err == ""
    assert summary["counts"] == {"sft.jsonl": 3} and summary["total_rows"] == 3
    assert len(read_jsonl(tmp_path / "sft.jsonl")) == 3
    assert (tmp_path / "manifest.json").exists()


def test_it_says_where_the_files_are_without_json(run_without_reviews, tmp_path):
    out, _ = run_export(
        "--run", str(run_without_reviews.pk), "--format", "dpo", "--out", str(tmp_path)
    )
    assert "3 rows" in out and "dpo_hindsight.jsonl" in out and "manifest.json" in out


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--run", "999999", "--format", "sft"], "no such run"),
        (["--format", "parquet"], "unknown format 'parquet'"),
        (["--format", "sft", "--observation-tokens", "-5"], "--observation-tokens"),
        (["--format", "sft", "--min-confidence", "1.5"], "--min-confidence"),
        (["--format", "dpo", "--include-successes"], "--include-successes"),
        (["--format", "sft", "--csv"], "--csv"),
    ],
)
def test_it_refuses_bad_arguments_with_a_clear_message(
    run_without_reviews, tmp_path, args, message
):
    if "--run" not in args:
        args = ["--run", str(run_without_reviews.pk), *args]
    with pytest.raises(CommandError, match=message):
        run_export(*args, "--out", str(tmp_path / "out"))
    assert not (tmp_path / "out").exists()


def test_it_refuses_an_out_that_is_a_file(run_without_reviews, tmp_path):
    target = tmp_path / "file.txt"
    target.write_text("keep me")
    with pytest.raises(CommandError, match="is a file"):
        run_export("--run", str(run_without_reviews.pk), "--format", "sft", "--out", str(target))
    assert target.read_text() == "keep me"


def test_it_replaces_an_earlier_export_only_when_told(run_without_reviews, tmp_path):
    args = ["--run", str(run_without_reviews.pk), "--format", "sft", "--out", str(tmp_path)]
    run_export(*args)
    with pytest.raises(CommandError, match="already holds an export"):
        run_export(*args)
    run_export(*args, "--overwrite")
    assert len(read_jsonl(tmp_path / "sft.jsonl")) == 3


def test_a_non_zero_exit_from_the_shell(run_without_reviews, tmp_path):
    with pytest.raises(SystemExit) as exc:
        call_command_from_argv(["export", "--run", "12345678", "--format", "sft", "--out", "x"])
    assert exc.value.code != 0


def call_command_from_argv(argv: list[str]) -> None:
    from django.core.management import ManagementUtility

    ManagementUtility(["manage.py", *argv]).execute()
