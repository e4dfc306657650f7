"""The models an agent declares, read for the checks at load."""

from __future__ import annotations

from orchestr8 import Capability, ModelUse
from orchestr8._llm._model_uses import model_uses_of


class Declares:
    def model_uses(self) -> list[ModelUse]:
        return [ModelUse("local:llama3.1", frozenset({Capability.TOOLS}), "config.fallback[0]")]


def test_an_agent_without_the_method_declares_nothing() -> None:
    """Agents that call no model (or their own way) are not checked."""
    assert model_uses_of(object()) == ()


def test_declared_uses_are_read_as_a_tuple() -> None:
    """What `model_uses()` returns is read once, as a tuple, with its paths."""
    (use,) = model_uses_of(Declares())
    assert use.model == "local:llama3.1"
    assert use.where == "config.fallback[0]"
    assert ModelUse("anthropic:m").where == "config.model"
