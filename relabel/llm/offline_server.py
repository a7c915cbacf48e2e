"""An OpenAI-compatible HTTP server for tests and benchmarks: deterministic, offline, concurrent.

It serves ``POST /v1/chat/completions`` and ``GET /v1/models``, and the Batch API: ``POST
/v1/files`` (multipart upload), ``GET /v1/files/{id}`` and ``/content``, ``POST /v1/batches``,
``GET /v1/batches/{id}``, ``GET /v1/batches`` and ``POST /v1/batches/{id}/cancel``. A batch stays
``in_progress`` for ``batch_delay_ms`` after it was created; the first time it is retrieved after
that, its requests are answered and it is ``completed`` with an output file (answered requests)
and an error file (requests that failed), in OpenAI's formats.

It recognises the stage from the JSON-schema name in ``response_format`` (or, in JSON-object mode,
from the task line of the prompt) and answers with schema-valid JSON derived from a hash of what
the stage sees (the model and the prompt without repair turns), so the same request always gets
the same answer, plus usage figures: prompt tokens count the messages and the response schema
(about 4 characters a token, coarser than our own estimate, as a real endpoint's counts differ from
it too), and ``prompt_tokens_details.cached_tokens`` reports a repeated prefix the way OpenAI
documents its prompt cache: per model, prefixes of 1,024 tokens and more, in increments of 128
tokens, the response schema counting as a prefix of the system message. Each request waits
``latency_ms`` in its own thread, so 32+ concurrent requests overlap as they would against a real
endpoint.

``error_rate`` answers a share of requests with 429 or 500 (batch lines: in the error file);
``malformed_rate`` a share with content that is not JSON. Markers in a prompt force a behaviour,
for tests: TEST-ECHO (in the original goal: the relabel answer quotes it), TEST-VETO (judges
reject; TEST-ACCEPT: they never veto at random), TEST-MALFORMED (every answer is malformed),
TEST-BATCH-ERROR (a batch line fails),
TEST-SEVERITY=0.9 and TEST-CONFIDENCE=0.3 (fix the detect severity and the relabel confidence),
TEST-SUCCEEDED=true|false (the detect answer on a run whose outcome was not recorded);
TEST-CONTRADICT (in a step: the judges say it contradicts the goal) and TEST-REWRITE-TOOL (the
consistency rewrite also touches an observation).
"""

from __future__ import annotations

import hashlib
import itertools
import json
import random
import re
import threading
import time
from collections import OrderedDict
from email.parser import BytesParser
from email.policy import HTTP
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from relabel.llm.prompts import FAILURE_TYPES

STEP_HEADER = re.compile(r"^### Step (\d+)$", re.MULTILINE)
ACTION_LINE = re.compile(r"^action: ([\w.\-]+)\(", re.MULTILINE)
ORIGINAL_GOAL = re.compile(r"^Original goal[^:]*: (.*)$", re.MULTILINE)
MARKER = re.compile(r"TEST-(SEVERITY|CONFIDENCE)=([0-9.]+)")
SUCCEEDED = re.compile(r"TEST-SUCCEEDED=(true|false)")
UNKNOWN_OUTCOME = "whose outcome was not recorded"
TURN_HEADER = re.compile(r"^### Turn (.+)$", re.MULTILINE)
TASK_LINE = re.compile(r"Task \(([\w+]+), AgentHER prompts|^Stage: (\w+)", re.MULTILINE)
REPAIR = "That reply was not usable"
STAGES = ("detect+extract", "detect", "extract", "relabel", "judge", "consistency")
CACHE_MIN_TOKENS, CACHE_INCREMENT = 1024, 128


def prompt_stage(body: dict[str, Any]) -> str:
    fmt = body.get("response_format") or {}
    name = (fmt.get("json_schema") or {}).get("name", "")
    for stage in STAGES:
        if f"_{stage.replace('+', '_')}_" in name:
            return stage
    text = "\n".join(str(m.get("content") or "") for m in body["messages"])
    match = TASK_LINE.search(text)
    stage = match and (match.group(1) or match.group(2))
    return stage if stage in STAGES else "unknown"


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


def _detect_extract(text: str, u: list[float]) -> dict[str, Any]:
    return {"detection": _detect(text, u), "extraction": _extract(text, u)}


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
    veto = "TEST-VETO" in text or (u[3] < 0.1 and "TEST-ACCEPT" not in text)
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
    "detect+extract": _detect_extract,
    "detect": _detect,
    "extract": _extract,
    "relabel": _relabel,
    "judge": _judge,
    "consistency": _consistency,
}


