"""The `llm` agent's streaming progress, and the Anthropic client hook it re-exports.

The calls themselves go through `orchestr8`'s providers (`AnthropicProvider` and the
OpenAI-compatible one): this module keeps what is the agent's own, turning a reply's text deltas
into few `step.progress` events.
"""

from __future__ import annotations

import trio

from orchestr8 import AgentContext
from orchestr8.testing import AnthropicClientFactory, use_anthropic_client

__all__ = ["AnthropicClientFactory", "ProgressCoalescer", "use_anthropic_client"]


class ProgressCoalescer:
    """Turns a stream of text deltas into few progress events: one per interval or size step.

    A delta is published with those buffered before it once `interval` seconds (trio clock)
    passed since the last event or `max_chars` characters are waiting; `flush` publishes the
    rest. Each event is ``{"text_delta": text, "chars": total characters streamed so far}``.
    """

    def __init__(self, context: AgentContext, *, interval: float = 0.1, max_chars: int = 200):
        """Publish through `context.progress`."""
        self._context = context
        self._interval = interval
        self._max_chars = max_chars
        self._buffer: list[str] = []
        self._pending = 0
        self._last = trio.current_time()
        self.chars = 0
        """Characters received so far."""

    def add(self, text: str) -> None:
        """Take one delta, publishing the buffer if it is big or old enough."""
        if not text:
            return
        self._buffer.append(text)
        self._pending += len(text)
        self.chars += len(text)
        if self._pending >= self._max_chars or trio.current_time() - self._last >= self._interval:
            self.flush()

    def flush(self) -> None:
        """Publish whatever is buffered."""
        if self._pending:
            self._context.progress({"text_delta": "".join(self._buffer), "chars": self.chars})
            self._buffer.clear()
            self._pending = 0
        self._last = trio.current_time()
