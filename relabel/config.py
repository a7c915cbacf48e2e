"""A run's configuration: defaults, loading from TOML, validation. Frozen into Run.config."""

from __future__ import annotations

import copy
from typing import Any

PROMPT_VERSION = "v1"

DEFAULTS: dict[str, Any] = {
    "backend": "rules",
    "prompt_version": PROMPT_VERSION,
    "accept_threshold": 0.5,
    "reject_threshold": 0.2,
    "severity_delta": 0.3,
    "attempts": 3,
    "temperatures": [0.2, 0.5, 0.8],
    # Stage -> {"model", "base_url", "api_key_env"}; empty base_url means OPENAI_BASE_URL.
    "stages": {},
    # Each judge: {"name", "model", "base_url", "api_key_env"}.
    "judges": [],
    "review": {
        "raters_per_candidate": 1,
        "second_rater_share": 0.0,
        "audit_share": 0.1,
        "audit_buckets": 4,
        "order": "lowest_confidence_first",
    },
}


def default_config(**overrides: Any) -> dict[str, Any]:
    config = copy.deepcopy(DEFAULTS)
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(config.get(key), dict):
            config[key].update(value)
        else:
            config[key] = value
    return config
