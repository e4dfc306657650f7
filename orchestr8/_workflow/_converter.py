"""The one strict cattrs converter between workflow JSON documents and the workflow AST.

It never coerces: a value of the wrong JSON type is refused even where the schema would have let
it through (`"3"` is not an integer, `1` is not a boolean, a lone surrogate is not text), and every
item error of an array is reported at its index. It also writes the AST back as the shortest
document: fields at their defaults are left out, and an agent with only an id is a plain string.
"""

from __future__ import annotations

import math
import typing
from collections.abc import Mapping
from typing import Any, Final

import attrs
import cattrs
from cattrs.errors import IterableValidationError, IterableValidationNote
from cattrs.gen import make_dict_structure_fn, make_dict_unstructure_fn, override

from .._json import LARGEST_NUMBER, has_lone_surrogate
from ._conditions import Expression
from ._document import AgentSpec, OnError, Replanning, Step, Workflow
from ._expressions import Template, compile_template
from ._loops import Repeat, to_until
from ._map_fields import to_optional_expression
from ._policy_spec import Inherit, PolicySpec
from ._references import json_type_name
from ._schema_problems import show_value
from ._sub_workflows import SubWorkflow


def _structure_str(value: Any, _: type) -> str:
    if not isinstance(value, str):
        raise TypeError(f"expected a string, got {json_type_name(value)}")
    if has_lone_surrogate(value):
        # Valid JSON ("\\ud800"), but not text: no journal, terminal or log could hold it.
        raise ValueError(f"{value!r} holds a lone surrogate, which is not text")
    return value


def _structure_bool(value: Any, _: type) -> bool:
    if not isinstance(value, bool):
        raise TypeError(f"expected a boolean, got {json_type_name(value)}")
    return value


def _structure_int(value: Any, _: type) -> int:
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"expected an integer, got {show_value(value)}")
    return value


def _structure_float(value: Any, _: type) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"expected a number, got {json_type_name(value)}")
    if isinstance(value, int) and not value <= LARGEST_NUMBER:
        raise ValueError(f"{show_value(value)} is larger than any float")
    if not math.isfinite(value):
        raise ValueError(f"numbers must be finite, got {value!r}")
    return float(value)


def _structure_tuple(value: Any, kind: Any) -> tuple[Any, ...]:
    """Structure each item, failing with every item's error located by its index."""
    if not isinstance(value, list | tuple):
        raise TypeError(f"expected an array, got {json_type_name(value)}")
    (item_type, _) = typing.get_args(kind)
    items: list[Any] = []
    errors: list[Exception] = []
    for index, item in enumerate(value):
        try:
            items.append(converter.structure(item, item_type))
        except Exception as error:
            note = f"Structuring {kind} @ index {index}"
            error.add_note(IterableValidationNote(note, index, item_type))
            errors.append(error)
    if errors:
        raise IterableValidationError(f"While structuring {kind!r}", errors, kind)
    return tuple(items)


def _is_tuple(kind: Any) -> bool:
    origin: Any = typing.get_origin(kind)
    return origin is tuple


def _structure_object(value: Any, _: Any) -> dict[str, Any]:
    if not isinstance(value, Mapping):
        raise TypeError(f"expected an object, got {json_type_name(value)}")
    return dict(value)


def _has_inherit(kind: Any) -> bool:
    return Inherit in typing.get_args(kind)


def _structure_inherit_union(value: Any, kind: Any) -> Any:
    """Structure a present policy field: the marker stands for absence, so it is never read."""
    rest = tuple(member for member in typing.get_args(kind) if member is not Inherit)
    target: Any = rest[0] if len(rest) == 1 else typing.Union[rest]  # noqa: UP007
    return converter.structure(value, target)


def _ordered(document: dict[str, Any]) -> dict[str, Any]:
    """A workflow document with its keys in the AST's order, as `workflow_to_json` writes it."""
    return {name: document[name] for name in attrs.fields_dict(Workflow) if name in document}


