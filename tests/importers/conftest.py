"""Hand-written fixtures for the importer tests: small files written into tmp_path."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from relabel.importers import import_paths
from relabel.importers.base import ImportSummary


def write_json(folder: Path, name: str, data: Any) -> Path:
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data))
    return path


def write_jsonl(folder: Path, name: str, records: list[Any]) -> Path:
    path = folder / name
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return path


def agenther_record(trajectory_id: str = "t1", **fields: Any) -> dict[str, Any]:
    record = {
        "trajectory_id": trajectory_id,
        "original_prompt": "Find a bike shop open on Sunday",
        "steps": [
            {
                "thought": "Search shops",
                "action_name": "web_search",
                "action_input": {"query": "bike shop open Sunday"},
                "observation": "Velo Corner: open Sundays 10-16. Spokes & Co: closed Sundays.",
            }
        ],
        "final_answer": "Velo Corner is open on Sundays 10-16.",
        "failure_reason": "",
        "metadata": {"domain": "local"},
    }
    record.update(fields)
    return record


def bg_obs(goal: str, tree: str, url: str = "http://shop.test/", error: str = "") -> dict:
    return {
        "goal": goal,
        "axtree_txt": tree,
        "pruned_html": f"<html><body>{tree}</body></html>",
        "last_action_error": error,
        "open_pages_urls": [url],
        "active_page_index": [0],
        "screenshot": [[0, 0, 0]] * 50,
    }


def bg_step(k: int, goal: str, tree: str, action: str | None, reward: float = 0.0, **obs) -> dict:
    return {
        "step": k,
        "obs": bg_obs(goal, tree, **obs),
        "action": action,
        "reward": reward,
        "terminated": False,
        "truncated": False,
    }


def browsergym_task(
    root: Path, name: str, steps: list[dict], summary: dict[str, Any] | None = None
) -> Path:
    folder = root / name
    folder.mkdir(parents=True)
    for k, info in enumerate(steps):
        write_json(folder, f"steps_info_{k}.json", info)
    cum = steps[-1]["reward"] if steps else 0
    write_json(
        folder,
        "summary_info.json",
        summary or {"n_steps": max(0, len(steps) - 1), "cum_reward": cum, "err_msg": None},
    )
    return folder


@pytest.fixture
def run_import(db):
    def run(*paths: Path, dataset: str = "ds", fmt: str = "auto", **kw: Any) -> ImportSummary:
        return import_paths(list(paths), dataset, fmt=fmt, **kw)

    return run
