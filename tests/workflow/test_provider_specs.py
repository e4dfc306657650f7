"""Model providers in the AST: `providers` specs checked at load, each problem at its JSON path."""

from __future__ import annotations

from typing import Any

import pytest

from orchestr8._errors import WorkflowValidationError
from orchestr8._workflow._codec import load_workflow, workflow_to_json
from orchestr8._workflow._provider_specs import (
    ModelPrice,
    ProviderSpec,
    bind_provider_secrets,
    provider_secret_names,
    provider_spec_problems,
)


def document(providers: Any, version: str = "1.1") -> dict[str, Any]:
    """A one-step workflow with these providers."""
    return {
        "schema_version": version,
        "name": "providers",
        "steps": [{"id": "a", "agent": "echo"}],
        "providers": providers,
    }


def problems_of(providers: Any, version: str = "1.1") -> list[str]:
    """The problems loading a workflow with these providers reports, as `path: message`."""
    with pytest.raises(WorkflowValidationError) as caught:
        load_workflow(document(providers, version))
    return [str(problem) for problem in caught.value.problems]


def test_a_workflow_declares_providers_and_writes_them_back() -> None:
    """Specs load into frozen values and serialise back without their defaults."""
    local = {
        "kind": "openai",
        "base_url": "http://127.0.0.1:11434/v1",
        "api_key": "${secrets.LOCAL_KEY}",
        "capabilities": ["streaming", "tools"],
        "prices": {"*": {"input": 0, "output": 0}},
        "headers": {"X-Team": "research"},
    }
    workflow = load_workflow(document({"local": local}))
    spec = workflow.providers["local"]
    assert spec.kind == "openai"
    assert spec.capabilities == ("streaming", "tools")
    assert spec.prices == {"*": ModelPrice(input=0.0, output=0.0)}
    assert workflow_to_json(workflow)["providers"]["local"]["base_url"] == local["base_url"]


def test_a_workflow_without_providers_writes_none() -> None:
    """An empty `providers` is left out of the written document: old documents stay as they were."""
    workflow = load_workflow(
        {"schema_version": "1.0", "name": "n", "steps": [{"id": "a", "agent": "echo"}]}
    )
    assert workflow.providers == {}
    assert "providers" not in workflow_to_json(workflow)


@pytest.mark.parametrize(
    ("providers", "expected"),
    [
        ({"Local": {"kind": "openai"}}, "$.providers: 'Local' is not a provider name"),
        ({"x": {"kind": "grpc"}}, "$.providers.x.kind: expected one of 'anthropic', 'openai'"),
        ({"x": {}}, "$.providers.x: missing required key 'kind'"),
        (
            {"x": {"kind": "openai", "base_url": "ftp://host"}},
            "$.providers.x.base_url: 'ftp://host' is not an http or https URL",
        ),
        (
            {"x": {"kind": "openai", "base_url": "http://"}},
            "$.providers.x.base_url: 'http://' names no host",
        ),
        (
            {"x": {"kind": "openai", "base_url": "http://u:p@h/v1"}},
            "$.providers.x.base_url: a base URL must not hold credentials",
        ),
        (
            {"x": {"kind": "openai", "api_key": "sk-live-123"}},
            "$.providers.x.api_key: a key is never written in a document",
        ),
        (
            {"x": {"kind": "openai", "api_key": "${env.HOME}"}},
            "$.providers.x.api_key: a workflow may not read the environment",
        ),
        (
            {"x": {"kind": "openai", "headers": {"Auth": "Bearer ${env.T}"}}},
            "$.providers.x.headers.Auth: a workflow may not read the environment",
        ),
        (
            {"x": {"kind": "openai", "headers": {"Auth": "${secrets.}"}}},
            "$.providers.x.headers.Auth: invalid reference",
        ),
        (
            {"x": {"kind": "openai", "capabilities": ["tools", "tools"]}},
            "$.providers.x.capabilities[1]: 'tools' is listed twice",
        ),
        (
            {"x": {"kind": "openai", "capabilities": ["vision"]}},
            "$.providers.x.capabilities[0]: expected one of",
        ),
        (
            {"x": {"kind": "openai", "prices": {"m": {"input": -1, "output": 1}}}},
            "$.providers.x.prices.m.input: must be at least 0",
        ),
        (
            {"x": {"kind": "openai", "prices": {"m": {"input": 1}}}},
            "$.providers.x.prices.m: missing required key 'output'",
        ),
    ],
)
def test_every_bad_field_is_a_problem_at_its_path(providers: Any, expected: str) -> None:
    """Each mistake in a spec is reported at its own JSON path, saying what is wrong."""
    assert any(problem.startswith(expected) for problem in problems_of(providers)), problems_of(
        providers
    )


