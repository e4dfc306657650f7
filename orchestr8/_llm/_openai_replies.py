"""Chat Completions answers read into the neutral `ChatReply`: streamed chunks or one JSON body.

`StreamedCompletion` takes the lines of a server-sent-event stream one by one (`data: {chunk}`,
then `data: [DONE]`): it hands text deltas on as they come, assembles each tool call from its
argument deltas, and keeps the finish reason and the usage chunk. `completion_reply` reads a
non-streamed `chat.completion` body. Both check what they read: a line that is not JSON, a chunk
or body without `choices`, a stream that ends before its finish reason (or sends no chunk at all,
as a server answering a stream request with JSON does), or tool arguments that are not a JSON
object raise `ProviderResponseError` naming the provider and what was wrong; an error chunk in
the stream is returned to the caller to classify. Finish reasons are normalised (`stop` →
`end_turn`, `length` → `max_tokens`, `tool_calls` → `tool_use`, `content_filter` kept).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any

import attrs

from .._errors import ProviderResponseError
from ._chat import ChatMessage, ChatReply, ToolCall, Usage

__all__ = ["StreamedCompletion", "completion_reply", "reply_characters", "usage_of"]

_STOP_REASONS = {
    "stop": "end_turn",
    "length": "max_tokens",
    "tool_calls": "tool_use",
    "function_call": "tool_use",
    "content_filter": "content_filter",
}


def _count(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else 0


def usage_of(usage: Mapping[str, Any]) -> Usage:
    """The neutral usage of an OpenAI `usage` object (missing or odd fields count 0).

    `input_tokens` is `prompt_tokens`, which includes the cached ones
    (`prompt_tokens_details.cached_tokens`); `output_tokens` is `completion_tokens`, which
    includes the reasoning ones (`completion_tokens_details.reasoning_tokens`).
    """
    prompt_details = usage.get("prompt_tokens_details")
    completion_details = usage.get("completion_tokens_details")
    return Usage(
        input_tokens=_count(usage.get("prompt_tokens")),
        output_tokens=_count(usage.get("completion_tokens")),
        cached_input_tokens=_count(
            prompt_details.get("cached_tokens") if isinstance(prompt_details, Mapping) else 0
        ),
        reasoning_tokens=_count(
            completion_details.get("reasoning_tokens")
            if isinstance(completion_details, Mapping)
            else 0
        ),
    )


@attrs.define
class _ToolCallParts:
    id: str = ""
    name: str = ""
    arguments: list[str] = attrs.field(factory=list)


def _tool_calls(
    parts: list[_ToolCallParts], problem: Callable[[str], ProviderResponseError]
) -> tuple[ToolCall, ...]:
    calls = []
    for number, part in enumerate(parts, 1):
        if not part.name:
            raise problem(f"tool call {number} has no function name")
        text = "".join(part.arguments) or "{}"
        try:
            arguments = json.loads(text)
        except ValueError as error:
            raise problem(
                f"the arguments of tool call {number} ({part.name!r}) are not JSON ({error}): "
                f"{text[:200]!r}"
            ) from None
        if not isinstance(arguments, dict):
            raise problem(
                f"the arguments of tool call {number} ({part.name!r}) are not a JSON object: "
                f"{text[:200]!r}"
            )
        calls.append(ToolCall(id=part.id or f"call_{number}", name=part.name, input=arguments))
    return tuple(calls)


def _reply(
    *,
    text: str,
    calls: tuple[ToolCall, ...],
    finish_reason: str,
    model: str,
    usage: Usage,
    provider: str,
) -> ChatReply:
    blocks: list[dict[str, Any]] = [{"type": "text", "text": text}] if text else []
    blocks += [
        {"type": "tool_use", "id": call.id, "name": call.name, "input": dict(call.input)}
        for call in calls
    ]
    return ChatReply(
        text=text,
        tool_calls=calls,
        stop_reason=_STOP_REASONS.get(finish_reason, finish_reason),
        model=model,
        usage=usage,
        provider=provider,
        assistant_message=ChatMessage(role="assistant", content=tuple(blocks)),
    )


class StreamedCompletion:
    """Reads one streamed completion line by line; see the module docstring."""

    def __init__(
        self,
        problem: Callable[[str], ProviderResponseError],
        *,
        model: str,
        on_text: Callable[[str], None] | None,
    ) -> None:
        """Raise `problem(what)` for malformed input; pass text deltas to `on_text`."""
        self._problem = problem
        self._on_text = on_text
        self.model = model
        """The model the server says answered (the requested one until a chunk names it)."""
        self.chunks = 0
        """How many chunks were read."""
        self.text_parts: list[str] = []
        """The text deltas so far."""
        self.usage: Usage | None = None
        """The usage chunk's usage, once it came."""
        self.done = False
        """Whether `data: [DONE]` came."""
        self._finish_reason: str | None = None
        self._calls: dict[int, _ToolCallParts] = {}

    def feed(self, line: str) -> Mapping[str, Any] | None:
        """Read one line of the stream; return the error object of an error chunk, if it is one.

        Raises:
            ProviderResponseError: the line is not JSON, or a chunk has no `choices`.
        """
        if not line.startswith("data:") or self.done:
            return None  # blank separators, comments (": ping"), `event:` lines
        data = line[len("data:") :].strip()
        if data == "[DONE]":
            self.done = True
            return None
        try:
            chunk = json.loads(data)
        except ValueError:
            raise self._problem(f"a stream chunk is not JSON: {data[:200]!r}") from None
        if not isinstance(chunk, dict):
            raise self._problem(f"a stream chunk is not a JSON object: {data[:200]!r}")
        if chunk.get("error"):
            error = chunk["error"]
            return error if isinstance(error, dict) else {"message": str(error)}
        self.chunks += 1
        if isinstance(chunk.get("model"), str) and chunk["model"]:
            self.model = chunk["model"]
        if isinstance(chunk.get("usage"), dict):
            self.usage = usage_of(chunk["usage"])
        choices = chunk.get("choices")
        if not isinstance(choices, list):
            if self.usage is not None and "usage" in chunk:
                return None
            raise self._problem(f"stream chunk {self.chunks} has no 'choices' list")
        if choices:
            self._choice(choices[0])
        return None

    def _choice(self, choice: Any) -> None:
        if not isinstance(choice, dict):
            raise self._problem(f"stream chunk {self.chunks} has a choice that is not an object")
        delta = choice.get("delta") or {}
        if not isinstance(delta, dict):
            raise self._problem(f"stream chunk {self.chunks} has a delta that is not an object")
        content = delta.get("content")
        if isinstance(content, str) and content:
            self.text_parts.append(content)
            if self._on_text is not None:
                self._on_text(content)
        for call in delta.get("tool_calls") or ():
            if not isinstance(call, dict) or not isinstance(call.get("function", {}), dict):
                raise self._problem(f"stream chunk {self.chunks} has a malformed tool call")
            index = call.get("index", 0)
            parts = self._calls.setdefault(index if isinstance(index, int) else 0, _ToolCallParts())
            parts.id = call.get("id") or parts.id
            function = call.get("function") or {}
            parts.name = function.get("name") or parts.name
            if isinstance(function.get("arguments"), str):
                parts.arguments.append(function["arguments"])
        if choice.get("finish_reason"):
            self._finish_reason = str(choice["finish_reason"])

    @property
    def output_characters(self) -> int:
        """Characters of text and tool arguments received so far (for an estimated usage)."""
        text = sum(len(part) for part in self.text_parts)
        calls = sum(len(p.name) + sum(map(len, p.arguments)) for p in self._calls.values())
        return text + calls

    def reply(self, provider: str, usage: Usage) -> ChatReply:
        """The finished reply, with `usage` (the chunk's, or an estimate).

        Raises:
            ProviderResponseError: no chunk came, the stream stopped before its finish reason,
                or a tool call is malformed.
        """
        if self.chunks == 0:
            raise self._problem(
                "the stream request got no chunk at all (did the server answer with plain JSON "
                "instead of server-sent events?)"
            )
        if self._finish_reason is None:
            raise self._problem(
                f"the stream ended after {self.chunks} chunks without a finish reason (cut short)"
            )
        calls = _tool_calls([self._calls[i] for i in sorted(self._calls)], self._problem)
        return _reply(
            text="".join(self.text_parts),
            calls=calls,
            finish_reason=self._finish_reason,
            model=self.model,
            usage=usage,
            provider=provider,
        )


