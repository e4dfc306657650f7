"""Per-step spec hashes: what each step of a workflow document asks for, as one digest.

A fork (`_execution/_forking`) reuses the recorded outputs of steps upstream of its fork point.
That is only right when those steps are still the steps that produced them: `step_spec_hashes`
gives each step of a workflow document the sha256 of its spec written as canonical JSON (keys
sorted, no spaces, UTF-8), so two documents can be compared step by step, and the journal can
keep the hashes beside a stored document (content addressing, `workflow_documents`).
`step_spec_difference` shows what changed in one step, as a unified diff people can read.

Hashes are taken of the document as the journal keeps it (`journal_document`, redacted): every
field written out, defaults included, so a step written two ways that load the same hashes the
same.
"""

from __future__ import annotations

import difflib
import hashlib
import json
from collections.abc import Mapping
from typing import Any


def canonical_json(value: Any) -> str:
    """`value` as canonical JSON text: keys sorted, no whitespace, non-ASCII kept as is."""
    return json.dumps(
        value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    )


def step_specs(document: Mapping[str, Any]) -> dict[str, Any]:
    """Each step's spec of a workflow document, by step id, in document order.

    Entries that are not objects with a string `id` are left out: a document the journal
    recorded was valid when it was recorded, and nothing can be said of such an entry.
    """
    specs: dict[str, Any] = {}
    steps = document.get("steps")
    for step in steps if isinstance(steps, list) else ():
        if isinstance(step, dict) and isinstance(step.get("id"), str):
            specs.setdefault(step["id"], step)
    return specs


def spec_hash(spec: Any) -> str:
    """The sha256 of one step spec's canonical JSON, as 64 hex digits."""
    return hashlib.sha256(canonical_json(spec).encode("utf-8")).hexdigest()


def step_spec_hashes(document: Mapping[str, Any]) -> dict[str, str]:
    """The spec hash of every step of a workflow document, by step id, in document order."""
    return {step_id: spec_hash(spec) for step_id, spec in step_specs(document).items()}


def step_spec_difference(step_id: str, before: Any, after: Any) -> str:
    """A unified diff of one step's spec, before and after (each pretty JSON, keys sorted).

    A spec that is None stands for a step the document does not have.
    """
    old = [] if before is None else _pretty(before).splitlines(keepends=True)
    new = [] if after is None else _pretty(after).splitlines(keepends=True)
    lines = difflib.unified_diff(
        old, new, fromfile=f"{step_id} (recorded)", tofile=f"{step_id} (now)", n=2
    )
    return "".join(line if line.endswith("\n") else line + "\n" for line in lines)


def _pretty(spec: Any) -> str:
    return json.dumps(spec, sort_keys=True, indent=2, ensure_ascii=False, allow_nan=False) + "\n"
