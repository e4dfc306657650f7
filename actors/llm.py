"""The `llm` agent: one step's conversation with a model of any provider in the catalog.

Config (validated when the agent is built, which needs neither an API key nor an SDK):

- `model` (required): `provider:model` (`openai:gpt-4.1`, `local:llama3.1`); a bare model id
  means `anthropic:`; `max_tokens` (1024), `temperature`, `system`;
- `fallback`: more `provider:model` names, tried in order when a call fails retryably, its
  provider's circuit breaker is open, or the provider refuses the key or the model (see
  `orchestr8._llm._fallback`);
- `prompt`: a string (one user message) or a list of ``{"role", "content"}`` messages, with
  `${input...}` placeholders filled from the step input (see `actors._llm_prompt`); without it
  the step input is the user message;
- `output_schema`: a JSON Schema the reply must be JSON for (output gets `"json"`);
- `tools` and `max_turns` (5): other agents the model may call, in a loop of at most that many
  API calls;
- `request_timeout` (60 s), `api_key` (the key of the `anthropic` provider; prefer the
  `ANTHROPIC_API_KEY` environment variable, or a provider's `api_key` reference);
- `template` (a template file, relative to the workflow file, or an inline template; instead of
  `prompt`, `system` and `output_schema`), `variables` (where its variables come from) and
  `expect` (what the reply is scored against; see `actors._llm_templates`).

Output: ``{"text", "json"?, "usage": {"input_tokens", "output_tokens", ...}, "model",
"provider", "stop_reason", "score"?}``. Reply text streams out as coalesced `step.progress`
events; token counts are recorded per API call as `step.usage` events, each call as
`llm.called` and each score as `step.scored`. The full reference is `docs/llm.md`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from contextlib import AsyncExitStack
from typing import Any

import attrs
import trio

from orchestr8 import (
    Agent,
    AgentConfigurationError,
    AgentContext,
    AgentRegistry,
    Capability,
    ChatMessage,
    ChatReply,
    ChatRequest,
    LLMSession,
    MissingAPIKeyError,
    ModelName,
    ModelNameError,
    ModelUse,
    NonRetryableError,
    ProviderCatalog,
    ToolSpec,
    Usage,
    complete_with_fallback,
    detached_session,
    parse_model_name,
)

from ._llm_client import AnthropicClientFactory, ProgressCoalescer, use_anthropic_client
from ._llm_output import ModelOutputError, OutputSchema
from ._llm_prompt import PromptInputError, PromptTemplate, compile_text, messages_from_input
from ._llm_templates import (
    TemplatePrompt,
    expectations_of,
    score_and_record,
)
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


def _candidates(model: str, fallback: Any) -> tuple[ModelName, ...]:
    """The model, then the `fallback` models (each `provider:model`, none repeated).

    Raises:
        ModelNameError: listing every bad name at once, each at its path (`problems`).
    """
    if fallback is not None and not isinstance(fallback, list):
        raise AgentConfigurationError(
            'fallback must be a list of "provider:model" names, e.g. ["openai:gpt-4.1"]',
            problems=[("config.fallback", 'must be a list of "provider:model" names')],
        )
    problems: list[tuple[str, str]] = []
    names: list[ModelName] = []
    fallbacks: list[ModelName] = []
    for index, text in enumerate([model, *(fallback or [])]):
        field = "model" if index == 0 else f"fallback[{index - 1}]"
        try:
            name = parse_model_name(text, field=field, bare_allowed=index == 0)
        except ModelNameError as error:
            problems.append((f"config.{field}", str(error).removeprefix(f"{field}: ")))
            continue
        if index > 0 and name in fallbacks:
            problems.append((f"config.{field}", f"{str(name)!r} is listed twice"))
        if index > 0:
            fallbacks.append(name)
        names.append(name)
    if problems:
        raise ModelNameError(
            "; ".join(f"{where.removeprefix('config.')}: {message}" for where, message in problems),
            problems=problems,
        )
    return tuple(names)


def _together(
    first: AgentConfigurationError, second: AgentConfigurationError
) -> AgentConfigurationError:
    """One error with the problems of both; a problem without a path is at `config`."""
    problems = [
        *first.problems,
        *(second.problems or [("config", str(second))]),
    ]
    return AgentConfigurationError(f"{first}; {second}", problems=problems)


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
            "expect",
            "fallback",
            "max_tokens",
            "max_turns",
            "model",
            "output_schema",
            "prompt",
            "request_timeout",
            "system",
            "temperature",
            "template",
            "tools",
            "variables",
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
        # Every problem at once: bad model names, and the first problem of the other keys.
        names: ModelNameError | None = None
        try:
            self._candidates = _candidates(model, config.get("fallback"))
        except ModelNameError as error:
            names = error
        try:
            self._configure(config, registry)
        except AgentConfigurationError as error:
            if names is None:
                raise
            raise _together(names, error) from None
        if names is not None:
            raise names

    def _configure(self, config: Mapping[str, Any], registry: AgentRegistry | None) -> None:
        """Check and compile every key but the model names (`__init__` checks those)."""
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
        self._template = TemplatePrompt(config) if "template" in config else None
        if self._template is not None and self._template.file.output_schema is not None:
            self.output_schema = OutputSchema(self._template.file.output_schema)
        self._expect = expectations_of(config, self._template)
        judge = None if self._expect is None else self._expect.judge
        self._judge = (
            None
            if judge is None
            else parse_model_name(judge.model, field="expect.completeness.judge.model")
        )
        tools = config.get("tools")
        self.tools: dict[str, Tool] = (
            {} if tools is None else compile_tools(tools, registry or AgentRegistry())
        )
        self._api_key: str | None = api_key

    def _judge_where(self) -> str:
        """Where the judge's model is written: the config's `expect`, else the template's."""
        if "expect" in self.config:
            return "config.expect.completeness.judge.model"
        return "config.template"

    def __repr__(self) -> str:
        """Show the model, never the config (it may hold an API key)."""
        return f"<LLMAgent model={self.model!r}>"

    def model_uses(self) -> list[ModelUse]:
        """The models this agent calls (its fallbacks too) and what it needs, checked at load."""
        needs = {Capability.STREAMING}
        if self.tools:
            needs.add(Capability.TOOLS)
        if self.output_schema is not None:
            needs.add(Capability.JSON_OUTPUT)
        uses = [
            ModelUse(
                str(name),
                frozenset(needs),
                "config.model" if index == 0 else f"config.fallback[{index - 1}]",
            )
            for index, name in enumerate(self._candidates)
        ]
        if self._expect is not None and self._expect.judge is not None:
            judge = frozenset({Capability.JSON_OUTPUT})
            uses.append(ModelUse(self._expect.judge.model, judge, self._judge_where()))
        return uses

    async def run(self, input: Any, context: AgentContext) -> Any:
        """Run the conversation for one attempt and return the reply, its usage and metadata.

        Raises:
            PromptInputError: the input does not fit the prompt (not retried).
            MissingAPIKeyError: no API key is configured (not retried).
            RetryableError: a retryable API error, or `ModelOutputError` for a bad JSON reply.
            NonRetryableError: any other API error, or `MaxTurnsExceededError`.
        """
        rendered = None if self._template is None else self._template.render(input)
        messages = (
            [ChatMessage(m["role"], m["content"]) for m in self._messages(input)]
            if rendered is None
            else list(rendered.messages)
        )
        request = self._request(input, None if rendered is None else rendered.system)
        usage = Usage()
        progress = ProgressCoalescer(context)
        session = context.llm or detached_session()
        catalog = self._catalog(session)
        template = self._template
        provenance = None if template is None else {"template": template.file.provenance()}
        answering = 0
        async with AsyncExitStack() as held:
            await self._hold_primary(catalog, held)
            for turn in range(1, self.max_turns + 1):
                context.logger.debug("calling %s (turn %d)", self._candidates[answering], turn)
                try:
                    answered = await complete_with_fallback(
                        self._candidates,
                        attrs.evolve(request, messages=messages),
                        catalog=catalog,
                        session=session,
                        context=context,
                        request_timeout=lambda: self._timeout(context),
                        on_text=progress.add,
                        on_usage=lambda spent: context.record_usage(**spent.as_counts()),
                        start=answering,
                        extra=provenance,
                    )
                finally:
                    progress.flush()
                reply, answering = answered.reply, answered.index
                usage = usage + reply.usage
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
        output.update(
            usage=usage.as_counts(),
            model=reply.model,
            provider=self._candidates[answering].provider,
            stop_reason=reply.stop_reason,
        )
        if self._expect is not None:
            judge = self._judge
            output["score"] = await score_and_record(
                self._expect,
                reply.text,
                context,
                session,
                complete=None
                if judge is None
                else lambda judged: self._ask_judge(judge, judged, context, catalog, session),
                judge_model=None if judge is None else judge.model,
                template=None if self._template is None else self._template.file,
            )
        return output

    async def _ask_judge(
        self,
        judge: ModelName,
        request: ChatRequest,
        context: AgentContext,
        catalog: ProviderCatalog,
        session: LLMSession,
    ) -> ChatReply:
        """One call of the completeness judge, journaled (without the template) and counted."""
        answered = await complete_with_fallback(
            (judge,),
            request,
            catalog=catalog,
            session=session,
            context=context,
            request_timeout=lambda: self._timeout(context),
            on_usage=lambda spent: context.record_usage(**spent.as_counts()),
        )
        return answered.reply

    async def _hold_primary(self, catalog: ProviderCatalog, held: AsyncExitStack) -> None:
        """Keep the primary provider's client open for the run's turns, when it can be made.

        A provider that cannot be made now (no key) is not held: its call then fails and falls
        back.
        """
        try:
            provider = catalog.resolve(str(self._candidates[0])).provider
            await held.enter_async_context(provider.hold())
        except NonRetryableError:
            return

    def _catalog(self, session: LLMSession) -> ProviderCatalog:
        """The session's providers; a config `api_key` becomes the `anthropic` provider's key."""
        catalog = session.catalog
        spec = catalog.spec("anthropic")
        if self._api_key is None or spec is None:
            return catalog
        return catalog.overlay({"anthropic": attrs.evolve(spec, api_key=self._api_key)})

    def _messages(self, input: Any) -> list[dict[str, Any]]:
        if self._prompt is None:
            return messages_from_input(input)
        return self._prompt.render(input)

    def _request(self, input: Any, template_system: str | None = None) -> ChatRequest:
        """The parameters every call of this run shares (all but the messages).

        `template_system` is the rendered template's system text, used instead of `system`.
        """
        system = template_system or self._system
        parts = [system if isinstance(system, str) else system.render(input)] if system else []
        if self.output_schema is not None:
            parts.append(self.output_schema.instruction())
        return ChatRequest(
            model=self._candidates[0].model,
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
