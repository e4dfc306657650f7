"""Model names: `provider:model`, the one way every config, eval arm and judge names a model.

`anthropic:claude-sonnet-4-5`, `openai:gpt-4.1`, `local:llama3.1:8b`: the text before the first
colon is the provider's name in the catalog (`PROVIDER_NAME_PATTERN`), the rest the model id the
provider is sent, colons and all (Ollama tags them `llama3.1:8b`). Where a bare name is allowed
(the `llm` agent's `model`, so every workflow written before providers existed keeps working) it
means `anthropic:`; everywhere else (`fallback` entries, eval arms, judge models) a bare name is an
error naming the field, since guessing the provider would send a prompt somewhere unintended.
"""

from __future__ import annotations

import re
from typing import Final

import attrs

from .._errors import ModelNameError
from .._workflow._provider_specs import PROVIDER_NAME_PATTERN

__all__ = [
    "BARE_MODEL_PROVIDER",
    "PROVIDER_NAME_PATTERN",
    "ModelName",
    "model_name_problem",
    "parse_model_name",
]

#: The provider a bare model name means where one is allowed.
BARE_MODEL_PROVIDER: Final = "anthropic"

_PROVIDER_NAME: Final = re.compile(PROVIDER_NAME_PATTERN)


@attrs.frozen
class ModelName:
    """A parsed model name: the catalog's provider name and the model id that provider is sent."""

    provider: str
    model: str

    def __str__(self) -> str:
        """The canonical text, `provider:model`."""
        return f"{self.provider}:{self.model}"


def model_name_problem(text: object, *, bare_allowed: bool) -> str | None:
    """What is wrong with `text` as a model name, or None when it is one.

    `bare_allowed`: a name without a provider is accepted (and means `anthropic:`).
    """
    if not isinstance(text, str):
        return f"a model name is a string 'provider:model', not {type(text).__name__}"
    if not text.strip():
        return "a model name must not be empty (write 'provider:model', e.g. 'openai:gpt-4.1')"
    if text != text.strip() or any(character.isspace() for character in text):
        return f"{text!r} holds white space; a model name is 'provider:model' without spaces"
    provider, colon, model = text.partition(":")
    if not colon:
        if bare_allowed:
            return None
        return (
            f"{text!r} names no provider: write 'provider:model' "
            f"(e.g. 'anthropic:{text}' or 'openai:{text}')"
        )
    if not _PROVIDER_NAME.match(provider):
        return (
            f"{provider!r} in {text!r} is not a provider name (lower-case letters, digits,"
            " '_' or '-', starting with a letter)"
        )
    if not model:
        return f"{text!r} names provider {provider!r} but no model after the colon"
    return None


def parse_model_name(text: str, *, field: str, bare_allowed: bool = False) -> ModelName:
    """Parse `provider:model`; a bare name means `anthropic:` where `bare_allowed`.

    Args:
        text: the model name as written.
        field: where it was written (`config.fallback[1]`), for the message.
        bare_allowed: whether a name without a provider is accepted.

    Raises:
        ModelNameError: `field: what is wrong`.
    """
    problem = model_name_problem(text, bare_allowed=bare_allowed)
    if problem is not None:
        raise ModelNameError(f"{field}: {problem}")
    provider, colon, model = text.partition(":")
    if not colon:
        return ModelName(BARE_MODEL_PROVIDER, text)
    return ModelName(provider, model)
