"""The agent contract: `Agent`, `AgentContext` and the registry's lookup order."""

from __future__ import annotations

import importlib.metadata
import logging
import sys
import uuid
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import agent_fixtures
import pytest
import trio

from orchestr8._agents._builtins import EchoAgent, SleepAgent
from orchestr8._agents._contract import Agent, AgentContext, FunctionAgent
from orchestr8._agents._registry import ENTRY_POINT_GROUP, AgentRegistry
from orchestr8._errors import AgentConfigurationError, UnknownAgentError


def make_context(**overrides: Any) -> AgentContext:
    fields: dict[str, Any] = {"execution_id": "exec-1", "step_id": "step-a", **overrides}
    return AgentContext(**fields)


class Strict(Agent):
    config_keys = frozenset({"known"})

    async def run(self, input: Any, context: AgentContext) -> Any:
        return input


# Agent base class


async def test_base_run_is_not_implemented() -> None:
    """An Agent subclass that does not override run() raises NotImplementedError naming it."""

    class Lazy(Agent):
        pass

    with pytest.raises(NotImplementedError, match="Lazy"):
        await Lazy({}).run(1, make_context())


def test_config_is_a_read_only_copy() -> None:
    """The agent keeps a read-only copy of its config, unaffected by later changes to the source."""
    source = {"known": 1}
    agent = Strict(source)
    source["known"] = 2
    assert agent.config == {"known": 1}
    with pytest.raises(TypeError):
        agent.config["known"] = 3  # type: ignore[index]


def test_unknown_config_keys_are_named() -> None:
    """Keys outside config_keys raise AgentConfigurationError naming each and the expected ones."""
    with pytest.raises(AgentConfigurationError, match=r"keys 'other', 'typo' for Strict.*known"):
        Strict({"typo": 1, "known": 2, "other": 3})


def test_config_keys_none_accepts_anything() -> None:
    """Without config_keys, any key is accepted."""

    class Open(Agent):
        pass

    assert Open({"anything": True}).config == {"anything": True}


def test_config_must_be_a_mapping() -> None:
    """A config that is not a mapping raises AgentConfigurationError."""
    with pytest.raises(AgentConfigurationError, match="JSON object, got list"):
        Strict([])  # type: ignore[arg-type]


# AgentContext


def test_idempotency_key_defaults_to_execution_and_step() -> None:
    """The default idempotency key is execution_id:step_id, the same for every attempt."""
    context = make_context(attempt=1)
    assert context.idempotency_key == "exec-1:step-a"
    retried = context.with_attempt(3)
    assert retried.attempt == 3
    assert retried.idempotency_key == "exec-1:step-a"
    assert make_context(attempt=7).idempotency_key == context.idempotency_key


def test_explicit_idempotency_key_is_kept_across_attempts() -> None:
    """An idempotency key given by the engine survives with_attempt."""
    context = make_context(idempotency_key="resumed-key")
    assert context.with_attempt(2).idempotency_key == "resumed-key"


def test_context_is_frozen() -> None:
    """Contexts are immutable values."""
    context = make_context()
    with pytest.raises(AttributeError):
        context.attempt = 2  # type: ignore[misc]


def test_logger_binds_ids_and_keeps_caller_extra(caplog: pytest.LogCaptureFixture) -> None:
    """Records from context.logger carry the context ids and the caller's own extra fields."""
    context = make_context(attempt=2, agent_id="echo", workflow_name="wf")
    with caplog.at_level(logging.INFO, logger="orchestr8.agents"):
        context.logger.info("working", extra={"detail": 5})
    [record] = caplog.records
    assert record.name == "orchestr8.agents.echo"
    assert record.getMessage() == "working"
    fields = vars(record)
    assert (fields["execution_id"], fields["step_id"], fields["attempt"]) == ("exec-1", "step-a", 2)
    assert (fields["agent_id"], fields["workflow_name"]) == ("echo", "wf")
    assert fields["idempotency_key"] == "exec-1:step-a"
    assert fields["detail"] == 5


def test_logger_is_made_once() -> None:
    """The logger adapter is created lazily and then reused."""
    context = make_context()
    assert context.logger is context.logger


