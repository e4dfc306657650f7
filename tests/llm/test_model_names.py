"""Model names: `provider:model`, a bare name meaning `anthropic:` only where allowed."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from orchestr8._errors import AgentConfigurationError, ModelNameError
from orchestr8._llm._model_names import (
    ModelName,
    model_name_problem,
    parse_model_name,
)


def test_a_model_name_splits_at_the_first_colon() -> None:
    """The provider is before the first colon; the model keeps any later colon (Ollama tags)."""
    assert parse_model_name("openai:gpt-4.1", field="model") == ModelName("openai", "gpt-4.1")
    assert parse_model_name("local:llama3.1:8b", field="model") == ModelName("local", "llama3.1:8b")
    assert str(ModelName("local", "llama3.1:8b")) == "local:llama3.1:8b"


def test_a_bare_name_means_anthropic_where_allowed() -> None:
    """Workflows written before providers keep working: a bare `model` is Anthropic's."""
    parsed = parse_model_name("claude-sonnet-4-5", field="config.model", bare_allowed=True)
    assert parsed == ModelName("anthropic", "claude-sonnet-4-5")


def test_a_bare_name_is_refused_elsewhere_naming_the_field() -> None:
    """A fallback entry without a provider is an error that names where it is and a fix."""
    with pytest.raises(ModelNameError) as caught:
        parse_model_name("gpt-4.1", field="config.fallback[1]")
    assert str(caught.value) == (
        "config.fallback[1]: 'gpt-4.1' names no provider: write 'provider:model' "
        "(e.g. 'anthropic:gpt-4.1' or 'openai:gpt-4.1')"
    )
    assert isinstance(caught.value, AgentConfigurationError)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", "must not be empty"),
        ("  ", "must not be empty"),
        ("openai: gpt", "holds white space"),
        ("Open-AI:gpt", "is not a provider name"),
        ("anthropic.claude:0", "is not a provider name"),
        ("openai:", "but no model after the colon"),
        (3, "not int"),
    ],
)
def test_malformed_names_say_what_is_wrong(text: object, expected: str) -> None:
    """Each malformed name gets a message saying what is wrong with it."""
    problem = model_name_problem(text, bare_allowed=True)
    assert problem is not None
    assert expected in problem


@given(
    provider=st.from_regex(r"[a-z][a-z0-9_-]{0,10}", fullmatch=True),
    model=st.from_regex(r"[A-Za-z0-9._:/-]{1,20}", fullmatch=True),
)
def test_parsing_the_canonical_text_gives_the_name_back(provider: str, model: str) -> None:
    """`str(name)` parses back to the same name, for any provider and model id."""
    name = ModelName(provider, model)
    assert parse_model_name(str(name), field="model") == name
