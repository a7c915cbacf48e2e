"""What the browser tests share: a chromium page on the live server, logging in, and axe-core.

Playwright drives Debian's chromium (/usr/bin/chromium); the tests fail, never skip, when it is
missing (CI installs it: .ci/run). The ``page`` fixture is offered by tests/review/conftest.py.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from django.db import connections
from playwright.sync_api import Browser, Page, expect, sync_playwright

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
PASSWORD = "pw-for-tests-123"
# axe-core from npm, vendored as a static file the app serves: loaded by these tests only.
AXE = "/static/vendor/axe-core/axe.min.js"
WCAG_A_AA = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"]


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """One chromium per test module (a launch costs about a second); each test gets a context
    of its own, so no cookie or storage leaks from one test into the next."""
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: apt-get install -y chromium")
    # Playwright's sync API keeps an event loop current in this thread while it is started; the
    # ORM calls of the tests are still plain synchronous calls.
    with pytest.MonkeyPatch.context() as patch, sync_playwright() as p:
        patch.setitem(os.environ, "DJANGO_ALLOW_ASYNC_UNSAFE", "true")
        launched = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield launched
        launched.close()


@pytest.fixture
def page(transactional_db, live_server, browser) -> Iterator[Page]:
    """A chromium page on the live server, recording console errors and dialogs."""
    context = browser.new_context(base_url=live_server.url, viewport={"width": 1280, "height": 800})
    context.set_default_timeout(10_000)
    page = context.new_page()
    page.problems = []  # console errors, uncaught exceptions and dialogs, as they happen
    page.on("console", lambda m: m.type == "error" and page.problems.append(m.text))
    page.on("pageerror", lambda e: page.problems.append(str(e)))
    page.on("dialog", lambda d: (page.problems.append(f"dialog: {d.message}"), d.dismiss()))
    yield page
    context.close()
    # The test's queries ran while Playwright's loop was current, on connections that
    # pytest-django does not see: close them here, or the test database cannot be flushed.
    connections.close_all()


def log_in(page: Page, username: str, then: str = "/review/") -> None:
    page.goto(f"/login/?next={then}")
    page.fill("#id_username", username)
    page.fill("#id_password", PASSWORD)
    page.keyboard.press("Enter")
    page.wait_for_url(lambda url: urlsplit(url).path == then)
    if then == "/review/":
        expect(page.locator("#review")).to_be_visible()


def axe_violations(page: Page) -> list[dict[str, Any]]:
    """What axe-core finds on the page as it is now, at WCAG 2.1 A and AA."""
    if not page.evaluate("typeof window.axe !== 'undefined'"):
        page.add_script_tag(url=AXE)
    found = page.evaluate(
        "tags => axe.run(document, {runOnly: {type: 'tag', values: tags}})"
        ".then(r => r.violations.map(v => ({id: v.id, help: v.help,"
        " nodes: v.nodes.map(n => n.target.join(' ')).slice(0, 5)})))",
        WCAG_A_AA,
    )
    return list(found)


def scrolls_sideways(page: Page) -> bool:
    return page.evaluate("document.documentElement.scrollWidth > window.innerWidth")
