"""Real executions for the time-travel tests: workflows, agents and a runtime on either store."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from orchestr8 import AgentContext, Runtime, open_runtime
from orchestr8._journal._journal import open_journal


async def counted(input: Any, context: AgentContext) -> Any:
    """Echo the input, recording the tokens an LLM call would (3 in, 2 out)."""
    context.record_usage(input_tokens=3, output_tokens=2)
    return input


AGENTS = {"counted": counted}

CHAIN: dict[str, Any] = {
    "schema_version": "1.1",
    "name": "chain",
    "steps": [
        {
            "id": "flaky",
            "agent": {"id": "fail", "config": {"times": 1}},
            "input": {"n": "${inputs.n}"},
            "policy": {"retry": {"max_attempts": 2, "initial_delay": 0.01, "jitter": "none"}},
        },
        {
            "id": "ask",
            "agent": "counted",
            "depends_on": ["flaky"],
            "input": "${steps.flaky.output}",
        },
        {"id": "each", "agent": "echo", "for_each": "inputs.items", "input": "${item}"},
        {"id": "done", "agent": "echo", "depends_on": ["ask", "each"], "input": {"ok": True}},
    ],
    "output": {"ask": "${steps.ask.output}"},
}
"""A retried step, a step that uses tokens, a map of items and a step after them all."""


@asynccontextmanager
async def runtime_on(store: str, tmp_path: Path) -> AsyncIterator[Runtime]:
    """A runtime on the memory journal, a SQLite file in `tmp_path`, or a PostgreSQL database.

    `store` is `memory`, `sqlite`, or the URL of the PostgreSQL database.
    """
    if store.startswith("postgresql://"):
        async with (
            open_journal(store) as journal,
            open_runtime(journal=journal, agents=AGENTS) as runtime,
        ):
            yield runtime
        return
    path = None if store == "memory" else tmp_path / "journal.db"
    async with open_runtime(journal=path, agents=AGENTS) as runtime:
        yield runtime


async def run(runtime: Runtime, workflow: dict[str, Any], inputs: dict[str, Any]) -> str:
    """Run `workflow` to its end and return its execution id."""
    handle = await runtime.start(workflow, inputs)
    await handle.wait()
    await runtime.journal.flush()
    return handle.execution_id
