"""Eval specs and datasets: what `orchestr8 eval` accepts, and how it names what it refuses."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from orchestr8._errors import EvalDatasetError, EvalSpecError
from orchestr8._llm._eval_spec import (
    DEFAULT_CONCURRENCY,
    DEFAULT_MAX_TOKENS,
    MINIMUM_INPUTS,
    EvalArm,
    eval_spec_from_options,
    load_dataset,
    load_eval_spec,
)


def write_spec(tmp_path: Path, document: Any) -> Path:
    path = tmp_path / "spec.json"
    path.write_text(json.dumps(document), encoding="utf-8")
    return path


def problems_of(error: pytest.ExceptionInfo[EvalSpecError]) -> list[str]:
    return [str(problem) for problem in error.value.problems]


def test_a_spec_file_resolves_paths_from_its_directory(tmp_path: Path) -> None:
    """Paths are relative to the spec; an arm without a model takes the top-level one."""
    path = write_spec(
        tmp_path,
        {
            "dataset": "data.jsonl",
            "model": "anthropic:claude-sonnet-4-5",
            "arms": {"a": {"template": "a.json"}, "b": {"template": "b.json", "model": "local:x"}},
            "seed": 7,
            "max_tokens": 300,
            "temperature": 0,
            "concurrency": 2,
            "allow_small": True,
            "expect": {"constraints": {"max_words": 50}},
            "judge": {"model": "anthropic:claude-haiku-4-5", "k": 3},
        },
    )
    spec = load_eval_spec(path)
    assert spec.dataset == tmp_path / "data.jsonl"
    assert spec.a == EvalArm("a", tmp_path / "a.json", "anthropic:claude-sonnet-4-5")
    assert spec.b == EvalArm("b", tmp_path / "b.json", "local:x")
    assert (spec.seed, spec.max_tokens, spec.temperature, spec.concurrency) == (7, 300, 0.0, 2)
    assert spec.allow_small is True
    assert spec.expect == {"constraints": {"max_words": 50}}
    assert spec.judge == {"model": "anthropic:claude-haiku-4-5", "k": 3}


def test_defaults_of_a_minimal_spec(tmp_path: Path) -> None:
    """Seed 0, the default max_tokens and concurrency, no temperature, expect or judge."""
    spec = load_eval_spec(
        write_spec(
            tmp_path,
            {
                "dataset": "d.jsonl",
                "arms": {
                    "a": {"template": "t.json", "model": "anthropic:m1"},
                    "b": {"template": "t.json", "model": "anthropic:m2"},
                },
            },
        )
    )
    assert (spec.seed, spec.max_tokens, spec.concurrency) == (0, DEFAULT_MAX_TOKENS, 4)
    assert (spec.temperature, spec.expect, spec.judge, spec.allow_small) == (
        None,
        None,
        None,
        False,
    )
    assert DEFAULT_CONCURRENCY == 4


def test_every_problem_of_a_spec_is_named_by_its_path(tmp_path: Path) -> None:
    """Unknown keys, bare models, bad numbers and missing fields are all reported at once."""
    path = write_spec(
        tmp_path,
        {
            "arms": {"a": {"template": "a.json", "model": "claude", "x": 1}, "b": {}},
            "seed": -1,
            "max_tokens": "many",
            "concurrency": 0,
            "temperature": 5,
            "allow_small": "yes",
            "expect": [],
            "judge": {"model": "gpt", "k": 0, "samples": 2},
            "extra": True,
        },
    )
    with pytest.raises(EvalSpecError) as error:
        load_eval_spec(path)
    assert problems_of(error) == [
        "$.extra: unknown key (known: allow_small, arms, concurrency, dataset, expect, judge, "
        "max_tokens, model, seed, temperature)",
        "$.dataset: is required",
        "$.arms.a.x: unknown key (known: model, template)",
        "$.arms.a.model: must name its provider, as provider:model, got 'claude'",
        "$.arms.b.template: is required",
        "$.arms.b.model: is required: a model as provider:model",
        "$.seed: must be a whole number >= 0",
        "$.max_tokens: must be a whole number >= 1",
        "$.concurrency: must be a whole number >= 1",
        "$.temperature: must be a number from 0 to 2",
        "$.allow_small: must be true or false",
        "$.expect: must be an object",
        "$.judge.samples: unknown key (known: k, model)",
        "$.judge.model: must name its provider, as provider:model, got 'gpt'",
        "$.judge.k: must be a whole number from 1 to 20",
    ]
    assert str(error.value).startswith(f"{path}: invalid eval spec (15 problems):\n  $.extra")


def test_the_arms_must_differ(tmp_path: Path) -> None:
    """Two identical arms compare nothing: said at $.arms."""
    arm = {"template": "t.json", "model": "anthropic:m"}
    path = write_spec(tmp_path, {"dataset": "d.jsonl", "arms": {"a": arm, "b": arm}})
    with pytest.raises(EvalSpecError) as error:
        load_eval_spec(path)
    assert problems_of(error) == [
        "$.arms: the arms are the same: they must differ by template, model or both"
    ]


@pytest.mark.parametrize(
    "arms",
    [None, [], {"a": {}}, {"a": {}, "b": {}, "c": {}}],
)
def test_arms_must_be_exactly_a_and_b(tmp_path: Path, arms: Any) -> None:
    """Anything but an object of arms a and b is refused at $.arms."""
    path = write_spec(tmp_path, {"dataset": "d.jsonl", "arms": arms})
    with pytest.raises(EvalSpecError) as error:
        load_eval_spec(path)
    assert problems_of(error) == ['$.arms: must be an object with exactly the arms "a" and "b"']


def test_an_arm_that_is_not_an_object(tmp_path: Path) -> None:
    """An arm given as a string is named."""
    path = write_spec(tmp_path, {"dataset": "d.jsonl", "arms": {"a": "a.json", "b": {}}})
    with pytest.raises(EvalSpecError) as error:
        load_eval_spec(path)
    assert problems_of(error)[0] == "$.arms.a: must be an object with a template and a model"


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"{", "$: not JSON: Expecting property name enclosed in double quotes"),
        (b"[1]", "$: an eval spec must be a JSON object"),
        (b'{"seed": 1, "seed": 2}', "$: duplicate key 'seed'"),
        (b'{"seed": NaN}', "$: not JSON: NaN is not valid JSON"),
    ],
)
def test_a_spec_file_that_is_not_a_json_object(
    tmp_path: Path, content: bytes, message: str
) -> None:
    """Unparseable, non-object or duplicate-key files are refused with the file's name."""
    path = tmp_path / "spec.json"
    path.write_bytes(content)
    with pytest.raises(EvalSpecError) as error:
        load_eval_spec(path)
    assert problems_of(error)[0].startswith(message)
    assert error.value.source == str(path)