def test_progress_calls_the_callback_with_a_copy() -> None:
    """progress() calls the callback synchronously with the context and a copy of the data."""
    seen: list[tuple[AgentContext, dict[str, Any]]] = []
    context = make_context(progress_callback=lambda ctx, data: seen.append((ctx, dict(data))))
    data = {"percent": 50}
    context.progress(data)
    data["percent"] = 99
    assert seen == [(context, {"percent": 50})]


def test_progress_without_callback_publishes_nothing_yet_still_checks_the_data() -> None:
    """Without a callback progress() leaves its data alone, yet still refuses what is not JSON."""
    context = make_context()
    assert context.progress_callback is None
    data = {"percent": 10}
    context.progress(data)
    assert data == {"percent": 10}
    with pytest.raises(ValueError, match="progress data is not JSON"):
        context.progress({"done": float("nan")})


@pytest.mark.parametrize(
    ("data", "error"),
    [
        ({"done": float("nan")}, ValueError),
        ({"ids": {1, 2}}, TypeError),
        ({1: "a", "1": "b"}, ValueError),
    ],
    ids=["nan", "set", "colliding-keys"],
)
def test_progress_refuses_data_that_is_not_json_where_it_is_called(
    data: dict[Any, Any], error: type[Exception]
) -> None:
    """Progress data JSON cannot hold is the agent's error at the call, not the journal's later."""
    seen: list[Any] = []
    context = make_context(progress_callback=lambda ctx, data: seen.append(data))
    with pytest.raises(error, match="progress data is not JSON"):
        context.progress(data)
    assert seen == []


def test_progress_data_is_copied_all_the_way_down() -> None:
    """Changing a nested list after the call does not change what was reported."""
    seen: list[Any] = []
    context = make_context(progress_callback=lambda ctx, data: seen.append(data))
    items = [1]
    context.progress({"items": items})
    items.append(2)
    assert seen == [{"items": [1]}]


@pytest.mark.parametrize(
    "count", [-1, 2**63, 10**5000, 1.5, True], ids=["negative", "2**63", "huge", "float", "bool"]
)
def test_record_usage_takes_whole_numbers_a_journal_can_count(count: Any) -> None:
    """Counts are whole numbers from 0 to 2**63 - 1; anything else is refused at the call."""
    context = make_context(usage_callback=lambda ctx, counts: None)
    expected = r"usage 'tokens' must be a whole number from 0 to 2\*\*63 - 1"
    with pytest.raises(ValueError, match=expected):
        context.record_usage(tokens=count)


def test_progress_rejects_non_mappings() -> None:
    """progress() data must be a mapping."""
    with pytest.raises(TypeError, match="mapping"):
        make_context().progress([1, 2])  # type: ignore[arg-type]


async def test_cancel_requested_follows_the_event() -> None:
    """cancel_requested is false until the engine sets the cancel event."""
    event = trio.Event()
    context = make_context(cancel_event=event)
    assert not context.cancel_requested
    event.set()
    assert context.cancel_requested
    assert not make_context().cancel_requested


async def test_wait_cancel_requested_returns_when_cancel_is_requested() -> None:
    """wait_cancel_requested() returns once the event is set, not before."""
    event = trio.Event()
    context = make_context(cancel_event=event)
    woke: list[bool] = []

    async def waiter() -> None:
        await context.wait_cancel_requested()
        woke.append(context.cancel_requested)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(waiter)
        await trio.testing.wait_all_tasks_blocked()
        assert woke == []
        event.set()
    assert woke == [True]


