"""Model providers in the workflow AST: `"providers": {"local": {"kind": "openai", ...}}`.

A provider spec says how to reach a model provider: its `kind` (the wire protocol, `anthropic` or
`openai`, the latter for every OpenAI-compatible server: OpenAI, Azure, Ollama, vLLM, llama.cpp,
LM Studio), `base_url`, `api_key`, the `capabilities` it offers when they differ from its kind's,
`prices` per model, and extra HTTP `headers`. The same spec is read from a workflow's top-level
`providers` (schema "1.1") and from a provider config file (`_llm/_provider_config.py`); later
sources win by name (see docs/llm.md, "Providers").

Keys never appear in a document: `api_key` must be a reference, `${secrets.NAME}` (the
execution's secrets, as in agent configs) or, in a config file only, `${env.NAME}` (any
environment variable of the process that reads it). A workflow may not read the environment: it
could come from elsewhere and name both a server and a variable, sending `AWS_SECRET_ACCESS_KEY`
to a host of its choosing. Header values may hold the same references inside other text
(`"Bearer ${secrets.TOKEN}"`).

`provider_spec_problems` checks what the schema cannot, each problem at its JSON path
(`$.providers.local.base_url`): the name, the URL, the references, repeated capabilities.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, Final, Literal
from urllib.parse import urlsplit

import attrs

from .._errors import Problem
from .._json import append_path
from ._conditions import require_version_1_1
from ._config_secrets import bind_config_secrets, config_references
from ._schema import add_schema_checks, schema_metadata

__all__ = [
    "CAPABILITY_NAMES",
    "PROVIDERS_CONSTRAINTS",
    "PROVIDER_NAME_PATTERN",
    "CapabilityName",
    "ModelPrice",
    "ProviderKind",
    "ProviderSpec",
    "bind_provider_secrets",
    "provider_secret_names",
    "provider_spec_problems",
    "raw_provider_problems",
]

#: What a provider's name looks like, in model names (`local:llama3.1`), config files and a
#: workflow's `providers`. It ends with `(?![\s\S])`, "nothing follows", as `STEP_ID_PATTERN`.
PROVIDER_NAME_PATTERN: Final = r"^[a-z][a-z0-9_-]*(?![\s\S])"

ProviderKind = Literal["anthropic", "openai"]

#: A capability a provider may offer; `_llm`'s `Capability` has the same values.
CapabilityName = Literal["streaming", "tools", "json_output"]

#: Every capability name, in the order the docs list them.
CAPABILITY_NAMES: Final[tuple[str, ...]] = ("streaming", "tools", "json_output")

_PROVIDER_NAME: Final = re.compile(PROVIDER_NAME_PATTERN)
# A whole reference: `${secrets.NAME}` or `${env.NAME}`, nothing around it.
_WHOLE_REFERENCE: Final = re.compile(
    r"\$\{\s*(secrets|env)\.([A-Za-z_][A-Za-z0-9_]*)\s*\}(?![\s\S])"
)
# An `${env.NAME}` anywhere in a header value (an even run of `$` escapes it, as for secrets).
_ENV_REFERENCE: Final = re.compile(r"(\$+)\{\s*env\.([A-Za-z_][A-Za-z0-9_]*)\s*\}")
_PRICE: Final = {"minimum": 0}


@attrs.frozen(kw_only=True, field_transformer=add_schema_checks)
class ModelPrice:
    """What one model costs, in US dollars per million tokens, overriding the price table."""

    input: float = attrs.field(
        metadata=schema_metadata("USD per million input tokens.", constraints=_PRICE)
    )
    output: float = attrs.field(
        metadata=schema_metadata("USD per million output tokens.", constraints=_PRICE)
    )
    cached_input: float | None = attrs.field(
        default=None,
        metadata=schema_metadata(
            "USD per million cached input tokens; null: the input price.", constraints=_PRICE
        ),
    )


def _to_capabilities(value: Any) -> tuple[str, ...] | None:
    return None if value is None else tuple(value)


@attrs.frozen(kw_only=True, field_transformer=add_schema_checks)
class ProviderSpec:
    """How to reach one model provider: its protocol, address, key, capabilities and prices."""

    kind: ProviderKind = attrs.field(
        metadata=schema_metadata(
            "The wire protocol: anthropic, or openai for any OpenAI-compatible server"
            " (OpenAI, Azure, Ollama, vLLM, llama.cpp, LM Studio)."
        ),
    )
    base_url: str | None = attrs.field(
        default=None,
        metadata=schema_metadata(
            "The API's base URL (http or https); null: the kind's default"
            " (api.anthropic.com, or api.openai.com/v1 and OPENAI_BASE_URL)."
        ),
    )
    api_key: str | None = attrs.field(
        default=None,
        metadata=schema_metadata(
            "The key, as a reference only: ${secrets.NAME}, or ${env.NAME} in a provider"
            " config file; null: the kind's variable (ANTHROPIC_API_KEY, OPENAI_API_KEY) or none."
        ),
    )
    capabilities: tuple[CapabilityName, ...] | None = attrs.field(
        default=None,
        converter=_to_capabilities,
        metadata=schema_metadata(
            "What the provider offers (streaming, tools, json_output), replacing its kind's;"
            " a step needing one it lacks is refused at load. null: the kind's."
        ),
    )
    prices: dict[str, ModelPrice] = attrs.field(
        factory=dict,
        metadata=schema_metadata(
            'Prices by model id, overriding the price table; "*" prices every other model.'
        ),
    )
    headers: dict[str, str] = attrs.field(
        factory=dict,
        metadata=schema_metadata(
            "Extra HTTP headers sent with every request; values may hold ${secrets.NAME}."
        ),
    )


#: The JSON Schema keywords of `Workflow.providers` and a config file's `providers`.
PROVIDERS_CONSTRAINTS: Final[Mapping[str, Any]] = {
    "propertyNames": {"pattern": PROVIDER_NAME_PATTERN}
}


def provider_spec_problems(
    providers: Mapping[str, ProviderSpec],
    *,
    path: str = "$.providers",
    version: str | None = None,
    environment_allowed: bool = False,
) -> list[Problem]:
    """Every problem of built provider specs the schema cannot see, each at its JSON path.

    Args:
        providers: the specs by provider name.
        path: where they are (`$.providers`).
        version: the document's schema version, which must be "1.1" when there are providers;
            None for a config file, which has none.
        environment_allowed: `${env.NAME}` may be used (a config file; never a workflow).
    """
    problems: list[Problem] = []
    if providers and version is not None:
        require_version_1_1(version, path, "providers", problems)
    for name, spec in providers.items():
        where = append_path(path, name)
        if not _PROVIDER_NAME.match(name):
            message = (
                f"{name!r} is not a provider name (lower-case letters, digits, '_' or '-',"
                " starting with a letter)"
            )
            problems.append(Problem(where, message))
        if spec.base_url is not None:
            problem = _url_problem(spec.base_url)
            if problem is not None:
                problems.append(Problem(f"{where}.base_url", problem))
        if spec.api_key is not None:
            problems += _key_problems(spec.api_key, f"{where}.api_key", environment_allowed)
        for header, value in spec.headers.items():
            header_path = append_path(f"{where}.headers", header)
            problems += _header_problems(value, header_path, environment_allowed)
        if spec.capabilities is not None:
            seen: set[str] = set()
            for index, capability in enumerate(spec.capabilities):
                if capability in seen:
                    message = f"{capability!r} is listed twice"
                    problems.append(Problem(f"{where}.capabilities[{index}]", message))
                seen.add(capability)
    return problems


def raw_provider_problems(providers: Any, version: object) -> list[Problem]:
    """`provider_spec_problems` on the raw `providers` of a document the schema refused.

    So a literal key, an `${env.NAME}` or credentials in a URL are reported with the schema's
    problems, not after them: each well-named entry is checked on its `base_url`, `api_key` and
    `headers` that are strings. What the schema reports (a bad name, kind or type) is left to it.
    """
    if not isinstance(providers, Mapping) or not isinstance(version, str):
        return []
    specs: dict[str, ProviderSpec] = {}
    for name, entry in providers.items():
        if not isinstance(entry, Mapping) or not _PROVIDER_NAME.match(name):
            continue
        headers = entry.get("headers")
        specs[name] = ProviderSpec(
            kind="openai",
            base_url=_text_or_none(entry.get("base_url")),
            api_key=_text_or_none(entry.get("api_key")),
            headers={
                header: value
                for header, value in (headers.items() if isinstance(headers, Mapping) else ())
                if isinstance(value, str)
            },
        )
    return provider_spec_problems(specs, version=version)


def _text_or_none(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _url_problem(url: str) -> str | None:
    """Why `url` cannot be a provider's base URL, or None."""
    try:
        parts = urlsplit(url)
    except ValueError as error:
        return f"{url!r} is not a URL ({error})"
    if parts.scheme not in ("http", "https"):
        return f"{url!r} is not an http or https URL (e.g. 'http://127.0.0.1:11434/v1')"
    if not parts.hostname:
        return f"{url!r} names no host"
    if parts.username is not None or parts.password is not None:
        return "a base URL must not hold credentials: put the key in api_key as a reference"
    return None