def test_a_missing_spec_file(tmp_path: Path) -> None:
    """A path that does not exist says it cannot be read."""
    with pytest.raises(EvalSpecError, match="cannot read: No such file"):
        load_eval_spec(tmp_path / "missing.json")


def test_flags_compare_two_templates_on_one_model() -> None:
    """--a, --b and --model: both arms on the same model."""
    spec = eval_spec_from_options(
        template_a="a.json", template_b="b.json", model="local:m", model_b=None, dataset="d.jsonl"
    )
    assert spec.a == EvalArm("a", Path("a.json"), "local:m")
    assert spec.b == EvalArm("b", Path("b.json"), "local:m")
    assert spec.dataset == Path("d.jsonl")


def test_flags_compare_two_models_on_one_template() -> None:
    """--a with --model and --model-b: B uses A's template on another model."""
    spec = eval_spec_from_options(
        template_a="a.json", template_b=None, model="local:m", model_b="openai:n", dataset="d"
    )
    assert spec.b == EvalArm("b", Path("a.json"), "openai:n")


def test_flag_problems_are_named_by_flag() -> None:
    """Missing flags are named as the flags a person types."""
    with pytest.raises(EvalSpecError) as error:
        eval_spec_from_options(
            template_a=None, template_b=None, model="bare", model_b=None, dataset=None
        )
    assert problems_of(error) == [
        "--dataset: is required",
        "--model: must name its provider, as provider:model, got 'bare'",
        "--a: is required",
        "--b: is required",
    ]  # a bad --model is reported once, not again as missing for each arm
    assert str(error.value).startswith("the options: invalid eval spec")


def write_dataset(tmp_path: Path, lines: list[str]) -> Path:
    path = tmp_path / "data.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_a_dataset_is_one_object_per_line_blank_lines_skipped(tmp_path: Path) -> None:
    """Each non-blank line is one input, in file order."""
    lines = [json.dumps({"topic": f"t{index}"}) for index in range(MINIMUM_INPUTS)]
    path = write_dataset(tmp_path, [lines[0], "", "   ", *lines[1:]])
    inputs = load_dataset(path)
    assert [entry.variables for entry in inputs] == [
        {"topic": f"t{index}"} for index in range(MINIMUM_INPUTS)
    ]
    assert [entry.line for entry in inputs] == [1, *range(4, MINIMUM_INPUTS + 3)]


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("{oops", "data.jsonl:3: not JSON: Expecting property name"),
        (
            "[1, 2]",
            "data.jsonl:3: a dataset line must be a JSON object of template variables, "
            "not an array",
        ),
        ('"text"', "not a string"),
        ("7", "not a number"),
        ("null", "not a null"),
        ("true", "not a boolean"),
        ('{"a": 1, "a": 2}', "data.jsonl:3: $: duplicate key 'a'"),
    ],
)
def test_a_bad_dataset_line_is_named_by_its_number(tmp_path: Path, line: str, message: str) -> None:
    """The first line that is not a JSON object is reported with its line number."""
    good = json.dumps({"topic": "x"})
    path = write_dataset(tmp_path, [good, good, line, *[good] * 30])
    with pytest.raises(EvalDatasetError) as error:
        load_dataset(path)
    assert "data.jsonl:3: " in str(error.value)
    assert message in str(error.value)


