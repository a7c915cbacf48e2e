"""The headers every page is sent, and the README saying exactly what they are."""

from __future__ import annotations

import re

from tests.conftest import ROOT


def test_the_readme_states_the_content_security_policy_every_page_is_sent(client):
    sent = client.get("/login/").headers["Content-Security-Policy"]
    readme = " ".join((ROOT / "README.md").read_text().split())
    stated = re.search(r"Content-Security-Policy middleware sends `([^`]+)`", readme)
    assert stated, "the README's line about the Content-Security-Policy is gone"
    assert stated.group(1) == sent
    assert "'unsafe-inline'" not in sent and "'unsafe-eval'" not in sent
