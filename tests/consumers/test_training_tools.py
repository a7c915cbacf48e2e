"""Our exports, trained with the real tools exactly as the README says: TRL's SFTTrainer and
DPOTrainer take one step on every file with every row kept, and LLaMA-Factory's get_dataset
keeps every ShareGPT row written, then trains one step. On the bundled sample always, and on the
tau-bench and WebArena runs of ../shared/data where present."""

from __future__ import annotations

from pathlib import Path

import pytest

from relabel.importers import SAMPLE_PATHS
from tests.consumers.conftest import readme_recipes, run_consumer
from tests.exports.runs import Export, accept_what_awaits_review, export_formats, import_and_relabel

TRL_FILES = {
    "trl-sft": ("sft", "sft.jsonl"),
    "trl-weighted-sft": ("sft", "sft.jsonl"),
    "trl-dpo-shared": ("dpo", "dpo_shared_prompt.jsonl"),
    "trl-dpo-hindsight": ("dpo", "dpo_hindsight.jsonl"),
}
SHARED_SOURCES = {
    "tau": (["tau-bench/gpt-4o-airline.json"], "tau-bench"),
    "webarena": (["webarena-browsergym"], "browsergym"),
}


def reviewed_export(paths: list[Path], name: str, tmp: Path, capture, fmt: str = "auto") -> Export:
    """Imported, relabelled with the rules backend, what awaits review accepted, exported."""
    with capture(execute=True):
        run = import_and_relabel(paths, name, tmp / name, fmt=fmt)
    accept_what_awaits_review(run, tmp)
    return export_formats(run, tmp / name)


def train_with_trl(exports: list[Export], work: Path, recipes: list[str]) -> list[dict]:
    readme = readme_recipes()
    jobs = [
        {"recipe": r, "export": str(e.folders[TRL_FILES[r][0]]), "file": TRL_FILES[r][1]}
        for e in exports
        for r in recipes
    ]
    return run_consumer("trl", "trl_recipes.py", {"recipes": readme, "jobs": jobs}, work)


def load_with_llama_factory(exports: list[Export], work: Path) -> list[dict]:
    # Every file is loaded; one step is trained on each export's relabelled rows.
    jobs = [
        {"export": str(e.folders["sharegpt"]), "dataset": dataset, "train": train}
        for e in exports
        for dataset, train in (("agenther_hindsight", True), ("agenther_successes", False))
    ]
    config = readme_recipes()["llamafactory-sft"]
    return run_consumer(
        "llamafactory", "llamafactory_load.py", {"config": config, "jobs": jobs}, work
    )


def assert_trained_on_every_row(result: dict) -> None:
    where = f"{result['recipe']} on {result['export']}/{result['file']}"
    assert result["status"] == "trained", where
    assert result["rows_kept"] == result["rows_written"] > 0, where
    assert result["steps"] == 1 and result["loss_is_finite"], where


def test_the_readme_holds_every_recipe_the_suite_runs():
    assert set(readme_recipes()) == {*TRL_FILES, "llamafactory-sft"}


@pytest.mark.django_db
def test_trl_trains_on_every_file_of_the_sample_with_the_readme_recipes(
    tmp_path, django_capture_on_commit_callbacks
):
    export = reviewed_export(SAMPLE_PATHS, "sample", tmp_path, django_capture_on_commit_callbacks)
    results = train_with_trl([export], tmp_path / "trl", list(TRL_FILES))
    assert [r["recipe"] for r in results] == list(TRL_FILES)
    for result in results:
        assert_trained_on_every_row(result)
    by_recipe = {r["recipe"]: r for r in results}
    # TRL handed the rows' tool schemas to the chat template.
    assert by_recipe["trl-sft"]["tools_rendered"] is True
    # The weighted example weights; the plain trainer does not read the column.
    assert by_recipe["trl-weighted-sft"]["weight_used"] is True
    assert by_recipe["trl-sft"]["weight_used"] is None


@pytest.mark.django_db
def test_llama_factory_keeps_every_sharegpt_row_of_the_sample_and_trains(
    tmp_path, django_capture_on_commit_callbacks
):
    export = reviewed_export(SAMPLE_PATHS, "sample", tmp_path, django_capture_on_commit_callbacks)
    results = load_with_llama_factory([export], tmp_path / "lf")
    for result in results:
        assert result["status"] == "loaded", result
        assert result["rows_kept"] == result["rows_written"] > 0, result
    assert results[0]["dataset"] == "agenther_hindsight" and results[0]["train_loss"] > 0
    assert all(r["tools_rendered"] for r in results)


def shared_exports(shared_data: Path, tmp: Path, capture) -> dict[str, Export]:
    return {
        name: reviewed_export([shared_data / p for p in paths], name, tmp, capture, fmt=fmt)
        for name, (paths, fmt) in SHARED_SOURCES.items()
    }


@pytest.mark.shared_data
@pytest.mark.django_db
def test_trl_trains_on_tau_bench_and_webarena_exports_keeping_every_row(
    shared_data, tmp_path, django_capture_on_commit_callbacks
):
    exports = shared_exports(shared_data, tmp_path, django_capture_on_commit_callbacks)
    recipes = ["trl-sft", "trl-dpo-shared", "trl-dpo-hindsight"]
    results = train_with_trl(list(exports.values()), tmp_path / "trl", recipes)
    trained = {
        (r["export"].split("/")[-2], r["recipe"]) for r in results if r["status"] == "trained"
    }
    for result in results:
        if result["status"] == "trained":
            assert_trained_on_every_row(result)
        else:  # an empty file: the manifest says why every row was left out
            export = exports[result["export"].split("/")[-2]]
            manifest = export.manifest(Path(result["export"]).name.rsplit("-", 1)[-1])
            assert manifest["counts"][result["file"]] == 0
    assert {("tau", "trl-sft"), ("tau", "trl-dpo-shared")} <= trained
    assert {("webarena", "trl-sft"), ("webarena", "trl-dpo-hindsight")} <= trained


@pytest.mark.shared_data
@pytest.mark.django_db
def test_llama_factory_keeps_every_sharegpt_row_of_tau_bench_and_webarena(
    shared_data, tmp_path, django_capture_on_commit_callbacks
):
    exports = shared_exports(shared_data, tmp_path, django_capture_on_commit_callbacks)
    results = load_with_llama_factory(list(exports.values()), tmp_path / "lf")
    for result in results:
        assert result["status"] == "loaded", result
        assert result["rows_kept"] == result["rows_written"] > 0, result
    assert all(r["train_loss"] > 0 for r in results if r["dataset"] == "agenther_hindsight")
