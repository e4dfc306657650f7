"""The provider catalog: which providers exist, and the one client each keeps per runtime.

Providers come from three places; later wins by name:

1. the built-ins, `BUILT_IN_PROVIDERS`: `anthropic` (key `ANTHROPIC_API_KEY`), `openai` (key
   `OPENAI_API_KEY`, `OPENAI_BASE_URL` honoured) and `local` (an Ollama at
   `http://127.0.0.1:11434/v1`, no key, priced 0);
2. the provider config file (`--providers FILE`, `ORCHESTR8_PROVIDERS`, or
   `open_runtime(providers=...)`): the runtime's catalog;
3. a workflow's own `providers`: an overlay of the runtime's catalog for its executions
   (`ProviderCatalog.overlay`).

`resolve("local:llama3.1")` gives the provider, the bare model id it is sent and its price. A
provider instance is made on first use from its spec, with its `${secrets.NAME}` and
`${env.NAME}` references bound, and kept for the runtime's life, shared by every overlay that
has the same spec: one client (and connection pool) per provider per runtime. `aclose` closes
them all when the runtime closes. Nothing here imports an SDK: the provider classes do, on their
first call; the OpenAI-compatible one (`_openai_provider`) is even imported only when a provider
of kind `openai` is first made.
"""

from __future__ import annotations

import importlib
import json
import os
import types
from collections.abc import Callable, Iterator, Mapping
from typing import Final

import attrs

from .._errors import MissingAPIKeyError, MissingPackageError, UnknownProviderError
from .._workflow._converter import converter
from .._workflow._provider_specs import (
    ModelPrice,
    ProviderSpec,
    bind_provider_secrets,
    environment_reference,
)
from ._chat import ALL_CAPABILITIES, Capability
from ._model_names import parse_model_name
from ._prices import price_for, price_table
from ._provider import Provider

__all__ = [
    "BUILT_IN_PROVIDERS",
    "LOCAL_BASE_URL",
    "OPENAI_EXTRA",
    "ProviderCatalog",
    "ProviderFactory",
    "ResolvedModel",
    "make_provider",
]

#: Where the built-in `local` provider looks for a model server: Ollama's OpenAI-compatible API.
LOCAL_BASE_URL: Final = "http://127.0.0.1:11434/v1"

#: How to install what an `openai`-kind provider needs.
OPENAI_EXTRA: Final = "pip install 'orchestr8[openai]'"

#: The providers every catalog starts from; a config file or a workflow may replace any by name.
BUILT_IN_PROVIDERS: Final[Mapping[str, ProviderSpec]] = types.MappingProxyType(
    {
        "anthropic": ProviderSpec(kind="anthropic"),
        "openai": ProviderSpec(kind="openai"),
        "local": ProviderSpec(
            kind="openai",
            base_url=LOCAL_BASE_URL,
            prices={"*": ModelPrice(input=0.0, output=0.0)},
        ),
    }
)


@attrs.frozen
class ResolvedModel:
    """A model name resolved: the provider to call, the model id it is sent, and its price."""

    provider: Provider
    """The provider instance (shared by every call of the runtime)."""
    model: str
    """The bare model id, without the provider's name."""
    price: ModelPrice | None
    """What the model costs, or None when no price is known."""


SecretLookup = Callable[[str], "str | None"]


ProviderFactory = Callable[[str, ProviderSpec], Provider]
"""Makes the provider of a name and its spec (references bound); `make_provider` by default."""


class _Instances:
    """The provider instances of one runtime, by name and bound spec, and their closing."""

    def __init__(self, factory: ProviderFactory) -> None:
        self.factory = factory
        self.made: dict[tuple[str, str], Provider] = {}

    def get(self, name: str, spec: ProviderSpec) -> Provider:
        key = (name, json.dumps(converter.unstructure(spec), sort_keys=True))
        provider = self.made.get(key)
        if provider is None:
            provider = self.made[key] = self.factory(name, spec)
        return provider

    async def aclose(self) -> None:
        made, self.made = list(self.made.values()), {}
        for provider in made:
            await provider.aclose()