async def test_wait_cancel_requested_without_event_waits_forever(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """Without a cancel event, wait_cancel_requested() never returns on its own."""
    with trio.move_on_after(3600) as scope:
        await make_context().wait_cancel_requested()
    assert scope.cancelled_caught


# Registry: built-ins and the embedding program's mapping


def test_builtins_resolve() -> None:
    """The built-in ids resolve to their agent classes."""
    registry = AgentRegistry()
    assert registry.resolve("echo") is EchoAgent
    assert registry.resolve("sleep") is SleepAgent
    assert all(registry.exists(name) for name in ("echo", "sleep", "fail", "python"))


async def test_mapping_shadows_builtins() -> None:
    """An entry in the embedder's mapping wins over the built-in with the same id."""
    registry = AgentRegistry({"echo": agent_fixtures.Shout})
    agent = registry.create("echo")
    assert await agent.run("hi", make_context()) == "HI"


async def test_async_function_in_mapping_gets_input_and_context() -> None:
    """An async function (input, context) in the mapping is wrapped as an agent."""
    registry = AgentRegistry({"greet": agent_fixtures.greet})
    agent = registry.create("greet", {})
    assert isinstance(agent, FunctionAgent)
    assert await agent.run("ana", make_context(step_id="s1")) == "hello ana from s1"


async def test_async_function_taking_only_input() -> None:
    """An async function with one parameter is called with the input alone."""
    registry = AgentRegistry({"double": agent_fixtures.double})
    result = await registry.create("double").run(21, make_context())
    assert result["value"] == 42


def test_async_function_rejects_config() -> None:
    """A function agent takes no config, so any key is a configuration error naming the agent."""
    registry = AgentRegistry({"greet": agent_fixtures.greet})
    with pytest.raises(AgentConfigurationError, match=r"agent 'greet': unknown config key 'x'"):
        registry.create("greet", {"x": 1})


def test_async_function_with_wrong_signature_fails_at_create() -> None:
    """An async function that takes neither (input) nor (input, context) fails at create()."""
    registry = AgentRegistry({"bad": agent_fixtures.async_three_arguments})
    with pytest.raises(
        AgentConfigurationError, match=r"agent 'bad'.*\(input\) or \(input, context"
    ):
        registry.create("bad")


async def test_async_callable_object_in_mapping() -> None:
    """An object with an async __call__ in the mapping is wrapped as a function agent."""
    registry = AgentRegistry({"obj": agent_fixtures.ASYNC_CALLABLE})
    assert await registry.create("obj").run(2, make_context()) == {"called": 2, "step": "step-a"}


async def test_factory_function_in_mapping() -> None:
    """A plain callable config -> Agent in the mapping is used as the factory."""
    registry = AgentRegistry({"loud": agent_fixtures.make_shout})
    assert await registry.create("loud", {"suffix": "?"}).run("a", make_context()) == "A?"


@pytest.mark.parametrize("value", [42, "echo", None])
def test_mapping_rejects_values_that_are_not_agents(value: object) -> None:
    """Mapping values must be factories or async functions."""
    with pytest.raises(TypeError, match=r"agent 'x' is not an agent"):
        AgentRegistry({"x": value})  # type: ignore[dict-item]


def test_mapping_rejects_non_string_ids() -> None:
    """Mapping keys must be strings."""
    with pytest.raises(TypeError, match="strings"):
        AgentRegistry({1: EchoAgent})  # type: ignore[dict-item]


def test_resolutions_are_cached() -> None:
    """Resolving the same id twice returns the same factory object."""
    registry = AgentRegistry({"greet": agent_fixtures.greet})
    assert registry.resolve("greet") is registry.resolve("greet")
    assert registry.resolve("agent_fixtures:greet") is registry.resolve("agent_fixtures:greet")


# Registry: create()


def test_create_names_the_agent_in_configuration_errors() -> None:
    """Configuration errors from the factory are re-raised naming the agent id, with the cause."""
    with pytest.raises(AgentConfigurationError, match=r"^agent 'sleep': seconds") as caught:
        AgentRegistry().create("sleep", {"seconds": -1})
    assert isinstance(caught.value.__cause__, AgentConfigurationError)


def test_create_wraps_other_factory_errors() -> None:
    """Any other exception from the factory becomes AgentConfigurationError naming the agent."""

    def factory(config: Mapping[str, Any]) -> Agent:
        raise KeyError("api_key")

    with pytest.raises(AgentConfigurationError, match=r"agent 'llm' could not be built.*KeyError"):
        AgentRegistry({"llm": factory}).create("llm")


def test_create_does_not_wrap_base_exceptions() -> None:
    """BaseExceptions such as KeyboardInterrupt (like trio.Cancelled) pass through unwrapped."""

    def factory(config: Mapping[str, Any]) -> Agent:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        AgentRegistry({"x": factory}).create("x")


def test_create_rejects_non_mapping_config() -> None:
    """A config that is not a mapping is a configuration error naming the agent."""
    with pytest.raises(
        AgentConfigurationError, match=r"agent 'echo': config must be a JSON object"
    ):
        AgentRegistry().create("echo", ["seconds"])  # type: ignore[arg-type]


def test_create_rejects_factories_that_return_no_agent() -> None:
    """A factory that returns something without run() is a configuration error."""
    registry = AgentRegistry({"odd": lambda config: 5})  # type: ignore[dict-item]
    with pytest.raises(AgentConfigurationError, match=r"'odd'.*returned a int.*run\(\)"):
        registry.create("odd")


# Registry: unknown ids and import paths


def test_unknown_id_lists_builtins_and_suggests() -> None:
    """An unknown id raises UnknownAgentError naming it, the built-ins and a close match."""
    with pytest.raises(UnknownAgentError) as caught:
        AgentRegistry({"mine": EchoAgent}).resolve("ehco")
    message = str(caught.value)
    assert "unknown agent 'ehco'" in message
    assert "did you mean 'echo'" in message
    assert "built-ins (echo, fail, python, sleep)" in message
    assert "(mine)" in message
    assert "'module:attribute'" in message
    assert isinstance(caught.value, LookupError)


def test_exists_is_false_for_unknown_ids() -> None:
    """exists() answers False instead of raising for unknown ids and failed imports."""
    registry = AgentRegistry()
    assert not registry.exists("no-such-agent")
    assert not registry.exists("agent_fixtures:missing")


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("agent_fixtures:Shout", agent_fixtures.Shout),
        ("agent_fixtures:make_shout", agent_fixtures.make_shout),
        ("agent_fixtures:Outer.Inner", agent_fixtures.Outer.Inner),
    ],
)
def test_import_path_resolves_factories(path: str, expected: object) -> None:
    """A module:attribute id imports the class or factory it names (dotted attributes work)."""
    assert AgentRegistry().resolve(path) is expected