def reply_characters(body: Any) -> int:
    """Characters of a completion's reply text and tool calls: what an estimated usage counts.

    Only the first choice's `content` and its tool calls' names and arguments, as when streaming
    (never the JSON around them); 0 for a body of another shape.
    """
    choices = body.get("choices") if isinstance(body, dict) else None
    first = choices[0] if isinstance(choices, list) and choices else None
    message = first.get("message") if isinstance(first, dict) else None
    if not isinstance(message, dict):
        return 0
    content = message.get("content")
    total = len(content) if isinstance(content, str) else 0
    for call in message.get("tool_calls") or ():
        function = call.get("function") if isinstance(call, dict) else None
        if isinstance(function, dict):
            total += sum(
                len(part)
                for part in (function.get("name"), function.get("arguments"))
                if isinstance(part, str)
            )
    return total


def completion_reply(
    body: Any,
    problem: Callable[[str], ProviderResponseError],
    *,
    model: str,
    provider: str,
    usage: Usage,
) -> ChatReply:
    """The reply of a non-streamed `chat.completion` body, with `usage` (read by the caller).

    Raises:
        ProviderResponseError: the body has no choice, no message or malformed tool calls.
    """
    choices = body.get("choices") if isinstance(body, dict) else None
    if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
        raise problem("the completion has no 'choices'")
    message = choices[0].get("message")
    if not isinstance(message, dict):
        raise problem("the completion's first choice has no 'message'")
    content = message.get("content")
    parts = []
    for call in message.get("tool_calls") or ():
        function = call.get("function") if isinstance(call, dict) else None
        if not isinstance(function, dict):
            raise problem("a tool call of the completion has no 'function' object")
        arguments = function.get("arguments")
        parts.append(
            _ToolCallParts(
                id=str(call.get("id") or ""),
                name=str(function.get("name") or ""),
                arguments=[arguments] if isinstance(arguments, str) else [],
            )
        )
    return _reply(
        text=content if isinstance(content, str) else "",
        calls=_tool_calls(parts, problem),
        finish_reason=str(choices[0].get("finish_reason") or "stop"),
        model=str(body.get("model") or model),
        usage=usage,
        provider=provider,
    )
