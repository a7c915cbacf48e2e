"""The real training tools, run on our exports: TRL and LLaMA-Factory, each in its own pinned
environment (consumers/*/requirements.txt, built by `make consumers`, which `make test` runs
first), driven as subprocesses by the scripts in consumers/ with the README's own recipes."""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path

import pytest

from tests.conftest import ROOT

CONSUMERS = Path(os.environ.get("AGENTHER_CONSUMERS", ROOT / ".consumers"))
# A recipe is the fenced block that follows its marker in README.md.
RECIPE = re.compile(r"<!-- recipe: (?P<name>[\w-]+) -->\s*```\w+\n(?P<code>.*?)```", re.S)
CONSUMER_TIMEOUT = 280  # seconds; pytest's own limit is 300


@pytest.fixture(autouse=True)
def fast_password_hashing(settings) -> None:
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


def readme_recipes() -> dict[str, str]:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    return {m["name"]: m["code"] for m in RECIPE.finditer(text)}


def consumer_python(name: str) -> Path:
    python = CONSUMERS / name / "bin" / "python"
    if not python.exists():
        pytest.fail(f"{python} is missing: build the consumer environments with `make consumers`")
    return python


def run_consumer(env: str, script: str, spec: dict, work: Path) -> list[dict]:
    """Runs consumers/<script> in its environment on ``spec``; its results, one per job."""
    work.mkdir(parents=True, exist_ok=True)
    jobs, results = work / "jobs.json", work / "results.json"
    jobs.write_text(json.dumps({**spec, "work": str(work)}))
    done = subprocess.run(
        [str(consumer_python(env)), str(ROOT / "consumers" / script), str(jobs), str(results)],
        capture_output=True,
        text=True,
        timeout=CONSUMER_TIMEOUT,
        env={**os.environ, "HF_HOME": str(work / "hf"), "PYTHONHASHSEED": "0"},
        check=False,
    )
    if done.returncode:
        pytest.fail(f"{script} failed ({done.returncode}):\n{done.stderr[-4000:]}")
    return json.loads(results.read_text())
