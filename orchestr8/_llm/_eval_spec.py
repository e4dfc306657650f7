"""What `orchestr8 eval` compares: the spec (two arms, a dataset, a seed) and the dataset itself.

An eval spec is a JSON file::

    {"dataset": "data.jsonl",
     "arms": {"a": {"template": "a.json", "model": "anthropic:claude-sonnet-4-5"},
              "b": {"template": "b.json"}},
     "model": "anthropic:claude-sonnet-4-5", "seed": 7, "max_tokens": 512}

Paths are relative to the spec's directory; an arm's `model` falls back to the top-level one, and
every model names its provider (`provider:model`). The arms must differ by template, model or
both. The common case needs no file: `eval_spec_from_options` builds the same spec from the
command's flags, paths relative to the working directory. Every problem of a spec is reported at
once, each with its JSON path; the dataset's with their line numbers. The dataset is JSON Lines,
one object per input (the template's variables), at least `MINIMUM_INPUTS` of them unless small
datasets are allowed (why: `docs/eval.md`).
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Final

import attrs

from .._errors import EvalDatasetError, EvalSpecError, Problem
from .._json import JSON, append_path, json_value_problems, parse_strict
from ._statistics import minimum_detectable_effect

__all__ = [
    "DEFAULT_CONCURRENCY",
    "DEFAULT_MAX_TOKENS",
    "MINIMUM_INPUTS",
    "DatasetInput",
    "EvalArm",
    "EvalSpec",
    "eval_spec_from_options",
    "load_dataset",
    "load_eval_spec",
]

MINIMUM_INPUTS: Final = 20
"""The fewest dataset lines an eval accepts without `allow_small` (too little power below)."""

DEFAULT_MAX_TOKENS: Final = 1024
"""The `max_tokens` of every call when the spec does not say."""

DEFAULT_CONCURRENCY: Final = 4
"""How many model calls an eval makes at once when neither the spec nor a flag says."""

MAX_FILE_BYTES: Final = 64 * 1024 * 1024
"""The largest spec or dataset file read, so a wrong path cannot exhaust memory."""

_SPEC_KEYS: Final = frozenset(
    {
        "dataset",
        "arms",
        "model",
        "expect",
        "judge",
        "seed",
        "max_tokens",
        "temperature",
        "concurrency",
        "allow_small",
    }
)
_ARM_KEYS: Final = frozenset({"template", "model"})
_JUDGE_KEYS: Final = frozenset({"model", "k"})


@attrs.frozen
class DatasetInput:
    """One dataset line: its line number in the file and its template variables."""

    line: int
    variables: Mapping[str, JSON]


@attrs.frozen
class EvalArm:
    """One side of the comparison: a prompt template file and the `provider:model` it runs on."""

    name: str
    template: Path
    model: str
    model_path: str | None = attrs.field(default=None, eq=False)
    """Where the model was given: `$.model` when the arm takes the spec's; None: in the arm."""


@attrs.frozen
class EvalSpec:
    """A checked eval: the two arms, the dataset and how every call is made and scored."""

    dataset: Path
    a: EvalArm
    b: EvalArm
    seed: int = 0
    max_tokens: int = DEFAULT_MAX_TOKENS
    temperature: float | None = None
    concurrency: int = DEFAULT_CONCURRENCY
    allow_small: bool = False
    expect: Mapping[str, Any] | None = None
    """Expectations scoring both arms alike; None: each template's own."""
    judge: Mapping[str, Any] | None = None
    """The completeness judge of both arms (`{"model": "provider:model", "k": 3}`), if any."""
    source: str = "the spec"
    """Where the spec came from, for messages: the file's path, or `the options`."""
    from_flags: bool = False
    """Whether the flags described it: problems are then named by flag, not JSON path."""

    def problem(self, path: str, message: str) -> EvalSpecError:
        """An `EvalSpecError` of one problem found later (an arm's model, its template)."""
        where = _FLAGS.get(path, path) if self.from_flags else path
        return EvalSpecError([Problem(where, message)], self.source)


