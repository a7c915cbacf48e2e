"""Chat messages as each tool logs them, read into one form: OpenAI chat messages.

Traces spell the same conversation many ways: OpenAI chat messages (``tool_calls``), Responses
API items (``message`` / ``function_call`` / ``function_call_output`` / ``reasoning``),
Anthropic content blocks (``text`` / ``thinking`` / ``tool_use`` / ``tool_result``),
OpenTelemetry GenAI ``parts`` (``text`` / ``reasoning`` / ``tool_call`` /
``tool_call_response``) and LangChain's serialised messages (``type: human | ai | tool``,
``additional_kwargs.tool_calls``). ``openai_messages`` turns any mix of them into OpenAI chat
messages, the agent's reasoning in ``reasoning`` beside ``content``; base.normalise_message reads
the result like any other log. ``openai_tools`` does the same for tool schemas.
"""

from __future__ import annotations

import json
from typing import Any

from relabel.importers.base import text_of

# Responses API items that are part of the assistant's turn.
RESPONSES_TURN = {"message", "function_call", "reasoning", "custom_tool_call"}
ANTHROPIC_BLOCKS = {"text", "thinking", "redacted_thinking", "tool_use", "tool_result"}
LANGCHAIN_ROLES = {
    "human": "user",
    "ai": "assistant",
    "tool": "tool",
    "function": "tool",
    "system": "system",
    "HumanMessage": "user",
    "AIMessage": "assistant",
    "AIMessageChunk": "assistant",
    "ToolMessage": "tool",
    "FunctionMessage": "tool",
    "SystemMessage": "system",
}


def decode(value: Any) -> Any:
    """A JSON document stored as a string (some exporters encode twice) as its value; anything
    else, or a string that is not JSON, as it is."""
    for _ in range(3):
        if not isinstance(value, str) or value.strip()[:1] not in ("{", "[", '"'):
            return value
        try:
            value = json.loads(value)
        except ValueError:
            return value
    return value


def arguments_text(arguments: Any) -> str:
    """Tool-call arguments as the JSON string OpenAI messages carry."""
    if isinstance(arguments, str):
        return arguments
    return json.dumps({} if arguments is None else arguments, ensure_ascii=False)


def call(call_id: Any, name: Any, arguments: Any) -> dict[str, Any]:
    return {
        "id": str(call_id or ""),
        "type": "function",
        "function": {"name": str(name or "unknown"), "arguments": arguments_text(arguments)},
    }


def tool_message(call_id: Any, content: Any, name: Any = "", error: bool = False) -> dict:
    text = content if isinstance(content, str) else text_of(decode(content))
    return {
        "role": "tool",
        "tool_call_id": str(call_id or ""),
        "name": str(name or ""),
        "content": f"[error] {text}" if error else text,
    }


def openai_messages(value: Any, default_role: str = "user") -> list[dict[str, Any]]:
    """Any message list (or one message, a model response, a prompt string) as OpenAI chat
    messages; ``default_role`` is what a bare string is (a prompt, or a model's answer). JSON
    text that holds no messages (a structured answer) is a message of its own."""
    messages = _messages(decode(value), default_role)
    if not messages and isinstance(value, str) and value.strip():
        return [{"role": default_role, "content": value}]
    return messages


def _messages(value: Any, default_role: str) -> list[dict[str, Any]]:
    if isinstance(value, str):
        return [{"role": default_role, "content": value}] if value.strip() else []
    if isinstance(value, dict):
        return _from_object(value, default_role)
    if not isinstance(value, list):
        return []
    if value and all(isinstance(v, list) for v in value):  # LangChain batches: [[...]]
        value = value[0]
    out: list[dict[str, Any]] = []
    for item in value:
        for message in _from_item(decode(item), default_role):
            _append(out, message)
    return [{k: v for k, v in m.items() if k != "_turn"} for m in out]


def _from_object(value: dict[str, Any], default_role: str) -> list[dict[str, Any]]:
    """A container of messages, or a model's response, or one message."""
    if isinstance(value.get("messages"), list):
        return openai_messages(value["messages"], default_role)
    if value.get("object") == "response" or (
        isinstance(value.get("output"), list) and "role" not in value
    ):
        return openai_messages(value.get("output") or [], "assistant")
    if isinstance(value.get("choices"), list) and value["choices"]:
        first = value["choices"][0]
        message = first.get("message") if isinstance(first, dict) else None
        return openai_messages([message or {"role": "assistant", "content": first.get("text")}])
    if isinstance(value.get("generations"), list):
        return _from_generations(value["generations"])
    if "role" in value or "type" in value or "lc" in value:
        return openai_messages([value], default_role)
    for key in ("text", "content", "output", "answer", "input", "question", "query"):
        if isinstance(value.get(key), str):
            return openai_messages(value[key], default_role)
    return []


