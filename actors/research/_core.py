"""The research core: resolve a library on Context7, fetch its docs, answer with the `llm` agent.

One core serves both deployments (the microservice and the in-process adapter) and the
`research` agent itself, so all three take the same input and give the same output:

- input ``{"library": "react", "question": "How do I use useState?"}``; `library` may also be a
  Context7 id (`/facebook/react`, `/vercel/next.js/v14.3.0`), which skips the search;
- output ``{"library": {"id", "name"}, "answer", "sources", "documentation": {"chars",
  "truncated"}, "model", "usage": {"input_tokens", "output_tokens"}}``.

`ResearchSettings.from_config` validates the config once, reading `CONTEXT7_BASE_URL` and
`CONTEXT7_API_KEY` from the environment when the config does not set them.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from typing import Any, Final

import attrs
import httpx

from orchestr8 import Agent, AgentConfigurationError, AgentContext, NonRetryableError

from ._context7 import (
    API_KEY_VARIABLE,
    BASE_URL_VARIABLE,
    DEFAULT_BASE_URL,
    LIBRARY_ID,
    Library,
    best_match,
    open_context7,
)
from ._errors import LibraryNotFoundError, ResearchInputError
from ._prompt import SYSTEM_PROMPT, render_prompt

__all__ = [
    "CONFIG_KEYS",
    "MODEL_VARIABLE",
    "ResearchCore",
    "ResearchSettings",
    "validate_input",
]

CONFIG_KEYS: Final = frozenset(
    {"model", "max_tokens", "temperature", "base_url", "api_key", "max_chars", "timeout"}
)
MODEL_VARIABLE: Final = "ORCHESTR8_RESEARCH_MODEL"
"""The model the microservice and the adapter use when they are given no config."""
MAX_TOKENS_VARIABLE: Final = "ORCHESTR8_RESEARCH_MAX_TOKENS"
MAX_LIBRARY_CHARS: Final = 200
MAX_QUESTION_CHARS: Final = 4000


def _positive_int(value: Any, key: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise AgentConfigurationError(f"{key} must be an integer >= 1, got {value!r}")
    return value


def _positive_seconds(value: Any) -> float:
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not math.isfinite(value)
        or value <= 0
    ):
        raise AgentConfigurationError(f"timeout must be a number of seconds above 0, got {value!r}")
    return float(value)


def _base_url(value: Any) -> str:
    if not isinstance(value, str):
        raise AgentConfigurationError(f"base_url must be a string, got {value!r}")
    try:
        url = httpx.URL(value)
    except httpx.InvalidURL as error:
        raise AgentConfigurationError(f"base_url {value!r} is not a URL: {error}") from None
    if url.scheme not in ("http", "https") or not url.host:
        raise AgentConfigurationError(f"base_url must be an http(s) URL, got {value!r}")
    return value.rstrip("/")


@attrs.frozen(kw_only=True)
class ResearchSettings:
    """The validated config of the research core (see `docs/research.md`)."""

    model: str
    max_tokens: int = 1024
    temperature: float | None = None
    base_url: str = DEFAULT_BASE_URL
    api_key: str | None = attrs.field(default=None, repr=False)
    max_chars: int = 24_000
    """The most documentation characters put in the prompt (about 6k tokens by default)."""
    timeout: float = 30.0
    """Seconds each Context7 call may take (the attempt's deadline bounds it too)."""

    @classmethod
    def from_config(
        cls, config: Mapping[str, Any], environ: Mapping[str, str] | None = None
    ) -> ResearchSettings:
        """Validate `config`, filling `base_url` and `api_key` from `environ` (`os.environ`).

        Raises:
            AgentConfigurationError: an unknown key, a missing model, or a bad value.
        """
        env = os.environ if environ is None else environ
        unknown = sorted(str(key) for key in config if key not in CONFIG_KEYS)
        if unknown:
            raise AgentConfigurationError(
                f"unknown config keys {', '.join(map(repr, unknown))}; "
                f"expected: {', '.join(sorted(CONFIG_KEYS))}"
            )
        model = config.get("model")
        if not isinstance(model, str) or not model.strip():
            raise AgentConfigurationError("model is required: the Anthropic model that answers")
        temperature = config.get("temperature")
        if temperature is not None and (
            isinstance(temperature, bool)
            or not isinstance(temperature, int | float)
            or not 0 <= temperature <= 1
        ):
            raise AgentConfigurationError(f"temperature must be in [0, 1], got {temperature!r}")
        api_key = config.get("api_key", env.get(API_KEY_VARIABLE) or None)
        if api_key is not None and (not isinstance(api_key, str) or not api_key.isprintable()):
            raise AgentConfigurationError("api_key must be a printable string")
        return cls(
            model=model,
            max_tokens=_positive_int(config.get("max_tokens", 1024), "max_tokens"),
            temperature=None if temperature is None else float(temperature),
            base_url=_base_url(
                config.get("base_url", env.get(BASE_URL_VARIABLE) or DEFAULT_BASE_URL)
            ),
            api_key=api_key or None,
            max_chars=_positive_int(config.get("max_chars", 24_000), "max_chars"),
            timeout=_positive_seconds(config.get("timeout", 30.0)),
        )

    @classmethod
    def from_environment(cls, environ: Mapping[str, str] | None = None) -> ResearchSettings:
        """Settings from `ORCHESTR8_RESEARCH_MODEL` (required), `..._MAX_TOKENS` and Context7's."""
        env = os.environ if environ is None else environ
        model = env.get(MODEL_VARIABLE)
        if not model:
            raise AgentConfigurationError(
                f"set {MODEL_VARIABLE} to the Anthropic model the research agent uses"
            )
        config: dict[str, Any] = {"model": model}
        if env.get(MAX_TOKENS_VARIABLE):
            try:
                config["max_tokens"] = int(env[MAX_TOKENS_VARIABLE])
            except ValueError:
                raise AgentConfigurationError(f"{MAX_TOKENS_VARIABLE} must be an integer") from None
        return cls.from_config(config, env)

    def llm_config(self) -> dict[str, Any]:
        """The config of the `llm` agent that writes the answer.

        It has no `prompt`: the rendered XML prompt is the step input, so the `llm` agent sends it
        as the user message verbatim, and `${` in fetched documentation is never a placeholder.
        """
        config: dict[str, Any] = {
            "model": self.model,
            "max_tokens": self.max_tokens,
            "system": SYSTEM_PROMPT,
        }
        if self.temperature is not None:
            config["temperature"] = self.temperature
        return config


def validate_input(input: Any) -> tuple[str, str]:
    """The `(library, question)` of a research input.

    Raises:
        ResearchInputError: not an object of exactly those two non-empty strings (within limits).
    """
    if not isinstance(input, Mapping):
        raise ResearchInputError(
            'the input must be an object {"library": ..., "question": ...}, '
            f"got {type(input).__name__}"
        )
    unknown = sorted(str(key) for key in input if key not in ("library", "question"))
    if unknown:
        raise ResearchInputError(
            f"unknown input keys {', '.join(map(repr, unknown))}; expected library and question"
        )
    values: list[str] = []
    for key, limit in (("library", MAX_LIBRARY_CHARS), ("question", MAX_QUESTION_CHARS)):
        value = input.get(key)
        if not isinstance(value, str) or not value.strip():
            raise ResearchInputError(f"{key} must be a non-empty string, got {value!r}")
        if len(value) > limit:
            raise ResearchInputError(f"{key} is longer than {limit} characters")
        values.append(value.strip())
    return values[0], values[1]


class ResearchCore:
    """Answers questions about a library from its Context7 documentation."""

    def __init__(
        self,
        settings: ResearchSettings,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        llm: Agent | None = None,
    ) -> None:
        """Build the core; `transport` replaces Context7's network, `llm` the `llm` agent.

        Raises:
            AgentConfigurationError: the `llm` agent rejects its config.
        """
        self.settings = settings
        self._transport = transport
        if llm is None:
            from actors.llm import LLMAgent

            llm = LLMAgent(settings.llm_config())
        self.llm = llm
        """The agent that writes the answer: the `llm` agent, or a stand-in given by a test."""

    async def research(self, input: Any, context: AgentContext) -> dict[str, Any]:
        """Resolve the library, fetch its documentation and answer the question.

        Raises:
            ResearchInputError: the input is invalid.
            LibraryNotFoundError: Context7 knows no such library (or has no docs for it).
            UpstreamUnavailableError: Context7 is rate-limiting or failing; worth a retry.
            UpstreamRejectedError: Context7 refused the request.
            RetryableError, NonRetryableError: from the `llm` agent.
        """
        name, question = validate_input(input)
        settings = self.settings
        async with open_context7(
            settings.base_url,
            settings.api_key,
            call_timeout=settings.timeout,
            transport=self._transport,
        ) as context7:
            if LIBRARY_ID.match(name):
                library = Library(id=name, name=name)
            else:
                context.progress({"stage": "resolving", "library": name})
                library_or_none = best_match(await context7.search(name, question), name)
                if library_or_none is None:
                    raise LibraryNotFoundError(f"Context7 has no library matching {name!r}")
                library = library_or_none
            context.progress({"stage": "fetching", "library_id": library.id})
            documentation = await context7.fetch_documentation(
                library, question, max_chars=settings.max_chars
            )
        context.progress({"stage": "answering", "chars": len(documentation.text)})
        answer = await self.llm.run(render_prompt(library, documentation, question), context)
        if not isinstance(answer, Mapping) or not isinstance(answer.get("text"), str):
            raise NonRetryableError("the llm agent returned no answer text")
        return {
            "library": library.as_json(),
            "answer": answer["text"],
            "sources": list(documentation.sources),
            "documentation": {
                "chars": len(documentation.text),
                "truncated": documentation.truncated,
            },
            "model": answer.get("model", settings.model),
            "usage": dict(answer.get("usage") or {}),
        }