def _seen(body: dict[str, Any]) -> str:
    """What the stage's answer depends on: the model and the prompt without repair turns (so a
    re-ask gets the same valid answer), refusals of earlier attempts included (so a retry does
    not repeat itself)."""
    messages = body["messages"]
    kept = []
    for i, m in enumerate(messages):
        follows = messages[i + 1] if i + 1 < len(messages) else {}
        repair = str(m.get("content") or "").startswith(REPAIR)
        answered = m["role"] == "assistant" and str(follows.get("content") or "").startswith(REPAIR)
        if m["role"] != "system" and not repair and not answered:
            kept.append(str(m.get("content") or ""))
    return str(body.get("model", "")) + "\n" + "\n".join(kept)


def answer_content(body: dict[str, Any], salt: str = "") -> str:
    """The deterministic, schema-valid JSON reply for a chat-completions request; ``salt``
    draws another, equally likely set of answers (a benchmark averages over several)."""
    stage = prompt_stage(body)
    text = "\n".join(str(m.get("content") or "") for m in body["messages"])
    if stage not in ANSWERS:
        return json.dumps({"answer": "This test server only answers AgentHER stage prompts."})
    return json.dumps(ANSWERS[stage](text, _units(salt + _seen(body))))


def token_stream(body: dict[str, Any]) -> tuple[int, str]:
    """The prompt's token count and a text with 4 characters per counted token: the response
    schema first (OpenAI: "the schema serves as a prefix to the system message"), then per
    message a 4-token role marker and its content."""
    pieces = []
    fmt = body.get("response_format") or {}
    if fmt.get("type") == "json_schema":
        schema = json.dumps(fmt.get("json_schema") or {}, sort_keys=True)
        pieces.append(schema[: len(schema) // 4 * 4])
    for m in body["messages"]:
        content = str(m.get("content") or "")
        pieces.append(f"<|{m['role']}|>".ljust(16)[:16] + content[: len(content) // 4 * 4])
    stream = "".join(pieces)
    return len(stream) // 4, stream


class PrefixCache:
    """Which prompt prefixes a model has seen: OpenAI's prompt cache, in miniature."""

    def __init__(self, capacity: int = 300_000):
        self.capacity = capacity
        self.seen: OrderedDict[bytes, None] = OrderedDict()
        self.lock = threading.Lock()

    def clear(self) -> None:
        """Forgets every prefix (a benchmark's runs must not serve each other)."""
        with self.lock:
            self.seen.clear()

    def cached_tokens(self, model: str, stream: str) -> int:
        """The longest prefix of ``stream`` (a multiple of 128 tokens from 1,024 on) seen
        before for ``model``; then remembers this prompt's prefixes."""
        tokens = len(stream) // 4
        digest = hashlib.sha256(model.encode() + b"\0")
        points, done = [], 0
        for end in range(CACHE_MIN_TOKENS, tokens + 1, CACHE_INCREMENT):
            digest.update(stream[done * 4 : end * 4].encode())
            points.append((end, digest.digest()))
            done = end
        with self.lock:
            hit = max((end for end, key in points if key in self.seen), default=0)
            for _, key in points:
                self.seen[key] = None
                self.seen.move_to_end(key)
            while len(self.seen) > self.capacity:
                self.seen.popitem(last=False)
        return hit


class Behaviour:
    """Latency and injected faults, shared by the handler threads."""

    def __init__(
        self,
        latency_ms: float = 0,
        error_rate: float = 0,
        malformed_rate: float = 0,
        seed: int = 0,
        batch_delay_ms: float = 0,
        salt: str = "",
    ):
        self.latency = latency_ms / 1000
        # Mixed into what every answer is drawn from: another salt, another set of answers.
        self.salt = salt
        self.error_rate = error_rate
        self.malformed_rate = malformed_rate
        self.batch_delay = batch_delay_ms / 1000
        self.random = random.Random(seed)
        self.lock = threading.Lock()
        self.requests = 0
        self.batch_lines = 0  # chat requests answered through the Batch API
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

    def draw_for_batch(self) -> tuple[float, float]:
        with self.lock:
            self.batch_lines += 1
            return self.random.random(), self.random.random()

    def done(self) -> None:
        with self.lock:
            self.in_flight -= 1


def completion(
    body: dict[str, Any], malformed: bool, cache: PrefixCache, request_id: str = "", salt: str = ""
) -> dict[str, Any]:
    """A chat completion for ``body``, with usage figures (cached tokens included)."""
    text = "\n".join(str(m.get("content") or "") for m in body["messages"])
    content = answer_content(body, salt)
    if malformed or "TEST-MALFORMED" in text:
        content = content[: len(content) // 2] + " <- cut off"
    prompt_tokens, stream = token_stream(body)
    cached = cache.cached_tokens(str(body.get("model", "")), stream)
    completion_tokens = max(1, len(content) // 4)
    return {
        "id": request_id or f"chatcmpl-test-{hashlib.sha256(text.encode()).hexdigest()[:12]}",
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
            "prompt_tokens_details": {"cached_tokens": cached},
        },
    }


class BatchStore:
    """The files and batches of the Batch API, in memory."""

    def __init__(self, behaviour: Behaviour, cache: PrefixCache):
        self.behaviour = behaviour
        self.cache = cache
        self.files: dict[str, dict[str, Any]] = {}
        self.contents: dict[str, bytes] = {}
        self.batches: dict[str, dict[str, Any]] = {}
        self.started: dict[str, float] = {}
        self.lock = threading.Lock()
        self.ids = itertools.count(1)

    def add_file(self, content: bytes, filename: str, purpose: str) -> dict[str, Any]:
        with self.lock:
            file_id = f"file-test{next(self.ids)}"
            self.files[file_id] = {
                "id": file_id,
                "object": "file",
                "bytes": len(content),
                "created_at": int(time.time()),
                "filename": filename,
                "purpose": purpose,
                "status": "processed",
            }
            self.contents[file_id] = content
            return self.files[file_id]

    def create_batch(self, request: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        file_id = request.get("input_file_id", "")
        if file_id not in self.files:
            return 404, {"error": {"message": f"no file {file_id!r}", "type": "invalid_request"}}
        if request.get("endpoint") != "/v1/chat/completions":
            return 400, {"error": {"message": "endpoint must be /v1/chat/completions"}}
        lines = self.contents[file_id].decode().splitlines()
        with self.lock:
            batch_id = f"batch_test{next(self.ids)}"
            self.batches[batch_id] = {
                "id": batch_id,
                "object": "batch",
                "endpoint": request["endpoint"],
                "input_file_id": file_id,
                "completion_window": request.get("completion_window", "24h"),
                "status": "in_progress",
                "created_at": int(time.time()),
                "metadata": request.get("metadata") or {},
                "output_file_id": None,
                "error_file_id": None,
                "errors": None,
                "request_counts": {"total": len(lines), "completed": 0, "failed": 0},
            }
            self.started[batch_id] = time.monotonic()
            return 200, dict(self.batches[batch_id])

    def retrieve(self, batch_id: str) -> dict[str, Any] | None:
        with self.lock:
            batch = self.batches.get(batch_id)
            if batch is None:
                return None
            due = time.monotonic() - self.started[batch_id] >= self.behaviour.batch_delay
            if batch["status"] == "in_progress" and due:
                self._run(batch)
            return dict(batch)

    def cancel(self, batch_id: str) -> dict[str, Any] | None:
        with self.lock:
            batch = self.batches.get(batch_id)
            if batch is not None and batch["status"] == "in_progress":
                batch.update(status="cancelled", cancelled_at=int(time.time()))
            return dict(batch) if batch else None

    def listing(self, limit: int) -> dict[str, Any]:
        with self.lock:
            data = [dict(b) for b in reversed(self.batches.values())][:limit]
        return {"object": "list", "data": data, "has_more": len(self.batches) > limit}

    def _run(self, batch: dict[str, Any]) -> None:
        """Answers every request line (the lock is held: nothing else sees a half-done batch)."""
        outputs, errors = [], []
        for n, line in enumerate(self.contents[batch["input_file_id"]].decode().splitlines()):
            if line.strip():
                ok, row = self._answer_line(json.loads(line), f"{batch['id']}_{n}")
                (outputs if ok else errors).append(json.dumps(row))
        batch["request_counts"].update(completed=len(outputs), failed=len(errors))
        batch.update(status="completed", completed_at=int(time.time()))
        for kind, rows in (("output_file_id", outputs), ("error_file_id", errors)):
            if rows:
                batch[kind] = self._store_output("\n".join(rows) + "\n", batch["id"], kind)

    def _store_output(self, text: str, batch_id: str, kind: str) -> str:
        file_id = f"file-test{next(self.ids)}"
        self.files[file_id] = {
            "id": file_id,
            "object": "file",
            "bytes": len(text),
            "created_at": int(time.time()),
            "filename": f"{batch_id}_{kind.removesuffix('_file_id')}.jsonl",
            "purpose": "batch_output",
            "status": "processed",
        }
        self.contents[file_id] = text.encode()
        return file_id

    def _answer_line(self, line: dict[str, Any], request_id: str) -> tuple[bool, dict[str, Any]]:
        body = line.get("body") or {}
        fault, malformed = self.behaviour.draw_for_batch()
        text = json.dumps(body.get("messages", []))
        row = {"id": f"batch_req_{request_id}", "custom_id": line.get("custom_id")}
        if fault < self.behaviour.error_rate or "TEST-BATCH-ERROR" in text:
            error = {"message": "injected fault", "type": "server_error"}
            response = {"status_code": 500, "request_id": request_id, "body": {"error": error}}
            return False, {**row, "response": response, "error": None}
        bad = malformed < self.behaviour.malformed_rate
        answer = completion(body, bad, self.cache, request_id, self.behaviour.salt)
        response = {"status_code": 200, "request_id": request_id, "body": answer}
        return True, {**row, "response": response, "error": None}


def multipart_fields(content_type: str, data: bytes) -> dict[str, tuple[str, bytes]]:
    """The fields of a multipart/form-data body: name -> (filename, bytes)."""
    head = f"Content-Type: {content_type}\r\nMIME-Version: 1.0\r\n\r\n".encode()
    message = BytesParser(policy=HTTP).parsebytes(head + data)
    fields = {}
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        fields[str(name)] = (part.get_filename() or "", part.get_payload(decode=True) or b"")
    return fields


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive: the client reuses its connections
    # Headers and body go out in two writes; without TCP_NODELAY, Nagle's algorithm holds the
    # body back until the client's delayed ACK, adding up to 40 ms to every request.
    disable_nagle_algorithm = True
    server: LLMTestServer

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _send(self, status: int, payload: Any, headers: dict[str, str] | None = None) -> None:
        raw = isinstance(payload, bytes)
        data = payload if raw else json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/octet-stream" if raw else "application/json")
        self.send_header("Content-Length", str(len(data)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)

    def _not_found(self) -> None:
        self._send(404, {"error": {"message": f"no route {self.path}"}})

    def _route(self) -> list[str]:
        path = self.path.split("?", 1)[0].rstrip("/")
        return path[path.index("/v1") + 4 :].split("/") if "/v1/" in path else []

    def do_GET(self) -> None:
        store, route = self.server.store, self._route()
        if route == ["models"]:
            models = [{"id": m, "object": "model", "owned_by": "test"} for m in self.server.models]
            self._send(200, {"object": "list", "data": models})
        elif route[:1] == ["files"] and route[2:] == ["content"] and route[1] in store.contents:
            self._send(200, store.contents[route[1]])
        elif route[:1] == ["files"] and len(route) == 2 and route[1] in store.files:
            self._send(200, store.files[route[1]])
        elif route == ["batches"]:
            limit = re.search(r"limit=(\d+)", self.path)
            self._send(200, store.listing(int(limit.group(1)) if limit else 20))
        elif route[:1] == ["batches"] and len(route) == 2:
            self._send_or_404(store.retrieve(route[1]))
        else:
            self._not_found()

    def _send_or_404(self, payload: dict[str, Any] | None) -> None:
        if payload is None:
            self._not_found()
        else:
            self._send(200, payload)

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length)
        route = self._route()
        if route[-2:] == ["chat", "completions"]:  # any prefix: tests mount "endpoints" on paths
            self._chat(raw)
        elif route == ["files"]:
            fields = multipart_fields(self.headers.get("Content-Type", ""), raw)
            filename, content = fields.get("file", ("", b""))
            purpose = fields.get("purpose", ("", b"batch"))[1].decode()
            self._send(200, self.server.store.add_file(content, filename, purpose))
        elif route == ["batches"]:
            self._send(*self.server.store.create_batch(json.loads(raw or b"{}")))
        elif route[:1] == ["batches"] and route[2:] == ["cancel"]:
            self._send_or_404(self.server.store.cancel(route[1]))
        else:
            self._not_found()

    def _chat(self, raw: bytes) -> None:
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
        bad = malformed < behaviour.malformed_rate
        self._send(200, completion(body, bad, self.server.cache, salt=behaviour.salt))


class LLMTestServer(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 512
    models = ("gpt-4o-mini", "Qwen2.5-72B-Instruct", "test-model")

    def __init__(self, port: int, behaviour: Behaviour, host: str = "127.0.0.1"):
        super().__init__((host, port), Handler)
        self.behaviour = behaviour
        self.cache = PrefixCache()
        self.store = BatchStore(behaviour, self.cache)

    @property
    def base_url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host}:{port}/v1"


def start_in_thread(port: int = 0, **behaviour: Any) -> LLMTestServer:
    """A running server on ``port`` (0 = any free port); call ``shutdown()`` when done."""
    server = LLMTestServer(port, Behaviour(**behaviour))
    threading.Thread(target=server.serve_forever, name="llm-test-server", daemon=True).start()
    return server
