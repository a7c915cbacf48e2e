"""The openai backend: every stage and judge asks an OpenAI-compatible endpoint.

Prompts come from relabel.llm.prompts, calls go through relabel.llm.client (cache, accounting,
retries, concurrency). Detection, extraction and judging run at temperature 0; relabel attempts
follow the run's temperature schedule.
"""

from __future__ import annotations

from typing import Any

from relabel.backends.base import ItemContext
from relabel.config import STAGES
from relabel.llm import prompts
from relabel.llm.client import Endpoint, LLMClient


class OpenAIBackend:
    name = "openai"

    def __init__(self, config: dict[str, Any]):
        self.config = config
        self.client = LLMClient(config)
        # A run frozen before a stage existed uses the relabel stage's endpoint for it.
        stages = config["stages"]
        self.endpoints = {
            stage: Endpoint.from_config(stages.get(stage) or stages["relabel"]) for stage in STAGES
        }
        self.max_tokens = int(config["max_prompt_tokens"])

    def detect(self, ctx: ItemContext) -> dict[str, Any]:
        prompt = prompts.detect_prompt(ctx.trajectory, ctx.steps, self.max_tokens, ctx.memo)
        return self.client.complete_json(
            self.endpoints["detect"], prompt, temperature=0.0, log=ctx.log
        )

    def extract(self, ctx: ItemContext) -> dict[str, Any]:
        prompt = prompts.extract_prompt(ctx.trajectory, ctx.steps, self.max_tokens, ctx.memo)
        return self.client.complete_json(
            self.endpoints["extract"], prompt, temperature=0.0, log=ctx.log
        )

    def relabel(
        self,
        ctx: ItemContext,
        outcome: dict[str, Any],
        *,
        attempt: int,
        temperature: float,
        refused: list[dict[str, Any]],
    ) -> dict[str, Any]:
        prompt = prompts.relabel_prompt(
            ctx.trajectory, ctx.steps, outcome, self.max_tokens, refused, ctx.memo
        )
        return self.client.complete_json(
            self.endpoints["relabel"], prompt, temperature=temperature, log=ctx.log
        )

    def panel(self) -> list[dict[str, Any]]:
        return self.config["judges"]

    def judge(self, ctx: ItemContext, judge: dict[str, Any], goal: str) -> dict[str, Any]:
        prompt = prompts.judge_prompt(ctx.trajectory, ctx.steps, goal, self.max_tokens, ctx.memo)
        return self.client.complete_json(
            Endpoint.from_config(judge),
            prompt,
            temperature=0.0,
            log=ctx.log,
            stage=f"judge:{judge['name']}",
        )

    def rewrite(self, ctx: ItemContext, goal: str, turns: list[dict[str, Any]]) -> dict[str, Any]:
        prompt = prompts.consistency_prompt(ctx.trajectory, goal, turns)
        return self.client.complete_json(
            self.endpoints["consistency"], prompt, temperature=0.0, log=ctx.log
        )