class ProviderCatalog:
    """The providers a runtime (or one workflow's executions) may call, by name.

    Built from the configured specs over the built-ins; `overlay` adds a workflow's own. Every
    overlay shares the runtime's provider instances, which `aclose` closes.
    """

    def __init__(
        self,
        configured: Mapping[str, ProviderSpec] | None = None,
        *,
        secrets: SecretLookup | None = None,
        environ: Mapping[str, str] | None = None,
        factory: ProviderFactory | None = None,
    ) -> None:
        """A catalog of the built-ins with `configured` over them.

        Args:
            configured: specs from a provider config file, by name.
            secrets: looks a `${secrets.NAME}` value up (the runtime's secrets); None: none.
            environ: where `${env.NAME}` is read; None: `os.environ` when a provider is made.
            factory: makes a provider from its name and bound spec (`make_provider`, by kind,
                by default); a program may plug in its own implementations of `Provider`.
        """
        self._specs: Mapping[str, ProviderSpec] = {**BUILT_IN_PROVIDERS, **(configured or {})}
        self._lookup: SecretLookup = secrets or (lambda name: None)
        self._environ = environ
        self._instances = _Instances(factory or make_provider)
        self._own_secrets: Mapping[str, str] = {}
        self._root = self

    def overlay(
        self, providers: Mapping[str, ProviderSpec], secrets: Mapping[str, str] | None = None
    ) -> ProviderCatalog:
        """A catalog with a workflow's `providers` over this one's, sharing its provider instances.

        `secrets`: the execution's secret values, looked up before the runtime's. Without
        providers or secrets it is this catalog itself.
        """
        if not providers and not secrets:
            return self
        layered = ProviderCatalog.__new__(ProviderCatalog)
        layered._specs = {**self._specs, **providers}
        layered._lookup = self._lookup
        layered._environ = self._environ
        layered._instances = self._instances
        layered._own_secrets = {**self._own_secrets, **(secrets or {})}
        layered._root = self._root
        return layered

    @property
    def root(self) -> ProviderCatalog:
        """The catalog every overlay of this one was laid over: the runtime's own."""
        return self._root

    @property
    def names(self) -> tuple[str, ...]:
        """Every provider name, sorted."""
        return tuple(sorted(self._specs))

    def spec(self, name: str) -> ProviderSpec | None:
        """The spec of provider `name`, or None when there is no such provider."""
        return self._specs.get(name)

    def capabilities(self, name: str) -> frozenset[Capability]:
        """What provider `name` offers: its spec's `capabilities`, else all of its kind's.

        Raises:
            UnknownProviderError: there is no provider `name`.
        """
        spec = self._known(name)
        if spec.capabilities is None:
            return ALL_CAPABILITIES
        return frozenset(Capability(capability) for capability in spec.capabilities)

    def unknown_message(self, name: str) -> str:
        """Why `name` cannot be used: it is in no catalog; the known names are listed."""
        known = ", ".join(self.names)
        return (
            f"unknown provider {name!r} (known: {known}); declare it in the workflow's"
            " providers or in a provider config file (--providers)"
        )

    def missing_package(self, name: str) -> str | None:
        """What provider `name` needs installed that is not, or None (also for unknown ones)."""
        spec = self._specs.get(name)
        if spec is not None and spec.kind == "openai":
            try:
                _require_openai(name)
            except MissingPackageError as error:
                return str(error)
        return None

    def price(self, name: str, model: str) -> ModelPrice | None:
        """The price of `model` at provider `name`: its spec's `prices`, else the price table.

        The lookup is `price_for`'s (the model as written, then without its release suffix,
        then `"*"`; the overrides before the vendored table); None when neither knows the model.
        The table's section is the one named like the provider when there is one (`anthropic`,
        `openai`, `local`: a `local` redefined in a config file keeps its zero price), else the
        one of its kind.

        Raises:
            UnknownProviderError: there is no provider `name`.
        """
        spec = self._known(name)
        given = spec.prices.get(model) or spec.prices.get("*")
        if given is not None:
            return given
        section = name if name in price_table().models else spec.kind
        entry = price_for(section, model, spec.prices)
        if entry is None:
            return None
        return ModelPrice(input=entry.input, output=entry.output, cached_input=entry.cached_input)

    def resolve(self, model_name: str, *, bare_allowed: bool = True) -> ResolvedModel:
        """The provider, bare model id and price of `provider:model` (a bare name: anthropic).

        Raises:
            ModelNameError: the name is malformed (or bare where that is not allowed).
            UnknownProviderError: its provider is in no catalog.
            MissingAPIKeyError, NonRetryableError: the provider cannot be made (a secret its
                spec references is not set, or its SDK is not installed).
        """
        name = parse_model_name(model_name, field="model", bare_allowed=bare_allowed)
        spec = self._known(name.provider)
        bound = self._bind(name.provider, spec)
        provider = self._instances.get(name.provider, bound)
        return ResolvedModel(provider, name.model, self.price(name.provider, name.model))

    async def aclose(self) -> None:
        """Close every provider instance made; a later `resolve` makes a new one."""
        await self._instances.aclose()

    def _known(self, name: str) -> ProviderSpec:
        spec = self._specs.get(name)
        if spec is None:
            raise UnknownProviderError(self.unknown_message(name))
        return spec

    def _bind(self, name: str, spec: ProviderSpec) -> ProviderSpec:
        """The spec with its references replaced by their values, for making the instance."""
        secrets = _SecretValues(self._own_secrets, self._lookup)
        environ = os.environ if self._environ is None else self._environ
        variable = environment_reference(spec.api_key)
        if variable is not None and not environ.get(variable):
            raise MissingAPIKeyError(
                f"provider {name!r} takes its API key from the environment variable"
                f" {variable!r}, which is not set"
            )
        try:
            return bind_provider_secrets(spec, secrets, environ)
        except KeyError as error:
            secret = str(error.args[0])
            raise MissingAPIKeyError(
                f"provider {name!r} uses the secret {secret!r}, which is not set: set"
                f" ORCHESTR8_SECRET_{secret} or put it in a secrets file"
            ) from None


