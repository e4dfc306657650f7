"""Load-time checks of the models agents call: provider, capability, package, price under a cap."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from orchestr8 import (
    AgentRegistry,
    Capability,
    ModelUse,
    ProviderCatalog,
    ProviderSpec,
    WorkflowValidationError,
    load_workflow,
)
from orchestr8._execution._admission import admit_workflow
from orchestr8._llm import _catalog
from orchestr8._llm._model_use_checks import model_use_problems


class Caller:
    """An agent declaring the models it calls."""

    def __init__(self, *uses: ModelUse) -> None:
        """Declare `uses`."""
        self.uses = uses

    def model_uses(self) -> tuple[ModelUse, ...]:
        """The declared uses."""
        return self.uses


WORKFLOW = load_workflow(
    {
        "schema_version": "1.1",
        "name": "checks",
        "steps": [{"id": "a", "agent": "echo"}, {"id": "b", "agent": "echo"}],
        "providers": {"small": {"kind": "openai", "capabilities": ["streaming"]}},
    }
)
TOOLS = frozenset({Capability.STREAMING, Capability.TOOLS})


def problems(*uses: ModelUse, capped: bool = False, **catalog: Any) -> list[str]:
    """The problems of step `b` declaring `uses`."""
    found = model_use_problems(
        WORKFLOW,
        {"a": object(), "b": Caller(*uses)},
        ProviderCatalog(catalog.get("configured")),
        cost_capped=lambda step_id: capped,
    )
    return [str(problem) for problem in found]


def test_known_providers_with_what_is_needed_pass() -> None:
    """A use of a known provider offering what it needs is no problem; agents declaring none too."""
    assert problems(ModelUse("anthropic:claude", TOOLS), ModelUse("claude-bare", TOOLS)) == []


def test_an_unknown_provider_is_refused_listing_the_known_ones() -> None:
    """The problem is at the config path of the name and lists every known provider."""
    assert problems(ModelUse("vllm:qwen", where="config.fallback[1]")) == [
        "$.steps[1].agent.config.fallback[1]: unknown provider 'vllm' (known: anthropic, local,"
        " openai, small); declare it in the workflow's providers or in a provider config file"
        " (--providers)"
    ]


def test_a_capability_the_provider_lacks_is_refused() -> None:
    """Tools on a provider whose spec offers only streaming is a load error, not a run failure."""
    assert problems(ModelUse("small:m", TOOLS)) == [
        "$.steps[1].agent.config.model: provider 'small' does not offer tools, which this step"
        " needs (it offers: streaming)"
    ]


def test_a_malformed_name_is_refused() -> None:
    """A name that cannot be read is reported at its path."""
    assert problems(ModelUse("Bad:m")) == [
        "$.steps[1].agent.config.model: 'Bad' in 'Bad:m' is not a provider name (lower-case"
        " letters, digits, '_' or '-', starting with a letter)"
    ]


def test_the_openai_package_missing_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    """An openai-kind provider without the package names the extra to install."""
    monkeypatch.setattr(_catalog, "_openai_installed", lambda: False)
    assert problems(ModelUse("openai:gpt-4.1")) == [
        "$.steps[1].agent.config.model: provider 'openai' is of kind openai, which needs the"
        " openai package: pip install 'orchestr8[openai]'"
    ]


def test_under_a_cost_cap_a_model_needs_a_price() -> None:
    """Under a cap an unpriced model is refused, a priced one (local) passes; uncapped, no check."""
    assert problems(ModelUse("local:llama3.1"), capped=True) == []
    assert problems(ModelUse("anthropic:claude")) == []
    assert problems(ModelUse("anthropic:claude"), capped=True) == [
        "$.steps[1].agent.config.model: anthropic:claude has no price and a cost cap applies"
        ' to this step: add its price to the "prices" of provider \'anthropic\' (or a "*" entry)'
    ]


def test_admission_checks_the_llm_agent_s_model_and_fallbacks(tmp_path: Path) -> None:
    """A workflow whose llm step falls back to an unknown provider is refused at load."""
    document = {
        "schema_version": "1.1",
        "name": "refused",
        "steps": [
            {
                "id": "ask",
                "agent": {
                    "id": "llm",
                    "config": {"model": "local:llama3.1", "fallback": ["vllm:qwen"]},
                },
            }
        ],
    }
    with pytest.raises(WorkflowValidationError) as caught:
        admit_workflow(document, AgentRegistry())
    assert [problem.path for problem in caught.value.problems] == [
        "$.steps[0].agent.config.fallback[0]"
    ]
    specs = {"vllm": ProviderSpec(kind="openai", base_url="http://127.0.0.1:8000/v1")}
    assert admit_workflow(document, AgentRegistry(), providers=specs).workflow.name == "refused"


def test_a_child_workflow_s_models_are_checked_under_its_step() -> None:
    """A sub-workflow's llm step with an unknown provider is located under the parent's step."""
    child = {
        "schema_version": "1.1",
        "name": "child",
        "steps": [{"id": "ask", "agent": {"id": "llm", "config": {"model": "nope:m"}}}],
    }
    document = {
        "schema_version": "1.1",
        "name": "parent",
        "steps": [{"id": "run", "workflow": child}],
    }
    with pytest.raises(WorkflowValidationError) as caught:
        admit_workflow(document, AgentRegistry())
    assert [problem.path for problem in caught.value.problems] == [
        "$.steps[0].workflow.steps[0].agent.config.model"
    ]
