"""Secret references in agent configs: found and checked at load, bound when an execution starts.

An agent's `config` is no template (`_expressions`): agents use `${...}` for their own purposes (an
`llm` prompt's `${input.topic}`), so only `${secrets.NAME}` is interpreted in it, and `$${secrets.`
writes a literal `${secrets.`. Everything else in a config string stays as written.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from .._errors import Problem
from .._json import append_path
from ._references import Reference, parse_reference

# `$`s, `{`, then `secrets`: the reference itself is checked whole by `parse_reference`.
_CONFIG_SECRET = re.compile(r"(\$+)\{\s*secrets\b(?!-)")
# A well-formed one, whole, for binding.
_CONFIG_SECRET_FULL = re.compile(r"(\$+)\{\s*secrets\.([A-Za-z_][A-Za-z0-9_]*)\s*\}")


def config_references(
    config: Mapping[str, Any], path: str, problems: list[Problem]
) -> tuple[tuple[str, Reference], ...]:
    """The secret references in an agent config, with their paths; malformed ones go to `problems`.

    A config is no template: only `${secrets.NAME}` is interpreted in it (and `$${secrets.`
    writes a literal `${secrets.`); other `${...}` text is the agent's own (an `llm` prompt's
    `${input.topic}`) and stays as written.
    """
    located: list[tuple[str, Reference]] = []
    for suffix, text in _config_strings(config, ""):
        for match in _CONFIG_SECRET.finditer(text):
            if len(match.group(1)) % 2 == 0:
                continue
            try:
                reference, _ = parse_reference(text, match.end(1) - 1)
            except ValueError as error:
                problems.append(Problem(path + suffix, str(error)))
            else:
                located.append((path + suffix, reference))
    return tuple(located)


def bind_config_secrets(config: Mapping[str, Any], secrets: Mapping[str, str]) -> dict[str, Any]:
    """A copy of an agent config with each `${secrets.NAME}` replaced by `secrets[NAME]`.

    Raises:
        KeyError: a referenced secret is missing from `secrets`.
    """
    bound: dict[str, Any] = _bind_config(config, secrets)
    return bound


def _bind_config(value: Any, secrets: Mapping[str, str]) -> Any:
    if isinstance(value, str):
        return _CONFIG_SECRET_FULL.sub(lambda match: _bind_match(match, secrets), value)
    if isinstance(value, Mapping):
        return {key: _bind_config(item, secrets) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_bind_config(item, secrets) for item in value]
    return value


def _bind_match(match: re.Match[str], secrets: Mapping[str, str]) -> str:
    """One `$...${secrets.NAME}`: `$$` pairs halve; an odd `$` left makes it a reference."""
    dollars = len(match.group(1))
    if dollars % 2 == 0:
        return "$" * (dollars // 2) + match.group(0)[dollars:]
    return "$" * (dollars // 2) + secrets[match.group(2)]


def _config_strings(value: Any, suffix: str) -> list[tuple[str, str]]:
    """Every string of a config that may hold a secret reference, with its path suffix."""
    if isinstance(value, str):
        return [(suffix, value)] if "${" in value and "secrets" in value else []
    found: list[tuple[str, str]] = []
    if isinstance(value, Mapping):
        for key, item in value.items():
            found += _config_strings(item, append_path(suffix, key))
    elif isinstance(value, list | tuple):
        for index, item in enumerate(value):
            found += _config_strings(item, append_path(suffix, index))
    return found
