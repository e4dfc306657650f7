"""Finding agents by id: the embedding program's mapping, built-ins, entry points, import paths.

The order is fixed so that a workflow means the same thing wherever it runs, and so that the
program embedding orchestr8 can always override anything: first the mapping it passed, then the
built-ins, then the ``orchestr8.agents`` entry-point group of the installed distributions, and
last an id of the form ``module:attribute``, imported. Every resolution is cached per registry.
"""

from __future__ import annotations

import difflib
import importlib.metadata
import tomllib
from collections.abc import Mapping
from pathlib import Path

from .._errors import AgentConfigurationError, UnknownAgentError
from .._json import JSON
from ._builtins import BUILTIN_AGENTS
from ._contract import Agent, AgentFactory, AgentFunction, as_factory
from ._import_path import import_object

__all__ = ["ENTRY_POINT_GROUP", "AgentRegistry"]

ENTRY_POINT_GROUP = "orchestr8.agents"
"""The entry-point group in which installed distributions register agents."""


class AgentRegistry:
    """Resolves agent ids to factories in a fixed order and builds agents from their configs."""

    def __init__(self, agents: Mapping[str, AgentFactory | AgentFunction] | None = None) -> None:
        """Use `agents` (factories or async functions, by id) ahead of every other source.

        Raises:
            TypeError: an id is not a string, or a value is neither a factory nor an async function.
        """
        self._agents: dict[str, AgentFactory] = {}
        for agent_id, candidate in (agents or {}).items():
            if not isinstance(agent_id, str):
                raise TypeError(f"agent ids must be strings, got {agent_id!r}")
            self._agents[agent_id] = as_factory(candidate, f"agent {agent_id!r}")
        self._entry_points: dict[str, importlib.metadata.EntryPoint] | None = None
        self._cache: dict[str, AgentFactory] = {}

    def resolve(self, agent_id: str) -> AgentFactory:
        """Return the factory for `agent_id`, looking in each source in order and caching it.

        Raises:
            UnknownAgentError: no source has the id, or its entry point or import path failed;
                the message says what was tried.
        """
        factory = self._cache.get(agent_id)
        if factory is None:
            factory = self._find(agent_id)
            self._cache[agent_id] = factory
        return factory

    def exists(self, agent_id: str) -> bool:
        """Whether `agent_id` resolves (an import path is imported to find out)."""
        try:
            self.resolve(agent_id)
        except UnknownAgentError:
            return False
        return True

    def check(self, agent_id: str) -> bool:
        """Return True when `agent_id` resolves, else raise why, for `load_workflow`'s check.

        Raises:
            UnknownAgentError: the id does not resolve; the message says why (what was tried, the
                closest ids, or the exception that importing its module raised and where).
        """
        self.resolve(agent_id)
        return True

    def create(self, agent_id: str, config: Mapping[str, JSON] | None = None) -> Agent:
        """Build the agent `agent_id` from `config` (default empty), so bad configs fail early.

        Raises:
            UnknownAgentError: the id does not resolve.
            AgentConfigurationError: the config is unusable (whatever the factory raised is the
                cause) or the factory did not return an agent; the message names the agent.
        """
        factory = self.resolve(agent_id)
        if config is None:
            config = {}
        if not isinstance(config, Mapping):
            raise AgentConfigurationError(
                f"agent {agent_id!r}: config must be a JSON object, got {type(config).__name__}"
            )
        try:
            agent = factory(config)
        except AgentConfigurationError as error:
            raise AgentConfigurationError(
                f"agent {agent_id!r}: {error}", problems=error.problems
            ) from error
        except Exception as error:
            raise AgentConfigurationError(
                f"agent {agent_id!r} could not be built from its config: "
                f"{type(error).__name__}: {error}"
            ) from error
        if not callable(getattr(agent, "run", None)):
            raise AgentConfigurationError(
                f"agent {agent_id!r}: its factory returned a {type(agent).__name__}, "
                "which has no run() method"
            )
        return agent

    def names(self) -> list[str]:
        """The ids known without importing anything: the mapping's, built-ins, entry points."""
        return sorted({*self._agents, *BUILTIN_AGENTS, *self._entry_point_map()})

    def _entry_point_map(self) -> dict[str, importlib.metadata.EntryPoint]:
        # Scanning installed distributions costs milliseconds, so it is done once, and only when
        # an id is not in the mapping or the built-ins. The first distribution on sys.path wins.
        if self._entry_points is None:
            found: dict[str, importlib.metadata.EntryPoint] = {}
            for entry_point in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
                found.setdefault(entry_point.name, entry_point)
            self._entry_points = found
        return self._entry_points

    def _find(self, agent_id: str) -> AgentFactory:
        if agent_id in self._agents:
            return self._agents[agent_id]
        if agent_id in BUILTIN_AGENTS:
            return BUILTIN_AGENTS[agent_id]
        entry_point = self._entry_point_map().get(agent_id)
        if entry_point is not None:
            return self._load_entry_point(agent_id, entry_point)
        if ":" in agent_id:
            return self._import(agent_id)
        raise UnknownAgentError(self._unknown_message(agent_id))

    def _load_entry_point(
        self, agent_id: str, entry_point: importlib.metadata.EntryPoint
    ) -> AgentFactory:
        distribution = getattr(entry_point, "dist", None)
        origin = (
            f"entry point {entry_point.name} = {entry_point.value} in group {ENTRY_POINT_GROUP!r}"
        )
        if distribution is not None:
            origin += f" (distribution {distribution.name!r})"
        if not entry_point.attr:
            raise UnknownAgentError(
                f"agent {agent_id!r}: {origin} names a module, not a 'module:attribute' factory"
            )
        try:
            candidate = import_object(f"{entry_point.module}:{entry_point.attr}")
        except (ValueError, ImportError, AttributeError) as error:
            raise UnknownAgentError(
                f"agent {agent_id!r}: {origin} could not be loaded: {error}"
            ) from error
        try:
            return as_factory(candidate, origin)
        except TypeError as error:
            raise UnknownAgentError(f"agent {agent_id!r}: {error}") from None

    def _import(self, agent_id: str) -> AgentFactory:
        try:
            candidate = import_object(agent_id)
        except (ValueError, ModuleNotFoundError, AttributeError) as error:
            raise UnknownAgentError(
                f"unknown agent {agent_id!r}: tried it as a 'module:attribute' import path, "
                f"but {error}"
            ) from error
        except ImportError as error:
            raise UnknownAgentError(f"agent {agent_id!r} could not be loaded: {error}") from error
        try:
            return as_factory(candidate, f"import path {agent_id!r}")
        except TypeError as error:
            raise UnknownAgentError(f"unknown agent {agent_id!r}: {error}") from None

    def _unknown_message(self, agent_id: str) -> str:
        project = _project_agents()
        if project is not None and agent_id in project[1]:
            return (
                f"unknown agent {agent_id!r}: {project[0] / 'pyproject.toml'} registers it in "
                f"{ENTRY_POINT_GROUP!r}, but the project is not installed with that entry point "
                f"yet; run `pip install -e .` in {project[0]}"
            )
        candidates = {*self.names(), *(project[1] if project is not None else ())}
        suggestions = difflib.get_close_matches(agent_id, sorted(candidates), n=3)
        hint = f" (did you mean {' or '.join(map(repr, suggestions))}?)" if suggestions else ""
        given = (
            f"the agents given by the embedding program ({', '.join(sorted(self._agents))}), "
            if self._agents
            else ""
        )
        installed = ", ".join(sorted(self._entry_point_map())) or "none installed"
        return (
            f"unknown agent {agent_id!r}{hint}: it is not among {given}the built-ins "
            f"({', '.join(sorted(BUILTIN_AGENTS))}) or the {ENTRY_POINT_GROUP!r} entry points "
            f"({installed}); to import an agent, name it as 'module:attribute'"
        )


def _project_agents() -> tuple[Path, frozenset[str]] | None:
    """The project around the working directory and the agent ids its pyproject.toml registers.

    `orchestr8 create agent` registers agents there as entry points, which exist only once the
    project is installed; these ids are suggested, and named as not installed yet.
    """
    root = find_project_root(Path.cwd())
    if root is None:
        return None
    try:
        document = tomllib.loads((root / "pyproject.toml").read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
        return None
    project = document.get("project")
    entry_points = project.get("entry-points") if isinstance(project, dict) else None
    group = entry_points.get(ENTRY_POINT_GROUP) if isinstance(entry_points, dict) else None
    return (root, frozenset(map(str, group))) if isinstance(group, dict) else None


def find_project_root(start: Path) -> Path | None:
    """The nearest directory from `start` upwards that holds a `pyproject.toml`, if any."""
    start = start.resolve()
    for candidate in (start, *start.parents):
        if (candidate / "pyproject.toml").is_file():
            return candidate
    return None
