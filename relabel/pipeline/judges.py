"""Stage 3, second half: the judge panel. Each judge is its own model and endpoint.

A judge that fails to answer (endpoint down after retries, malformed output) makes the whole
trajectory an error rather than being skipped: a panel with a silent member is not the panel
the run was configured with.
"""

from __future__ import annotations

from functools import partial
from typing import Any

from relabel.backends import Backend, ItemContext
from relabel.llm.batch import ask_each


def run_panel(backend: Backend, ctx: ItemContext, goal: str) -> list[dict[str, Any]]:
    panel = backend.panel()
    # The judges are independent: in a batch run all of them are asked in the same batch.
    replies = ask_each(partial(backend.judge, ctx, judge, goal) for judge in panel)
    verdicts = []
    for judge, reply in zip(panel, replies, strict=True):
        verdicts.append(
            {
                "name": judge["name"],
                "model": judge["model"],
                "endpoint": judge.get("base_url") or judge.get("endpoint", "offline"),
                "accept": bool(reply["accept"]),
                "confidence": min(1.0, max(0.0, float(reply["confidence"]))),
                "reason": str(reply.get("reason", "")),
                "contradictions": contradictions(reply),
            }
        )
    return verdicts


def contradictions(reply: dict[str, Any]) -> list[dict[str, Any]]:
    """The turns a judge says contradict the goal (stage 3b reads them), well-formed only."""
    out = []
    for item in reply.get("contradictions") or []:
        if isinstance(item, dict) and isinstance(item.get("step"), int):
            quote, reason = str(item.get("quote") or ""), str(item.get("reason") or "")
            out.append({"step": item["step"], "quote": quote[:500], "reason": reason[:500]})
    return out
