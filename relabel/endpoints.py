"""The LLM endpoints a run may use, as the operator declared them.

``default`` is OPENAI_BASE_URL with OPENAI_API_KEY; the others come from settings.AGENTHER_ENDPOINTS
(the AGENTHER_ENDPOINTS / AGENTHER_ENDPOINTS_FILE environment variables): a name, a base URL and
the environment variable holding its key. Runs name endpoints, never key variables, and a key
goes only to the URL its endpoint is declared at, so a run configuration (which admins write,
from the UI too) cannot send any secret of the server anywhere else.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from django.conf import settings

DEFAULT = "default"


@dataclass(frozen=True)
class Declared:
    name: str
    base_url: str
    api_key_env: str = ""

    @property
    def api_key(self) -> str:
        if self.name == DEFAULT:
            return settings.OPENAI_API_KEY
        return os.environ.get(self.api_key_env, "") if self.api_key_env else ""


def declared_endpoints(default_base_url: str | None = None) -> dict[str, Declared]:
    """Every declared endpoint by name, ``default`` first (when OPENAI_BASE_URL is set)."""
    base = settings.OPENAI_BASE_URL if default_base_url is None else default_base_url
    found = {DEFAULT: Declared(DEFAULT, base, "OPENAI_API_KEY")} if base else {}
    for name, entry in sorted(getattr(settings, "AGENTHER_ENDPOINTS", {}).items()):
        found[name] = Declared(name, entry["base_url"], entry.get("api_key_env", ""))
    return found


def same_url(a: str, b: str) -> bool:
    return a.rstrip("/") == b.rstrip("/")


def endpoint_at(base_url: str, declared: dict[str, Declared] | None = None) -> Declared | None:
    """The declared endpoint at ``base_url``, if any."""
    for endpoint in (declared or declared_endpoints()).values():
        if same_url(endpoint.base_url, base_url):
            return endpoint
    return None


def key_for(name: str, base_url: str) -> str:
    """The key of endpoint ``name``, only while it is declared at ``base_url``; else "".

    A run freezes its endpoints' names and URLs; should the operator move an endpoint later,
    resuming that run must not send the new declaration's key to the old URL.
    """
    endpoint = declared_endpoints().get(name) if name else None
    if endpoint is None or not same_url(endpoint.base_url, base_url):
        return ""
    return endpoint.api_key


def undeclared_urls_allowed() -> bool:
    return bool(getattr(settings, "AGENTHER_ALLOW_UNDECLARED_URLS", False))
