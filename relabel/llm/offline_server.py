"""An OpenAI-compatible HTTP server for tests and benchmarks: deterministic, offline, concurrent.

It serves ``POST /v1/chat/completions`` and ``GET /v1/models``. It recognises the stage from the
JSON-schema name in ``response_format`` (or, in JSON-object mode, from the "Stage: ..." line of
the system prompt) and answers with schema-valid JSON derived from a hash of the prompt, so the
same request always gets the same answer, plus usage figures. Each request waits ``latency_ms``
in its own thread, so 32+ concurrent requests overlap as they would against a real endpoint.

``error_rate`` answers a share of requests with 429 or 500; ``malformed_rate`` a share with
content that is not JSON. Markers in a prompt force a behaviour, for tests:
TEST-ECHO (in the original goal: the relabel answer quotes it), TEST-VETO (judges reject),
TEST-MALFORMED (every answer is malformed), TEST-SEVERITY=0.9 and TEST-CONFIDENCE=0.3 (fix the
detect severity and the relabel confidence), TEST-SUCCEEDED=true|false (the detect answer on a
run whose outcome was not recorded); TEST-CONTRADICT (in a step: the judges say it contradicts
the goal) and TEST-REWRITE-TOOL (the consistency rewrite also touches an observation).
"""

from __future__ import annotations

import hashlib
import json
import random
import re
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from relabel.llm.prompts import FAILURE_TYPES

STEP_HEADER = re.compile(r"^### Step (\d+)$", re.MULTILINE)
ACTION_LINE = re.compile(r"^action: ([\w.\-]+)\(", re.MULTILINE)
ORIGINAL_GOAL = re.compile(r"^Original goal[^:]*: (.*)$", re.MULTILINE)
MARKER = re.compile(r"TEST-(SEVERITY|CONFIDENCE)=([0-9.]+)")
SUCCEEDED = re.compile(r"TEST-SUCCEEDED=(true|false)")
UNKNOWN_OUTCOME = "whose outcome was not recorded"
STAGES = ("detect", "extract", "relabel", "judge", "consistency")
TURN_HEADER = re.compile(r"^### Turn (.+)$", re.MULTILINE)


def prompt_stage(body: dict[str, Any]) -> str:
    fmt = body.get("response_format") or {}
    name = (fmt.get("json_schema") or {}).get("name", "")
    for stage in STAGES:
        if f"_{stage}_" in name:
            return stage
    system = next((m["content"] for m in body["messages"] if m["role"] == "system"), "")
    match = re.match(r"Stage: (\w+)", system or "")
    return match.group(1) if match and match.group(1) in STAGES else "unknown"


def _units(text: str) -> list[float]:
    """Four numbers in [0, 1) that depend only on ``text``."""
    digest = hashlib.sha256(text.encode()).digest()
    return [int.from_bytes(digest[i : i + 4], "big") / 2**32 for i in range(0, 16, 4)]


def _marker(text: str, name: str) -> float | None:
    for key, value in MARKER.findall(text):
        if key == name:
            return min(1.0, float(value))
    return None


def _detect(text: str, u: list[float]) -> dict[str, Any]:
    severity = _marker(text, "SEVERITY")
    severity = round(0.05 + 0.8 * u[1], 2) if severity is None else severity
    answer = {
        "failure_type": FAILURE_TYPES[int(u[0] * len(FAILURE_TYPES))],
        "severity": severity,
        "recoverable": severity < 0.7,
        "explanation": "Deterministic test answer derived from the prompt.",
    }
    if UNKNOWN_OUTCOME in text:  # the detect prompt of a run whose outcome was not recorded
        forced = SUCCEEDED.search(text)
        answer["succeeded"] = forced.group(1) == "true" if forced else u[3] < 0.5
    return answer


