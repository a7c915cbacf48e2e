"""A run's configuration: defaults, loading from TOML, validation. Frozen into Run.config.

The TOML file (see relabel/sample-config.toml) may set any key of ``DEFAULTS``. A run names the
endpoints its stages and judges use (``endpoint = "vllm"``), as the operator declared them
(relabel.endpoints); it never names a key variable, and the file never holds a secret.

``resolve_endpoints`` fills every stage and judge with its model, endpoint name, base_url and
concurrency; the run stores the result (names and URLs, never keys), so a later change of the
environment does not change what a run did.
"""

from __future__ import annotations

import copy
import tomllib
from pathlib import Path
from typing import Any

from relabel.endpoints import (
    DEFAULT,
    Declared,
    declared_endpoints,
    endpoint_at,
    undeclared_urls_allowed,
)

PROMPT_VERSION = "v4"  # v4: judges read the evidence and every call in outline; terser wording
# "consistency" is the model that rewrites turns referring to the original goal (stage 3b).
STAGES = ("detect", "extract", "relabel", "consistency")
BACKENDS = ("rules", "openai")
# What stage 3b does with turns that refer to the original goal (relabel.pipeline.consistency).
CONSISTENCY_POLICIES = ("rewrite", "strip", "flag", "off")
# What a judge reads (relabel.llm.prompts.judge_prompt): the evidence and an outline, or the run.
JUDGE_VIEWS = ("run", "evidence")
JSON_MODES = ("json_schema", "json_object")

DEFAULTS: dict[str, Any] = {
    "backend": "rules",
    "prompt_version": PROMPT_VERSION,
    "accept_threshold": 0.5,
    "reject_threshold": 0.2,
    "severity_delta": 0.3,
    "attempts": 3,
    "temperatures": [0.2, 0.5, 0.8],
    # How the gate's confidence is computed from the generator's and the judges' confidences.
    "aggregation": "min",
    # The endpoint of every stage and judge that names none (a declared endpoint's name).
    "endpoint": DEFAULT,
    # Turns that still refer to the original goal: rewrite them (the agent's free text only),
    # strip such thoughts, flag the candidate for review, or off (no check).
    "consistency": "rewrite",
    # What each judge reads: "evidence" (the steps the achievements cite, whole, and every other
    # step's calls in outline; free text outside the cited steps is left to stage 3b's own check
    # of every turn) or "run" (every step, so it can name any turn that contradicts the goal, at
    # about twice the tokens).
    "judge_view": "evidence",
    # Stage -> {"model", "endpoint", "concurrency", "json_mode"} (or "base_url" instead of
    # "endpoint": a declared endpoint's URL, or an undeclared one where the operator allows it).
    "stages": {},
    # Each judge: {"name", "model", "endpoint", "concurrency", "json_mode"} (or "base_url").
    # Empty means one judge on the run's endpoint.
    "judges": [],
    # Calls in flight per endpoint (per worker process), unless the endpoint sets its own.
    "concurrency": 16,
    # Prompt budget in (estimated) tokens, and the reply budget.
    "max_prompt_tokens": 6000,
    "max_completion_tokens": 800,
    "request_timeout": 60.0,
    "max_retries": 4,
    "retry_backoff": 0.5,
    "malformed_retries": 2,
    # Items per Celery task when a broker is configured (without one, one task takes them all).
    "chunk_size": 128,
    # Without a broker, processes for a large run (0 = one per CPU); see relabel.pipeline.pools.
    "processes": 0,
    # Model -> {"prompt", "completion"[, "cached", "batch"]}: USD per 1M tokens (cached: prompt
    # tokens served from the endpoint's prefix cache; batch: the factor on every rate through the
    # Batch API); merged over relabel.llm.pricing.DEFAULT_PRICES.
    "prices": {},
    # Send each stage's requests through the endpoints' Batch API (relabel.pipeline.batch_run):
    # half the price, answers within 24 hours. A task checks the batches every batch_poll_seconds;
    # one batch holds at most batch_max_requests requests.
    "batch": False,
    "batch_poll_seconds": 30.0,
    "batch_max_requests": 5000,
    "review": {
        "raters_per_candidate": 1,
        "second_rater_share": 0.0,
        "audit_share": 0.1,
        # A share of the candidates one curation rater approved joins the audit queue, blind,
        # for another rater: what measures the raters' own precision.
        "reaudit_share": 0.1,
        "audit_buckets": 4,
        "order": "lowest_confidence_first",
    },
}

