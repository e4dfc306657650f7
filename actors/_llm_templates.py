"""Prompt template files and the adherence score in the `llm` agent: config, variables, scoring.

`template` names a template file (relative to the workflow file's directory) or holds an inline
template; it replaces `prompt`, `system` and `output_schema`, which the template holds. The
template's variables come from the step input: its keys by default, or, with `variables`, from
`${input...}` placeholders per variable (a string that is one placeholder keeps the value's
type). `expect` in the config overrides the template's. After the final reply the agent scores
it, journals the score as `step.scored` and adds it to its output as `score`; a completeness
judge asks its model through the agent's own call, so the judge's calls are journaled, counted
and budgeted like the agent's. The reference is docs/llm.md, "Prompt templates".
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from orchestr8 import (
    AgentConfigurationError,
    AgentContext,
    ChatReply,
    ChatRequest,
    Expectations,
    LLMSession,
    ModelJudge,
    PromptTemplateFile,
    RenderedPrompt,
    TemplateError,
    compile_expect,
    load_template,
    score_reply,
    workflow_directory,
)

from ._llm_prompt import Placeholder, PromptInputError, TextTemplate, compile_text

__all__ = [
    "TemplatePrompt",
    "expectations_of",
    "score_and_record",
]

_EXCLUSIVE = ("prompt", "system", "output_schema")


def _kind(value: object) -> str:
    if isinstance(value, list):
        return "an array"
    if isinstance(value, str):
        return "a string"
    return "null" if value is None else type(value).__name__


def _compile_variable(value: Any, where: str) -> Any:
    """Compile a `variables` value: strings become templates, containers recursively."""
    if isinstance(value, str):
        try:
            return compile_text(value)
        except ValueError as error:
            raise AgentConfigurationError(f"{where}: {error}") from None
    if isinstance(value, Mapping):
        return {key: _compile_variable(item, f"{where}.{key}") for key, item in value.items()}
    if isinstance(value, list):
        return [_compile_variable(item, f"{where}[{index}]") for index, item in enumerate(value)]
    return value


def _render_variable(node: Any, value: Any) -> Any:
    """A variable's value from the step input: one placeholder keeps the value's JSON type."""
    if isinstance(node, TextTemplate):
        parts = [part for part in node.parts if part != ""]
        if len(parts) == 1 and isinstance(parts[0], Placeholder):
            return parts[0].resolve(value)
        return node.render(value)
    if isinstance(node, dict):
        return {key: _render_variable(item, value) for key, item in node.items()}
    if isinstance(node, list):
        return [_render_variable(item, value) for item in node]
    return node


class TemplatePrompt:
    """The `template` config of an `llm` agent: the loaded file, where its variables come from."""

    def __init__(self, config: Mapping[str, Any]) -> None:
        """Load and check the template, and compile `variables`.

        Raises:
            AgentConfigurationError: `template` is neither a path nor an object, a key that the
                template replaces is set too, or `variables` names an undeclared variable.
            TemplateError: the template file is unusable.
        """
        source = config["template"]
        if not isinstance(source, str | Mapping) or not source:
            raise AgentConfigurationError(
                "template must be a path to a .json or .xml template file, or an inline "
                f"template object; got {_kind(source)}"
            )
        for key in _EXCLUSIVE:
            if key in config:
                raise AgentConfigurationError(
                    f"template and {key} exclude each other: the template holds the system "
                    "text, the messages and the output schema"
                )
        self.file: PromptTemplateFile = load_template(source, directory=workflow_directory())
        variables = config.get("variables")
        self._variables: dict[str, Any] | None = None
        if variables is not None:
            if not isinstance(variables, Mapping):
                raise AgentConfigurationError(
                    'variables must be an object such as {"topic": "${input.subject}"}'
                )
            declared = ", ".join(sorted(self.file.variables)) or "none"
            for name in variables:
                if name not in self.file.variables:
                    raise AgentConfigurationError(
                        f"variables.{name}: the template declares no variable {name!r} "
                        f"(declared: {declared})"
                    )
            self._variables = {
                name: _compile_variable(value, f"variables.{name}")
                for name, value in variables.items()
            }

    def render(self, value: Any) -> RenderedPrompt:
        """Fill the template from the step input `value`.

        Raises:
            PromptInputError: the input is not an object (without `variables`), or a
                `variables` placeholder cannot be filled from it.
            TemplateInputError: a declared variable has no value and no default, or a value
                of the wrong type.
        """
        if self._variables is not None:
            values = {name: _render_variable(node, value) for name, node in self._variables.items()}
        elif isinstance(value, Mapping):
            values = dict(value)
        else:
            raise PromptInputError(
                "the llm agent's template takes its variables from the keys of the step input, "
                f"so the input must be an object, got {_kind(value)}; or map them in "
                "config.variables"
            )
        return self.file.render(values)


def expectations_of(
    config: Mapping[str, Any], template: TemplatePrompt | None
) -> Expectations | None:
    """The agent's expectations: `expect` in the config, else the template's, else None.

    Raises:
        TemplateError: `expect` in the config does not compile (at `config.expect...`).
        AgentConfigurationError: `variables` is set without a template.
    """
    if template is None and "variables" in config:
        raise AgentConfigurationError("variables needs a template: they fill its placeholders")
    if "expect" in config:
        return _config_expectations(config["expect"])
    return None if template is None else template.file.expect


def _config_expectations(expect: Any) -> Expectations:
    """`expect` of the config compiled; its problems each at their path, one per dimension.

    Raises:
        TemplateError: with `problems`: the first problem of each dimension that has one.
    """
    try:
        return compile_expect(expect, "config.expect")
    except TemplateError as error:
        first = str(error)
    parts = [{key: value} for key, value in expect.items()] if isinstance(expect, Mapping) else []
    problems: list[str] = []
    for part in parts:
        try:
            compile_expect(part, "config.expect")
        except TemplateError as error:
            problems.append(str(error))
    found = problems or [first]
    raise TemplateError("; ".join(found), problems=[_located(problem) for problem in found])


def _located(problem: str) -> tuple[str, str]:
    """`(path, message)` of a `compile_expect` problem, which starts with its path."""
    where, _, message = problem.partition(": ")
    return (
        (where, message)
        if message and where.startswith("config.expect")
        else ("config.expect", problem)
    )


async def score_and_record(
    expectations: Expectations,
    text: str,
    context: AgentContext,
    session: LLMSession,
    *,
    complete: Callable[[ChatRequest], Awaitable[ChatReply]] | None,
    judge_model: str | None,
    template: PromptTemplateFile | None,
) -> dict[str, Any]:
    """Score the final reply, journal it as `step.scored`, and return it for the output.

    `complete` makes one judge call (the agent's own call path) with `judge_model`, the bare id.
    """
    judge = None
    if complete is not None and judge_model is not None:
        judge = ModelJudge(complete, judge_model)
    score = (await score_reply(expectations, text, judge=judge)).to_json()
    recorded = score if template is None else {**score, "template": template.provenance()}
    session.record_score(context, recorded)
    return score
