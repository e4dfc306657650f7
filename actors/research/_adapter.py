"""The in-process deployment: the research core as an async function, for hosts that call agents.

`handle_request(input, context)` takes and returns exactly what the microservice's
`POST /process` does, without HTTP. Its settings come from the environment
(`ORCHESTR8_RESEARCH_MODEL`, `ORCHESTR8_RESEARCH_MAX_TOKENS`, `CONTEXT7_BASE_URL`,
`CONTEXT7_API_KEY`) unless a `config` is given; `make_handler` binds a config (and test doubles)
once. It is also an orchestr8 function agent: ``"agent": "actors.research:handle_request"``.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Any, Protocol

import httpx

from orchestr8 import Agent, AgentContext

from ._core import ResearchCore, ResearchSettings

__all__ = ["Handler", "handle_request", "make_handler", "standalone_context"]


class Handler(Protocol):
    """An adapter: ``await handler(input, context=None)`` returns the research output."""

    async def __call__(self, input: Any, context: AgentContext | None = None) -> dict[str, Any]:
        """Research `input` in process."""


def standalone_context(name: str = "research") -> AgentContext:
    """A context for a call made outside any workflow: fresh ids, no deadline, no callbacks."""
    return AgentContext(execution_id=f"{name}-{uuid.uuid4().hex}", step_id=name, agent_id=name)


def make_handler(
    config: Mapping[str, Any] | None = None,
    *,
    transport: httpx.AsyncBaseTransport | None = None,
    llm: Agent | None = None,
) -> Handler:
    """Build the core once and return ``handler(input, context=None)`` over it.

    Raises:
        AgentConfigurationError: the config (or the environment, without one) is unusable.
    """
    settings = (
        ResearchSettings.from_environment()
        if config is None
        else ResearchSettings.from_config(config)
    )
    core = ResearchCore(settings, transport=transport, llm=llm)

    async def handler(input: Any, context: AgentContext | None = None) -> dict[str, Any]:
        return await core.research(input, context or standalone_context())

    return handler


async def handle_request(
    input: Any, context: AgentContext | None = None, *, config: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """Research `input` (`{"library", "question"}`) in process; same output as `POST /process`.

    Raises:
        AgentConfigurationError: no usable settings (see `make_handler`).
        ResearchInputError, LibraryNotFoundError, UpstreamUnavailableError,
        UpstreamRejectedError: as the research agent raises them.
    """
    return await make_handler(config)(input, context)
