"""The provider config file: the same specs as a workflow's, every problem with file and path."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from orchestr8._errors import ProviderConfigError
from orchestr8._llm._provider_config import (
    PROVIDERS_VARIABLE,
    configured_providers,
    parse_provider_config,
    read_provider_config,
)
from orchestr8._workflow._provider_specs import ProviderSpec

LOCAL: dict[str, Any] = {
    "kind": "openai",
    "base_url": "http://127.0.0.1:11434/v1",
    "api_key": "${env.OLLAMA_KEY}",
}


def write(tmp_path: Path, content: str | dict[str, Any], name: str = "providers.json") -> Path:
    """A config file holding `content` (JSON text, or a document to encode)."""
    path = tmp_path / name
    path.write_text(content if isinstance(content, str) else json.dumps(content), "utf-8")
    return path


def test_a_config_file_holds_provider_specs_by_name(tmp_path: Path) -> None:
    """`{"providers": {...}}` becomes specs; a config file may read the environment."""
    specs = read_provider_config(write(tmp_path, {"providers": {"local": LOCAL}}))
    assert specs == {
        "local": ProviderSpec(kind="openai", base_url=LOCAL["base_url"], api_key=LOCAL["api_key"])
    }


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ("", "$: invalid JSON at line 1, column 1"),
        ("[]", "$: expected an object, got an array"),
        (
            '{"providers": {"a": {"kind": "openai", "kind": "openai"}}}',
            "$.providers.a: duplicate key",
        ),
        ({"providers": {}, "extra": 1}, "$: unknown key 'extra'"),
        ({}, "$: missing required key 'providers'"),
        (
            {"providers": {"a": {"kind": "openai", "api_key": "sk-1"}}},
            "$.providers.a.api_key: a key is never written",
        ),
        (
            {"providers": {"a": {"kind": "openai", "base_url": "x"}}},
            "$.providers.a.base_url: 'x' is not an http or https URL",
        ),
    ],
)
def test_every_problem_names_the_file_and_its_path(
    tmp_path: Path, content: str | dict[str, Any], expected: str
) -> None:
    """A bad config file is refused with its name and the JSON path of each problem."""
    path = write(tmp_path, content)
    with pytest.raises(ProviderConfigError) as caught:
        read_provider_config(path)
    assert str(caught.value).startswith(f"{path}: invalid provider config")
    assert any(str(problem).startswith(expected) for problem in caught.value.problems), str(
        caught.value
    )


@pytest.mark.parametrize(
    ("make", "expected"),
    [
        (lambda tmp: tmp / "absent.json", "$: no such file"),
        (lambda tmp: tmp, "$: this is a directory"),
        (lambda tmp: write(tmp, "x" * (1024 * 1024 + 1)), "$: larger than the 1 MiB limit"),
    ],
)
def test_unreadable_files_are_refused(tmp_path: Path, make: Any, expected: str) -> None:
    """A missing file, a directory or a huge file is a one-line problem, not a traceback."""
    with pytest.raises(ProviderConfigError) as caught:
        read_provider_config(make(tmp_path))
    assert str(caught.value.problems[0]).startswith(expected)


def test_bytes_that_are_not_utf8_are_refused(tmp_path: Path) -> None:
    """A file that is not UTF-8 text says which byte is wrong."""
    path = tmp_path / "latin.json"
    path.write_bytes(b'{"providers": {"\xe9": 1}}')
    with pytest.raises(ProviderConfigError, match="not UTF-8 text"):
        read_provider_config(path)


def test_the_environment_variable_names_the_file_when_no_source_is_given(tmp_path: Path) -> None:
    """Without `--providers`, `ORCHESTR8_PROVIDERS` names the file; without either, none."""
    path = write(tmp_path, {"providers": {"local": LOCAL}})
    assert set(configured_providers(None, environ={PROVIDERS_VARIABLE: str(path)})) == {"local"}
    assert configured_providers(None, environ={}) == {}
    assert set(configured_providers(path)) == {"local"}


def test_a_mapping_is_a_document_its_providers_or_built_specs() -> None:
    """Embedders pass a document, its `providers` value, or specs; each is checked."""
    assert set(configured_providers({"providers": {"local": LOCAL}})) == {"local"}
    assert set(configured_providers({"local": LOCAL})) == {"local"}
    built = {"local": ProviderSpec(kind="openai")}
    assert configured_providers(built) == built
    with pytest.raises(ProviderConfigError, match="base_url"):
        configured_providers({"local": ProviderSpec(kind="openai", base_url="nope")})
    with pytest.raises(ProviderConfigError, match="kind"):
        parse_provider_config({"providers": {"local": {"kind": 1}}})


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ('{"providers": {}, "providers": {}}', "$: duplicate key 'providers'"),
        ('{"providers": {"a": {"kind": "openai", "base_url": NaN}}}', "$: "),
        ("[" * 100_000, "$: "),
    ],
)
def test_json_that_is_not_plain_json_is_refused(
    tmp_path: Path, content: str, expected: str
) -> None:
    """Repeated keys, NaN and absurd nesting are refused as problems, never a traceback."""
    with pytest.raises(ProviderConfigError) as caught:
        read_provider_config(write(tmp_path, content))
    assert str(caught.value.problems[0]).startswith(expected)
