"""Time from a key to the next item, in the browser, as an annotator sees it.

    .venv/bin/python bench/review_keys.py [--decisions 60] [--data ../shared/data]

In a throwaway SQLite database it imports the tau-bench airline runs from ../shared/data (or the
bundled sample when that is absent), relabels them with the rules backend, serves the UI with the
development server (as `make demo` does) and, in chromium, accepts items with the `a` key: each
figure is from the keydown to the next item swapped in, settled and painted (measured in the page
with performance.now()). Prints one JSON object: median, p95 and max in ms, and the page's size.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from playwright.sync_api import sync_playwright

ROOT = Path(__file__).resolve().parent.parent
PASSWORD = secrets.token_urlsafe(12)
# Keydown (captured before the page's own handler) to the frame after htmx settled the new item.
PROBE = """() => {
  window.latencies = []; let started = 0;
  document.addEventListener('keydown', e => {
    if (e.key === 'a') started = performance.now();
  }, true);
  document.addEventListener('htmx:afterSettle', () => {
    if (!started) return;
    const from = started; started = 0;
    requestAnimationFrame(() => setTimeout(() => window.latencies.push(performance.now() - from)));
  });
}"""


def manage(env: dict[str, str], *args: str) -> None:
    done = subprocess.run(
        [sys.executable, "manage.py", *args], cwd=ROOT, env=env, capture_output=True, text=True
    )
    if done.returncode:
        raise SystemExit(f"manage.py {' '.join(args)} failed:\n{done.stdout}{done.stderr}")


def serve(env: dict[str, str]) -> tuple[subprocess.Popen, str]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = subprocess.Popen(
        [sys.executable, "manage.py", "runserver", f"127.0.0.1:{port}", "--noreload"],
        cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    for _ in range(100):
        try:
            urllib.request.urlopen(f"{base}/login/", timeout=1)
            return server, base
        except OSError:
            time.sleep(0.2)
    raise SystemExit("the development server did not start")


def measure(base: str, decisions: int) -> dict[str, float]:
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.goto(f"{base}/login/?next=/review/")
        page.fill("#id_username", "bench")
        page.fill("#id_password", PASSWORD)
        with page.expect_navigation():
            page.keyboard.press("Enter")
        size = len(page.content().encode())
        page.evaluate(PROBE)
        for n in range(1, decisions + 1):
            page.keyboard.press("a")
            page.wait_for_function("n => window.latencies.length >= n", arg=n)
        latencies = sorted(page.evaluate("window.latencies"))
        browser.close()
    return {
        "decisions": len(latencies),
        "median_ms": round(statistics.median(latencies), 1),
        "p95_ms": round(latencies[int(0.95 * (len(latencies) - 1))], 1),
        "max_ms": round(latencies[-1], 1),
        "first_page_bytes": size,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--decisions", type=int, default=60)
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    args = parser.parse_args()
    tau = args.data / "tau-bench" / "gpt-4o-airline.json"
    source = tau if tau.is_file() else ROOT / "relabel" / "sample" / "agenther.jsonl"
    with tempfile.TemporaryDirectory() as tmp:
        env = {**os.environ, "DEBUG": "1", "DATABASE_URL": f"sqlite:///{tmp}/keys.sqlite3"}
        env["AGENTHER_VAR_DIR"] = tmp
        for variable in ("CELERY_BROKER_URL", "OPENAI_BASE_URL", "OPENAI_API_KEY"):
            env.pop(variable, None)
        manage(env, "migrate", "-v0")
        manage(env, "import_trajectories", str(source), "--dataset", "bench")
        manage(env, "relabel", "--dataset", "bench", "--backend", "rules")
        manage(env, "adduser", "bench", "--role", "annotator", "--password", PASSWORD)
        server, base = serve(env)
        try:
            report = {"data": source.name, **measure(base, args.decisions)}
        finally:
            server.terminate()
            server.wait(10)
    print(json.dumps(report))


if __name__ == "__main__":
    main()