def _structure_sub_workflow(value: Any, _: type) -> SubWorkflow:
    """Take a sub-workflow the codec resolved; only it knows the document's file and names."""
    if not isinstance(value, SubWorkflow):
        raise TypeError("a sub-workflow is resolved by load_workflow before structuring")
    return value


def _is_on_error(kind: Any) -> bool:
    return Replanning in typing.get_args(kind)


def _structure_on_error(value: Any, _: Any) -> Any:
    """A step's `on_error`: a word (`fail`, `continue`) or a replanning object."""
    if isinstance(value, Mapping):
        return converter.structure(value, Replanning)
    if value not in typing.get_args(OnError):
        raise ValueError(f"expected 'fail', 'continue' or a replan object, got {show_value(value)}")
    return value


def _makeconverter() -> cattrs.Converter:
    converter = cattrs.Converter(forbid_extra_keys=True, omit_if_default=True)
    converter.register_structure_hook(str, _structure_str)
    converter.register_structure_hook(bool, _structure_bool)
    converter.register_structure_hook(int, _structure_int)
    converter.register_structure_hook(float, _structure_float)
    converter.register_structure_hook_func(lambda kind: kind == dict[str, Any], _structure_object)
    converter.register_structure_hook_func(_is_tuple, _structure_tuple)
    converter.register_structure_hook_func(_has_inherit, _structure_inherit_union)
    converter.register_structure_hook_func(_is_on_error, _structure_on_error)
    converter.register_structure_hook(Template, lambda value, _: compile_template(value))
    converter.register_unstructure_hook(Template, lambda template: template.source)
    converter.register_structure_hook(Expression, lambda value, _: to_optional_expression(value))
    converter.register_unstructure_hook(Expression, lambda expression: expression.text)
    # `until` is compiled as it is read, and written back as its text.
    converter.register_structure_hook(
        Repeat,
        make_dict_structure_fn(
            Repeat, converter, until=override(struct_hook=lambda value, _: to_until(value))
        ),
    )
    converter.register_unstructure_hook(
        Repeat,
        make_dict_unstructure_fn(
            Repeat, converter, until=override(unstruct_hook=lambda until: until.text)
        ),
    )
    structure_agent = make_dict_structure_fn(AgentSpec, converter)
    unstructure_agent = make_dict_unstructure_fn(AgentSpec, converter, _cattrs_omit_if_default=True)
    converter.register_structure_hook(
        AgentSpec,
        lambda value, kind: (
            AgentSpec(id=value) if isinstance(value, str) else structure_agent(value, kind)
        ),
    )
    converter.register_unstructure_hook(
        AgentSpec,
        lambda agent: (
            agent.id if agent.version is None and not agent.config else unstructure_agent(agent)
        ),
    )
    converter.register_structure_hook(SubWorkflow, _structure_sub_workflow)
    # A child is written inline, as loaded: the journal keeps what ran, and a resume never
    # depends on the child's file being there or unchanged.
    converter.register_unstructure_hook(
        SubWorkflow, lambda sub: _ordered(converter.unstructure(sub.workflow))
    )
    # The generated hook would build a `PolicySpec()` for every step to compare the policy with
    # its default; comparing with one shared empty policy keeps serialising a workflow cheap.
    unstructure_step = make_dict_unstructure_fn(
        Step, converter, _cattrs_omit_if_default=True, policy=override(omit=True)
    )
    no_policy = PolicySpec()

    def unstructure_step_with_policy(step: Step) -> dict[str, Any]:
        document: dict[str, Any] = unstructure_step(step)
        if step.policy != no_policy:
            document["policy"] = converter.unstructure(step.policy)
            if "on_error" in document:
                document["on_error"] = document.pop("on_error")
        return document

    converter.register_unstructure_hook(Step, unstructure_step_with_policy)
    converter.register_unstructure_hook(
        Workflow,
        make_dict_unstructure_fn(
            Workflow,
            converter,
            _cattrs_omit_if_default=True,
            schema_version=override(omit_if_default=False),
        ),
    )
    return converter


converter: Final = _makeconverter()