def test_a_small_dataset_is_refused_with_the_power_it_lacks(tmp_path: Path) -> None:
    """Fewer than 20 inputs: refused, saying what effect could be detected, unless allowed."""
    path = write_dataset(tmp_path, [json.dumps({"n": index}) for index in range(12)])
    with pytest.raises(EvalDatasetError) as error:
        load_dataset(path)
    assert str(error.value) == (
        f"{path}: 12 inputs, fewer than 20: with so few pairs only an effect of 0.81 standard "
        "deviations or more can be detected (power 0.8); add inputs, or allow a small dataset "
        '(--allow-small, or "allow_small": true)'
    )
    assert len(load_dataset(path, allow_small=True)) == 12


def test_an_empty_or_unreadable_dataset(tmp_path: Path) -> None:
    """No lines, bytes that are not UTF-8, or a missing file: each said plainly."""
    empty = write_dataset(tmp_path, [""])
    with pytest.raises(EvalDatasetError, match="no inputs"):
        load_dataset(empty, allow_small=True)
    binary = tmp_path / "binary.jsonl"
    binary.write_bytes(b"\xff\xfe\x00")
    with pytest.raises(EvalDatasetError, match="not UTF-8 text"):
        load_dataset(binary)
    with pytest.raises(EvalDatasetError, match="cannot read"):
        load_dataset(tmp_path / "missing.jsonl")


def test_files_over_the_size_limit_are_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A spec or dataset larger than the limit is not read into memory, and says so."""
    from orchestr8._llm import _eval_spec

    monkeypatch.setattr(_eval_spec, "MAX_FILE_BYTES", 8)
    spec = write_spec(tmp_path, {"dataset": "a-long-name.jsonl"})
    with pytest.raises(EvalSpecError, match="larger than the 64 MiB limit"):
        load_eval_spec(spec)
    dataset = write_dataset(tmp_path, ['{"topic": "long enough"}'])
    with pytest.raises(EvalDatasetError, match="larger than the 64 MiB limit"):
        load_dataset(dataset)


def test_a_single_input_is_refused_even_when_small_is_allowed(tmp_path: Path) -> None:
    """One input leaves nothing to compare: refused, never an empty report that passes."""
    path = write_dataset(tmp_path, [json.dumps({"n": 1})])
    with pytest.raises(EvalDatasetError, match="needs at least 2, even with --allow-small"):
        load_dataset(path, allow_small=True)


def test_every_bad_dataset_line_is_named(tmp_path: Path) -> None:
    """Lines 2 and 4 broken: both are reported at once, so one fix-and-rerun suffices."""
    lines = [json.dumps({"n": index}) for index in range(25)]
    lines[1], lines[3] = "{nope", "[1]"
    path = write_dataset(tmp_path, lines)
    with pytest.raises(EvalDatasetError) as error:
        load_dataset(path)
    reported = str(error.value).splitlines()
    assert [line.split(": ")[0] for line in reported] == [f"{path}:2", f"{path}:4"]


def test_identical_arms_from_flags_name_the_flags() -> None:
    """The same template and model for both arms: said in flags, not as `$.arms`."""
    with pytest.raises(EvalSpecError) as error:
        eval_spec_from_options(
            template_a="a.json", template_b=None, model="local:m", model_b=None, dataset="d"
        )
    assert problems_of(error) == [
        "--a/--b and --model/--model-b: the arms are the same: they must differ by template, "
        "model or both"
    ]


def test_an_arm_taking_the_specs_model_remembers_where_it_was_given(tmp_path: Path) -> None:
    """Arm A inherits `$.model`, arm B has its own: later problems point at the right place."""
    document = {
        "dataset": "d.jsonl",
        "model": "local:m",
        "arms": {"a": {"template": "a.json"}, "b": {"template": "a.json", "model": "local:n"}},
    }
    spec = load_eval_spec(write_spec(tmp_path, document))
    assert (spec.a.model_path, spec.b.model_path) == ("$.model", None)
