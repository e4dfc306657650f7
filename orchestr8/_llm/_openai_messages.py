"""The neutral call model in the Chat Completions shape: messages, tools, JSON output, limits.

`chat_completion_body(request, ...)` turns a `ChatRequest` into the JSON body of
`POST /chat/completions`. Anthropic's content blocks, which the neutral model uses, become what
OpenAI-compatible servers expect: the system prompt is the first message (`role: "system"`); an
assistant's `tool_use` blocks become its `tool_calls` (arguments as a JSON string); each
`tool_result` block becomes a `role: "tool"` message answering its `tool_call_id` (an error
result's text starts with ``error: ``, since the format has no error flag); text blocks are
joined into one string (older local servers reject lists of content parts).

JSON output: a provider with the `json_output` capability gets ``response_format`` ``json_schema``
(``strict: false``, because strict mode rejects most hand-written schemas; the `llm` agent
validates the reply against the schema anyway); one without it gets the older ``json_object``
mode, with the schema spelled out in the system message (that mode needs the word JSON there).
The reply limit is ``max_completion_tokens`` for OpenAI's own API (its reasoning models refuse
``max_tokens``) and ``max_tokens`` for every other server (Ollama and older servers know only it).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from ._chat import Capability, ChatRequest, ToolSpec

__all__ = ["chat_completion_body"]

_JSON_OBJECT_INSTRUCTION = (
    "Answer with one JSON object only, no prose, that validates against this JSON Schema:\n"
)


def _text_of(blocks: Sequence[Mapping[str, Any]]) -> str:
    return "".join(str(block.get("text", "")) for block in blocks if block.get("type") == "text")


def _tool_result_content(block: Mapping[str, Any]) -> str:
    content = block.get("content", "")
    text = content if isinstance(content, str) else json.dumps(content, ensure_ascii=False)
    return f"error: {text}" if block.get("is_error") else text


def _assistant_message(blocks: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    text = _text_of(blocks)
    message: dict[str, Any] = {"role": "assistant", "content": text or None}
    calls = [
        {
            "id": str(block["id"]),
            "type": "function",
            "function": {
                "name": str(block["name"]),
                "arguments": json.dumps(block.get("input", {}), ensure_ascii=False),
            },
        }
        for block in blocks
        if block.get("type") == "tool_use"
    ]
    if calls:
        message["tool_calls"] = calls
    return message


def _user_messages(blocks: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    messages: list[dict[str, Any]] = [
        {
            "role": "tool",
            "tool_call_id": str(block["tool_use_id"]),
            "content": _tool_result_content(block),
        }
        for block in blocks
        if block.get("type") == "tool_result"
    ]
    text = _text_of(blocks)
    if text or not messages:
        messages.append({"role": "user", "content": text})
    return messages


def _messages(request: ChatRequest, system: str | None) -> list[dict[str, Any]]:
    messages: list[dict[str, Any]] = []
    if system:
        messages.append({"role": "system", "content": system})
    for message in request.messages:
        if isinstance(message.content, str):
            messages.append({"role": message.role, "content": message.content})
        elif message.role == "assistant":
            messages.append(_assistant_message(message.content))
        else:
            messages.extend(_user_messages(message.content))
    return messages


def _tool(tool: ToolSpec) -> dict[str, Any]:
    return {
        "type": "function",
        "function": {
            "name": tool.name,
            "description": tool.description,
            "parameters": dict(tool.input_schema),
        },
    }


def chat_completion_body(
    request: ChatRequest, *, capabilities: frozenset[Capability], official_api: bool
) -> dict[str, Any]:
    """The JSON body of a Chat Completions request for `request` (see the module docstring).

    `official_api` is whether the server is OpenAI's own API (the reply limit's name).
    """
    system = request.system
    body: dict[str, Any] = {"model": request.model}
    if request.json_schema is not None:
        schema = dict(request.json_schema)
        if Capability.JSON_OUTPUT in capabilities:
            body["response_format"] = {
                "type": "json_schema",
                "json_schema": {"name": "output", "schema": schema, "strict": False},
            }
        else:
            body["response_format"] = {"type": "json_object"}
            instruction = _JSON_OBJECT_INSTRUCTION + json.dumps(schema, ensure_ascii=False)
            system = f"{system}\n\n{instruction}" if system else instruction
    body["messages"] = _messages(request, system)
    body["max_completion_tokens" if official_api else "max_tokens"] = request.max_tokens
    if request.temperature is not None:
        body["temperature"] = request.temperature
    if request.tools:
        body["tools"] = [_tool(tool) for tool in request.tools]
    if request.stream:
        body["stream"] = True
        body["stream_options"] = {"include_usage": True}
    return body