ENDPOINT_KEYS = {"model", "endpoint", "base_url", "concurrency", "json_mode"}
AGGREGATIONS = ("min", "mean")
DECLARE = (
    "declare an endpoint (AGENTHER_ENDPOINTS or AGENTHER_ENDPOINTS_FILE: name, base_url, "
    'api_key_env) and name it here with endpoint = "NAME"'
)
REVIEW_ORDERS = ("lowest_confidence_first", "highest_confidence_first", "random")


class ConfigError(ValueError):
    """A configuration value is wrong; the message names the key."""


def default_config(**overrides: Any) -> dict[str, Any]:
    config = copy.deepcopy(DEFAULTS)
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(config.get(key), dict):
            config[key].update(value)
        else:
            config[key] = value
    return config


def load_toml(path: str | Path) -> dict[str, Any]:
    """The table in a TOML file, with a clear error naming the file when it cannot be read."""
    try:
        with open(path, "rb") as f:
            return tomllib.load(f)
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such configuration file") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None


def load_config(
    path: str | Path | None = None,
    *,
    backend: str | None = None,
    overrides: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Defaults, then the TOML file, then explicit overrides, then ``backend``, validated."""
    table = load_toml(path) if path else {}
    where = str(path) if path else "config"
    table.update(overrides or {})
    if backend:
        table["backend"] = backend
    return validate_config(table, where=where)


def validate_config(table: dict[str, Any], *, where: str = "config") -> dict[str, Any]:
    """Checks every key and returns the full configuration (defaults filled in)."""
    unknown = sorted(set(table) - set(DEFAULTS))
    if unknown:
        raise ConfigError(f"{where}: unknown key {unknown[0]!r} (known: {', '.join(DEFAULTS)})")
    config = default_config(**table)
    _check_choice(config, "backend", BACKENDS, where)
    _check_choice(config, "aggregation", AGGREGATIONS, where)
    _check_choice(config, "consistency", CONSISTENCY_POLICIES, where)
    _check_choice(config, "judge_view", JUDGE_VIEWS, where)
    for key in ("accept_threshold", "reject_threshold", "severity_delta"):
        _check_number(config, key, where, low=0.0, high=1.0)
    if config["reject_threshold"] > config["accept_threshold"]:
        raise ConfigError(
            f"{where}: reject_threshold ({config['reject_threshold']}) is above "
            f"accept_threshold ({config['accept_threshold']})"
        )
    for key in ("attempts", "concurrency", "max_prompt_tokens", "max_completion_tokens"):
        _check_int(config, key, where, low=1)
    for key in ("max_retries", "malformed_retries"):
        _check_int(config, key, where, low=0)
    _check_int(config, "chunk_size", where, low=1)
    _check_int(config, "processes", where, low=0)
    if not isinstance(config["batch"], bool):
        _fail(where, "batch", f"must be true or false, not {config['batch']!r}")
    _check_number(config, "batch_poll_seconds", where, low=0.0)
    _check_int(config, "batch_max_requests", where, low=1)
    for key in ("request_timeout", "retry_backoff"):
        _check_number(config, key, where, low=0.0)
    _check_temperatures(config, where)
    if not isinstance(config["endpoint"], str) or not config["endpoint"]:
        _fail(where, "endpoint", f"must be an endpoint's name, not {config['endpoint']!r}")
    _check_stages(config, where)
    _check_judges(config, where)
    _check_prices(config, where)
    check_review(config["review"], where)
    return config


def check_review(review: Any, where: str = "config") -> None:
    """The review section: who rates what, and the blind audit sample."""
    if not isinstance(review, dict):
        _fail(where, "review", "must be a table")
    unknown = sorted(set(review) - set(DEFAULTS["review"]))
    if unknown:
        known = ", ".join(DEFAULTS["review"])
        _fail(where, f"review.{unknown[0]}", f"is not a known key ({known})")
    if review["order"] not in REVIEW_ORDERS:
        _fail(
            where,
            "review.order",
            f"is {review['order']!r}; expected one of {', '.join(REVIEW_ORDERS)}",
        )
    for key in ("second_rater_share", "audit_share", "reaudit_share"):
        _check_number(review, key, where, low=0.0, high=1.0, name=f"review.{key}")
    for key in ("raters_per_candidate", "audit_buckets"):
        _check_int(review, key, where, low=1, name=f"review.{key}")


def _fail(where: str, key: str, problem: str) -> None:
    raise ConfigError(f"{where}: {key} {problem}")


def _check_choice(config: dict, key: str, choices: tuple[str, ...], where: str) -> None:
    if config[key] not in choices:
        _fail(where, key, f"is {config[key]!r}; expected one of {', '.join(choices)}")


def _check_number(
    config: dict, key: str, where: str, *, low: float, high: float | None = None, name: str = ""
) -> None:
    value = config[key]
    name = name or key
    if isinstance(value, bool) or not isinstance(value, int | float):
        _fail(where, name, f"must be a number, not {value!r}")
    if value < low or (high is not None and value > high):
        _fail(where, name, f"is {value}; expected {low}..{high if high is not None else 'inf'}")


def _check_int(config: dict, key: str, where: str, *, low: int, name: str = "") -> None:
    value = config[key]
    name = name or key
    if isinstance(value, bool) or not isinstance(value, int):
        _fail(where, name, f"must be an integer, not {value!r}")
    if value < low:
        _fail(where, name, f"is {value}; expected at least {low}")


def _check_temperatures(config: dict, where: str) -> None:
    temps = config["temperatures"]
    if not isinstance(temps, list) or not temps:
        _fail(where, "temperatures", "must be a non-empty list of numbers")
    for i, t in enumerate(temps):
        if isinstance(t, bool) or not isinstance(t, int | float) or not 0 <= t <= 2:
            _fail(where, f"temperatures[{i}]", f"is {t!r}; expected a number in 0..2")


def _check_endpoint(entry: Any, name: str, where: str) -> None:
    if not isinstance(entry, dict):
        _fail(where, name, "must be a table")
    for secret in ("api_key_env", "api_key"):
        if secret in entry:
            # Keys belong to endpoints the operator declared: a run configuration (which admins
            # write, from the UI too) must never choose which secret goes to which URL.
            _fail(where, f"{name}.{secret}", f"is not accepted: {DECLARE}")
    allowed = ENDPOINT_KEYS | ({"name"} if name.startswith("judges") else set())
    unknown = sorted(set(entry) - allowed)
    if unknown:
        _fail(where, f"{name}.{unknown[0]}", f"is not a known key ({', '.join(sorted(allowed))})")
    for key in ("model", "endpoint", "base_url", "name"):
        if key in entry and not isinstance(entry[key], str):
            _fail(where, f"{name}.{key}", f"must be a string, not {entry[key]!r}")
    if entry.get("endpoint") and entry.get("base_url"):
        _fail(where, name, "names an endpoint and a base_url: name one of them")
    if "concurrency" in entry:
        _check_int(entry, "concurrency", where, low=1, name=f"{name}.concurrency")
    if "json_mode" in entry and entry["json_mode"] not in JSON_MODES:
        _fail(
            where,
            f"{name}.json_mode",
            f"is {entry['json_mode']!r}; expected json_schema or json_object",
        )


def _check_stages(config: dict, where: str) -> None:
    stages = config["stages"]
    if not isinstance(stages, dict):
        _fail(where, "stages", "must be a table of detect / extract / relabel")
    for stage, entry in stages.items():
        if stage not in STAGES:
            _fail(where, f"stages.{stage}", f"is not a stage ({', '.join(STAGES)})")
        _check_endpoint(entry, f"stages.{stage}", where)


def _check_judges(config: dict, where: str) -> None:
    judges = config["judges"]
    if not isinstance(judges, list):
        _fail(where, "judges", "must be a list of tables ([[judges]] in TOML)")
    names = set()
    for i, entry in enumerate(judges):
        _check_endpoint(entry, f"judges[{i}]", where)
        name = entry.get("name") or f"judge-{i + 1}"
        if name in names:
            _fail(where, f"judges[{i}].name", f"{name!r} is used twice")
        names.add(name)


def _check_prices(config: dict, where: str) -> None:
    prices = config["prices"]
    if not isinstance(prices, dict):
        _fail(where, "prices", "must be a table of model -> {prompt, completion}")
    for model, entry in prices.items():
        if not isinstance(entry, dict) or not {"prompt", "completion"} <= set(entry):
            _fail(where, f"prices.{model}", "must have prompt and completion (USD per 1M)")
        unknown = sorted(set(entry) - {"prompt", "completion", "cached", "batch"})
        if unknown:
            _fail(where, f"prices.{model}.{unknown[0]}", "is not prompt, completion, cached, batch")
        for key in entry:
            _check_number(entry, key, where, low=0.0, name=f"prices.{model}.{key}")


def resolve_endpoints(
    config: dict[str, Any], *, default_base_url: str, default_model: str
) -> dict[str, Any]:
    """Fills every stage and judge with model, endpoint, base_url, concurrency, json_mode.

    ``default_base_url`` is the ``default`` endpoint's URL (OPENAI_BASE_URL). Raises ConfigError
    for an endpoint nobody declared, a URL nobody declared (unless the operator allows those:
    they get no key), and, on the openai backend, a stage or judge without an endpoint.
    """
    config = copy.deepcopy(config)
    declared = declared_endpoints(default_base_url)
    base = {
        "model": default_model,
        "concurrency": config["concurrency"],
        "json_mode": "json_schema",
    }
    config["stages"] = {s: {**base, **config["stages"].get(s, {})} for s in STAGES}
    judges = config["judges"] or [{"name": "judge-1"}]
    config["judges"] = [
        {**base, **j, "name": j.get("name") or f"judge-{i + 1}"} for i, j in enumerate(judges)
    ]
    named = [(f"stages.{s}", e) for s, e in config["stages"].items()]
    named += [(f"judges[{i}]", e) for i, e in enumerate(config["judges"])]
    for name, entry in named:
        entry.update(_place(entry, name, config, declared))
    return config


def _place(
    entry: dict[str, Any], name: str, config: dict[str, Any], declared: dict[str, Declared]
) -> dict[str, str]:
    """The endpoint name and base_url of one stage or judge ("" as the name: undeclared)."""
    url = entry.get("base_url")
    if url:
        found = endpoint_at(url, declared)
        if found:
            return {"endpoint": found.name, "base_url": found.base_url}
        if not undeclared_urls_allowed():
            known = ", ".join(declared) or "none"
            raise ConfigError(
                f"{name}.base_url {url!r} is a URL no operator declared (declared endpoints: "
                f"{known}): {DECLARE}"
            )
        return {"endpoint": "", "base_url": url}  # allowed by the operator, and sent no key
    own = entry.get("endpoint")
    chosen, key = (own, f"{name}.endpoint") if own else (config["endpoint"], "endpoint")
    if chosen in declared:
        _check_key(declared[chosen], config)
        return {"endpoint": chosen, "base_url": declared[chosen].base_url}
    if chosen != DEFAULT:
        known = ", ".join(declared) or "none"
        raise ConfigError(f"{key} {chosen!r} is not a declared endpoint (declared: {known})")
    if config["backend"] == "openai":
        raise ConfigError(
            f"the openai backend needs an endpoint: {name} uses the default endpoint and "
            "OPENAI_BASE_URL is not set"
        )
    return {"endpoint": DEFAULT, "base_url": ""}  # the rules backend calls nothing


def _check_key(endpoint: Declared, config: dict[str, Any]) -> None:
    # The default key may be empty (local servers need none); a declared variable may not.
    if endpoint.name == DEFAULT or config["backend"] != "openai":
        return
    if endpoint.api_key_env and not endpoint.api_key:
        raise ConfigError(
            f"endpoint {endpoint.name!r} takes its key from {endpoint.api_key_env}, "
            "which is not set"
        )
