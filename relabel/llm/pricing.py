"""The price table: USD per million tokens, per model. A run's config may add or override rows.

Each row has ``prompt`` and ``completion`` rates and, optionally, ``cached`` (prompt tokens the
endpoint served from its prefix cache, ``usage.prompt_tokens_details.cached_tokens``; without it
they cost the prompt rate) and ``batch`` (the factor on every rate for requests sent through the
Batch API; OpenAI's is 0.5, which is the default).

Figures are list prices at the time of writing; self-hosted models (vLLM, Ollama) cost nothing per
token here, which the table says explicitly rather than by omission. Unknown models cost 0 and the
call is still recorded with its tokens, so a price added later can be applied to the audit.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

BATCH_FACTOR = 0.5  # the Batch API's discount on every rate, as OpenAI documents it

DEFAULT_PRICES: dict[str, dict[str, float]] = {
    "gpt-4o-mini": {"prompt": 0.15, "cached": 0.075, "completion": 0.60},
    "gpt-4o": {"prompt": 2.50, "cached": 1.25, "completion": 10.00},
    "gpt-4.1-mini": {"prompt": 0.40, "cached": 0.10, "completion": 1.60},
    "gpt-4.1-nano": {"prompt": 0.10, "cached": 0.025, "completion": 0.40},
    "gpt-4.1": {"prompt": 2.00, "cached": 0.50, "completion": 8.00},
    "Qwen2.5-72B-Instruct": {"prompt": 0.0, "cached": 0.0, "completion": 0.0},
}
PRICE_KEYS = ("prompt", "completion", "cached", "batch")

PER_TOKEN = Decimal(1) / Decimal(1_000_000)


def price_table(config: dict[str, Any] | None = None) -> dict[str, dict[str, float]]:
    table = dict(DEFAULT_PRICES)
    table.update((config or {}).get("prices", {}))
    return table


def cost_usd(
    table: dict[str, dict[str, float]],
    model: str,
    prompt_tokens: int,
    completion_tokens: int,
    cached_tokens: int = 0,
    *,
    batch: bool = False,
) -> Decimal:
    """The cost of one call; a model missing from the table costs 0. ``cached_tokens`` are part
    of ``prompt_tokens`` (as the endpoint reports them) and cost the cached rate."""
    row = table.get(model) or table.get(model.rsplit("/", 1)[-1])
    if not row:
        return Decimal(0)
    prompt = Decimal(str(row["prompt"]))
    cached = Decimal(str(row.get("cached", row["prompt"])))
    cached_tokens = min(cached_tokens, prompt_tokens)
    cost = (
        prompt * (prompt_tokens - cached_tokens)
        + cached * cached_tokens
        + Decimal(str(row["completion"])) * completion_tokens
    ) * PER_TOKEN
    if batch:
        cost *= Decimal(str(row.get("batch", BATCH_FACTOR)))
    return cost.quantize(Decimal("0.00000001"))