def _extract(text: str, u: list[float]) -> dict[str, Any]:
    steps = [int(n) for n in STEP_HEADER.findall(text)]
    actions = ACTION_LINE.findall(text)
    achievements = []
    for i, step in enumerate(steps[-3:]):
        action = actions[-3:][i] if i < len(actions[-3:]) else "a message"
        achievements.append({"text": f"Performed {action} at step {step}", "steps": [step]})
    return {
        "achievements": achievements,
        "key_observations": [f"The run has {len(steps)} steps."],
        "limitations": ["Did not meet every requirement of the task."],
    }


def _relabel(text: str, u: list[float]) -> dict[str, Any]:
    original = ORIGINAL_GOAL.search(text)
    steps = [int(n) for n in STEP_HEADER.findall(text)]
    actions = sorted(set(ACTION_LINE.findall(text))) or ["the shown actions"]
    goal = (
        f"Use {', '.join(actions[:4])} to work through {len(steps)} steps and report "
        f"what the final step shows (variant {int(u[3] * 1000)})"
    )
    if original and "TEST-ECHO" in original.group(1):
        goal = f"As originally asked: {original.group(1)}"
    confidence = _marker(text, "CONFIDENCE")
    return {
        "hindsight_goal": goal,
        "rationale": f"Steps {steps[:3]} show these actions completed.",
        "confidence": round(0.1 + 0.85 * u[2], 2) if confidence is None else confidence,
    }


def _judge(text: str, u: list[float]) -> dict[str, Any]:
    veto = "TEST-VETO" in text or u[3] < 0.1
    return {
        "accept": not veto,
        "confidence": round(0.15 if veto else 0.4 + 0.6 * u[0], 2),
        "reason": "The steps do not show the goal." if veto else "The steps show the goal.",
        "contradictions": _contradictions(text),
    }


def _contradictions(text: str) -> list[dict[str, Any]]:
    """Stage 3b, the judges' part: a step whose text holds TEST-CONTRADICT contradicts."""
    found = []
    for match in re.finditer(r"^### Step (\d+)$(.*?)(?=^### |\Z)", text, re.M | re.S):
        if "TEST-CONTRADICT" in match.group(2):
            reason = "It pursues a different task."
            found.append(
                {"step": int(match.group(1)), "quote": "TEST-CONTRADICT", "reason": reason}
            )
    return found


def _consistency(text: str, u: list[float]) -> dict[str, Any]:
    """Stage 3b's rewrite: every offered turn reworded to a neutral sentence. TEST-REWRITE-TOOL
    (in the original goal) makes the reply also rewrite an observation, which must be refused."""
    turns = [
        {"turn": label.strip(), "text": f"I take the next step toward the goal ({label.strip()})."}
        for label in TURN_HEADER.findall(text)
    ]
    if "TEST-REWRITE-TOOL" in text:
        turns.append({"turn": "step 0 observation", "text": "observation: the page was empty"})
    return {"turns": turns}


ANSWERS = {
    "detect": _detect,
    "extract": _extract,
    "relabel": _relabel,
    "judge": _judge,
    "consistency": _consistency,
}


def answer_content(body: dict[str, Any]) -> str:
    """The deterministic, schema-valid JSON reply for a chat-completions request."""
    stage = prompt_stage(body)
    text = "\n".join(str(m.get("content") or "") for m in body["messages"])
    if stage not in ANSWERS:
        return json.dumps({"answer": "This test server only answers AgentHER stage prompts."})
    # Hash what the stage sees (not repair turns), so a re-ask gets the same valid answer.
    first_user = next((m["content"] for m in body["messages"] if m["role"] == "user"), "")
    return json.dumps(ANSWERS[stage](text, _units(first_user or text)))


