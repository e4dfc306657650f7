"""Secret references in agent configs: only `${secrets.NAME}` is interpreted, the rest is kept."""

from __future__ import annotations

from typing import Any

import pytest

from orchestr8._errors import Problem
from orchestr8._workflow._config_secrets import bind_config_secrets, config_references

CONFIG: dict[str, Any] = {
    "prompt": "About ${input.topic}, ${inputs.x}",
    "escaped": "$${secrets.KEPT}",
    "auth": ["Bearer ${ secrets.TOKEN }", "$$$${secrets.TOKEN}", "$$${secrets.USER}"],
    "nested": {"n": 3, "url": "https://h/${secrets.TOKEN}?q=1"},
}


def test_only_secret_references_are_found_with_their_paths() -> None:
    """Other `${...}` text is the agent's own; escaped references are text too."""
    problems: list[Problem] = []
    located = config_references(CONFIG, "$.c", problems)
    assert problems == []
    assert [(path, reference.secret_name) for path, reference in located] == [
        ("$.c.auth[0]", "TOKEN"),
        ("$.c.auth[2]", "USER"),
        ("$.c.nested.url", "TOKEN"),
    ]


def test_binding_replaces_references_and_unescapes_only_beside_them() -> None:
    """The bound copy holds the values; the config given is untouched."""
    bound = bind_config_secrets(CONFIG, {"TOKEN": "tok-1", "USER": "me"})
    assert bound == {
        "prompt": "About ${input.topic}, ${inputs.x}",
        "escaped": "${secrets.KEPT}",
        "auth": ["Bearer tok-1", "$${secrets.TOKEN}", "$me"],
        "nested": {"n": 3, "url": "https://h/tok-1?q=1"},
    }
    assert CONFIG["auth"][0] == "Bearer ${ secrets.TOKEN }"


@pytest.mark.parametrize("text", ["${secrets}", "${secrets.A.b}", "${secrets.1A}", "${secrets.A"])
def test_malformed_secret_references_are_problems_at_their_path(text: str) -> None:
    """A config that means a secret but spells it wrong is refused at load, located."""
    problems: list[Problem] = []
    assert config_references({"k": [text]}, "$.c", problems) == ()
    assert [problem.path for problem in problems] == ["$.c.k[0]"]
