"""The Anthropic client hook: what makes the `anthropic.AsyncAnthropic` clients of `llm` agents.

A context variable, owned by orchestr8 so that `use_fake_anthropic` can set it without importing
the bundled `actors` package (orchestr8 never imports `actors`; the arrow points the other way):
the `llm` agent asks `anthropic_client_factory()` for a factory before making a client of its
own, and `actors.llm.use_anthropic_client` is this module's `use_anthropic_client`. It imports
nothing heavy, so the agent can read it on every call.
"""

from __future__ import annotations

import contextvars
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from anthropic import AsyncAnthropic

__all__ = ["AnthropicClientFactory", "anthropic_client_factory", "use_anthropic_client"]

AnthropicClientFactory = Callable[[], "AsyncAnthropic"]
"""Makes a new `anthropic.AsyncAnthropic`; the agent closes each client it gets when done."""

_client_factory: contextvars.ContextVar[AnthropicClientFactory | None] = contextvars.ContextVar(
    "orchestr8_anthropic_client_factory", default=None
)


@contextmanager
def use_anthropic_client(factory: AnthropicClientFactory) -> Iterator[None]:
    """Make `llm` agents that create their client inside this block call `factory` for it.

    The hook is a context variable, so it reaches the tasks started inside the block (trio copies
    context variables into new tasks), including the executions of a runtime opened or started
    there. The factory must return a new client each time: the agent closes it when its calls
    are done. No API key is needed while a factory is in use.
    """
    token = _client_factory.set(factory)
    try:
        yield
    finally:
        _client_factory.reset(token)


def anthropic_client_factory() -> AnthropicClientFactory | None:
    """The factory set by the innermost `use_anthropic_client` block around the caller, if any."""
    return _client_factory.get()