def load_eval_spec(path: str | os.PathLike[str]) -> EvalSpec:
    """Read and check an eval spec file; its relative paths are taken from its directory.

    Raises:
        EvalSpecError: the file cannot be read, is not JSON, or has problems (all listed).
    """
    label = os.fspath(path)
    document = _read_json_object(label)
    return _spec_of(document, Path(label).parent, label)


def eval_spec_from_options(
    *,
    template_a: str | None,
    template_b: str | None,
    model: str | None,
    model_b: str | None,
    dataset: str | None,
) -> EvalSpec:
    """The spec the flags describe (`--a`, `--b`, `--model`, `--model-b`, `--dataset`).

    B's template defaults to A's (to compare models) and B's model to `--model` (to compare
    templates). Paths are relative to the working directory. Problems are named by flag.
    """
    document: dict[str, Any] = {"arms": {"a": {}, "b": {}}}
    for key, value in (("dataset", dataset), ("model", model)):
        if value is not None:
            document[key] = value
    if template_a is not None:
        document["arms"]["a"]["template"] = template_a
    if (template_b or template_a) is not None:
        document["arms"]["b"]["template"] = template_b or template_a
    if model_b is not None:
        document["arms"]["b"]["model"] = model_b
    return _spec_of(document, Path("."), "the options", flags=True)


_FLAGS: Final = {
    "$.dataset": "--dataset",
    "$.model": "--model",
    "$.arms.a.template": "--a",
    "$.arms.b.template": "--b",
    "$.arms.a.model": "--model",
    "$.arms.b.model": "--model-b",
    "$.arms": "--a/--b and --model/--model-b",
}


def _read_json_object(label: str) -> dict[str, Any]:
    """The JSON object in file `label`, or an `EvalSpecError` saying why there is none."""
    try:
        with Path(label).open("rb") as file:
            data = file.read(MAX_FILE_BYTES + 1)
    except OSError as error:
        raise EvalSpecError(
            [Problem("$", f"cannot read: {error.strerror or error}")], label
        ) from None
    if len(data) > MAX_FILE_BYTES:
        raise EvalSpecError([Problem("$", "larger than the 64 MiB limit")], label)
    try:
        document, duplicates = parse_strict(data.decode("utf-8-sig"))
    except (ValueError, UnicodeDecodeError, RecursionError) as error:
        raise EvalSpecError([Problem("$", f"not JSON: {error}")], label) from None
    if not isinstance(document, dict):
        raise EvalSpecError([Problem("$", "an eval spec must be a JSON object")], label)
    problems = json_value_problems(document, duplicates=duplicates)
    if problems:
        raise EvalSpecError(problems, label)
    return document


