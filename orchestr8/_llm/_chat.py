"""The provider-neutral call model: one request to a chat model and its reply, whoever serves it.

Every provider (Anthropic's Messages API, any OpenAI-compatible Chat Completions server) takes a
`ChatRequest` and returns a `ChatReply`, so the `llm` agent, budgets, templates and `orchestr8
eval` are written once. The shapes follow Anthropic's content blocks, the richer of the two wire
formats; the OpenAI-compatible provider translates them (assistant `tool_calls`, `role: "tool"`
messages). Everything here is a frozen value that holds only JSON data, so a request can be hashed
(eval's cache), journaled and compared.

Content blocks are plain mappings:

- ``{"type": "text", "text": ...}``
- ``{"type": "tool_use", "id": ..., "name": ..., "input": {...}}`` (assistant turns)
- ``{"type": "tool_result", "tool_use_id": ..., "content": "...", "is_error": bool}`` (user turns)
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from typing import Any, Literal

import attrs

__all__ = [
    "Capability",
    "ChatMessage",
    "ChatReply",
    "ChatRequest",
    "ContentBlock",
    "ToolCall",
    "ToolSpec",
    "Usage",
    "estimate_tokens",
]

ContentBlock = Mapping[str, Any]
"""One content block of a message: text, a tool call, or a tool's result (see the module doc)."""

Role = Literal["user", "assistant"]

#: Characters per token used where a provider reports no usage: a common rule of thumb for
#: English text and JSON with the usual tokenisers, documented as an estimate wherever it shows.
CHARACTERS_PER_TOKEN = 4


class Capability(enum.StrEnum):
    """What a provider can do; a step that needs one its provider lacks fails validation at load."""

    STREAMING = "streaming"
    TOOLS = "tools"
    JSON_OUTPUT = "json_output"


ALL_CAPABILITIES: frozenset[Capability] = frozenset(Capability)
"""Every capability: what the built-in providers have unless a provider spec removes some."""


def _to_content(value: str | tuple[ContentBlock, ...] | list[ContentBlock]) -> Any:
    return value if isinstance(value, str) else tuple(value)


@attrs.frozen
class ChatMessage:
    """One turn of the conversation: the user's or the model's, as text or content blocks."""

    role: Role
    content: str | tuple[ContentBlock, ...] = attrs.field(converter=_to_content)

    def to_json(self) -> dict[str, Any]:
        """The message as JSON (Anthropic's shape: `role` and `content`)."""
        content = self.content
        return {
            "role": self.role,
            "content": content if isinstance(content, str) else [dict(b) for b in content],
        }

    def text(self) -> str:
        """The message's text: the string, or its text blocks joined."""
        if isinstance(self.content, str):
            return self.content
        return "".join(str(b.get("text", "")) for b in self.content if b.get("type") == "text")


@attrs.frozen
class ToolSpec:
    """A tool the model may call: its name, what it is for, and the JSON Schema of its input."""

    name: str
    description: str
    input_schema: Mapping[str, Any]


@attrs.frozen
class ToolCall:
    """The model asking for one tool: the call's id, the tool's name and its input."""

    id: str
    name: str
    input: Mapping[str, Any]


def _to_messages(value: Any) -> tuple[ChatMessage, ...]:
    return tuple(value)


def _to_tools(value: Any) -> tuple[ToolSpec, ...]:
    return tuple(value)


@attrs.frozen(kw_only=True)
class ChatRequest:
    """One call to a chat model, in no provider's wire format.

    `model` is the provider's own model id, without the `provider:` prefix of workflow documents.
    `json_schema`, when set, asks for a reply that is JSON fitting it (each provider uses its own
    means: a system instruction, `response_format`); `stream` asks for text deltas as they come.
    """

    model: str
    messages: tuple[ChatMessage, ...] = attrs.field(converter=_to_messages)
    system: str | None = None
    max_tokens: int = 1024
    temperature: float | None = None
    tools: tuple[ToolSpec, ...] = attrs.field(default=(), converter=_to_tools)
    json_schema: Mapping[str, Any] | None = None
    stream: bool = True

    def prompt_characters(self) -> int:
        """How many characters the request sends: the system prompt, messages, tools, schema."""
        total = len(self.system or "")
        for message in self.messages:
            content = message.content
            if isinstance(content, str):
                total += len(content)
            else:
                total += sum(len(str(block)) for block in content)
        total += sum(
            len(tool.name) + len(tool.description) + len(str(tool.input_schema))
            for tool in self.tools
        )
        if self.json_schema is not None:
            total += len(str(self.json_schema))
        return total

    def estimated_input_tokens(self) -> int:
        """The input tokens this request will likely cost (`estimate_tokens` of its characters)."""
        return estimate_tokens(self.prompt_characters())


def estimate_tokens(characters: int) -> int:
    """Tokens for `characters` of text, rounded up: used only where a provider reports none."""
    return -(-characters // CHARACTERS_PER_TOKEN)


@attrs.frozen(kw_only=True)
class Usage:
    """What a call consumed, normalised across providers.

    `input_tokens` counts every prompt token, cached ones included (`cached_input_tokens` says how
    many of them were read from the provider's cache); `reasoning_tokens` are part of
    `output_tokens`. `estimated` is true when the provider sent no counts and they were worked
    out from characters (`estimate_tokens`).
    """

    input_tokens: int = 0
    output_tokens: int = 0
    cached_input_tokens: int = 0
    reasoning_tokens: int = 0
    estimated: bool = False

    def __add__(self, other: Usage) -> Usage:
        """The sum of two usages; estimated if either is."""
        return Usage(
            input_tokens=self.input_tokens + other.input_tokens,
            output_tokens=self.output_tokens + other.output_tokens,
            cached_input_tokens=self.cached_input_tokens + other.cached_input_tokens,
            reasoning_tokens=self.reasoning_tokens + other.reasoning_tokens,
            estimated=self.estimated or other.estimated,
        )

    def as_counts(self) -> dict[str, int]:
        """The counts `AgentContext.record_usage` takes: input and output always, others if set."""
        counts = {"input_tokens": self.input_tokens, "output_tokens": self.output_tokens}
        if self.cached_input_tokens:
            counts["cached_input_tokens"] = self.cached_input_tokens
        if self.reasoning_tokens:
            counts["reasoning_tokens"] = self.reasoning_tokens
        return counts

    def to_json(self) -> dict[str, Any]:
        """The usage as the `llm.called` event carries it (`estimated` only when true)."""
        data: dict[str, Any] = dict(self.as_counts())
        if self.estimated:
            data["estimated"] = True
        return data


@attrs.frozen(kw_only=True)
class ChatReply:
    """A model's reply: its text, the tools it asks for, why it stopped, what it cost.

    `stop_reason` is normalised: ``end_turn``, ``max_tokens``, ``tool_use``, ``content_filter``,
    or the provider's own value when none of those fits. `assistant_message` is the reply as the
    next turn of the conversation sends it back.
    """

    text: str
    tool_calls: tuple[ToolCall, ...] = ()
    stop_reason: str = "end_turn"
    model: str
    usage: Usage = Usage()
    provider: str
    assistant_message: ChatMessage
