"""The price table: USD per million tokens, per model. A run's config may add or override rows.

Figures are list prices at the time of writing; self-hosted models (vLLM, Ollama) cost nothing per
token here, which the table says explicitly rather than by omission. Unknown models cost 0 and the
call is still recorded with its tokens, so a price added later can be applied to the audit.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

DEFAULT_PRICES: dict[str, dict[str, float]] = {
    "gpt-4o-mini": {"prompt": 0.15, "completion": 0.60},
    "gpt-4o": {"prompt": 2.50, "completion": 10.00},
    "gpt-4.1-mini": {"prompt": 0.40, "completion": 1.60},
    "gpt-4.1-nano": {"prompt": 0.10, "completion": 0.40},
    "gpt-4.1": {"prompt": 2.00, "completion": 8.00},
    "Qwen2.5-72B-Instruct": {"prompt": 0.0, "completion": 0.0},
}

PER_TOKEN = Decimal(1) / Decimal(1_000_000)


def price_table(config: dict[str, Any] | None = None) -> dict[str, dict[str, float]]:
    table = dict(DEFAULT_PRICES)
    table.update((config or {}).get("prices", {}))
    return table


def cost_usd(
    table: dict[str, dict[str, float]], model: str, prompt_tokens: int, completion_tokens: int
) -> Decimal:
    """The cost of one call; a model missing from the table costs 0."""
    row = table.get(model) or table.get(model.rsplit("/", 1)[-1])
    if not row:
        return Decimal(0)
    cost = (
        Decimal(str(row["prompt"])) * prompt_tokens
        + Decimal(str(row["completion"])) * completion_tokens
    ) * PER_TOKEN
    return cost.quantize(Decimal("0.00000001"))
