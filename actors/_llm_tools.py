"""Tools of the `llm` agent: other orchestr8 agents the model may call in a tool-use loop.

Each tool is declared as ``{"name": {"agent": ID, "config": {...}, "description": "...",
"input_schema": {...}}}``. Its agent is built with the rest of the `llm` agent, so an unknown
agent or a bad config fails workflow validation. When the model asks for a tool, the agent runs
with the tool input and the `llm` step's own context, and its output goes back to the model as a
`tool_result` (strings as they are, anything else as JSON). A tool that raises is reported to the
model as an error result (``is_error``), so the model can recover; cancellation is never caught.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from typing import Any

import attrs
import trio

from orchestr8 import Agent, AgentConfigurationError, AgentContext, AgentRegistry

__all__ = ["Tool", "compile_tools", "run_tool_calls"]

_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_KEYS = frozenset({"agent", "config", "description", "input_schema"})


@attrs.frozen
class Tool:
    """One tool: the definition the model sees, and the agent that serves it."""

    name: str
    description: str
    input_schema: Mapping[str, Any]
    agent: Agent

    def definition(self) -> dict[str, Any]:
        """The tool as the Messages API's `tools` list declares it."""
        definition: dict[str, Any] = {"name": self.name, "input_schema": dict(self.input_schema)}
        if self.description:
            definition["description"] = self.description
        return definition


def compile_tools(tools: Any, registry: AgentRegistry) -> dict[str, Tool]:
    """Build the tools of a `tools` config value, creating each tool's agent from `registry`.

    Raises:
        AgentConfigurationError: the value has the wrong shape, a name is not a valid tool name,
            or a tool's agent is unknown or rejects its config.
    """
    if not isinstance(tools, Mapping):
        raise AgentConfigurationError(
            'tools must be an object mapping tool names to {"agent", "config", "description", '
            '"input_schema"}'
        )
    compiled: dict[str, Tool] = {}
    for name, spec in tools.items():
        where = f"tools.{name}"
        if not isinstance(name, str) or not _NAME.match(name):
            raise AgentConfigurationError(
                f"tool name {name!r} must be 1-64 letters, digits, '_' or '-'"
            )
        if not isinstance(spec, Mapping):
            raise AgentConfigurationError(f"{where} must be an object")
        unknown = sorted(str(key) for key in spec if key not in _KEYS)
        if unknown:
            raise AgentConfigurationError(
                f"{where} has unknown keys {', '.join(map(repr, unknown))}; "
                f"expected: {', '.join(sorted(_KEYS))}"
            )
        agent_id = spec.get("agent")
        if not isinstance(agent_id, str) or not agent_id:
            raise AgentConfigurationError(f"{where}.agent must be an agent id (a string)")
        config = spec.get("config", {})
        description = spec.get("description", "")
        schema = spec.get("input_schema", {"type": "object"})
        if not isinstance(config, Mapping):
            raise AgentConfigurationError(f"{where}.config must be an object")
        if not isinstance(description, str):
            raise AgentConfigurationError(f"{where}.description must be a string")
        if not isinstance(schema, Mapping) or schema.get("type") != "object":
            raise AgentConfigurationError(
                f'{where}.input_schema must be a JSON Schema object with "type": "object"'
            )
        try:
            agent = registry.create(agent_id, config)
        except Exception as error:
            raise AgentConfigurationError(f"{where}: {error}") from error
        compiled[name] = Tool(name, description, schema, agent)
    return compiled


def _as_content(value: Any) -> str:
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False, default=str)


async def _call(
    tool: Tool | None,
    call: Mapping[str, Any],
    context: AgentContext,
    results: list[dict[str, Any]],
    index: int,
) -> None:
    result: dict[str, Any] = {"type": "tool_result", "tool_use_id": call["id"]}
    if tool is None:
        result["content"] = f"unknown tool {call['name']!r}"
        result["is_error"] = True
    else:
        context.progress({"tool": tool.name, "tool_use_id": call["id"]})
        try:
            output = await tool.agent.run(call["input"], context)
        except Exception as error:
            context.logger.warning("tool %r failed: %s: %s", tool.name, type(error).__name__, error)
            result["content"] = f"{type(error).__name__}: {error}"
            result["is_error"] = True
        else:
            result["content"] = _as_content(output)
    results[index] = result


async def run_tool_calls(
    tools: Mapping[str, Tool], calls: Sequence[Mapping[str, Any]], context: AgentContext
) -> list[dict[str, Any]]:
    """Run the tools the model asked for, concurrently, and return their `tool_result` blocks.

    `calls` are the reply's `tool_use` blocks (``{"id", "name", "input"}``); the results are in
    the same order, as the API requires.
    """
    results: list[dict[str, Any]] = [{} for _ in calls]
    async with trio.open_nursery() as nursery:
        for index, call in enumerate(calls):
            nursery.start_soon(_call, tools.get(call["name"]), call, context, results, index)
    return results
