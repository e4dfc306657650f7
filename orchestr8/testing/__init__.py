"""Helpers for testing orchestr8 workflows and agents offline: a harness and fakes of services.

Everything public is listed in `__all__`. The harness (`run_agent`, `run_workflow_for_test`,
`capture_events`) runs agents and workflows in memory (see ``docs/testing.md``); `FakeAnthropic`
is a scripted stand-in for the Anthropic Messages API (see ``docs/llm.md``, "Testing LLM agents
offline"), which `use_fake_anthropic` plugs into the `use_anthropic_client` hook the `llm` agent
of `actors` reads; `FakeOpenAI` is its twin for OpenAI-compatible servers, which
`use_fake_openai` plugs into the `use_openai_client` hook OpenAI-kind providers read. Names are
imported on first use (PEP 562), so loading the pytest plugin (`orchestr8.testing._plugin`, the
`pytest11` entry point `orchestr8`) imports none of them.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ._anthropic import AnthropicRequest as AnthropicRequest
    from ._anthropic import FakeAnthropic as FakeAnthropic
    from ._anthropic import use_fake_anthropic as use_fake_anthropic
    from ._anthropic_hook import AnthropicClientFactory as AnthropicClientFactory
    from ._anthropic_hook import anthropic_client_factory as anthropic_client_factory
    from ._anthropic_hook import use_anthropic_client as use_anthropic_client
    from ._context7 import Context7Request as Context7Request
    from ._context7 import FakeContext7 as FakeContext7
    from ._harness import AgentRun as AgentRun
    from ._harness import CapturedEvents as CapturedEvents
    from ._harness import WorkflowRun as WorkflowRun
    from ._harness import capture_events as capture_events
    from ._harness import run_agent as run_agent
    from ._harness import run_workflow_for_test as run_workflow_for_test
    from ._openai import FakeOpenAI as FakeOpenAI
    from ._openai import OpenAIRequest as OpenAIRequest
    from ._openai import use_fake_openai as use_fake_openai
    from ._openai_hook import OpenAIClientFactory as OpenAIClientFactory
    from ._openai_hook import openai_client_factory as openai_client_factory
    from ._openai_hook import use_openai_client as use_openai_client
    from ._websocket import open_event_socket as open_event_socket

_EXPORTS: dict[str, str] = {
    "AgentRun": "_harness",
    "AnthropicClientFactory": "_anthropic_hook",
    "AnthropicRequest": "_anthropic",
    "CapturedEvents": "_harness",
    "Context7Request": "_context7",
    "FakeAnthropic": "_anthropic",
    "FakeContext7": "_context7",
    "FakeOpenAI": "_openai",
    "OpenAIClientFactory": "_openai_hook",
    "OpenAIRequest": "_openai",
    "WorkflowRun": "_harness",
    "anthropic_client_factory": "_anthropic_hook",
    "capture_events": "_harness",
    "open_event_socket": "_websocket",
    "openai_client_factory": "_openai_hook",
    "run_agent": "_harness",
    "run_workflow_for_test": "_harness",
    "use_anthropic_client": "_anthropic_hook",
    "use_fake_anthropic": "_anthropic",
    "use_fake_openai": "_openai",
    "use_openai_client": "_openai_hook",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    """Import a public name from its private module on first use."""
    module_name = _EXPORTS.get(name)
    if module_name is None:
        raise AttributeError(f"module 'orchestr8.testing' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module_name}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    """List the public names, for completion and `help()`."""
    return list(__all__)
