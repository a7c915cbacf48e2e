"""Takes the README's screenshots of the review UI on real trajectories.

    .venv/bin/python docs/screenshots/take.py [--data ../shared/data]

In a throwaway SQLite database it imports WebArena (BrowserGym results) and tau-bench airline runs
from ../shared/data (never committed here), relabels each with the rules backend (WebArena with an
accept threshold of 0.9, so its candidates go to reviewers and show everything a curator sees),
serves the UI and photographs it in chromium: the review page on a WebArena and a tau-bench item,
and the tau-bench run's page. The PNGs are written beside this script.
"""

from __future__ import annotations

import argparse
import os
import secrets
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from playwright.sync_api import Page, sync_playwright

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
PASSWORD = secrets.token_urlsafe(12)


def manage(env: dict[str, str], *args: str) -> str:
    done = subprocess.run(
        [sys.executable, "manage.py", *args], cwd=ROOT, env=env, capture_output=True, text=True
    )
    if done.returncode:
        raise SystemExit(f"manage.py {' '.join(args)} failed:\n{done.stdout}{done.stderr}")
    return done.stdout


def relabeled(env: dict[str, str], path: Path, dataset: str, accept: float) -> None:
    manage(env, "import_trajectories", str(path), "--dataset", dataset)
    config = Path(env["SHOT_DIR"]) / f"{dataset}.toml"
    config.write_text(f'backend = "rules"\naccept_threshold = {accept}\n')
    manage(env, "relabel", "--dataset", dataset, "--config", str(config))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def log_in(page: Page, base: str, username: str, then: str) -> None:
    page.goto(f"{base}/login/?next={then}")
    page.fill("#id_username", username)
    page.fill("#id_password", PASSWORD)
    with page.expect_navigation():
        page.keyboard.press("Enter")


def shoot(base: str, env: dict[str, str], data: Path) -> None:
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        # One benchmark at a time: the queue serves the lowest confidence first, whatever the run.
        relabeled(env, data / "webarena-browsergym", "webarena", 0.9)
        log_in(page, base, "webarena-rater", "/review/")
        page.screenshot(path=HERE / "review-webarena.png")
        page.context.clear_cookies()
        relabeled(env, data / "tau-bench" / "gpt-4o-airline.json", "tau-airline", 0.5)
        log_in(page, base, "tau-rater", "/review/")
        page.set_viewport_size({"width": 1280, "height": 1500})  # down to the first turns
        page.screenshot(path=HERE / "review-tau-bench.png")
        page.set_viewport_size({"width": 1280, "height": 900})
        for keys in ["a", "r3", "a", "r1", "a", "a", "r2", "a"]:  # some review work, by keyboard
            done = page.locator(".queue-progress").inner_text()
            for key in keys:
                page.keyboard.press(key)
            page.wait_for_function(
                "text => document.querySelector('.queue-progress').innerText !== text", arg=done
            )
        page.context.clear_cookies()
        log_in(page, base, "researcher", "/runs/2/")
        page.screenshot(path=HERE / "run-page.png", full_page=True)
        browser.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        env = {**os.environ, "DEBUG": "1", "DATABASE_URL": f"sqlite:///{tmp}/shots.sqlite3"}
        env.update(AGENTHER_VAR_DIR=tmp, SHOT_DIR=tmp)
        for variable in ("CELERY_BROKER_URL", "OPENAI_BASE_URL", "OPENAI_API_KEY"):
            env.pop(variable, None)
        manage(env, "migrate", "-v0")
        for name in ("webarena-rater", "tau-rater"):
            manage(env, "adduser", name, "--role", "annotator", "--password", PASSWORD)
        manage(env, "adduser", "researcher", "--role", "researcher", "--password", PASSWORD)
        port = free_port()
        server = subprocess.Popen(
            [sys.executable, "manage.py", "runserver", f"127.0.0.1:{port}", "--noreload"],
            cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        try:
            for _ in range(100):
                try:
                    urllib.request.urlopen(f"http://127.0.0.1:{port}/login/", timeout=1)
                    break
                except OSError:
                    time.sleep(0.2)
            shoot(f"http://127.0.0.1:{port}", env, args.data.resolve())
        finally:
            server.terminate()
            server.wait(10)
    print(f"screenshots written to {HERE}")


if __name__ == "__main__":
    main()
