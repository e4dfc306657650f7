"""A provider for tests of the catalog's callers: scripted replies and errors, every call kept."""

from __future__ import annotations

from collections import deque
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from orchestr8 import Capability, ChatMessage, ChatReply, ChatRequest, ProviderSpec, Usage
from orchestr8._llm._chat import ALL_CAPABILITIES
from orchestr8._llm._provider import Provider, TextCallback, UsageCallback


class ScriptedProvider:
    """A `Provider` answering from a script: a text (a reply) or an exception (raised)."""

    def __init__(self, name: str, *script: str | BaseException, usage: Usage | None = None) -> None:
        """Answer the calls in order from `script`; each answer reports `usage`."""
        self.name = name
        self.kind = "anthropic"
        self.capabilities: frozenset[Capability] = ALL_CAPABILITIES
        self.script: deque[str | BaseException] = deque(script)
        self.usage = usage or Usage(input_tokens=10, output_tokens=2)
        self.requests: list[ChatRequest] = []
        self.closed = 0
        self.holders = 0

    async def complete(
        self,
        request: ChatRequest,
        *,
        timeout: float,  # noqa: ASYNC109 - the protocol's per-request timeout
        on_text: TextCallback | None = None,
        on_usage: UsageCallback | None = None,
    ) -> ChatReply:
        """The next scripted answer; an error still reports the usage, as providers must."""
        self.requests.append(request)
        answer = self.script.popleft()
        if on_usage is not None:
            on_usage(self.usage)
        if isinstance(answer, BaseException):
            raise answer
        if on_text is not None:
            on_text(answer)
        return ChatReply(
            text=answer,
            model=f"{request.model}-2026",
            usage=self.usage,
            provider=self.name,
            assistant_message=ChatMessage("assistant", answer),
        )

    @asynccontextmanager
    async def hold(self) -> AsyncIterator[object]:
        """Count the holders (there is no client to keep open)."""
        self.holders += 1
        try:
            yield self
        finally:
            self.holders -= 1

    async def aclose(self) -> None:
        """Count the closings."""
        self.closed += 1


class ScriptedProviders:
    """A catalog `factory` handing out scripted providers by name, and counting what it made."""

    def __init__(self, *providers: ScriptedProvider) -> None:
        """Hand out these providers, by their names."""
        self.providers = {provider.name: provider for provider in providers}
        self.made: list[tuple[str, ProviderSpec]] = []

    def __call__(self, name: str, spec: ProviderSpec) -> Provider:
        """The scripted provider of `name` (its spec is kept in `made`)."""
        self.made.append((name, spec))
        return self.providers[name]