def _from_generations(generations: list[Any]) -> list[dict[str, Any]]:
    """LangChain's LLMResult: ``[[{"text", "message": {...}}]]``."""
    first = generations[0] if generations else []
    first = first[0] if isinstance(first, list) and first else first
    if not isinstance(first, dict):
        return []
    if first.get("message"):
        return openai_messages([first["message"]], "assistant")
    return openai_messages(text_of(first.get("text")), "assistant")


def _from_item(item: Any, default_role: str) -> list[dict[str, Any]]:
    if isinstance(item, str):
        return [{"role": default_role, "content": item}]
    if not isinstance(item, dict):
        return []
    if "lc" in item and isinstance(item.get("kwargs"), dict):  # LangChain constructor form
        kind = (item.get("id") or ["", "HumanMessage"])[-1]
        return _from_langchain({**item["kwargs"], "type": kind})
    kind = item.get("type")
    if "role" in item and isinstance(item.get("content"), list) and _has_blocks(item["content"]):
        return _from_blocks(item)  # before Responses items: an Anthropic response is "message" too
    if kind in RESPONSES_TURN or kind == "function_call_output":
        return _from_responses_item(item)
    if "role" not in item and kind in LANGCHAIN_ROLES:
        return _from_langchain(item)
    if "role" not in item:
        return []
    if _is_tool_definition(item):
        return []
    if isinstance(item.get("parts"), list):
        return _from_parts(item)
    if isinstance(item.get("content"), list) and _has_blocks(item["content"]):
        return _from_blocks(item)
    return [_plain(item)]


def _plain(item: dict[str, Any]) -> dict[str, Any]:
    """An OpenAI chat message (or one close to it) with its content as text."""
    message = dict(item)
    message["content"] = text_of(decode(item.get("content")))
    extra = item.get("additional_kwargs")  # LangChain's dump of an OpenAI message
    calls = item.get("tool_calls") or (extra.get("tool_calls") if isinstance(extra, dict) else None)
    if isinstance(calls, list):
        message["tool_calls"] = [_openai_call(c) for c in calls if isinstance(c, dict)]
    return message


def _openai_call(c: dict[str, Any]) -> dict[str, Any]:
    fn = c.get("function") if isinstance(c.get("function"), dict) else c
    arguments = fn.get("arguments", fn.get("args", fn.get("input")))
    return call(c.get("id") or c.get("call_id"), fn.get("name"), arguments)


def _is_tool_definition(item: dict[str, Any]) -> bool:
    """Langfuse's LangChain integration lists the offered tools as "tool" messages."""
    content = decode(item.get("content"))
    return (
        item.get("role") == "tool"
        and isinstance(content, dict)
        and isinstance(content.get("function"), dict)
        and not item.get("tool_call_id")
    )


def _from_langchain(item: dict[str, Any]) -> list[dict[str, Any]]:
    role = LANGCHAIN_ROLES.get(str(item.get("type")), "user")
    message: dict[str, Any] = {"role": role, "content": text_of(decode(item.get("content")))}
    if item.get("name"):
        message["name"] = item["name"]
    extra = item.get("additional_kwargs") if isinstance(item.get("additional_kwargs"), dict) else {}
    calls = item.get("tool_calls") or extra.get("tool_calls") or []
    if role == "assistant" and calls:
        message["tool_calls"] = [_openai_call(c) for c in calls if isinstance(c, dict)]
    if role == "tool":
        message["tool_call_id"] = item.get("tool_call_id") or ""
    if extra.get("reasoning_content"):
        message["reasoning"] = text_of(extra["reasoning_content"])
    return [message]


def _from_responses_item(item: dict[str, Any]) -> list[dict[str, Any]]:
    kind = item.get("type")
    if kind == "function_call_output":
        return [tool_message(item.get("call_id"), item.get("output"))]
    turn: dict[str, Any] = {"role": "assistant", "content": "", "_turn": True}
    if kind == "reasoning":
        parts = (item.get("summary") or []) + (item.get("content") or [])
        turn["reasoning"] = "\n".join(text_of(p.get("text")) for p in parts if isinstance(p, dict))
    elif kind in ("function_call", "custom_tool_call"):
        arguments = item.get("arguments", item.get("input"))
        turn["tool_calls"] = [call(item.get("call_id") or item.get("id"), item["name"], arguments)]
    elif item.get("role", "assistant") != "assistant":
        return [{"role": item["role"], "content": text_of(item.get("content"))}]
    else:
        turn["content"] = text_of(item.get("content"))
    return [turn]


