"""The openai backend: every stage and judge asks an OpenAI-compatible endpoint.

Prompts come from relabel.llm.prompts, calls go through relabel.llm.client (cache, accounting,
retries, concurrency). Detection, extraction and judging run at temperature 0; relabel attempts
follow the run's temperature schedule.

The whole trajectory is read once: when detection and extraction use the same model and endpoint
(the usual case), the detect stage's request asks for both (``prompts.assess_prompt``, recorded as
a ``detect`` call) and the extract stage takes its half of the reply. The pipeline's semantics do
not change: relabel.pipeline.detect and .extract still interpret each half. A run whose outcome was
not recorded is asked apart first (whether it succeeded decides whether there is anything to
extract).
"""

from __future__ import annotations

from typing import Any

from relabel.backends.base import ItemContext
from relabel.config import STAGES
from relabel.llm import prompts
from relabel.llm.client import Endpoint, LLMClient

EXTRACTION = "extraction_reply"


class OpenAIBackend:
    name = "openai"

    def __init__(self, config: dict[str, Any], client: LLMClient | None = None):
        self.config = config
        self.client = client or LLMClient(config)
        # A run frozen before a stage existed uses the relabel stage's endpoint for it.
        stages = config["stages"]
        self.endpoints = {
            stage: Endpoint.from_config(stages.get(stage) or stages["relabel"]) for stage in STAGES
        }
        self.max_tokens = int(config["max_prompt_tokens"])
        self.attempts = int(config["attempts"])
        self.read_once = self.endpoints["detect"] == self.endpoints["extract"]

    def detect(self, ctx: ItemContext) -> dict[str, Any]:
        if not self.read_once or ctx.trajectory.success is None:
            prompt = prompts.detect_prompt(ctx.trajectory, ctx.steps, self.max_tokens, ctx.memo)
            return self._ask("detect", prompt, ctx)
        prompt = prompts.assess_prompt(ctx.trajectory, ctx.steps, self.max_tokens, ctx.memo)
        reply = self._ask("detect", prompt, ctx)
        ctx.memo[EXTRACTION] = reply["extraction"]
        return reply["detection"]

    def extract(self, ctx: ItemContext) -> dict[str, Any]:
        if EXTRACTION in ctx.memo:
            return ctx.memo[EXTRACTION]
        prompt = prompts.extract_prompt(ctx.trajectory, ctx.steps, self.max_tokens, ctx.memo)
        return self._ask("extract", prompt, ctx)

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
            ctx.trajectory,
            ctx.steps,
            outcome,
            self.max_tokens,
            refused,
            ctx.memo,
            attempts=self.attempts,
        )
        return self._ask("relabel", prompt, ctx, temperature=temperature)

    def panel(self) -> list[dict[str, Any]]:
        return self.config["judges"]

    def judge(self, ctx: ItemContext, judge: dict[str, Any], goal: str) -> dict[str, Any]:
        prompt = prompts.judge_prompt(
            ctx.trajectory,
            ctx.steps,
            goal,
            self.max_tokens,
            ctx.memo,
            view=self.config.get("judge_view", "run"),  # runs frozen before the key: "run"
            attempts=self.attempts,
        )
        return self.client.complete_json(
            Endpoint.from_config(judge),
            prompt,
            temperature=0.0,
            log=ctx.log,
            stage=f"judge:{judge['name']}",
        )

    def _ask(
        self, stage: str, prompt: prompts.Prompt, ctx: ItemContext, temperature: float = 0.0
    ) -> dict[str, Any]:
        return self.client.complete_json(
            self.endpoints[stage], prompt, temperature=temperature, log=ctx.log, stage=stage
        )

    def rewrite(self, ctx: ItemContext, goal: str, turns: list[dict[str, Any]]) -> dict[str, Any]:
        """Stage 3b: the agent's turns that refer to the original goal, rewritten for ``goal``."""
        prompt = prompts.consistency_prompt(ctx.trajectory, goal, turns)
        return self._ask("consistency", prompt, ctx)
