"""The `research` agent: the research core behind the `orchestr8.Agent` interface.

Registered as the `research` entry point, so a workflow step can say
``{"agent": {"id": "research", "config": {"model": "claude-sonnet-4-5"}}}`` with the input
``{"library": ..., "question": ...}``. Its errors keep their retry side: Context7 rate limits
and outages are retried by the step policy (honouring `retryAfterSeconds`), bad input and unknown
libraries are not.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import httpx

from orchestr8 import Agent, AgentContext, ModelUse

from ._core import CONFIG_KEYS, ResearchCore, ResearchSettings

__all__ = ["ResearchAgent"]


class ResearchAgent(Agent):
    """Answers `{"library", "question"}` from Context7 documentation with an Anthropic model."""

    config_keys: ClassVar[frozenset[str] | None] = CONFIG_KEYS

    def __init__(
        self,
        config: Mapping[str, Any],
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        llm: Agent | None = None,
    ) -> None:
        """Validate `config`; `transport` and `llm` replace Context7 and the model (tests).

        Raises:
            AgentConfigurationError: an unknown key, no model, or a bad value.
        """
        super().__init__(config)
        self.core = ResearchCore(
            ResearchSettings.from_config(self.config), transport=transport, llm=llm
        )

    def model_uses(self) -> Sequence[ModelUse]:
        """The model its `llm` agent answers with, checked at load like an `llm` step's own.

        The answer goes through the `llm` agent with this step's context, so the model's calls
        are budgeted, guarded by their provider's breaker and journaled as `llm.called`.
        """
        declare = getattr(self.core.llm, "model_uses", None)
        return list(declare()) if declare is not None else []

    async def run(self, input: Any, context: AgentContext) -> Any:
        """Research the question for one attempt; see `ResearchCore.research`."""
        return await self.core.research(input, context)