def _has_blocks(content: list[Any]) -> bool:
    return any(isinstance(b, dict) and b.get("type") in ANTHROPIC_BLOCKS for b in content)


def _from_blocks(item: dict[str, Any]) -> list[dict[str, Any]]:
    """An Anthropic message: tool results are tool messages of their own, before the text."""
    out: list[dict[str, Any]] = []
    message: dict[str, Any] = {"role": item["role"], "content": "", "tool_calls": []}
    texts, thoughts = [], []
    for block in item["content"]:
        kind = block.get("type") if isinstance(block, dict) else None
        if kind == "text":
            texts.append(text_of(block.get("text")))
        elif kind == "thinking":
            thoughts.append(text_of(block.get("thinking")))
        elif kind == "redacted_thinking":
            thoughts.append("(redacted thinking)")
        elif kind in ("tool_use", "server_tool_use"):
            message["tool_calls"].append(
                call(block.get("id"), block.get("name"), block.get("input"))
            )
        elif kind == "tool_result":
            result = block.get("content")
            out.append(
                tool_message(block.get("tool_use_id"), result, error=bool(block.get("is_error")))
            )
    message["content"] = "\n".join(texts)
    if thoughts:
        message["reasoning"] = "\n\n".join(thoughts)
    if message["content"] or message["tool_calls"] or thoughts:
        out.append(message)
    return out


def _from_parts(item: dict[str, Any]) -> list[dict[str, Any]]:
    """An OpenTelemetry GenAI message: ``{role, parts: [...]}``."""
    out: list[dict[str, Any]] = []
    message: dict[str, Any] = {"role": item["role"], "content": "", "tool_calls": []}
    texts, thoughts = [], []
    for part in item["parts"]:
        kind = part.get("type") if isinstance(part, dict) else None
        if kind == "text":
            texts.append(text_of(part.get("content", part.get("text"))))
        elif kind in ("reasoning", "thinking"):
            thoughts.append(text_of(part.get("content", part.get("text"))))
        elif kind == "tool_call":
            message["tool_calls"].append(
                call(part.get("id"), part.get("name"), part.get("arguments"))
            )
        elif kind == "tool_call_response":
            result = part.get("response", part.get("result"))
            out.append(tool_message(part.get("id"), result, part.get("name")))
    message["content"] = "\n".join(texts)
    if thoughts:
        message["reasoning"] = "\n\n".join(thoughts)
    if item.get("name"):
        message["name"] = item["name"]
    if item["role"] == "tool":
        message["tool_call_id"] = str(item.get("id") or "")
    if message["content"] or message["tool_calls"] or thoughts:
        out.append(message)
    return out


def _append(out: list[dict[str, Any]], message: dict[str, Any]) -> None:
    """Responses items of one assistant turn (reasoning, text, calls) become one message; text
    or reasoning after a call starts the next turn."""
    last = out[-1] if out else None
    if not (message.get("_turn") and last is not None and last.get("_turn")):
        out.append(message)
        return
    if last.get("tool_calls") and not message.get("tool_calls"):
        out.append(message)
        return
    if message.get("reasoning"):
        last["reasoning"] = "\n\n".join(
            r for r in (last.get("reasoning"), message["reasoning"]) if r
        )
    if message.get("content"):
        last["content"] = "\n".join(c for c in (last["content"], message["content"]) if c)
    if message.get("tool_calls"):
        last["tool_calls"] = [*(last.get("tool_calls") or []), *message["tool_calls"]]


def openai_tools(value: Any) -> list[dict[str, Any]]:
    """Tool schemas in OpenAI's form, from OpenAI, Responses or Anthropic definitions."""
    value = decode(value)
    if not isinstance(value, list):
        return []
    out = []
    for tool in value:
        tool = decode(tool)
        if not isinstance(tool, dict):
            continue
        if isinstance(tool.get("function"), dict):
            out.append({"type": "function", "function": tool["function"]})
        elif tool.get("name"):
            schema = tool.get(
                "parameters", tool.get("input_schema", tool.get("parameters_json_schema"))
            )
            fn = {"name": tool["name"], "description": tool.get("description", "")}
            out.append({"type": "function", "function": {**fn, "parameters": schema or {}}})
    return out
