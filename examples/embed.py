"""Embed orchestr8 in a trio program: your own agent, a workflow as a dict, live events, a result.

Run it with `python examples/embed.py`. It needs nothing but orchestr8 installed.
"""

from __future__ import annotations

from typing import Any

import trio

import orchestr8


class WordCount(orchestr8.Agent):
    """Counts the words of its input text; an agent is a class with an async `run`."""

    async def run(self, input: Any, context: orchestr8.AgentContext) -> Any:
        """Return the number of words, reporting progress on the way."""
        words = str(input).split()
        context.progress({"words_seen": len(words)})
        return {"words": len(words)}


WORKFLOW = {
    "schema_version": "1.0",
    "name": "embedded",
    "inputs": {"type": "object", "properties": {"text": {"type": "string"}}, "required": ["text"]},
    "steps": [
        {"id": "count", "agent": "word_count", "input": "${inputs.text}"},
        {
            "id": "report",
            "agent": "echo",
            "depends_on": ["count"],
            "input": "${inputs.text} has ${steps.count.output.words} words",
        },
    ],
    "output": "${steps.report.output}",
}


async def show_events(bus: orchestr8.EventBus, task_status: trio.TaskStatus[None]) -> None:
    """Print execution events as they happen, until one ends an execution.

    A bus subscription is a lossy view by default: it never slows the engine down.
    """
    async with bus.subscribe(buffer=256) as events:
        task_status.started()
        async for event in events:
            if isinstance(event, orchestr8.Event):
                print(f"  [{event.seq}] {event.type} {event.step_id or ''}".rstrip())
                if event.is_terminal:
                    return


async def main() -> None:
    """Open a runtime in this program's nursery, run one workflow, print its result."""
    async with (
        orchestr8.open_runtime(agents={"word_count": WordCount}) as runtime,
        trio.open_nursery() as nursery,
    ):
        await nursery.start(show_events, runtime.bus)
        handle = await runtime.start(WORKFLOW, {"text": "structured concurrency is nice"})
        result = await handle.wait()
    print(f"{result.status}: {result.output}")


if __name__ == "__main__":
    trio.run(main)
