"""The provider config file: `{"providers": {"local": {"kind": "openai", ...}}}`, an operator's.

The same provider specs a workflow's `providers` holds (`_workflow/_provider_specs.py`), read from
a JSON file given by `--providers FILE` (on `run`, `validate`, `resume`, `fork`, `serve`, `eval`),
else by the `ORCHESTR8_PROVIDERS` environment variable, or passed to `open_runtime(providers=...)`
as a path or a mapping. It sits between the built-in providers and a workflow's own (later wins by
name). Unlike a workflow, a config file is the operator's, so its keys and headers may read any
environment variable (`${env.OPENAI_API_KEY}`).

Every problem is reported at once, each with the file and its JSON path
(`providers.json: $.providers.local.base_url: ...`), as `ProviderConfigError`.
"""

from __future__ import annotations

import functools
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Final

import cattrs
from jsonschema import Draft202012Validator

from .._errors import Problem, ProviderConfigError
from .._json import json_value_problems, parse_strict
from .._workflow._converter import converter
from .._workflow._document import workflow_schema
from .._workflow._provider_specs import ProviderSpec, provider_spec_problems
from .._workflow._schema_problems import schema_problems, sort_problems

__all__ = [
    "MAX_PROVIDER_CONFIG_BYTES",
    "PROVIDERS_VARIABLE",
    "ProviderSource",
    "configured_providers",
    "parse_provider_config",
    "read_provider_config",
]

#: The environment variable naming a provider config file when no `--providers` is given.
PROVIDERS_VARIABLE: Final = "ORCHESTR8_PROVIDERS"

#: The largest provider config file read (1 MiB).
MAX_PROVIDER_CONFIG_BYTES: Final = 1024 * 1024

#: What `open_runtime(providers=...)` takes: a config file's path, or a `{"providers": ...}`
#: document or its `providers` mapping (of specs or their JSON forms).
ProviderSource = str | os.PathLike[str] | Mapping[str, Any]


@functools.cache
def _validator() -> Draft202012Validator:
    """The validator of config documents, built once from the workflow schema's providers."""
    workflow = workflow_schema()
    schema = {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "type": "object",
        "properties": {"providers": workflow["properties"]["providers"]},
        "required": ["providers"],
        "additionalProperties": False,
        "$defs": workflow["$defs"],
    }
    return Draft202012Validator(schema)


def parse_provider_config(document: Any, *, source: str | None = None) -> dict[str, ProviderSpec]:
    """The provider specs of a parsed config document `{"providers": {...}}`, by name.

    Raises:
        ProviderConfigError: with every problem found; `source` names the file.
    """
    problems = list(json_value_problems(document))
    if not problems:
        problems += schema_problems(_validator().iter_errors(document))
    if problems:
        raise ProviderConfigError(sort_problems(problems), source)
    try:
        providers: dict[str, ProviderSpec] = converter.structure(
            document["providers"], dict[str, ProviderSpec]
        )
    except cattrs.BaseValidationError as error:
        messages = cattrs.transform_error(error, path="$.providers")
        located = [Problem(*reversed(message.rsplit(" @ ", 1))) for message in messages]
        raise ProviderConfigError(sort_problems(located), source) from None
    problems += provider_spec_problems(providers, environment_allowed=True)
    if problems:
        raise ProviderConfigError(sort_problems(problems), source)
    return providers


def read_provider_config(path: str | os.PathLike[str]) -> dict[str, ProviderSpec]:
    """The provider specs of a config file, by name.

    Raises:
        ProviderConfigError: the file is unreadable, not JSON, or invalid (every problem, each
            with its JSON path).
    """
    label = os.fspath(path)

    def fail(message: str) -> ProviderConfigError:
        return ProviderConfigError([Problem("$", message)], label)

    try:
        with Path(label).open("rb") as file:
            data = file.read(MAX_PROVIDER_CONFIG_BYTES + 1)
    except FileNotFoundError:
        raise fail("no such file") from None
    except IsADirectoryError:
        raise fail("this is a directory, not a provider config file") from None
    except OSError as error:
        raise fail(f"cannot read the file: {error.strerror or error}") from None
    if len(data) > MAX_PROVIDER_CONFIG_BYTES:
        raise fail("larger than the 1 MiB limit for provider config files")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise fail(f"not UTF-8 text (byte 0x{data[error.start]:02x} at {error.start})") from None
    try:
        document, duplicates = parse_strict(text)
    except json.JSONDecodeError as error:
        raise fail(
            f"invalid JSON at line {error.lineno}, column {error.colno}: {error.msg}"
        ) from None
    except ValueError as error:
        raise fail(str(error)) from None
    except RecursionError:
        raise fail("nested too deeply") from None
    repeated = json_value_problems(document, duplicates=duplicates)
    if repeated:
        raise ProviderConfigError(sort_problems(repeated), label)
    return parse_provider_config(document, source=label)


def configured_providers(
    source: ProviderSource | None, *, environ: Mapping[str, str] | None = None
) -> dict[str, ProviderSpec]:
    """The specs of `source` (a path, or a mapping), else of the file `ORCHESTR8_PROVIDERS` names.

    A mapping is a whole config document (`{"providers": {...}}`) or its `providers` value;
    specs already built pass as they are. None and no variable: no configured providers.

    Raises:
        ProviderConfigError: the file or the mapping is invalid.
    """
    if source is None:
        variable = (os.environ if environ is None else environ).get(PROVIDERS_VARIABLE)
        if not variable:
            return {}
        return read_provider_config(variable)
    if not isinstance(source, Mapping):
        return read_provider_config(source)
    if all(isinstance(spec, ProviderSpec) for spec in source.values()) and source:
        problems = provider_spec_problems(source, environment_allowed=True)
        if problems:
            raise ProviderConfigError(sort_problems(problems))
        return dict(source)
    document = source if "providers" in source else {"providers": dict(source)}
    return parse_provider_config(dict(document))
