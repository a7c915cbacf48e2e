"""Backends answer the pipeline's questions about one trajectory, stage by stage.

A backend has ``detect``, ``extract``, ``relabel``, ``panel`` and ``judge`` (see Backend below).
The pipeline (relabel.pipeline) owns the semantics that must not depend on the backend: the
benchmark signal first, weight = 1 - severity and the delta cut, grounding checks, the refusal of
goals that mention the original, the binding veto, aggregation and the gate.
"""

from __future__ import annotations

from typing import Any

from relabel.backends.base import Backend, ItemContext
from relabel.backends.openai import OpenAIBackend
from relabel.backends.rules import RulesBackend

__all__ = ["Backend", "ItemContext", "get_backend"]


def get_backend(name: str, config: dict[str, Any]) -> Backend:
    if name == "rules":
        return RulesBackend(config)
    if name == "openai":
        return OpenAIBackend(config)
    raise ValueError(f"unknown backend {name!r} (rules or openai)")