async def test_import_path_to_an_async_function() -> None:
    """A module:attribute id naming an async function yields a function agent."""
    agent = AgentRegistry().create("agent_fixtures:greet")
    assert await agent.run("bo", make_context(step_id="x")) == "hello bo from x"


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("agent_fixtures:missing", r"module 'agent_fixtures' has no attribute 'missing'"),
        ("agent_fixtures:Outer.Gone", r"'agent_fixtures:Outer' has no attribute 'Gone'"),
        ("no_such_module_o8:Thing", r"no module named 'no_such_module_o8'"),
        ("agent_fixtures:", r"not a 'module:attribute' path"),
        ("agent_fixtures:NOT_AN_AGENT", r"is not an agent.*got int"),
    ],
)
def test_import_path_failures_are_unknown_agents(path: str, expected: str) -> None:
    """Failed import paths raise UnknownAgentError saying which id and what was tried."""
    with pytest.raises(UnknownAgentError, match=rf"unknown agent '{path}'.*{expected}"):
        AgentRegistry().resolve(path)


def test_import_path_module_raising_on_import(temp_modules: TempModules) -> None:
    """A module that raises while importing gives UnknownAgentError with the error as cause."""
    name = temp_modules.write("raise RuntimeError('cannot start')\n")
    with pytest.raises(UnknownAgentError, match="RuntimeError: cannot start") as caught:
        AgentRegistry().resolve(f"{name}:Agent")
    assert isinstance(caught.value.__cause__, ImportError)


# Registry: entry points, through a real dist-info directory on sys.path


