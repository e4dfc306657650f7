"""What an execution needs that the journal never keeps: secret values and redacted inputs.

The journal records workflows and inputs redacted (`_redaction`), so secret values must come back
from elsewhere when an execution starts or resumes:

- **Secret references.** `${secrets.NAME}` in a step's `input` or its agent's `config` is
  resolved when the execution starts and again when it resumes, from a `Secrets` source: a
  secrets file (a JSON object of strings), then the environment variable `ORCHESTR8_SECRET_NAME`.
  Only variables carrying that prefix are reachable, so a workflow from elsewhere cannot read
  `AWS_SECRET_ACCESS_KEY` or any other variable of the process. `bind_secrets` gives the engine a
  workflow whose templates hold the values; the journal keeps the references.
- **Redacted inputs.** An input under a secret-looking key is journaled as `"***"`; a resume
  takes it again from its caller (`resupply_inputs`) and names the ones still missing.

`secret_values_of` gathers what the runtime leases to the redactor for one execution, so every
such value is redacted in events, logs and errors while the execution runs, and forgotten after.
"""

from __future__ import annotations

import os
import weakref
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, Final

import attrs

from .._errors import InputValidationError, MissingSecretError, Problem, SecretsFileError
from .._json import append_path, parse_strict
from .._observability._redaction import (
    REDACTED,
    SECRET_VARIABLE_PREFIX,
    Redactor,
    default_redactor,
    secret_values_in,
)
from .._workflow._config_secrets import bind_config_secrets, config_references
from .._workflow._document import AgentSpec, Step, Workflow
from .._workflow._provider_specs import provider_secret_names

MAX_SECRETS_FILE_BYTES: Final = 1024 * 1024
"""The largest secrets file read (1 MiB)."""


@attrs.frozen
class Secrets:
    """Where `${secrets.NAME}` values come from: `values` (a secrets file), then the environment.

    `environ` None reads `os.environ` at each lookup, so a secret exported after the runtime
    opened is found too.
    """

    values: Mapping[str, str] = attrs.field(factory=dict)
    environ: Mapping[str, str] | None = None

    @classmethod
    def from_file(cls, path: str | os.PathLike[str]) -> Secrets:
        """Secrets read from a JSON object of strings (`{"NAME": "value"}`) over the environment.

        Raises:
            SecretsFileError: the file cannot be read, or is not a JSON object of strings.
        """
        label = os.fspath(path)
        try:
            with Path(label).open("rb") as file:
                data = file.read(MAX_SECRETS_FILE_BYTES + 1)
        except OSError as error:
            raise SecretsFileError(f"{label}: {error.strerror or error}") from None
        if len(data) > MAX_SECRETS_FILE_BYTES:
            raise SecretsFileError(f"{label}: larger than the 1 MiB limit for secrets files")
        try:
            document, duplicates = parse_strict(data.decode("utf-8-sig"))
        except (ValueError, UnicodeDecodeError, RecursionError):
            # The parser's message may quote the file, and so a secret: say where, not what.
            raise SecretsFileError(f"{label}: not a JSON object (the file is not JSON)") from None
        if not isinstance(document, dict):
            raise SecretsFileError(f"{label}: expected a JSON object of secrets by name")
        if repeated := duplicates.get(id(document)):
            # Which value would win is a guess; a name is no secret, so it can be shown.
            raise SecretsFileError(f"{label}: secrets named more than once: {', '.join(repeated)}")
        wrong = [
            append_path("$", name) for name, value in document.items() if not isinstance(value, str)
        ]
        if wrong:
            raise SecretsFileError(
                f"{label}: every secret must be a string; these are not: {', '.join(wrong)}"
            )
        return cls(document)

    def lookup(self, name: str) -> str | None:
        """The value of secret `name`, or None when neither the file nor the environment has it."""
        value = self.values.get(name)
        if value is None:
            environ = os.environ if self.environ is None else self.environ
            value = environ.get(SECRET_VARIABLE_PREFIX + name)
        return value

    def resolve(self, names: Iterable[str]) -> dict[str, str]:
        """The values of `names`, by name.

        Raises:
            MissingSecretError: naming every secret that is not set, and where to set it.
        """
        found: dict[str, str] = {}
        missing: list[str] = []
        for name in names:
            value = self.lookup(name)
            if value is None:
                missing.append(name)
            else:
                found[name] = value
        if missing:
            variables = ", ".join(SECRET_VARIABLE_PREFIX + name for name in sorted(missing))
            raise MissingSecretError(
                missing, where=f"set {variables} in the environment, or put them in a secrets file"
            )
        return found


@attrs.frozen
class _WorkflowSecrets:
    """What one workflow holds of secrets: the names it references, the literals it contains."""

    names: frozenset[str]
    literals: tuple[str, ...]
    redactor: Redactor


_found: dict[int, tuple[weakref.ref[Workflow], _WorkflowSecrets]] = {}


def _workflow_secrets(workflow: Workflow, redactor: Redactor) -> _WorkflowSecrets:
    """Scan a workflow once per object (a service starts the same one again and again).

    The literals depend on the redactor's key patterns, so a new default redactor rescans.
    """
    key = id(workflow)
    cached = _found.get(key)
    if cached is not None and cached[0]() is workflow and cached[1].redactor is redactor:
        return cached[1]
    names: set[str] = set()
    literals: list[str] = []
    for step in workflow.steps:
        names.update(step.input.secret_names)
        config = _config_of(step)
        names.update(_config_secret_names(config))
        literals += secret_values_in(step.input.source, redactor)
        literals += secret_values_in(config, redactor)
    # A provider's key and headers (`providers`) are resolved by the provider catalog when it
    # makes the provider; named here, they are checked at the start and leased to the redactor.
    names.update(provider_secret_names(workflow.providers))
    found = _WorkflowSecrets(frozenset(names), tuple(literals), redactor)
    # Forgotten when the workflow is: its id may then be reused by another object.
    reference = weakref.ref(workflow, lambda _: _found.pop(key, None))
    _found[key] = (reference, found)
    return found


