"""Serve the OpenAI-compatible test server (relabel.llm.offline_server) until interrupted.

    manage.py llm_test_server --port 8765 [--latency-ms 200] [--error-rate 0.05]
                              [--malformed-rate 0.05] [--seed 0] [--batch-delay-ms 2000]

Then point the openai backend at it: OPENAI_BASE_URL=http://127.0.0.1:8765/v1.
"""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from relabel.llm.offline_server import Behaviour, LLMTestServer


def rate(value: str) -> float:
    number = float(value)
    if not 0 <= number <= 1:
        raise ValueError(value)
    return number


class Command(BaseCommand):
    help = "Run a local OpenAI-compatible server that answers AgentHER stage prompts."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--port", type=int, required=True)
        parser.add_argument("--host", default="127.0.0.1")
        parser.add_argument("--latency-ms", type=float, default=0.0)
        parser.add_argument("--error-rate", type=rate, default=0.0, help="Share answered 429/500.")
        parser.add_argument(
            "--malformed-rate", type=rate, default=0.0, help="Share answered with broken JSON."
        )
        parser.add_argument("--seed", type=int, default=0)
        parser.add_argument(
            "--batch-delay-ms",
            type=float,
            default=0.0,
            help="How long a Batch API batch stays in progress before its results are ready.",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        behaviour = Behaviour(
            latency_ms=options["latency_ms"],
            error_rate=options["error_rate"],
            malformed_rate=options["malformed_rate"],
            seed=options["seed"],
            batch_delay_ms=options["batch_delay_ms"],
        )
        try:
            server = LLMTestServer(options["port"], behaviour, host=options["host"])
        except OSError as exc:
            raise CommandError(
                f"cannot listen on {options['host']}:{options['port']}: {exc}"
            ) from None
        self.stdout.write(f"LLM test server on {server.base_url} (Ctrl-C to stop)")
        self.stdout.flush()
        try:
            server.serve_forever()
        except KeyboardInterrupt:
            pass
        finally:
            server.server_close()
