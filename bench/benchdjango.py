"""Django set up the way the benchmarks measure it: production settings (no DEBUG, which keeps
every query's SQL in memory), against the database they were given."""

from __future__ import annotations

import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def setup_django(database_url: str, name: str) -> None:
    os.environ["DATABASE_URL"] = database_url
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "agenther_site.settings")
    os.environ["DEBUG"] = os.environ["DJANGO_DEBUG"] = "0"
    os.environ.setdefault("SECRET_KEY", f"{name}-bench-only")
    # Django's test client speaks plain HTTP (in production the TLS proxy is in front).
    os.environ.setdefault("AGENTHER_PLAIN_HTTP", "1")
    import django
    from django.core.management import call_command

    django.setup()
    # Pages link the static files by their hashed names, as in production: collect them first.
    call_command("collectstatic", interactive=False, verbosity=0)