def secret_names(workflow: Workflow) -> frozenset[str]:
    """Every secret the workflow references, in step inputs, agent configs and providers."""
    return _workflow_secrets(workflow, default_redactor()).names


def _config_of(step: Step) -> Mapping[str, Any]:
    """A step's agent config; a sub-workflow step has none (its child binds its own secrets)."""
    return step.agent.config if step.agent is not None else {}


def _config_secret_names(config: Mapping[str, Any]) -> set[str]:
    """The secrets an agent config references (its problems were reported at load)."""
    located = config_references(config, "$", [])
    return {name for _, reference in located if (name := reference.secret_name) is not None}


def bind_secrets(workflow: Workflow, secrets: Mapping[str, str]) -> Workflow:
    """The workflow with each `${secrets.NAME}` replaced by its value, for the engine alone.

    Never journal the result (`journal_document` of the original is what the journal keeps).
    A workflow without secret references is returned as is.
    """
    if not secrets:
        return workflow
    steps: list[Step] = []
    changed = False
    for step in workflow.steps:
        bound_input = step.input.bind_secrets(secrets)
        agent = step.agent
        if agent is not None and _config_secret_names(agent.config):
            bound_config = bind_config_secrets(agent.config, secrets)
            agent = AgentSpec(id=agent.id, version=agent.version, config=bound_config)
        if bound_input is step.input and agent is step.agent:
            steps.append(step)
            continue
        changed = True
        steps.append(attrs.evolve(step, input=bound_input, agent=agent))
    return attrs.evolve(workflow, steps=tuple(steps)) if changed else workflow


def secret_values_of(
    workflow: Workflow,
    inputs: Mapping[str, Any],
    secrets: Mapping[str, str],
    redactor: Redactor | None = None,
) -> list[str]:
    """What to lease to the redactor for one execution: every value that must never show.

    The values of its `${secrets.NAME}`, and the strings under secret-looking keys in its inputs,
    in its steps' inputs and in its agents' configs (so an agent echoing one in an error message
    or a log line is redacted there too, not only under its key).
    """
    redactor = redactor or default_redactor()
    literals = _workflow_secrets(workflow, redactor).literals
    return [*secrets.values(), *secret_values_in(inputs, redactor), *literals]


def redacted_inputs(recorded: Mapping[str, Any], redactor: Redactor | None = None) -> list[str]:
    """The names of the recorded inputs that hold a value the journal redacted by its key."""
    redactor = redactor or default_redactor()
    return [name for name, value in recorded.items() if _holds_redacted(name, value, redactor)]


def redacted_literals(
    workflow: Workflow, step_ids: Iterable[str], redactor: Redactor | None = None
) -> list[str]:
    """The JSON paths, in the given steps' `input` and agent `config`, of values journaled `***`.

    A literal secret written in a workflow is journaled redacted, so a resumed step would get
    `***` in its place: the runtime warns, naming each path (`${secrets.NAME}` avoids it).
    """
    redactor = redactor or default_redactor()
    wanted = set(step_ids)
    paths: list[str] = []
    for index, step in enumerate(workflow.steps):
        if step.id in wanted:
            _find_redacted(step.input.source, f"$.steps[{index}].input", redactor, paths)
            _find_redacted(_config_of(step), f"$.steps[{index}].agent.config", redactor, paths)
    return paths


def _find_redacted(value: Any, path: str, redactor: Redactor, found: list[str]) -> None:
    """Append the path of every value under a secret key that is exactly `***`."""
    if isinstance(value, Mapping):
        for key, item in value.items():
            where = append_path(path, str(key))
            if item == REDACTED and redactor.is_secret_key(str(key)):
                found.append(where)
            else:
                _find_redacted(item, where, redactor, found)
    elif isinstance(value, list | tuple):
        for position, item in enumerate(value):
            _find_redacted(item, append_path(path, position), redactor, found)


def resupply_inputs(
    recorded: Mapping[str, Any],
    supplied: Mapping[str, Any] | None,
    redactor: Redactor | None = None,
) -> dict[str, Any]:
    """The inputs a resume runs with: the recorded ones, redacted ones taken from `supplied`.

    Raises:
        InputValidationError: an input the journal redacted is not supplied (each is named), or
            one that it kept is (a resume continues the same execution: its inputs stay).
    """
    redacted = redacted_inputs(recorded, redactor)
    supplied = supplied or {}
    problems = [
        Problem(
            append_path("$.inputs", name),
            "the journal keeps this input redacted (its key looks like a secret); supply it "
            "again to resume",
        )
        for name in redacted
        if name not in supplied
    ]
    problems += [
        Problem(
            append_path("$.inputs", name),
            "only inputs the journal redacted can be supplied again"
            + (f" (redacted: {', '.join(redacted)})" if redacted else " (none was redacted)"),
        )
        for name in supplied
        if name not in redacted
    ]
    if problems:
        raise InputValidationError(problems)
    return {**recorded, **{name: supplied[name] for name in redacted}}


def _holds_redacted(key: str, value: Any, redactor: Redactor) -> bool:
    """Whether `value`, found under `key`, is or holds a value redacted by its key."""
    if value == REDACTED:
        return redactor.is_secret_key(key)
    if isinstance(value, Mapping):
        return any(_holds_redacted(str(name), item, redactor) for name, item in value.items())
    if isinstance(value, list | tuple):
        return any(_holds_redacted(key, item, redactor) for item in value)
    return False
