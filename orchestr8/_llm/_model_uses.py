"""The models an agent declares it will call, so a workflow is checked against them at load.

An agent may define ``model_uses(self) -> Sequence[ModelUse]``; admission checks every use
against the provider catalog before anything runs: the provider exists, it has the capabilities
the use needs, its SDK is installed, and it has a price when a cost cap applies. The problems are
placed at the agent's config path (`$.steps[2].agent.config.fallback[1]`). Agents without the
method are not checked: they call no model, or their own way.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import attrs

from ._chat import Capability

__all__ = ["ModelUse", "model_uses_of"]


@attrs.frozen
class ModelUse:
    """One model an agent calls: its `provider:model` name, what it needs, where it is written."""

    model: str
    """The model as written, `provider:model` (the `llm` agent's bare model means Anthropic)."""
    capabilities: frozenset[Capability] = frozenset()
    """What the call needs from the provider (tools, JSON output, streaming)."""
    where: str = "config.model"
    """The path under the step's `agent` that names it, for problems: `config.fallback[1]`."""


def model_uses_of(agent: Any) -> Sequence[ModelUse]:
    """The models `agent` declares through `model_uses()`, or none if it declares nothing."""
    declare = getattr(agent, "model_uses", None)
    if declare is None:
        return ()
    return tuple(declare())
