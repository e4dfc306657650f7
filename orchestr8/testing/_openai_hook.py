"""The OpenAI client hook: what makes the `openai.AsyncOpenAI` clients of OpenAI-kind providers.

A context variable, like `_anthropic_hook`: `OpenAIProvider` asks `openai_client_factory()` for a
factory before making a client of its own, so `use_fake_openai` can plug `FakeOpenAI` in without
the provider knowing about the fake. It imports nothing heavy, so a provider can read it on
every call.
"""

from __future__ import annotations

import contextvars
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from openai import AsyncOpenAI

__all__ = ["OpenAIClientFactory", "openai_client_factory", "use_openai_client"]

OpenAIClientFactory = Callable[[], "AsyncOpenAI"]
"""Makes a new `openai.AsyncOpenAI`; the provider that asked for it closes it when done."""

_client_factory: contextvars.ContextVar[OpenAIClientFactory | None] = contextvars.ContextVar(
    "orchestr8_openai_client_factory", default=None
)


@contextmanager
def use_openai_client(factory: OpenAIClientFactory) -> Iterator[None]:
    """Make OpenAI-kind providers that create their client inside this block call `factory`.

    The hook is a context variable, so it reaches the tasks started inside the block (trio copies
    context variables into new tasks), including the executions of a runtime opened or started
    there. The factory must return a new client each time: the provider closes it. No API key
    or base URL is needed while a factory is in use.
    """
    token = _client_factory.set(factory)
    try:
        yield
    finally:
        _client_factory.reset(token)


def openai_client_factory() -> OpenAIClientFactory | None:
    """The factory set by the innermost `use_openai_client` block around the caller, if any."""
    return _client_factory.get()