def _spec_of(
    document: Mapping[str, Any], directory: Path, label: str, *, flags: bool = False
) -> EvalSpec:
    """Check `document` and build the spec, or raise every problem at once."""
    problems: list[Problem] = []
    for key in sorted(set(document) - _SPEC_KEYS):
        problems.append(
            Problem(append_path("$", key), f"unknown key (known: {_known(_SPEC_KEYS)})")
        )
    dataset = _path(document, "dataset", "$", directory, problems)
    default_model = _model(document, "$", problems, required=False)
    arms_value = document.get("arms")
    arms: dict[str, EvalArm | None] = {"a": None, "b": None}
    if not isinstance(arms_value, dict) or set(arms_value) != {"a", "b"}:
        problems.append(Problem("$.arms", 'must be an object with exactly the arms "a" and "b"'))
    else:
        for name in ("a", "b"):
            arms[name] = _arm(
                name, arms_value[name], default_model, "model" in document, directory, problems
            )
    seed = _integer(document, "seed", 0, minimum=0, problems=problems)
    max_tokens = _integer(document, "max_tokens", DEFAULT_MAX_TOKENS, minimum=1, problems=problems)
    concurrency = _integer(
        document, "concurrency", DEFAULT_CONCURRENCY, minimum=1, problems=problems
    )
    temperature = document.get("temperature")
    if temperature is not None and (
        isinstance(temperature, bool)
        or not isinstance(temperature, int | float)
        or not 0 <= temperature <= 2
    ):
        problems.append(Problem("$.temperature", "must be a number from 0 to 2"))
    allow_small = document.get("allow_small", False)
    if not isinstance(allow_small, bool):
        problems.append(Problem("$.allow_small", "must be true or false"))
    expect, judge = document.get("expect"), document.get("judge")
    for key, value in (("expect", expect), ("judge", judge)):
        if value is not None and not isinstance(value, dict):
            problems.append(Problem(append_path("$", key), "must be an object"))
    if isinstance(judge, dict):
        for key in sorted(set(judge) - _JUDGE_KEYS):
            problems.append(
                Problem(append_path("$.judge", key), f"unknown key (known: {_known(_JUDGE_KEYS)})")
            )
        _model(judge, "$.judge", problems, required=True)
        samples = judge.get("k", 3)
        if isinstance(samples, bool) or not isinstance(samples, int) or not 1 <= samples <= 20:
            problems.append(Problem("$.judge.k", "must be a whole number from 1 to 20"))
    arm_a, arm_b = arms["a"], arms["b"]
    if (
        arm_a is not None
        and arm_b is not None
        and (arm_a.template, arm_a.model)
        == (
            arm_b.template,
            arm_b.model,
        )
    ):
        problems.append(
            Problem("$.arms", "the arms are the same: they must differ by template, model or both")
        )
    if problems or dataset is None or arm_a is None or arm_b is None:
        if flags:
            problems = [Problem(_FLAGS.get(p.path, p.path), p.message) for p in problems]
        raise EvalSpecError(problems, label)
    return EvalSpec(
        dataset=dataset,
        a=arm_a,
        b=arm_b,
        seed=seed,
        max_tokens=max_tokens,
        temperature=None if temperature is None else float(temperature),
        concurrency=concurrency,
        allow_small=allow_small,
        expect=expect,
        judge=judge,
        source=label,
        from_flags=flags,
    )


def _known(keys: frozenset[str]) -> str:
    """The keys, sorted and comma separated, for a message."""
    return ", ".join(sorted(keys))


def _arm(
    name: str,
    value: Any,
    default_model: str | None,
    default_given: bool,
    directory: Path,
    problems: list[Problem],
) -> EvalArm | None:
    """Check one arm; None (with its problems added) when it is unusable.

    `default_given`: the spec has a `model` (maybe a bad one, already reported at `$.model`), so
    an arm without its own is not reported again.
    """
    where = append_path("$.arms", name)
    if not isinstance(value, dict):
        problems.append(Problem(where, "must be an object with a template and a model"))
        return None
    for key in sorted(set(value) - _ARM_KEYS):
        problems.append(
            Problem(append_path(where, key), f"unknown key (known: {_known(_ARM_KEYS)})")
        )
    template = _path(value, "template", where, directory, problems)
    own = _model(value, where, problems, required=not default_given)
    model = own or default_model
    if template is None or model is None:
        return None
    return EvalArm(name, template, model, None if own is not None else "$.model")


def _path(
    document: Mapping[str, Any], key: str, where: str, directory: Path, problems: list[Problem]
) -> Path | None:
    """The file path at `key`, relative to `directory`; None with a problem when missing or bad."""
    value = document.get(key)
    if not isinstance(value, str) or not value:
        said = "is required" if value is None else "must be a non-empty path"
        problems.append(Problem(append_path(where, key), said))
        return None
    return directory / value