class _SecretValues(Mapping[str, str]):
    """The execution's secrets, then the runtime's lookup, as the mapping binding reads."""

    def __init__(self, own: Mapping[str, str], lookup: SecretLookup) -> None:
        self._own = own
        self._lookup = lookup

    def __getitem__(self, name: str) -> str:
        value = self._own.get(name)
        if value is None:
            value = self._lookup(name)
        if value is None:
            raise KeyError(name)
        return value

    def __iter__(self) -> Iterator[str]:
        return iter(self._own)

    def __len__(self) -> int:
        return len(self._own)


def _require_openai(name: str) -> None:
    """`require_openai` of the OpenAI provider's module, imported by name (see `make_provider`).

    Raises:
        MissingPackageError: the `openai` package is not installed.
    """
    importlib.import_module(f"{__package__}._openai_provider").require_openai(name)


def _capabilities(spec: ProviderSpec) -> frozenset[Capability] | None:
    if spec.capabilities is None:
        return None
    return frozenset(Capability(capability) for capability in spec.capabilities)


def make_provider(name: str, spec: ProviderSpec) -> Provider:
    """A provider instance of `spec`'s kind (`AnthropicProvider`, `OpenAIProvider`), bound.

    Only the built-in `anthropic` and `openai` (their spec as built in) read their environment
    variable for a key (`ANTHROPIC_API_KEY`, `OPENAI_API_KEY`); a provider declared in a config
    file or a workflow is given the key its spec names and no other, so the environment's key
    never goes to a server it was not meant for.

    Raises:
        MissingPackageError: the kind is `openai` and the `openai` package is not installed.
    """
    built_in = BUILT_IN_PROVIDERS.get(name) == spec
    if spec.kind == "anthropic":
        from ._anthropic_provider import ANTHROPIC_KEY_VARIABLE, AnthropicProvider

        return AnthropicProvider(
            name,
            base_url=spec.base_url,
            api_key=spec.api_key,
            capabilities=_capabilities(spec),
            headers=spec.headers,
            key_variable=ANTHROPIC_KEY_VARIABLE if built_in else None,
        )
    _require_openai(name)
    # Imported by name: the module (and through it the SDK) loads only when a provider of this
    # kind is first made.
    module = importlib.import_module(f"{__package__}._openai_provider")
    provider: Provider = module.OpenAIProvider(
        name,
        base_url=spec.base_url,
        api_key=spec.api_key,
        capabilities=_capabilities(spec),
        headers=spec.headers,
        key_variable=module.OPENAI_KEY_VARIABLE if built_in else None,
    )
    return provider
