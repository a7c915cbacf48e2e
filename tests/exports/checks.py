"""Structural rules of the training tools, written out so the tests can hold every row to them.

TRL (trl/data_utils.py): a conversational example is a list of {role, content}; a preference
example has "chosen" and "rejected" (and optionally "prompt", whose last turn must be user or
assistant); each tool message answers an earlier tool_call id. LLaMA-Factory
(data/converter.py, SharegptDatasetConverter): human/observation at even indexes, gpt/
function_call at odd ones, an even count; function_call values are JSON {name, arguments}.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

ROLES = {"system", "user", "assistant", "tool"}


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def load_with_datasets(path: Path, cache_dir: Path) -> Any:
    from datasets import load_dataset

    return load_dataset("json", data_files=str(path), cache_dir=str(cache_dir), split="train")


def check_messages(
    messages: list[dict[str, Any]], *, answer: bool = True, real: bool = False
) -> None:
    """TRL's conversational rules, and the row ends on the agent: on an answer, or (``answer``
    False) possibly on its last tool call when the run stopped without one. Tool-call arguments
    are JSON text, except in ``real`` runs, where a model may have written malformed arguments:
    they are kept as the model wrote them."""
    assert messages, "no messages"
    calls: set[str] = set()
    for m in messages:
        assert m["role"] in ROLES, m
        assert "content" in m and isinstance(m["content"], str), m
        for call in m.get("tool_calls") or []:
            assert call["id"] and call["type"] == "function", call
            assert call["function"]["name"] and isinstance(call["function"]["arguments"], str)
            if not real:
                json.loads(call["function"]["arguments"])
            calls.add(call["id"])
        if m["role"] == "tool":
            assert m["tool_call_id"] in calls, f"tool message answers no call: {m}"
    assert any(m["role"] == "user" for m in messages)
    assert messages[-1]["role"] == "assistant"
    assert not answer or not messages[-1].get("tool_calls")


def check_preference(row: dict[str, Any], *, answer: bool = True, real: bool = False) -> None:
    prompt = row.get("prompt", [])
    if "prompt" in row:
        # TRL wants a prompt it can render: a shared user turn, or the system prompt alone when
        # the runs' first user turns differ (a simulated user's).
        assert prompt and prompt[-1]["role"] in ("user", "assistant", "system"), prompt
    check_messages(prompt + row["chosen"], answer=answer, real=real)
    check_messages(prompt + row["rejected"], answer=answer, real=real)
    assert row["chosen"] != row["rejected"]
    assert isinstance(row["tools"], list)


def check_sharegpt(row: dict[str, Any]) -> None:
    turns = row["conversations"]
    assert turns and len(turns) % 2 == 0, "odd number of turns"
    for i, turn in enumerate(turns):
        allowed = ("human", "observation") if i % 2 == 0 else ("gpt", "function_call")
        assert turn["from"] in allowed, (i, turn["from"])
        assert isinstance(turn["value"], str)
        if turn["from"] == "function_call":
            calls = json.loads(turn["value"])
            for call in calls if isinstance(calls, list) else [calls]:
                assert set(call) == {"name", "arguments"}, call
    assert turns[-1]["from"] == "gpt"
    assert isinstance(row["system"], str)
    assert row["tools"] == "" or isinstance(json.loads(row["tools"]), list)
