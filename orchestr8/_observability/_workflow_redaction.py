"""Redacting a workflow document so that it stays a valid workflow (the journal resumes from it).

In data, the value under a secret-looking key becomes ``"***"``. A workflow document is not all
data: its ``inputs`` JSON Schema may name a property ``api_key``, and replacing that schema with
``"***"`` would break the workflow a resume reloads. So keys are looked at only where values
live: each step's ``input``, each agent's ``config`` and the workflow's ``output`` template, and
the same in a step's inline child ``workflow``.
Every other part (the ``inputs`` schema, step ids, policies, names) only gets known secret values
replaced inside strings. Parts that need no change are shared with the input, as in `_redaction`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from itertools import islice
from typing import Any, Final

__all__ = ["redact_workflow_document"]

Redaction = Callable[[Any], Any]
"""A redaction of one JSON-like value: by key and known value, or by known value only."""

_VALUE_PARTS: Final = frozenset({"input", "output"})
"""The parts of a step and of a workflow document whose values are data (redacted by key too)."""


def redact_workflow_document(
    document: Mapping[str, Any], redact: Redaction, redact_values: Redaction
) -> Any:
    """`document` with `redact` applied where values live and `redact_values` elsewhere.

    The same mapping comes back when nothing changed; the input is never mutated.
    """
    out: dict[str, Any] | None = None
    for index, (name, part) in enumerate(document.items()):
        if name == "steps" and type(part) in (list, tuple):
            new = _each(part, lambda step: _redact_step(step, redact, redact_values))
        elif name in _VALUE_PARTS:
            new = redact(part)
        else:
            new = redact_values(part)
        if out is None:
            if new is part:
                continue
            out = dict(islice(document.items(), index))
        out[name] = new
    return document if out is None else out


def _redact_step(step: Any, redact: Redaction, redact_values: Redaction) -> Any:
    """One step of a workflow document: its `input` and its agent's `config` by key too."""
    if not isinstance(step, Mapping):
        return redact_values(step)
    out: dict[str, Any] | None = None
    for index, (name, part) in enumerate(step.items()):
        if name in _VALUE_PARTS:
            new = redact(part)
        elif name == "agent" and isinstance(part, Mapping):
            new = {
                key: redact(item) if key == "config" else redact_values(item)
                for key, item in part.items()
            }
            new = part if all(new[key] is item for key, item in part.items()) else new
        elif name == "workflow" and isinstance(part, Mapping):
            # A sub-workflow step's child, journaled inline: redacted as a workflow of its own.
            new = redact_workflow_document(part, redact, redact_values)
        else:
            new = redact_values(part)
        if out is None:
            if new is part:
                continue
            out = dict(islice(step.items(), index))
        out[name] = new
    return step if out is None else out


def _each(steps: Sequence[Any], function: Redaction) -> Any:
    """Apply `function` to each step; the same list or tuple back when nothing changed."""
    out = [function(step) for step in steps]
    if all(new is old for new, old in zip(out, steps, strict=True)):
        return steps
    return out if type(steps) is list else tuple(out)
