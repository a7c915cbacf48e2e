"""Runs the README's TRL recipes, as written, on exported files: one training step each.

usage: python consumers/trl_recipes.py JOBS.json RESULTS.json

JOBS.json: ``{"recipes": {name: code}, "jobs": [{"recipe", "export", "file"}], "work": dir}``.
The recipes come from README.md (tests/consumers reads them between their markers); each runs
with what the README says the reader provides: ``export`` (the export folder), ``model`` and
``tok`` (here a tiny model and tokenizer built from the exports' own text, consumers/tiny.py)
and ``train_args`` (here: one step, CPU, no saving). A recipe leaves its trainer in ``trainer``.

RESULTS.json, one entry per job: rows written, rows TRL kept after its own preparation (it
silently drops rows that do not fit), the steps run and the loss, for rows with tool schemas
whether the chat template rendered them, and for a trainer that reads ``weight`` whether the
weights change its loss.

Runs inside the TRL consumer environment (consumers/trl/requirements.txt).
"""

from __future__ import annotations

import json
import math
import os
import sys
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
sys.path.insert(0, str(Path(__file__).resolve().parent))

import tiny  # noqa: E402


def rows_in(path: Path) -> int:
    return sum(1 for line in path.read_text(encoding="utf-8").splitlines() if line.strip())


def train_args(work: Path) -> dict[str, Any]:
    return {
        "output_dir": str(work),
        "max_steps": 1,
        "per_device_train_batch_size": 1,
        "learning_rate": 1e-3,
        "logging_steps": 1,
        "save_strategy": "no",
        "report_to": "none",
        "use_cpu": True,
        "seed": 0,
        "disable_tqdm": True,
    }


def _template_ids(tok: Any, messages: list[dict], tools: list[dict] | None) -> list[int]:
    text = tok.apply_chat_template(messages, tools=tools, tokenize=False)
    return tok(text, add_special_tokens=False)["input_ids"]


def tools_rendered(trainer: Any, tok: Any) -> bool | None:
    """Whether TRL tokenized a row that has tool schemas with them rendered by the template
    (None: no such row)."""
    dataset = trainer.train_dataset
    if not {"tools", "messages", "input_ids"} <= set(dataset.column_names):
        return None
    for row in dataset:
        if row["tools"]:
            ids = row["input_ids"]
            with_tools = _template_ids(tok, row["messages"], row["tools"])
            return ids == with_tools[: len(ids)] and with_tools != _template_ids(
                tok, row["messages"], None
            )
    return None


def weight_used(trainer: Any) -> bool | None:
    """For a trainer that reads ``weight``: a row weighted 0 adds nothing to a batch's loss, and
    swapping two rows' weights changes it (None: the trainer does not collate weights)."""
    import torch

    rows = [trainer.train_dataset[i] for i in range(min(2, len(trainer.train_dataset)))]
    try:
        reads_weight = "weight" in trainer.data_collator(rows[:1])
    except (KeyError, TypeError, ValueError):  # a collator for another kind of row
        reads_weight = False
    if len(rows) < 2 or not reads_weight:
        return None

    def loss(batch_rows: list[dict], weights: list[float]) -> float:
        batch = trainer.data_collator(
            [{**r, "weight": w} for r, w in zip(batch_rows, weights, strict=True)]
        )
        with torch.no_grad():
            return float(trainer.compute_loss(trainer.model, batch))

    first_only, first_alone = loss(rows, [1.0, 0.0]), loss(rows[:1], [1.0])
    return abs(first_only - first_alone) < 1e-4 and abs(first_only - loss(rows, [0.0, 1.0])) > 1e-6


def run_job(recipe: str, code: str, export: Path, file: str, work: Path) -> dict[str, Any]:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    written = rows_in(export / file)
    result: dict[str, Any] = {"recipe": recipe, "export": str(export), "file": file}
    result["rows_written"] = written
    if not written:
        return result | {"status": "empty"}
    namespace = {
        "export": str(export),
        "model": AutoModelForCausalLM.from_pretrained(work / "tiny"),
        "tok": AutoTokenizer.from_pretrained(work / "tiny"),
        "train_args": train_args(work / f"out-{recipe}"),
    }
    exec(compile(code, f"README.md recipe {recipe}", "exec"), namespace)
    trainer = namespace["trainer"]
    losses = [e["loss"] for e in trainer.state.log_history if "loss" in e]
    return result | {
        "status": "trained",
        "rows_kept": len(trainer.train_dataset),
        "steps": trainer.state.global_step,
        "loss": losses[-1] if losses else None,
        "loss_is_finite": bool(losses) and math.isfinite(losses[-1]),
        "tools_rendered": tools_rendered(trainer, namespace["tok"]),
        "weight_used": weight_used(trainer),
    }


def main(jobs_path: str, results_path: str) -> None:
    spec = json.loads(Path(jobs_path).read_text())
    work = Path(spec["work"])
    exports = sorted({Path(job["export"]) for job in spec["jobs"]})
    tiny.build(exports, work / "tiny")
    results = []
    for job in spec["jobs"]:
        code = spec["recipes"][job["recipe"]]
        results.append(run_job(job["recipe"], code, Path(job["export"]), job["file"], work))
        Path(results_path).write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main(*sys.argv[1:3])
