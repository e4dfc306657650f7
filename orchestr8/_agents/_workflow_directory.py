"""The directory of the workflow whose agents are being built, for agents that read files.

An agent built from a workflow file may name files in its config (the `llm` agent's prompt
template files), and a relative name must mean "next to the workflow", not "wherever the command
was started". Admission builds a workflow's agents inside `agents_built_in(directory)`;
`workflow_directory()` tells a constructor where that is, or None for a document without a file
(one submitted over REST, or built in code), where an agent should refuse relative paths with a
message saying why.
"""

from __future__ import annotations

import contextvars
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

__all__ = ["agents_built_in", "workflow_directory"]

_directory: contextvars.ContextVar[Path | None] = contextvars.ContextVar(
    "orchestr8_workflow_directory", default=None
)


@contextmanager
def agents_built_in(directory: Path | None) -> Iterator[None]:
    """Build agents inside this block for a workflow in `directory` (None: it has no file)."""
    token = _directory.set(directory)
    try:
        yield
    finally:
        _directory.reset(token)


def workflow_directory() -> Path | None:
    """The directory of the workflow file whose agents are being built, or None without one."""
    return _directory.get()
