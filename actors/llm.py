"""The `llm` agent: one step's conversation with an Anthropic model through the Messages API.

Config (validated when the agent is built, which needs neither an API key nor `anthropic`):

- `model` (required), `max_tokens` (1024), `temperature`, `system`;
- `prompt`: a string (one user message) or a list of ``{"role", "content"}`` messages, with
  `${input...}` placeholders filled from the step input (see `actors._llm_prompt`); without it
  the step input is the user message;
- `output_schema`: a JSON Schema the reply must be JSON for (output gets `"json"`);
- `tools` and `max_turns` (5): other agents the model may call, in a loop of at most that many
  API calls;
- `request_timeout` (60 s), `api_key` (prefer the `ANTHROPIC_API_KEY` environment variable).

Output: ``{"text", "json"?, "usage": {"input_tokens", "output_tokens"}, "model",
"stop_reason"}``. Reply text streams out as coalesced `step.progress` events; token counts are
recorded per API call as `step.usage` events. The full reference is `docs/llm.md`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import trio

from orchestr8 import (
    Agent,
    AgentConfigurationError,
    AgentContext,
    AgentRegistry,
    NonRetryableError,
)

from ._llm_client import (
    AnthropicClientFactory,
    ClientLease,
    MissingAPIKeyError,
    ProgressCoalescer,
    stream_message,
    use_anthropic_client,
)
from ._llm_output import ModelOutputError, OutputSchema
from ._llm_prompt import PromptInputError, PromptTemplate, compile_text, messages_from_input
from ._llm_tools import Tool, compile_tools, run_tool_calls

if TYPE_CHECKING:
    from anthropic.types import Message

__all__ = [
    "AnthropicClientFactory",
    "LLMAgent",
    "MaxTurnsExceededError",
    "MissingAPIKeyError",
    "ModelOutputError",
    "PromptInputError",
    "use_anthropic_client",
]

DEFAULT_MAX_TOKENS = 1024
DEFAULT_MAX_TURNS = 5
DEFAULT_REQUEST_TIMEOUT = 60.0
_MIN_TIMEOUT = 0.001


class MaxTurnsExceededError(NonRetryableError):
    """The model still asked for tools after `max_turns` API calls."""


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _positive_int(config: Mapping[str, Any], key: str, default: int) -> int:
    value = config.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise AgentConfigurationError(f"{key} must be a whole number >= 1, got {value!r}")
    return value


class LLMAgent(Agent):
    """Calls an Anthropic model with a templated prompt, optional tools and a JSON reply schema.

    Built from its config alone; pass `registry` (e.g. with ``functools.partial``) to resolve
    tool agents the way the embedding program does, instead of a fresh `AgentRegistry()`.
    """

    config_keys = frozenset(
        {
            "api_key",
            "max_tokens",
            "max_turns",
            "model",
            "output_schema",
            "prompt",
            "request_timeout",
            "system",
            "temperature",
            "tools",
        }
    )

    def __init__(self, config: Mapping[str, Any], *, registry: AgentRegistry | None = None) -> None:
        """Validate the config; tool agents are built here too, so bad ones fail validation.

        Raises:
            AgentConfigurationError: a key is unknown, missing or has a bad value.
        """
        super().__init__(config)
        config = self.config
        model = config.get("model")
        if not isinstance(model, str) or not model:
            raise AgentConfigurationError(
                "model is required: the Anthropic model id, e.g. 'claude-sonnet-4-5'"
            )
        self.model = model
        self.max_tokens = _positive_int(config, "max_tokens", DEFAULT_MAX_TOKENS)
        self.max_turns = _positive_int(config, "max_turns", DEFAULT_MAX_TURNS)
        temperature = config.get("temperature")
        if temperature is not None and not (_number(temperature) and 0 <= temperature <= 1):
            raise AgentConfigurationError(
                f"temperature must be a number from 0 to 1, got {temperature!r}"
            )
        self.temperature: float | None = temperature
        timeout = config.get("request_timeout", DEFAULT_REQUEST_TIMEOUT)
        if not (_number(timeout) and timeout > 0):
            raise AgentConfigurationError(
                f"request_timeout must be a number of seconds > 0, got {timeout!r}"
            )
        self.request_timeout = float(timeout)
        api_key = config.get("api_key")
        if api_key is not None and (not isinstance(api_key, str) or not api_key):
            raise AgentConfigurationError("api_key must be a non-empty string")
        system = config.get("system")
        if system is not None and not isinstance(system, str):
            raise AgentConfigurationError("system must be a string")
        try:
            self._system = None if system is None else compile_text(system)
        except ValueError as error:
            raise AgentConfigurationError(f"system: {error}") from None
        prompt = config.get("prompt")
        self._prompt = None if prompt is None else PromptTemplate.compile(prompt)
        schema = config.get("output_schema")
        self.output_schema = None if schema is None else OutputSchema(schema)
        tools = config.get("tools")
        self.tools: dict[str, Tool] = (
            {} if tools is None else compile_tools(tools, registry or AgentRegistry())
        )
        self._clients = ClientLease(api_key, self.request_timeout)

    def __repr__(self) -> str:
        """Show the model, never the config (it may hold an API key)."""
        return f"<LLMAgent model={self.model!r}>"

    async def run(self, input: Any, context: AgentContext) -> Any:
        """Run the conversation for one attempt and return the reply, its usage and metadata.

        Raises:
            PromptInputError: the input does not fit the prompt (not retried).
            MissingAPIKeyError: no API key is configured (not retried).
            RetryableError: a retryable API error, or `ModelOutputError` for a bad JSON reply.
            NonRetryableError: any other API error, or `MaxTurnsExceededError`.
        """
        messages = self._messages(input)
        request = self._request(input)
        usage = {"input_tokens": 0, "output_tokens": 0}
        progress = ProgressCoalescer(context)
        async with self._clients.open() as client:
            for turn in range(1, self.max_turns + 1):
                context.logger.debug("calling %s (turn %d)", self.model, turn)
                message = await stream_message(
                    client,
                    {**request, "messages": messages},
                    context=context,
                    timeout=self._timeout(context),
                    progress=progress,
                )
                usage["input_tokens"] += message.usage.input_tokens or 0
                usage["output_tokens"] += message.usage.output_tokens or 0
                calls = [block for block in message.content if block.type == "tool_use"]
                if not calls or not self.tools:
                    break
                if turn == self.max_turns:
                    names = ", ".join(sorted({call.name for call in calls}))
                    raise MaxTurnsExceededError(
                        f"the model still asked for tools ({names}) after max_turns="
                        f"{self.max_turns} API calls; raise max_turns or simplify the task"
                    )
                messages.append({"role": "assistant", "content": _content(message)})
                tool_calls = [
                    {"id": call.id, "name": call.name, "input": call.input} for call in calls
                ]
                results = await run_tool_calls(self.tools, tool_calls, context)
                messages.append({"role": "user", "content": results})
        text = "".join(block.text for block in message.content if block.type == "text")
        output: dict[str, Any] = {"text": text}
        if self.output_schema is not None:
            output["json"] = self.output_schema.parse(text, message.stop_reason)
        output.update(usage=usage, model=message.model, stop_reason=message.stop_reason)
        return output

    def _messages(self, input: Any) -> list[dict[str, Any]]:
        if self._prompt is None:
            return messages_from_input(input)
        return self._prompt.render(input)

    def _request(self, input: Any) -> dict[str, Any]:
        """The parameters every call of this run shares (all but `messages`)."""
        request: dict[str, Any] = {"model": self.model, "max_tokens": self.max_tokens}
        system = self._system
        parts = [system if isinstance(system, str) else system.render(input)] if system else []
        if self.output_schema is not None:
            parts.append(self.output_schema.instruction())
        if parts:
            request["system"] = "\n\n".join(parts)
        if self.temperature is not None:
            # anthropic 2.x no longer has a `temperature` argument; the API still reads the field.
            request["extra_body"] = {"temperature": self.temperature}
        if self.tools:
            request["tools"] = [tool.definition() for tool in self.tools.values()]
        return request

    def _timeout(self, context: AgentContext) -> float:
        """The request timeout, no longer than the time left before the attempt's deadline.

        The deadline is the context's, or the enclosing cancel scopes' (the attempt timeout).
        """
        deadline = min(context.deadline, trio.current_effective_deadline())
        left = deadline - trio.current_time()
        return max(min(self.request_timeout, left), _MIN_TIMEOUT)


def _content(message: Message) -> list[dict[str, Any]]:
    """The reply's content blocks as the next request sends them back (SDK-only fields off)."""
    blocks: list[dict[str, Any]] = []
    for block in message.content:
        if block.type == "text":
            blocks.append({"type": "text", "text": block.text})
        elif block.type == "tool_use":
            blocks.append(
                {"type": "tool_use", "id": block.id, "name": block.name, "input": block.input}
            )
        else:
            data = block.to_dict()
            data.pop("parsed_output", None)
            blocks.append(data)
    return blocks
