"""Loads ShareGPT exports with LLaMA-Factory's own ``get_dataset``, configured by the README,
then trains one step with them as ``llamafactory-cli train`` does (``run_exp``).

usage: python consumers/llamafactory_load.py JOBS.json RESULTS.json

JOBS.json: ``{"config": README's YAML, "jobs": [{"export", "dataset", "train"}], "work": dir}``.
Each job reads the export folder's ``dataset_info.json`` through LLaMA-Factory's data pipeline (its
sharegpt converter, which skips rows that break its position rules with only a warning, then its
template and tokenization), with the README's configuration as written except what names this
machine: the model (a tiny model and tokenizer built from the exports, consumers/tiny.py), the
export folder, the dataset and the output directory.

RESULTS.json, one entry per job: rows written, rows LLaMA-Factory kept, whether a row with tool
schemas has them rendered (its template puts them in the system turn), and for a job with
``train`` the loss of its one training step (a step on long rows costs seconds on CPU).

Runs inside the LLaMA-Factory consumer environment (consumers/llamafactory/requirements.txt).
"""

from __future__ import annotations

import importlib.machinery
import json
import os
import sys
import types
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
sys.path.insert(0, str(Path(__file__).resolve().parent))

import tiny  # noqa: E402

# LLaMA-Factory imports torchaudio at module level for audio inputs only. torchaudio's last
# release (2.11) ships native code built for torch 2.11, which cannot load beside torch 2.13, and
# a text dataset never touches it: an empty module stands in for it.
_audio = types.ModuleType("torchaudio")
_audio.__spec__ = importlib.machinery.ModuleSpec("torchaudio", None)
sys.modules.setdefault("torchaudio", _audio)


def rows_in(path: Path) -> int:
    return sum(1 for line in path.read_text(encoding="utf-8").splitlines() if line.strip())


def arguments(config: str, export: Path, dataset: str, work: Path) -> dict[str, Any]:
    import yaml

    args = yaml.safe_load(config)
    args.update(
        model_name_or_path=str(work / "tiny"),
        dataset_dir=str(export),
        dataset=dataset,
        output_dir=str(work / "out"),
        overwrite_output_dir=True,
        report_to="none",
    )
    return args


def tools_rendered(train_dataset: Any, tokenizer: Any, rows: list[dict]) -> bool | None:
    """Whether the tokenized rows hold every tool name of the rows that have tools."""
    names = {t["function"]["name"] for r in rows if r["tools"] for t in json.loads(r["tools"])}
    if not names:
        return None
    text = " ".join(tokenizer.decode(r["input_ids"]) for r in train_dataset)
    return all(name in text for name in names)


def load(config: str, export: Path, dataset: str, work: Path, train: bool) -> dict[str, Any]:
    from llamafactory.data import get_dataset, get_template_and_fix_tokenizer
    from llamafactory.hparams import get_train_args
    from llamafactory.model import load_tokenizer

    info = json.loads((export / "dataset_info.json").read_text())
    path = export / info[dataset]["file_name"]
    result = {"export": str(export), "dataset": dataset, "rows_written": rows_in(path)}
    if not result["rows_written"]:
        return result | {"status": "empty"}
    model_args, data_args, training_args, *_ = get_train_args(
        arguments(config, export, dataset, work)
    )
    module = load_tokenizer(model_args)
    template = get_template_and_fix_tokenizer(module["tokenizer"], data_args)
    data = get_dataset(template, model_args, data_args, training_args, stage="sft", **module)
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return result | {
        "status": "loaded",
        "rows_kept": len(data["train_dataset"]),
        "tools_rendered": tools_rendered(data["train_dataset"], module["tokenizer"], rows),
        "train_loss": train_one_step(config, export, dataset, work) if train else None,
    }


def train_one_step(config: str, export: Path, dataset: str, work: Path) -> float:
    """What ``llamafactory-cli train`` runs, for one optimizer step; its reported loss."""
    from llamafactory.train.tuner import run_exp

    args = arguments(config, export, dataset, work) | {"max_steps": 1, "save_strategy": "no"}
    run_exp(args)
    return json.loads((work / "out" / "all_results.json").read_text())["train_loss"]


def main(jobs_path: str, results_path: str) -> None:
    spec = json.loads(Path(jobs_path).read_text())
    work = Path(spec["work"])
    exports = sorted({Path(job["export"]) for job in spec["jobs"]})
    tiny.build(exports, work / "tiny")
    results = []
    for job in spec["jobs"]:
        export, train = Path(job["export"]), bool(job.get("train"))
        results.append(load(spec["config"], export, job["dataset"], work, train))
        Path(results_path).write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main(*sys.argv[1:3])