def _key_problems(key: str, where: str, environment_allowed: bool) -> list[Problem]:
    """A key must be one whole reference; `${env.NAME}` only where the environment may be read."""
    found = _WHOLE_REFERENCE.match(key)
    if found is None:
        allowed = "${secrets.NAME} or ${env.NAME}" if environment_allowed else "${secrets.NAME}"
        message = f"a key is never written in a document: use a reference, {allowed}"
        return [Problem(where, message)]
    if found.group(1) == "env" and not environment_allowed:
        return [Problem(where, _ENVIRONMENT_REFUSED)]
    return []


_ENVIRONMENT_REFUSED: Final = (
    "a workflow may not read the environment (${env.NAME}): use ${secrets.NAME}, or name the"
    " key in a provider config file (--providers)"
)


def _header_problems(value: str, where: str, environment_allowed: bool) -> list[Problem]:
    """A header value's references: well-formed secrets, and `${env.NAME}` only where allowed."""
    problems: list[Problem] = []
    config_references({"value": value}, where, problems)
    problems = [Problem(where, problem.message) for problem in problems]
    if not environment_allowed:
        for match in _ENV_REFERENCE.finditer(value):
            if len(match.group(1)) % 2 == 1:
                problems.append(Problem(where, _ENVIRONMENT_REFUSED))
                break
    return problems