class Behaviour:
    """Latency and injected faults, shared by the handler threads."""

    def __init__(
        self, latency_ms: float = 0, error_rate: float = 0, malformed_rate: float = 0, seed: int = 0
    ):
        self.latency = latency_ms / 1000
        self.error_rate = error_rate
        self.malformed_rate = malformed_rate
        self.random = random.Random(seed)
        self.lock = threading.Lock()
        self.requests = 0
        self.in_flight = 0
        self.max_in_flight = 0  # the most requests ever served at once: tests check limits
        # Every Authorization header received: tests prove which key went where.
        self.authorizations: list[str] = []

    def draw(self) -> tuple[float, float]:
        with self.lock:
            self.requests += 1
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
            return self.random.random(), self.random.random()

    def done(self) -> None:
        with self.lock:
            self.in_flight -= 1


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive: the client reuses its connections
    # Headers and body go out in two writes; without TCP_NODELAY, Nagle's algorithm holds the
    # body back until the client's delayed ACK, adding up to 40 ms to every request.
    disable_nagle_algorithm = True
    server: LLMTestServer

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _send(self, status: int, payload: dict[str, Any], headers: dict[str, str] | None = None):
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        if self.path.rstrip("/").endswith("/v1/models"):
            models = [{"id": m, "object": "model", "owned_by": "test"} for m in self.server.models]
            self._send(200, {"object": "list", "data": models})
        else:
            self._send(404, {"error": {"message": f"no route {self.path}"}})

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length)
        if not self.path.rstrip("/").endswith("/chat/completions"):
            self._send(404, {"error": {"message": f"no route {self.path}"}})
            return
        try:
            body = json.loads(raw)
            body["messages"][0]
        except (ValueError, KeyError, IndexError, TypeError):
            self._send(400, {"error": {"message": "the body is not a chat-completions request"}})
            return
        behaviour = self.server.behaviour
        with behaviour.lock:
            behaviour.authorizations.append(self.headers.get("Authorization", ""))
        fault, malformed = behaviour.draw()
        try:
            time.sleep(behaviour.latency)
        finally:
            behaviour.done()
        if fault < behaviour.error_rate:
            status = 429 if fault < behaviour.error_rate / 2 else 500
            error = {"message": "injected fault", "type": "test_server_error"}
            self._send(status, {"error": error}, {"retry-after-ms": "5"})
            return
        self._send(200, self.completion(body, malformed < behaviour.malformed_rate))

    def completion(self, body: dict[str, Any], malformed: bool) -> dict[str, Any]:
        text = "\n".join(str(m.get("content") or "") for m in body["messages"])
        content = answer_content(body)
        if malformed or "TEST-MALFORMED" in text:
            content = content[: len(content) // 2] + " <- cut off"
        # A tokenizer of its own, coarser than ours (about 4 characters a token), as a real
        # endpoint's counts differ from our estimate too.
        prompt_tokens = sum(4 + len(str(m.get("content") or "")) // 4 for m in body["messages"])
        completion_tokens = max(1, len(content) // 4)
        return {
            "id": f"chatcmpl-test-{hashlib.sha256(text.encode()).hexdigest()[:12]}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": body.get("model", "test-model"),
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": content},
                    "finish_reason": "stop",
                }
            ],
            "usage": {
                "prompt_tokens": prompt_tokens,
                "completion_tokens": completion_tokens,
                "total_tokens": prompt_tokens + completion_tokens,
            },
        }


class LLMTestServer(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 512
    models = ("gpt-4o-mini", "Qwen2.5-72B-Instruct", "test-model")

    def __init__(self, port: int, behaviour: Behaviour, host: str = "127.0.0.1"):
        super().__init__((host, port), Handler)
        self.behaviour = behaviour

    @property
    def base_url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host}:{port}/v1"


def start_in_thread(port: int = 0, **behaviour: Any) -> LLMTestServer:
    """A running server on ``port`` (0 = any free port); call ``shutdown()`` when done."""
    server = LLMTestServer(port, Behaviour(**behaviour))
    threading.Thread(target=server.serve_forever, name="llm-test-server", daemon=True).start()
    return server