def test_reference_problems_are_reported_with_the_schema_problems() -> None:
    """A literal key, `${env...}` and credentials in a URL show beside a bad kind or price."""
    providers = {
        "bad": {"kind": "grpc", "api_key": "sk-abc123"},
        "env": {
            "kind": "anthropic",
            "base_url": "http://user:pass@host/",
            "headers": {"X": "${env.HOME}", "N": 3},
            "prices": {"*": {"input": -1}},
        },
        "Loud": {"kind": "openai", "api_key": "sk-abc123"},
        "odd": "not an object",
    }
    assert problems_of(providers) == [
        "$.providers: 'Loud' is not a provider name (a lower-case letter, then lower-case"
        " letters, digits, '_' or '-')",
        "$.providers.bad.api_key: a key is never written in a document: use a reference,"
        " ${secrets.NAME}",
        "$.providers.bad.kind: expected one of 'anthropic', 'openai', got 'grpc'",
        "$.providers.env.base_url: a base URL must not hold credentials: put the key in api_key"
        " as a reference",
        "$.providers.env.headers.N: expected a string, got an integer",
        "$.providers.env.headers.X: a workflow may not read the environment (${env.NAME}): use"
        " ${secrets.NAME}, or name the key in a provider config file (--providers)",
        "$.providers.env.prices['*']: missing required key 'output'",
        "$.providers.env.prices['*'].input: must be at least 0, got -1",
        "$.providers.odd: expected an object, got a string",
    ]


def test_providers_need_schema_version_1_1() -> None:
    """A 1.0 document may not declare providers."""
    assert problems_of({"x": {"kind": "openai"}}, "1.0") == [
        '$.providers: "providers" needs schema_version "1.1" (this document says "1.0")'
    ]


def test_a_config_file_may_read_the_environment() -> None:
    """`${env.NAME}` is refused in a workflow but allowed where the operator writes the config."""
    specs = {"x": ProviderSpec(kind="openai", api_key="${env.OPENAI_API_KEY}")}
    assert provider_spec_problems(specs, environment_allowed=True) == []
    assert provider_spec_problems(specs) != []


def test_secret_names_are_gathered_from_keys_and_headers() -> None:
    """The secrets a workflow's providers reference join the execution's secrets."""
    specs = {
        "a": ProviderSpec(kind="openai", api_key="${secrets.A_KEY}"),
        "b": ProviderSpec(
            kind="anthropic", headers={"X": "t ${secrets.B_TOKEN}", "Y": "$${secrets.NO}"}
        ),
    }
    assert provider_secret_names(specs) == {"A_KEY", "B_TOKEN"}


def test_binding_replaces_secrets_and_environment_references() -> None:
    """A bound spec holds the values; an unset variable key is left out, an escaped `$$` stays."""
    spec = ProviderSpec(
        kind="openai",
        api_key="${secrets.KEY}",
        headers={"A": "Bearer ${env.TOKEN}", "B": "$${env.TOKEN}", "C": "${secrets.KEY}"},
    )
    bound = bind_provider_secrets(spec, {"KEY": "k1"}, {"TOKEN": "t1"})
    assert bound.api_key == "k1"
    assert bound.headers == {"A": "Bearer t1", "B": "${env.TOKEN}", "C": "k1"}
    unset = bind_provider_secrets(ProviderSpec(kind="openai", api_key="${env.NONE}"), {}, {})
    assert unset.api_key is None


def test_specs_built_in_python_are_checked_too() -> None:
    """A name or URL the schema would have refused is a problem for specs built in Python."""
    specs = {"Bad": ProviderSpec(kind="openai", base_url="http://[::1")}
    assert [str(problem) for problem in provider_spec_problems(specs)] == [
        "$.providers.Bad: 'Bad' is not a provider name (lower-case letters, digits, '_' or '-',"
        " starting with a letter)",
        "$.providers.Bad.base_url: 'http://[::1' is not a URL (Invalid IPv6 URL)",
    ]
