"""An endpoint's Batch API through the openai client: upload a JSONL file of chat-completions
requests, create a batch, check it, read its output and error files.

Every line of a results file names the request it answers (``custom_id``), so an error is one
request's: the others are read as usual. A request with no line in either file (a batch that
expired or was cancelled midway) is an error of its own too.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from openai.types import Batch as RemoteBatch

from relabel.llm.client import Endpoint, openai_client

COMPLETION_WINDOW = "24h"
CHAT_COMPLETIONS = "/v1/chat/completions"
FINISHED = {"completed", "failed", "expired", "cancelled"}
METADATA_KEY = "agenther_batch"


@dataclass(frozen=True)
class Result:
    """What a results file says about one request: the reply and its usage, or an error."""

    content: str = ""
    usage: dict[str, Any] | None = None
    error: str = ""


def request_line(custom_id: str, body: dict[str, Any]) -> str:
    line = {"custom_id": custom_id, "method": "POST", "url": CHAT_COMPLETIONS, "body": body}
    return json.dumps(line, ensure_ascii=False)


def submit(endpoint: Endpoint, timeout: float, lines: list[str], batch_id: int) -> RemoteBatch:
    """Uploads the request lines and creates the batch, labelled with our batch's id (so a
    worker that died before recording the remote id can find it again: ``find``)."""
    client = openai_client(endpoint, timeout)
    data = ("\n".join(lines) + "\n").encode()
    uploaded = client.files.create(
        file=(f"agenther-batch-{batch_id}.jsonl", data, "application/jsonl"), purpose="batch"
    )
    return client.batches.create(
        input_file_id=uploaded.id,
        endpoint=CHAT_COMPLETIONS,
        completion_window=COMPLETION_WINDOW,
        metadata={METADATA_KEY: str(batch_id)},
    )


def find(endpoint: Endpoint, timeout: float, batch_id: int) -> RemoteBatch | None:
    """The endpoint's batch labelled with our batch's id, among its 100 most recent."""
    page = openai_client(endpoint, timeout).batches.list(limit=100)
    for remote in page.data:
        if (remote.metadata or {}).get(METADATA_KEY) == str(batch_id):
            return remote
    return None


def retrieve(endpoint: Endpoint, timeout: float, remote_id: str) -> RemoteBatch:
    return openai_client(endpoint, timeout).batches.retrieve(remote_id)


def results(endpoint: Endpoint, timeout: float, remote: RemoteBatch) -> dict[str, Result]:
    """Every line of the batch's output and error files, by custom id."""
    client = openai_client(endpoint, timeout)
    found: dict[str, Result] = {}
    for file_id in (remote.output_file_id, remote.error_file_id):
        if not file_id:
            continue
        for line in client.files.content(file_id).text.splitlines():
            if line.strip():
                row = json.loads(line)
                found[str(row.get("custom_id"))] = parse_line(row)
    return found


def parse_line(row: dict[str, Any]) -> Result:
    """One line of a results file (OpenAI's format: ``response`` with the status code and the
    chat completion as ``body``, or ``error`` with a code and message)."""
    error = row.get("error") or {}
    if error:
        return Result(error=f"{error.get('code') or 'error'}: {error.get('message') or ''}")
    response = row.get("response") or {}
    body = response.get("body") or {}
    status = response.get("status_code")
    if status != 200:
        message = (body.get("error") or {}).get("message") if isinstance(body, dict) else None
        return Result(error=f"HTTP {status}: {message or json.dumps(body)[:300]}")
    choices = body.get("choices") or [{}]
    content = (choices[0].get("message") or {}).get("content") or ""
    return Result(content=content, usage=body.get("usage"))


def missing(remote: RemoteBatch) -> str:
    """The error of a request that has no line in the batch's files."""
    return f"no result for this request (the batch ended {remote.status})"
