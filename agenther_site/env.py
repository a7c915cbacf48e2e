"""Small helpers that read settings from the environment and fail loudly on bad values."""

from __future__ import annotations

import json
import os
import re
import tomllib
from typing import Any

from django.core.exceptions import ImproperlyConfigured

TRUE = {"1", "true", "yes", "on"}
FALSE = {"0", "false", "no", "off", ""}


def env_str(name: str, default: str = "") -> str:
    return os.environ.get(name, default).strip()


def env_bool(name: str, default: bool = False) -> bool:
    raw = os.environ.get(name)
    if raw is None:
        return default
    value = raw.strip().lower()
    if value in TRUE:
        return True
    if value in FALSE:
        return False
    raise ImproperlyConfigured(
        f"{name}={raw!r} is not a boolean: use one of 1/0, true/false, yes/no"
    )


def env_int(name: str, default: int) -> int:
    raw = os.environ.get(name)
    if raw is None or not raw.strip():
        return default
    try:
        return int(raw)
    except ValueError:
        raise ImproperlyConfigured(f"{name}={raw!r} is not an integer") from None


def env_list(name: str, default: list[str]) -> list[str]:
    raw = os.environ.get(name)
    if raw is None:
        return default
    return [item.strip() for item in raw.split(",") if item.strip()]


ENDPOINT_NAME = re.compile(r"[a-z0-9][a-z0-9_.-]{0,49}")
ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
ENDPOINT_KEYS = {"base_url", "api_key_env"}


def env_endpoints(json_var: str, file_var: str) -> dict[str, dict[str, str]]:
    """The LLM endpoints the operator declares: name -> {"base_url", "api_key_env"}.

    From a TOML file named by ``file_var`` (one table per endpoint) and/or a JSON object in
    ``json_var``; a name declared in both is refused. ``default`` is reserved: it is always
    OPENAI_BASE_URL with OPENAI_API_KEY.
    """
    declared: dict[str, dict[str, str]] = {}
    sources = []
    if path := env_str(file_var):
        sources.append((f"{file_var}={path}", _endpoints_file(file_var, path)))
    if raw := env_str(json_var):
        try:
            sources.append((json_var, json.loads(raw)))
        except ValueError as exc:
            raise ImproperlyConfigured(f"{json_var} is not JSON: {exc}") from None
    for where, table in sources:
        if not isinstance(table, dict):
            raise ImproperlyConfigured(f"{where}: expected an object of name -> endpoint")
        for name, entry in table.items():
            if name in declared:
                raise ImproperlyConfigured(f"{where}: endpoint {name!r} is declared twice")
            declared[name] = _endpoint(where, name, entry)
    return declared


def _endpoints_file(var: str, path: str) -> dict:
    try:
        with open(path, "rb") as f:
            return tomllib.load(f)
    except OSError as exc:
        raise ImproperlyConfigured(f"{var}={path}: cannot be read ({exc.strerror})") from None
    except tomllib.TOMLDecodeError as exc:
        raise ImproperlyConfigured(f"{var}={path}: not valid TOML: {exc}") from None


def _endpoint(where: str, name: Any, entry: Any) -> dict[str, str]:
    def fail(problem: str) -> ImproperlyConfigured:
        return ImproperlyConfigured(f"{where}: endpoint {name!r} {problem}")

    if not isinstance(name, str) or not ENDPOINT_NAME.fullmatch(name):
        raise fail("is not a name (lower-case letters, digits, '.', '_', '-')")
    if name == "default":
        raise fail("is reserved: the default endpoint is OPENAI_BASE_URL with OPENAI_API_KEY")
    if not isinstance(entry, dict) or set(entry) - ENDPOINT_KEYS:
        raise fail("must be a table of base_url and (optionally) api_key_env")
    url = entry.get("base_url")
    if not isinstance(url, str) or not url.startswith(("http://", "https://")):
        raise fail(f"needs a base_url starting with http:// or https://, not {url!r}")
    key_env = entry.get("api_key_env", "")
    if not isinstance(key_env, str) or (key_env and not ENV_NAME.fullmatch(key_env)):
        raise fail(f"api_key_env must name an environment variable, not {key_env!r}")
    return {"base_url": url, "api_key_env": key_env}