def _model(
    document: Mapping[str, Any], where: str, problems: list[Problem], *, required: bool
) -> str | None:
    """The `provider:model` at `document["model"]`; a bare or missing one is a problem."""
    value = document.get("model")
    path = append_path(where, "model")
    if value is None:
        if required:
            problems.append(Problem(path, "is required: a model as provider:model"))
        return None
    provider, colon, bare = value.partition(":") if isinstance(value, str) else ("", "", "")
    if not (provider and colon and bare):
        problems.append(
            Problem(path, f"must name its provider, as provider:model, got {_shown(value)}")
        )
        return None
    return str(value)


def _shown(value: Any) -> str:
    """A short quoted rendering of a bad value for a message."""
    text = repr(value) if isinstance(value, str) else type(value).__name__
    return text if len(text) <= 60 else text[:57] + "..."


def _integer(
    document: Mapping[str, Any], key: str, default: int, *, minimum: int, problems: list[Problem]
) -> int:
    """The whole number at `key` (at least `minimum`), the default when absent."""
    value = document.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        problems.append(Problem(append_path("$", key), f"must be a whole number >= {minimum}"))
        return default
    return value


def load_dataset(path: str | os.PathLike[str], *, allow_small: bool = False) -> list[DatasetInput]:
    """The inputs of a JSON Lines dataset: one object per non-blank line, with its number.

    Raises:
        EvalDatasetError: the file cannot be read; lines are not JSON or not objects (every
            such line is named, one per line of the message); fewer than 2 lines (nothing to
            compare); or fewer than `MINIMUM_INPUTS` lines without `allow_small`.
    """
    label = os.fspath(path)
    try:
        with Path(label).open("rb") as file:
            data = file.read(MAX_FILE_BYTES + 1)
    except OSError as error:
        raise EvalDatasetError(f"{label}: cannot read: {error.strerror or error}") from None
    if len(data) > MAX_FILE_BYTES:
        raise EvalDatasetError(f"{label}: larger than the 64 MiB limit")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise EvalDatasetError(f"{label}: not UTF-8 text ({error.reason})") from None
    inputs: list[DatasetInput] = []
    bad_lines: list[str] = []
    for number, line in enumerate(text.splitlines(), start=1):
        if line.strip():
            try:
                inputs.append(DatasetInput(number, _dataset_line(label, number, line)))
            except EvalDatasetError as error:
                bad_lines.append(str(error))
    if bad_lines:
        raise EvalDatasetError("\n".join(bad_lines))
    if not inputs:
        raise EvalDatasetError(f"{label}: no inputs (one JSON object per line)")
    if len(inputs) < 2:
        raise EvalDatasetError(
            f"{label}: 1 input: a paired comparison needs at least 2, even with --allow-small"
        )
    if len(inputs) < MINIMUM_INPUTS and not allow_small:
        _, detectable = minimum_detectable_effect([0.0] * len(inputs))
        raise EvalDatasetError(
            f"{label}: {len(inputs)} inputs, fewer than {MINIMUM_INPUTS}: with so few pairs only "
            f"an effect of {detectable:.2f} standard deviations or more can be detected (power "
            f"0.8); add inputs, or allow a small dataset (--allow-small, or "
            f'"allow_small": true)'
        )
    return inputs


def _dataset_line(label: str, number: int, line: str) -> dict[str, JSON]:
    """One dataset line as an object of template variables, or an error naming the line."""
    try:
        value, duplicates = parse_strict(line)
    except (ValueError, RecursionError) as error:
        raise EvalDatasetError(f"{label}:{number}: not JSON: {error}") from None
    if not isinstance(value, dict):
        kind = "an array" if isinstance(value, list) else f"a {_json_kind(value)}"
        raise EvalDatasetError(
            f"{label}:{number}: a dataset line must be a JSON object of template variables, "
            f"not {kind}"
        )
    problems = json_value_problems(value, duplicates=duplicates)
    if problems:
        raise EvalDatasetError(f"{label}:{number}: {problems[0]}")
    return value


def _json_kind(value: Any) -> str:
    """The JSON name of a scalar's type, for a message."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, str):
        return "string"
    return "number" if isinstance(value, int | float) and math.isfinite(value) else "value"
