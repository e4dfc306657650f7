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
from typing import Any

import attrs
import trio

from orchestr8 import (
    Agent,
    AgentConfigurationError,
    AgentContext,
    AgentRegistry,
    AnthropicProvider,
    Capability,
    ChatMessage,
    ChatReply,
    ChatRequest,
    MissingAPIKeyError,
    ModelUse,
    NonRetryableError,
    ToolSpec,
)

from ._llm_client import AnthropicClientFactory, ProgressCoalescer, use_anthropic_client
from ._llm_output import ModelOutputError, OutputSchema
from ._llm_prompt import PromptInputError, PromptTemplate, compile_text, messages_from_input
from ._llm_tools import Tool, compile_tools, run_tool_calls

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
                "model is required: 'provider:model', e.g. 'anthropic:claude-sonnet-4-5' "
                "(a bare model id means Anthropic)"
            )
        self.model = model
        provider, _, bare = model.partition(":")
        if not bare:
            provider, bare = "anthropic", model
        if provider != "anthropic" or not bare:
            raise AgentConfigurationError(
                f"model {model!r}: unknown provider {provider!r}; known: 'anthropic'"
            )
        self._bare_model = bare
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
        self._provider = AnthropicProvider(api_key=api_key, request_timeout=self.request_timeout)

    def __repr__(self) -> str:
        """Show the model, never the config (it may hold an API key)."""
        return f"<LLMAgent model={self.model!r}>"

    def model_uses(self) -> list[ModelUse]:
        """The model this agent calls and what it needs of its provider, checked at load."""
        needs = {Capability.STREAMING}
        if self.tools:
            needs.add(Capability.TOOLS)
        if self.output_schema is not None:
            needs.add(Capability.JSON_OUTPUT)
        model = self.model if ":" in self.model else f"anthropic:{self.model}"
        return [ModelUse(model, frozenset(needs), "config.model")]

    async def run(self, input: Any, context: AgentContext) -> Any:
        """Run the conversation for one attempt and return the reply, its usage and metadata.

        Raises:
            PromptInputError: the input does not fit the prompt (not retried).
            MissingAPIKeyError: no API key is configured (not retried).
            RetryableError: a retryable API error, or `ModelOutputError` for a bad JSON reply.
            NonRetryableError: any other API error, or `MaxTurnsExceededError`.
        """
        messages = [ChatMessage(m["role"], m["content"]) for m in self._messages(input)]
        request = self._request(input)
        usage = {"input_tokens": 0, "output_tokens": 0}
        progress = ProgressCoalescer(context)
        async with self._provider.hold():
            for turn in range(1, self.max_turns + 1):
                context.logger.debug("calling %s (turn %d)", self.model, turn)
                reply = await self._call(
                    context, attrs.evolve(request, messages=messages), progress
                )
                usage["input_tokens"] += reply.usage.input_tokens
                usage["output_tokens"] += reply.usage.output_tokens
                if not reply.tool_calls or not self.tools:
                    break
                if turn == self.max_turns:
                    names = ", ".join(sorted({call.name for call in reply.tool_calls}))
                    raise MaxTurnsExceededError(
                        f"the model still asked for tools ({names}) after max_turns="
                        f"{self.max_turns} API calls; raise max_turns or simplify the task"
                    )
                messages.append(reply.assistant_message)
                tool_calls = [
                    {"id": call.id, "name": call.name, "input": dict(call.input)}
                    for call in reply.tool_calls
                ]
                results = await run_tool_calls(self.tools, tool_calls, context)
                messages.append(ChatMessage("user", tuple(results)))
        output: dict[str, Any] = {"text": reply.text}
        if self.output_schema is not None:
            output["json"] = self.output_schema.parse(reply.text, reply.stop_reason)
        output.update(usage=usage, model=reply.model, stop_reason=reply.stop_reason)
        return output

    async def _call(
        self, context: AgentContext, request: ChatRequest, progress: ProgressCoalescer
    ) -> ChatReply:
        """One call to the model: its text streamed as progress, its usage recorded."""
        try:
            return await self._provider.complete(
                request,
                timeout=self._timeout(context),
                on_text=progress.add,
                on_usage=lambda spent: context.record_usage(**spent.as_counts()),
            )
        finally:
            progress.flush()

    def _messages(self, input: Any) -> list[dict[str, Any]]:
        if self._prompt is None:
            return messages_from_input(input)
        return self._prompt.render(input)

    def _request(self, input: Any) -> ChatRequest:
        """The parameters every call of this run shares (all but the messages)."""
        system = self._system
        parts = [system if isinstance(system, str) else system.render(input)] if system else []
        if self.output_schema is not None:
            parts.append(self.output_schema.instruction())
        return ChatRequest(
            model=self._bare_model,
            messages=(),
            system="\n\n".join(parts) if parts else None,
            max_tokens=self.max_tokens,
            temperature=self.temperature,
            tools=tuple(
                ToolSpec(tool.name, tool.description, tool.input_schema)
                for tool in self.tools.values()
            ),
            json_schema=None if self.output_schema is None else self.output_schema.schema,
        )

    def _timeout(self, context: AgentContext) -> float:
        """The request timeout, no longer than the time left before the attempt's deadline.

        The deadline is the context's, or the enclosing cancel scopes' (the attempt timeout).
        """
        deadline = min(context.deadline, trio.current_effective_deadline())
        left = deadline - trio.current_time()
        return max(min(self.request_timeout, left), _MIN_TIMEOUT)
