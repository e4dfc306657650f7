"""The provider catalog: built-ins, config and workflow layers, lazy shared instances, closing."""

from __future__ import annotations

import sys

import pytest
from scripted_providers import ScriptedProvider, ScriptedProviders

from orchestr8 import (
    AnthropicProvider,
    Capability,
    MissingAPIKeyError,
    ModelNameError,
    ModelPrice,
    ProviderCatalog,
    ProviderSpec,
    UnknownProviderError,
)
from orchestr8._errors import MissingPackageError
from orchestr8._llm import _catalog
from orchestr8._llm._catalog import BUILT_IN_PROVIDERS, LOCAL_BASE_URL, make_provider


def test_the_built_ins_are_anthropic_openai_and_a_local_ollama() -> None:
    """Every catalog starts with anthropic, openai and local (Ollama's address, priced 0)."""
    catalog = ProviderCatalog()
    assert catalog.names == ("anthropic", "local", "openai")
    assert BUILT_IN_PROVIDERS["local"].base_url == LOCAL_BASE_URL == "http://127.0.0.1:11434/v1"
    zero = catalog.price("local", "llama3.1")
    assert zero is not None
    assert (zero.input, zero.output) == (0.0, 0.0)
    assert catalog.price("anthropic", "claude-sonnet-4-5") == ModelPrice(
        input=3.0, output=15.0, cached_input=0.3
    )
    assert catalog.price("anthropic", "claude-sonnet-4-5-20250929") == catalog.price(
        "anthropic", "claude-sonnet-4-5"
    )
    assert catalog.price("anthropic", "claude-unreleased") is None


def test_later_layers_win_by_name() -> None:
    """A config file's spec replaces a built-in; a workflow's replaces both, in its overlay only."""
    configured = {"local": ProviderSpec(kind="openai", base_url="http://10.0.0.2:8000/v1")}
    catalog = ProviderCatalog(configured)
    assert catalog.spec("local") == configured["local"]
    mine = ProviderSpec(kind="anthropic", base_url="http://127.0.0.1:9/")
    overlay = catalog.overlay({"local": mine, "team": mine})
    assert overlay.spec("local") == mine
    assert overlay.names == ("anthropic", "local", "openai", "team")
    assert catalog.spec("team") is None
    assert catalog.overlay({}) is catalog


def test_resolving_gives_the_provider_the_bare_model_and_its_price() -> None:
    """`provider:model` resolves to the provider, the id it is sent and the price override."""
    price = ModelPrice(input=1.0, output=2.0)
    local = ScriptedProvider("local")
    catalog = ProviderCatalog(
        {"local": ProviderSpec(kind="openai", prices={"llama3.1:8b": price})},
        factory=ScriptedProviders(local),
    )
    resolved = catalog.resolve("local:llama3.1:8b")
    assert resolved.provider is local
    assert resolved.model == "llama3.1:8b"
    assert resolved.price == price
    # A redefined `local` keeps the table's `local` section (zero) for models it does not price.
    zero = catalog.resolve("local:other").price
    assert zero is not None
    assert (zero.input, zero.output) == (0.0, 0.0)


def test_the_price_table_section_is_the_provider_s_name_then_its_kind() -> None:
    """`local` (of kind openai) reads the table's `local` section; another openai-kind name not."""
    catalog = ProviderCatalog(
        {"local": ProviderSpec(kind="openai"), "lab": ProviderSpec(kind="openai")},
        factory=ScriptedProviders(ScriptedProvider("local"), ScriptedProvider("lab")),
    )
    zero = catalog.price("local", "llama3.1")
    assert zero is not None
    assert (zero.input, zero.output) == (0.0, 0.0)
    assert catalog.price("lab", "llama3.1") is None
    assert catalog.price("lab", "gpt-4.1") == catalog.price("openai", "gpt-4.1")


def test_a_bare_model_resolves_to_anthropic_only_where_allowed() -> None:
    """`resolve` reads a bare name as Anthropic's unless told a provider is required."""
    catalog = ProviderCatalog(factory=ScriptedProviders(ScriptedProvider("anthropic")))
    assert catalog.resolve("claude-sonnet-4-5").provider.name == "anthropic"
    with pytest.raises(ModelNameError, match="names no provider"):
        catalog.resolve("claude-sonnet-4-5", bare_allowed=False)


def test_an_unknown_provider_lists_the_known_ones() -> None:
    """Resolving a name of no provider says which providers exist and where to declare one."""
    with pytest.raises(UnknownProviderError) as caught:
        ProviderCatalog().resolve("vllm:qwen")
    assert str(caught.value) == (
        "unknown provider 'vllm' (known: anthropic, local, openai); declare it in the "
        "workflow's providers or in a provider config file (--providers)"
    )
    with pytest.raises(UnknownProviderError):
        ProviderCatalog().capabilities("vllm")


def test_one_instance_per_provider_is_shared_by_overlays_and_closed_once() -> None:
    """Instances are made on first use, shared by every overlay with the same spec, and closed."""
    anthropic = ScriptedProvider("anthropic")
    factory = ScriptedProviders(anthropic)
    catalog = ProviderCatalog(factory=factory)
    assert factory.made == []
    first = catalog.resolve("anthropic:a").provider
    second = catalog.overlay({"other": ProviderSpec(kind="openai")}).resolve("anthropic:b")
    assert first is second.provider is anthropic
    assert len(factory.made) == 1

    async def close() -> None:
        await catalog.aclose()
        await catalog.aclose()

    import trio

    trio.run(close)
    assert anthropic.closed == 1