class TempModules:
    """Writes uniquely named modules and dist-info directories into a directory on sys.path."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.names: list[str] = []

    def write(self, source: str) -> str:
        name = f"o8_temp_{uuid.uuid4().hex}"
        (self.directory / f"{name}.py").write_text(source)
        self.names.append(name)
        return name

    def install(self, entry_points: Mapping[str, str]) -> None:
        dist_info = self.directory / f"o8_temp_plugin_{uuid.uuid4().hex[:8]}-1.0.dist-info"
        dist_info.mkdir()
        (dist_info / "METADATA").write_text(
            f"Metadata-Version: 2.1\nName: {dist_info.name.split('-')[0]}\nVersion: 1.0\n"
        )
        lines = "".join(f"{name} = {target}\n" for name, target in entry_points.items())
        (dist_info / "entry_points.txt").write_text(f"[{ENTRY_POINT_GROUP}]\n{lines}")


@pytest.fixture
def temp_modules(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[TempModules]:
    monkeypatch.syspath_prepend(str(tmp_path))
    modules = TempModules(tmp_path)
    yield modules
    for name in modules.names:
        sys.modules.pop(name, None)


async def test_entry_point_agent_resolves(temp_modules: TempModules) -> None:
    """An agent registered in the orchestr8.agents group of an installed distribution resolves."""
    temp_modules.install({"plugin-shout": "agent_fixtures:Shout"})
    registry = AgentRegistry()
    assert registry.resolve("plugin-shout") is agent_fixtures.Shout
    assert "plugin-shout" in registry.names()
    assert await registry.create("plugin-shout").run("x", make_context()) == "X"


def test_entry_points_come_after_mapping_and_builtins(temp_modules: TempModules) -> None:
    """Entry points cannot shadow the embedder's mapping or the built-ins."""
    temp_modules.install({"echo": "agent_fixtures:Shout", "mine": "agent_fixtures:Shout"})
    registry = AgentRegistry({"mine": agent_fixtures.greet})
    assert registry.resolve("echo") is EchoAgent
    assert registry.create("mine").function is agent_fixtures.greet  # type: ignore[attr-defined]


def test_entry_points_come_before_import_paths(temp_modules: TempModules) -> None:
    """An entry point whose name looks like an import path is used instead of importing it."""
    temp_modules.install({"agent_fixtures:Shout": "agent_fixtures:Outer.Inner"})
    assert AgentRegistry().resolve("agent_fixtures:Shout") is agent_fixtures.Outer.Inner


def test_entry_points_are_loaded_lazily(temp_modules: TempModules) -> None:
    """An entry point's module is imported only when its id is resolved, not when listed."""
    name = temp_modules.write(
        "from orchestr8._agents._builtins import EchoAgent\n\nclass Plugin(EchoAgent):\n    pass\n"
    )
    temp_modules.install({"lazy": f"{name}:Plugin"})
    registry = AgentRegistry()
    assert "lazy" in registry.names()
    assert name not in sys.modules
    assert registry.resolve("lazy").__name__ == "Plugin"
    assert name in sys.modules


def test_entry_points_are_scanned_once_and_only_when_needed(
    temp_modules: TempModules, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Distributions are scanned on the first id missing from mapping and built-ins, then cached."""
    temp_modules.install({"plugin-a": "agent_fixtures:Shout", "plugin-b": "agent_fixtures:greet"})
    real = importlib.metadata.entry_points
    calls: list[dict[str, Any]] = []

    def counting(*, group: str) -> importlib.metadata.EntryPoints:
        calls.append({"group": group})
        return real(group=group)

    monkeypatch.setattr(importlib.metadata, "entry_points", counting)
    registry = AgentRegistry()
    registry.resolve("echo")
    assert calls == []
    registry.resolve("plugin-a")
    registry.resolve("plugin-b")
    assert not registry.exists("plugin-c")
    assert calls == [{"group": ENTRY_POINT_GROUP}]


def test_broken_entry_point_names_its_origin(temp_modules: TempModules) -> None:
    """An entry point that cannot be loaded raises UnknownAgentError naming the entry point."""
    temp_modules.install({"broken": "o8_module_that_is_not_there:Agent"})
    with pytest.raises(UnknownAgentError, match=r"agent 'broken': entry point broken = ") as caught:
        AgentRegistry().resolve("broken")
    assert "could not be loaded: no module named 'o8_module_that_is_not_there'" in str(caught.value)
    assert isinstance(caught.value.__cause__, ModuleNotFoundError)


def test_entry_point_to_a_non_agent(temp_modules: TempModules) -> None:
    """An entry point naming something that is not an agent raises UnknownAgentError."""
    temp_modules.install({"number": "agent_fixtures:NOT_AN_AGENT"})
    with pytest.raises(UnknownAgentError, match=r"'number'.*is not an agent"):
        AgentRegistry().resolve("number")