def provider_secret_names(providers: Mapping[str, ProviderSpec]) -> frozenset[str]:
    """Every `${secrets.NAME}` the specs reference, in keys and header values."""
    names: set[str] = set()
    for spec in providers.values():
        located = config_references(_referring_fields(spec), "$", [])
        names.update(
            name for _, reference in located if (name := reference.secret_name) is not None
        )
    return frozenset(names)


def _referring_fields(spec: ProviderSpec) -> dict[str, Any]:
    """The fields of a spec that may hold references, as a config-like mapping."""
    return {"api_key": spec.api_key, "headers": dict(spec.headers)}


def bind_provider_secrets(
    spec: ProviderSpec, secrets: Mapping[str, str], environ: Mapping[str, str]
) -> ProviderSpec:
    """The spec with its `${secrets.NAME}` and `${env.NAME}` replaced by their values.

    A variable that is not set reads as the empty string only in a header; a key naming an unset
    variable is left out (the provider then sends none, and its server says so).

    Raises:
        KeyError: a referenced secret is missing from `secrets`.
    """
    bound = bind_config_secrets(_referring_fields(spec), secrets)
    api_key = bound["api_key"]
    if isinstance(api_key, str):
        found = _WHOLE_REFERENCE.match(api_key)
        if found is not None and found.group(1) == "env":
            api_key = environ.get(found.group(2)) or None
    headers = {
        header: _ENV_REFERENCE.sub(lambda match: _bind_environment(match, environ), value)
        for header, value in bound["headers"].items()
    }
    return attrs.evolve(spec, api_key=api_key, headers=headers)


def _bind_environment(match: re.Match[str], environ: Mapping[str, str]) -> str:
    dollars = len(match.group(1))
    if dollars % 2 == 0:
        return "$" * (dollars // 2) + match.group(0)[dollars:]
    return "$" * (dollars // 2) + environ.get(match.group(2), "")