def test_references_are_bound_when_the_provider_is_made() -> None:
    """`${secrets.NAME}` comes from the execution's or the runtime's secrets, `${env.NAME}` from the
    environment; the provider is made from the bound spec."""
    factory = ScriptedProviders(ScriptedProvider("team"))
    spec = ProviderSpec(
        kind="anthropic",
        api_key="${secrets.TEAM_KEY}",
        headers={"X-Org": "${env.ORG}", "X-Run": "${secrets.RUN}"},
    )
    catalog = ProviderCatalog(
        {"team": spec},
        secrets={"TEAM_KEY": "k-1"}.get,
        environ={"ORG": "research"},
        factory=factory,
    )
    catalog.overlay({}, {"RUN": "r-7"}).resolve("team:m")
    bound = factory.made[0][1]
    assert bound.api_key == "k-1"
    assert bound.headers == {"X-Org": "research", "X-Run": "r-7"}


def test_a_missing_secret_is_a_missing_key_naming_the_provider() -> None:
    """A provider whose key secret is not set fails as having no key, saying how to set it."""
    catalog = ProviderCatalog({"team": ProviderSpec(kind="anthropic", api_key="${secrets.K}")})
    with pytest.raises(MissingAPIKeyError, match="provider 'team' uses the secret 'K'"):
        catalog.resolve("team:m")


def test_capabilities_are_the_kind_s_unless_the_spec_lists_them() -> None:
    """A spec's `capabilities` replace its kind's (all three)."""
    catalog = ProviderCatalog({"small": ProviderSpec(kind="openai", capabilities=("streaming",))})
    assert catalog.capabilities("anthropic") == frozenset(Capability)
    assert catalog.capabilities("small") == {Capability.STREAMING}


def test_an_anthropic_kind_makes_an_anthropic_provider_with_its_spec() -> None:
    """The default factory builds `AnthropicProvider` with the spec's URL, key and headers."""
    spec = ProviderSpec(kind="anthropic", base_url="http://127.0.0.1:1/", capabilities=("tools",))
    provider = make_provider("backup", spec)
    assert isinstance(provider, AnthropicProvider)
    assert provider.name == "backup"
    assert provider.base_url == "http://127.0.0.1:1/"
    assert provider.capabilities == {Capability.TOOLS}


def test_the_openai_kind_without_its_package_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without `openai` installed, a provider of that kind names the extra to install."""
    monkeypatch.setitem(sys.modules, "openai", None)
    catalog = ProviderCatalog()
    assert catalog.missing_package("openai") == (
        "provider 'openai' is of kind openai, which needs the openai package:"
        " pip install 'orchestr8[openai]'"
    )
    assert catalog.missing_package("anthropic") is None
    with pytest.raises(MissingPackageError, match=r"pip install 'orchestr8\[openai\]'"):
        catalog.resolve("openai:gpt-4.1")


def test_secret_values_read_the_execution_s_first_then_the_runtime_s() -> None:
    """The mapping binding reads: the execution's values, then the runtime's lookup."""
    values = _catalog._SecretValues({"A": "1"}, {"B": "2"}.get)
    assert (values["A"], values["B"], list(values), len(values)) == ("1", "2", ["A"], 1)
    with pytest.raises(KeyError):
        values["C"]


def test_only_the_built_in_providers_read_their_environment_variable() -> None:
    """Built-in `anthropic`/`openai` read their key variable; a declared one never does."""
    built_in = make_provider("anthropic", BUILT_IN_PROVIDERS["anthropic"])
    declared = make_provider("anthropic", ProviderSpec(kind="anthropic", base_url="http://h/"))
    lab = make_provider("lab", ProviderSpec(kind="openai", base_url="http://h/v1"))
    openai_built_in = make_provider("openai", BUILT_IN_PROVIDERS["openai"])
    assert built_in._key_variable == "ANTHROPIC_API_KEY"  # type: ignore[attr-defined]
    assert declared._key_variable is None  # type: ignore[attr-defined]
    assert lab._key_variable is None  # type: ignore[attr-defined]
    assert openai_built_in._key_variable == "OPENAI_API_KEY"  # type: ignore[attr-defined]


def test_a_spec_key_naming_an_unset_variable_is_a_missing_key() -> None:
    """`api_key: ${env.NOPE}` unset: `MissingAPIKeyError` names the provider and the variable."""
    spec = ProviderSpec(kind="anthropic", base_url="http://h/", api_key="${env.NOPE}")
    catalog = ProviderCatalog({"b": spec}, environ={})
    with pytest.raises(MissingAPIKeyError) as caught:
        catalog.resolve("b:m")
    assert str(caught.value) == (
        "provider 'b' takes its API key from the environment variable 'NOPE', which is not set"
    )
    set_catalog = ProviderCatalog({"b": spec}, environ={"NOPE": "sk-b"})
    assert set_catalog.resolve("b:m").provider._api_key == "sk-b"  # type: ignore[attr-defined]
