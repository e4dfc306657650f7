"""Supervisors: restart types and strategies, restart intensity, nesting, shutdown, events."""

from __future__ import annotations

import itertools
import random
from collections.abc import Awaitable, Callable
from functools import partial
from typing import Any

import pytest
import trio
import trio.testing
from hypothesis import given
from hypothesis import strategies as st

from orchestr8 import (
    Actor,
    ActorEvent,
    ActorNameTakenError,
    ActorStoppedError,
    EventBus,
    RestartBackoff,
    Supervisor,
    SupervisorGaveUpError,
    open_supervisor,
)


class Boom(Exception):
    """A crash the tests raise on purpose, told to an actor as a message."""


class Worker(Actor):
    """An actor with per-incarnation state that logs its lifecycle as (name, hook, incarnation).

    Messages: an exception instance is raised (a crash); "count" increments and returns a counter;
    "who" returns the incarnation; ("sleep", s) sleeps; "stop-self" stops from inside a handler.
    """

    def __init__(self, name: str, incarnation: int, log: list[Any]) -> None:
        self.name = name
        self.incarnation = incarnation
        self.log = log
        self.count = 0

    async def on_start(self) -> None:
        self.log.append((self.name, "start", self.incarnation))

    async def on_restart(self, error: BaseException) -> None:
        self.log.append((self.name, "restart", self.incarnation))

    async def on_stop(self) -> None:
        self.log.append((self.name, "stop", self.incarnation))

    async def receive(self, message: Any) -> Any:
        if isinstance(message, BaseException):
            raise message
        if message == "count":
            self.count += 1
            return self.count
        if message == "who":
            return self.incarnation
        if isinstance(message, tuple) and message[0] == "sleep":
            try:
                await trio.sleep(message[1])
            except trio.Cancelled:
                self.log.append((self.name, "cancelled", trio.current_time()))
                raise
            return None
        if message == "stop-self":
            await self.ref.stop()
        return message


def workers(name: str, log: list[Any]) -> Callable[[], Worker]:
    """A factory building a fresh, numbered Worker on every call."""
    numbers = itertools.count(1)
    return lambda: Worker(name, next(numbers), log)


def drain(events: trio.MemoryReceiveChannel[Any]) -> list[ActorEvent]:
    """Everything published so far on a subscription."""
    found = []
    while True:
        try:
            found.append(events.receive_nowait())
        except trio.WouldBlock:
            return found


def hooks(log: list[Any], hook: str) -> list[tuple[str, int]]:
    return [(name, number) for name, kind, number in log if kind == hook]


async def spawn_all(sup: Supervisor, log: list[Any], *names: str, **options: Any) -> list[Any]:
    refs = []
    for name in names:
        refs.append(await sup.spawn(workers(name, log), name=name, **options))
    return refs


async def wait_for(condition: Callable[[], bool]) -> None:
    with trio.fail_after(1):
        while not condition():
            await trio.lowlevel.checkpoint()


async def supervise(body: Callable[[Supervisor], Awaitable[None]], **options: Any) -> None:
    """Run `body` inside a supervisor opened with `options`."""
    async with open_supervisor(**options) as sup:
        await body(sup)


def nested_children(sup: Supervisor, name: str) -> tuple[str, ...]:
    try:
        return sup.child_supervisor(name).children
    except LookupError:
        return ()


# spawn


async def test_spawn_defaults() -> None:
    """`spawn` defaults to a transient actor with a 64-message blocking mailbox."""
    async with open_supervisor() as sup:
        ref = await sup.spawn(workers("a", []), name="a")
        stats = ref.statistics()
        assert (stats.mailbox_size, stats.overflow, stats.state) == (64, "block", "running")
        await ref.tell(Boom())
        assert await ref.ask("who") == 2
        await ref.ask("stop-self")
        with pytest.raises(ActorStoppedError):
            await ref.ask("who")
        assert ref.statistics().state == "stopped"


async def test_spawn_rejects_a_taken_name_and_bad_options() -> None:
    """Names are unique per supervisor; a bad restart, overflow or mailbox size is refused."""
    async with open_supervisor() as sup:
        await sup.spawn(workers("a", []), name="a")
        with pytest.raises(ActorNameTakenError, match="'a'"):
            await sup.spawn(workers("a", []), name="a")
        with pytest.raises(ValueError, match="restart"):
            await sup.spawn(workers("b", []), name="b", restart="sometimes")  # type: ignore[arg-type]
        with pytest.raises(ValueError, match="overflow"):
            await sup.spawn(workers("b", []), name="b", overflow="spill")  # type: ignore[arg-type]
        with pytest.raises(ValueError, match="mailbox_size"):
            await sup.spawn(workers("b", []), name="b", mailbox_size=0)
        assert sup.children == ("a",)


async def test_open_supervisor_rejects_bad_options() -> None:
    """An unknown strategy or a negative intensity is refused when the supervisor opens."""
    with pytest.raises(ValueError, match="strategy"):
        async with open_supervisor(strategy="all_for_none"):  # type: ignore[arg-type]
            pass
    with pytest.raises(ValueError, match="max_restarts"):
        async with open_supervisor(max_restarts=-1):
            pass


async def test_open_supervisor_defaults(autojump_clock: trio.testing.MockClock) -> None:
    """By default: one_for_one, at most 3 restarts in any 5 s, and a 5 s shutdown grace."""
    log: list[Any] = []

    async def body(sup: Supervisor) -> None:
        assert sup.statistics().strategy == "one_for_one"
        ref = await sup.spawn(workers("a", log), name="a")
        await crash_at(ref, [0, 1, 2, 5])  # the restart at 0 is exactly 5 s old at 5: no give-up
        assert await ref.ask("who") == 5
        await crash_at(ref, [5.5])  # 1, 2 and 5 are in the window: this would be a 4th restart

    with pytest.raises(SupervisorGaveUpError):
        await supervise(body)
    assert trio.current_time() == 5.5
    async with open_supervisor() as sup:
        ref = await sup.spawn(workers("b", log), name="b")
        await ref.tell(("sleep", 100))
        await trio.sleep(1)
    assert trio.current_time() == 11.5


async def test_a_lone_error_from_the_block_is_raised_bare() -> None:
    """An error raised in the block leaves `open_supervisor` as itself, not in an ExceptionGroup."""

    async def body(sup: Supervisor) -> None:
        await sup.spawn(workers("a", []), name="a")
        raise KeyError("mine")

    with pytest.raises(KeyError, match="mine"):
        await supervise(body)


async def test_factory_runs_again_on_every_restart() -> None:
    """Every restart builds a fresh actor from the factory, so state starts over."""
    calls = 0
    log: list[Any] = []

    def factory() -> Worker:
        nonlocal calls
        calls += 1
        return Worker("a", calls, log)

    async with open_supervisor() as sup:
        ref = await sup.spawn(factory, name="a")
        assert [await ref.ask("count") for _ in range(3)] == [1, 2, 3]
        await ref.tell(Boom())
        assert await ref.ask("count") == 1
        await ref.tell(Boom())
        assert await ref.ask("count") == 1
    assert calls == 3


# Restart types


async def test_transient_actor_is_restarted_after_a_crash_only() -> None:
    """A transient actor is restarted after a crash but not after it stops by its own decision."""
    log: list[Any] = []
    async with open_supervisor() as sup:
        ref = await sup.spawn(workers("t", log), name="t", restart="transient")
        await ref.tell(Boom())
        assert await ref.ask("who") == 2
        await ref.ask("stop-self")
        with pytest.raises(ActorStoppedError):
            await ref.ask("who")
        assert sup.children == ()
    assert hooks(log, "start") == [("t", 1), ("t", 2)]


async def test_permanent_actor_is_restarted_even_after_stopping_itself() -> None:
    """A permanent actor is restarted after a crash and after stopping itself."""
    async with open_supervisor() as sup:
        ref = await sup.spawn(workers("p", []), name="p", restart="permanent")
        await ref.tell(Boom())
        assert await ref.ask("who") == 2
        await ref.ask("stop-self")
        assert await ref.ask("who") == 3
        assert ref.statistics().restarts == 2


async def test_temporary_actor_is_never_restarted() -> None:
    """A crashed temporary actor stays stopped, its queued asks fail, and no restart is counted."""
    bus = EventBus()
    async with bus.subscribe() as events, open_supervisor(max_restarts=0, bus=bus) as sup:
        ref = await sup.spawn(workers("tmp", []), name="tmp", restart="temporary")
        other = await sup.spawn(workers("x", []), name="x", restart="temporary")
        await ref.tell(Boom())
        with pytest.raises(ActorStoppedError):
            await ref.ask("who")
        await other.tell(Boom())
        with pytest.raises(ActorStoppedError):
            await other.ask("who")
        assert sup.children == ()
        assert sup.statistics().restarts == 0
        types = [(event.type, event.name) for event in drain(events)]
    assert ("actor.crashed", "tmp") in types
    assert ("actor.stopped", "tmp") in types
    assert ("actor.restarted", "tmp") not in types


# Strategies


async def test_one_for_one_restarts_only_the_crashed_child() -> None:
    """Under one_for_one only the crashed child restarts; its siblings keep their state."""
    log: list[Any] = []
    async with open_supervisor("one_for_one") as sup:
        a, b, c = await spawn_all(sup, log, "a", "b", "c")
        for ref in (a, b, c):
            await ref.ask("count")
        await b.tell(Boom())
        await b.ask("who")
        assert [await ref.ask("count") for ref in (a, b, c)] == [2, 1, 2]
        assert hooks(log, "stop") == [("b", 1)]
        assert hooks(log, "start")[3:] == [("b", 2)]


async def test_one_for_all_restarts_every_child_in_start_order() -> None:
    """Under one_for_all all children restart fresh: stopped in reverse, started in order."""
    log: list[Any] = []
    async with open_supervisor("one_for_all") as sup:
        a, b, c = await spawn_all(sup, log, "a", "b", "c")
        for ref in (a, b, c):
            await ref.ask("count")
        del log[:]
        await b.tell(Boom())
        await b.ask("who")  # queued behind the crash: answered once the group restarted
        assert [await ref.ask("count") for ref in (a, b, c)] == [1, 1, 1]
        assert [await ref.ask("who") for ref in (a, b, c)] == [2, 2, 2]
        assert [(name, kind) for name, kind, _ in log if kind != "restart"] == [
            ("b", "stop"),
            ("c", "stop"),
            ("a", "stop"),
            ("a", "start"),
            ("b", "start"),
            ("c", "start"),
        ]
        assert sup.statistics().restarts == 1


async def test_rest_for_one_restarts_the_crashed_child_and_later_ones() -> None:
    """Under rest_for_one the crashed child and later ones restart; earlier ones keep state."""
    log: list[Any] = []
    async with open_supervisor("rest_for_one") as sup:
        a, b, c, d = await spawn_all(sup, log, "a", "b", "c", "d")
        for ref in (a, b, c, d):
            await ref.ask("count")
        del log[:]
        await b.tell(Boom())
        await b.ask("who")
        assert [await ref.ask("count") for ref in (a, b, c, d)] == [2, 1, 1, 1]
        assert [(name, kind) for name, kind, _ in log if kind != "restart"] == [
            ("b", "stop"),
            ("d", "stop"),
            ("c", "stop"),
            ("b", "start"),
            ("c", "start"),
            ("d", "start"),
        ]


async def test_group_restart_stops_temporary_siblings_for_good() -> None:
    """A temporary sibling caught in a one_for_all restart is stopped, not restarted."""
    log: list[Any] = []
    async with open_supervisor("one_for_all") as sup:
        a, b = await spawn_all(sup, log, "a", "b")
        tmp = await sup.spawn(workers("tmp", log), name="tmp", restart="temporary")
        await a.tell(Boom())
        assert await a.ask("who") == 2
        assert await b.ask("who") == 2
        with pytest.raises(ActorStoppedError):
            await tmp.ask("who")
        assert sup.children == ("a", "b")
    assert hooks(log, "start").count(("tmp", 1)) == 1
    assert ("tmp", 2) not in hooks(log, "start")


# Restart intensity


async def crash_at(ref: Any, times: list[float]) -> None:
    """Crash the actor behind `ref` at each of the given virtual times, with errors Boom(0..n)."""
    for number, at in enumerate(times):
        await trio.sleep_until(at)
        await ref.tell(Boom(number))
    await trio.sleep(0.25)


async def test_gives_up_after_too_many_restarts(autojump_clock: trio.testing.MockClock) -> None:
    """The crash that would be restart number max_restarts+1 in the window makes it give up."""
    log: list[Any] = []
    refs: list[Any] = []
    bus = EventBus()

    async def body(sup: Supervisor) -> None:
        refs.extend(await spawn_all(sup, log, "a", "b", "c"))
        await crash_at(refs[1], [1, 2, 3, 4])
        pytest.fail("the supervisor should have given up")

    async with bus.subscribe() as events:
        with pytest.raises(SupervisorGaveUpError) as caught:
            await supervise(body, max_restarts=3, within=5, bus=bus)
        assert trio.current_time() == 4
        assert type(caught.value) is SupervisorGaveUpError
        assert isinstance(caught.value.__cause__, Boom)
        assert caught.value.__cause__.args == (3,)
        kinds = ("actor.stopped", "supervisor.gave_up")
        stops = [event for event in drain(events) if event.type in kinds]
    assert [(event.type, event.name) for event in stops] == [
        ("actor.stopped", "c"),
        ("actor.stopped", "b"),
        ("actor.stopped", "a"),
        ("supervisor.gave_up", "supervisor"),
    ]
    assert stops[-1].error is caught.value.__cause__
    # b's last incarnation ran on_stop when it crashed; the give-up then stopped c, then a.
    assert hooks(log, "stop")[-3:] == [("b", 4), ("c", 1), ("a", 1)]
    assert [ref.statistics().state for ref in refs] == ["stopped"] * 3


async def test_gives_up_while_the_block_waits_on_an_actor(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """Giving up raises SupervisorGaveUpError bare even while the block is awaiting an ask."""

    async def body(sup: Supervisor) -> None:
        _, b = await spawn_all(sup, [], "a", "b")
        await b.tell(("sleep", 1))
        await b.tell(Boom("last"))
        await b.ask("queued behind the crash")

    with pytest.raises(SupervisorGaveUpError) as caught:
        await supervise(body, max_restarts=0)
    assert type(caught.value) is SupervisorGaveUpError
    assert caught.value.__cause__ is not None
    assert caught.value.__cause__.args == ("last",)
    assert trio.current_time() == 1


def leaves(error: BaseException) -> list[BaseException]:
    if isinstance(error, BaseExceptionGroup):
        return [leaf for inner in error.exceptions for leaf in leaves(inner)]
    return [error]


async def test_give_up_is_never_lost_when_the_block_fails_too(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """When the block fails as the supervisor gives up, SupervisorGaveUpError is still raised."""

    async def body(sup: Supervisor) -> None:
        ref = await sup.spawn(workers("a", []), name="a")
        await ref.tell(("sleep", 1))
        await ref.tell(Boom())
        with trio.CancelScope(shield=True):  # so the block fails with ActorStoppedError
            await ref.ask("queued behind the crash")

    for _ in range(30):  # the two failures race: the old code lost the give-up about half the time
        with pytest.raises(BaseException) as caught:  # noqa: PT011 - checked below
            await supervise(body, max_restarts=0)
        assert SupervisorGaveUpError in {type(leaf) for leaf in leaves(caught.value)}


async def test_spread_out_crashes_never_give_up(autojump_clock: trio.testing.MockClock) -> None:
    """Crashes spread so that no window holds more than max_restarts never make it give up."""
    async with open_supervisor(max_restarts=3, within=5) as sup:
        ref = await sup.spawn(workers("a", []), name="a")
        await crash_at(ref, [2.0 * n for n in range(1, 9)])
        assert await ref.ask("who") == 9
        assert sup.statistics().restarts == 8


@pytest.mark.parametrize(("last", "gives_up"), [(5.0, False), (4.5, True)])
async def test_window_edge(
    autojump_clock: trio.testing.MockClock, last: float, gives_up: bool
) -> None:
    """A restart exactly `within` seconds old no longer counts; a younger one still does."""
    gave_up = False
    try:
        async with open_supervisor(max_restarts=3, within=5) as sup:
            ref = await sup.spawn(workers("a", []), name="a")
            await crash_at(ref, [0, 0, 0, last])
    except SupervisorGaveUpError:
        gave_up = True
    assert gave_up is gives_up


async def test_zero_max_restarts_gives_up_at_the_first_crash() -> None:
    """With max_restarts=0 the first crash of a restartable child makes the supervisor give up."""

    async def body(sup: Supervisor) -> None:
        ref = await sup.spawn(workers("a", []), name="a")
        await ref.tell(Boom())
        await trio.sleep_forever()

    with pytest.raises(SupervisorGaveUpError):
        await supervise(body, max_restarts=0)


async def test_failed_restarts_count_towards_the_intensity() -> None:
    """An `on_start` failing on every restart is retried until the supervisor gives up."""
    attempts = 0

    class Fragile(Actor):
        def __init__(self) -> None:
            nonlocal attempts
            attempts += 1
            self.attempt = attempts

        async def on_start(self) -> None:
            if self.attempt > 1:
                raise Boom(self.attempt)

        async def receive(self, message: Any) -> Any:
            raise message

    async def body(sup: Supervisor) -> None:
        ref = await sup.spawn(Fragile, name="fragile")
        await ref.tell(Boom(1))
        await trio.sleep_forever()

    with pytest.raises(SupervisorGaveUpError) as caught:
        await supervise(body, max_restarts=3)
    assert attempts == 4
    assert caught.value.__cause__ is not None
    assert caught.value.__cause__.args == (4,)


def give_up_model(times: list[float], max_restarts: int, within: float) -> int | None:
    """The crash (by index) at which a supervisor gives up, or None, for crashes at `times`."""
    restarts: list[float] = []
    for index, now in enumerate(times):
        if sum(1 for at in restarts if now - at < within) >= max_restarts:
            return index
        restarts.append(now)
    return None


@given(
    gaps=st.lists(st.sampled_from([0.0, 0.5, 1.0, 1.5, 2.5, 4.0, 5.0, 7.5]), max_size=12),
    max_restarts=st.integers(0, 4),
    within=st.sampled_from([1.0, 2.5, 5.0]),
)
def test_gives_up_exactly_when_the_window_model_says(
    gaps: list[float], max_restarts: int, within: float
) -> None:
    """For any crash schedule, the supervisor gives up exactly at the crash the model predicts."""
    times = list(itertools.accumulate(gaps))
    expected = give_up_model(times, max_restarts, within)

    async def run() -> tuple[BaseException | None, float]:
        try:
            async with open_supervisor(max_restarts=max_restarts, within=within) as sup:
                ref = await sup.spawn(workers("a", []), name="a")
                await crash_at(ref, times)
        except SupervisorGaveUpError as error:
            return error.__cause__, trio.current_time()
        return None, trio.current_time()

    cause, end = trio.run(run, clock=trio.testing.MockClock(autojump_threshold=0))
    if expected is None:
        assert cause is None
    else:
        assert isinstance(cause, Boom)
        assert cause.args == (expected,)
        assert end == times[expected]


# Restart backoff


async def test_restart_backoff_delays_restarts(autojump_clock: trio.testing.MockClock) -> None:
    """With a backoff, the n-th restart in the window waits min_delay * multiplier^(n-1), capped."""
    bus = EventBus()
    backoff = RestartBackoff(min_delay=1, max_delay=3, multiplier=2, jitter=0)
    async with bus.subscribe() as events:
        async with open_supervisor(
            max_restarts=10, within=100, restart_backoff=backoff, bus=bus
        ) as sup:
            ref = await sup.spawn(workers("a", []), name="a")
            for _ in range(4):
                await ref.tell(Boom())
                await ref.ask("who")
        restarted = [event.time for event in drain(events) if event.type == "actor.restarted"]
    assert restarted == [1, 3, 6, 9]


def test_restart_backoff_delay_values() -> None:
    """Backoff delays grow by the multiplier, stay within ±jitter, and cap without overflow."""
    backoff = RestartBackoff(min_delay=0.5, max_delay=30, multiplier=2, jitter=0.2)
    source = random.Random(7)
    for number, base in [(1, 0.5), (2, 1.0), (3, 2.0), (7, 30.0), (10_000, 30.0)]:
        for _ in range(20):
            assert base * 0.8 <= backoff.delay(number, source) <= base * 1.2
    assert RestartBackoff(jitter=0).delay(10**9, source) == 30.0


async def test_stopping_an_actor_during_its_backoff_is_immediate(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """Stopping an actor that waits out a restart backoff neither waits for it nor the grace."""
    backoff = RestartBackoff(min_delay=10, jitter=0)
    async with open_supervisor(restart_backoff=backoff, shutdown_grace=5) as sup:
        ref = await sup.spawn(workers("a", []), name="a")
        other = await sup.spawn(workers("b", []), name="b")
        await ref.tell(Boom())
        await other.tell(Boom())
        await trio.sleep(1)
        await ref.stop()
        assert trio.current_time() == 1
        assert ref.statistics().state == "stopped"
    assert trio.current_time() == 1
    assert other.statistics().state == "stopped"


# Nested supervisors


async def test_nested_supervisor_giving_up_is_a_crash_its_parent_handles() -> None:
    """A nested supervisor that gives up crashes; its parent restarts it and `setup` runs again."""
    setups = 0
    log: list[Any] = []
    bus = EventBus()

    async def setup(nested: Supervisor) -> None:
        nonlocal setups
        setups += 1
        await nested.spawn(workers("w", log), name="w")

    async with bus.subscribe() as events, open_supervisor(bus=bus) as sup:
        keeper = await sup.spawn(workers("keeper", log), name="keeper")
        await keeper.ask("count")
        await sup.spawn_supervisor(setup, name="team", max_restarts=0)
        first = sup.child_supervisor("team")
        await first.get("w").tell(Boom("worker down"))
        await wait_for(lambda: sup.statistics().restarts == 1)
        await wait_for(lambda: "w" in nested_children(sup, "team"))
        second = sup.child_supervisor("team")
        assert second is not first
        assert await second.get("w").ask("who") == 1
        assert await keeper.ask("count") == 2
        crashes = [event for event in drain(events) if event.type == "actor.crashed"]
    assert setups == 2
    assert [event.name for event in crashes] == ["w", "team"]
    assert isinstance(crashes[1].error, SupervisorGaveUpError)


async def test_nested_supervisor_giving_up_too_often_makes_the_parent_give_up() -> None:
    """Repeated give-ups of a nested supervisor count against its parent's intensity."""

    async def setup(nested: Supervisor) -> None:
        await nested.spawn(workers("w", []), name="w")

    async def body(sup: Supervisor) -> None:
        await sup.spawn_supervisor(setup, name="team", max_restarts=0)
        for round_ in range(2):
            await wait_for(lambda: "w" in nested_children(sup, "team"))
            await sup.child_supervisor("team").get("w").tell(Boom())
            await wait_for(lambda r=round_: sup.statistics().restarts > r)  # type: ignore[misc]
        await trio.sleep_forever()

    with pytest.raises(SupervisorGaveUpError) as caught:
        await supervise(body, max_restarts=1)
    assert isinstance(caught.value.__cause__, SupervisorGaveUpError)


async def test_nested_setup_error_is_raised_from_spawn_supervisor() -> None:
    """An error in a nested supervisor's `setup` is raised from `spawn_supervisor`, like `spawn`."""

    async def setup(nested: Supervisor) -> None:
        raise Boom("setup failed")

    async with open_supervisor() as sup:
        with pytest.raises(Boom, match="setup failed"):
            await sup.spawn_supervisor(setup, name="team")
        ref = await sup.spawn(workers("a", []), name="a")
        assert await ref.ask("who") == 1


async def test_stopping_a_nested_supervisor_stops_its_children() -> None:
    """A nested supervisor's ref stops it and, with it, its children in reverse start order."""
    log: list[Any] = []

    async def setup(nested: Supervisor) -> None:
        await spawn_all(nested, log, "x", "y")

    async with open_supervisor() as sup:
        team = await sup.spawn_supervisor(setup, name="team")
        await team.stop()
        assert sup.children == ()
    assert hooks(log, "stop") == [("y", 1), ("x", 1)]


# Shutdown


async def test_leaving_the_block_stops_children_in_reverse_start_order() -> None:
    """Leaving the block stops every child, last started first."""
    log: list[Any] = []
    bus = EventBus()
    async with bus.subscribe() as events:
        async with open_supervisor(bus=bus) as sup:
            refs = await spawn_all(sup, log, "a", "b", "c")
        stopped = [event.name for event in drain(events) if event.type == "actor.stopped"]
    assert hooks(log, "stop") == [("c", 1), ("b", 1), ("a", 1)]
    assert stopped == ["c", "b", "a"]
    assert all(ref.statistics().state == "stopped" for ref in refs)


async def test_stuck_children_are_cancelled_after_their_grace(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """Each child stuck in a handler gets exactly `shutdown_grace` seconds, then is cancelled."""
    log: list[Any] = []
    async with open_supervisor(shutdown_grace=2) as sup:
        a, b = await spawn_all(sup, log, "a", "b")
        await a.tell(("sleep", 100))
        await b.tell(("sleep", 100))
        await trio.sleep(1)
    assert trio.current_time() == 5
    assert [entry for entry in log if entry[1] == "cancelled"] == [
        ("b", "cancelled", 3),
        ("a", "cancelled", 5),
    ]


async def test_together_stops_busy_children_side_by_side_each_within_its_grace(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """With shutdown_order="together" all children are asked at once: stuck ones share the grace."""
    log: list[Any] = []
    async with open_supervisor(shutdown_grace=2, shutdown_order="together") as sup:
        a, b = await spawn_all(sup, log, "a", "b")
        await a.tell(("sleep", 100))
        await b.tell(("sleep", 100))
        await trio.sleep(1)
    # In reverse order, b would be cancelled at 3 and a at 5; together, both go at 3.
    assert trio.current_time() == 3
    assert sorted(entry for entry in log if entry[1] == "cancelled") == [
        ("a", "cancelled", 3),
        ("b", "cancelled", 3),
    ]


async def test_together_runs_every_on_stop_at_once(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """Stopped together, idle children run their `on_stop` side by side, not one after another."""
    started: list[tuple[str, float]] = []

    class Slow(Actor):
        def __init__(self, name: str) -> None:
            self.name = name

        async def on_stop(self) -> None:
            started.append((self.name, trio.current_time()))
            await trio.sleep(1)

        async def receive(self, message: Any) -> Any:
            return message

    async with open_supervisor(shutdown_order="together") as sup:
        for name in ("a", "b", "c"):
            await sup.spawn(partial(Slow, name), name=name)
    assert sorted(started) == [("a", 0.0), ("b", 0.0), ("c", 0.0)]
    assert trio.current_time() == 1


def test_an_unknown_shutdown_order_is_refused() -> None:
    """A shutdown order other than reverse or together is a ValueError naming the choices."""

    async def main() -> None:
        async with open_supervisor(shutdown_order="random"):  # type: ignore[arg-type]
            pass

    with pytest.raises(ValueError, match="shutdown_order must be one of reverse, together"):
        trio.run(main)


async def test_on_stop_runs_shielded_from_outside_cancellation(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """When the block is cancelled from outside, `on_stop` still runs to its end in the grace."""
    done: list[float] = []

    class Careful(Actor):
        async def on_stop(self) -> None:
            await trio.sleep(2)
            done.append(trio.current_time())

        async def receive(self, message: Any) -> Any:
            return message

    with trio.move_on_after(1):
        async with open_supervisor(shutdown_grace=5) as sup:
            await sup.spawn(Careful, name="careful")
            await trio.sleep_forever()
    assert done == [3]
    assert trio.current_time() == 3


async def test_supervisor_stop_stops_children_and_refuses_new_ones() -> None:
    """`sup.stop()` stops every child and later spawns raise ActorStoppedError."""
    async with open_supervisor() as sup:
        (ref,) = await spawn_all(sup, [], "a")
        await sup.stop()
        assert sup.children == ()
        assert sup.statistics().closing
        with pytest.raises(ActorStoppedError):
            await ref.ask("who")
        with pytest.raises(ActorStoppedError):
            await sup.spawn(workers("b", []), name="b")
        await sup.stop()


# Events


async def test_every_lifecycle_change_is_an_event_with_the_actor_name(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """Started, crashed, restarted, dead letter and stopped reach `sup.bus` with the name."""
    error = Boom("crash")
    async with open_supervisor() as sup, sup.bus.subscribe() as events:
        ref = await sup.spawn(workers("a", []), name="a", mailbox_size=1, overflow="drop")
        await ref.tell(error)
        await ref.ask("who")
        await ref.tell(("sleep", 1))
        await trio.sleep(0.5)
        await ref.tell("fills the mailbox")
        await ref.tell("dropped")
        await trio.sleep(1)
        await ref.stop()
        seen = [(event.type, event.name, event.supervisor) for event in drain(events)]
    assert seen == [
        ("actor.started", "a", "supervisor"),
        ("actor.crashed", "a", "supervisor"),
        ("actor.restarted", "a", "supervisor"),
        ("actor.dead_letter", "a", "supervisor"),
        ("actor.stopped", "a", "supervisor"),
    ]


async def test_crash_event_carries_the_error_and_time(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """A crash in a `tell` handler reaches the bus as `actor.crashed` with the error and time."""
    error = Boom("told to crash")
    bus = EventBus()
    async with bus.subscribe() as events, open_supervisor(bus=bus, name="root") as sup:
        ref = await sup.spawn(workers("a", []), name="a")
        await trio.sleep(2)
        await ref.tell(error)
        await ref.ask("who")
        crashed = [event for event in drain(events) if event.type == "actor.crashed"]
    assert [(event.name, event.supervisor, event.error, event.time) for event in crashed] == [
        ("a", "root", error, 2)
    ]


async def test_giving_up_is_an_event() -> None:
    """Giving up is published as `supervisor.gave_up` with the last crash as its error."""
    bus = EventBus()
    error = Boom("last straw")

    async def body(sup: Supervisor) -> None:
        ref = await sup.spawn(workers("a", []), name="a")
        await ref.tell(error)
        await trio.sleep_forever()

    async with bus.subscribe() as events:
        with pytest.raises(SupervisorGaveUpError):
            await supervise(body, max_restarts=0, bus=bus, name="root")
        gave_up = [event for event in drain(events) if event.type == "supervisor.gave_up"]
    assert [(event.name, event.error) for event in gave_up] == [("root", error)]


class SlowStarter(Actor):
    """Takes a second to start, then echoes; remembers what it saw."""

    def __init__(self, log: list[Any]) -> None:
        self.log = log

    async def on_start(self) -> None:
        await trio.sleep(1)
        self.log.append(("started", trio.current_time()))

    async def receive(self, message: Any) -> Any:
        self.log.append(("got", message, trio.current_time()))
        return message


async def test_spawn_nowait_returns_at_once_and_messages_wait_for_the_start(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """spawn_nowait returns before on_start; messages sent meanwhile are handled after it."""
    log: list[Any] = []
    async with open_supervisor() as supervisor:
        ref = supervisor.spawn_nowait(lambda: SlowStarter(log), name="slow")
        assert trio.current_time() == 0
        ref.tell_nowait("early")
        assert await ref.ask("question") == "question"
    assert log == [("started", 1.0), ("got", "early", 1.0), ("got", "question", 1.0)]


class FailsToStart(Actor):
    """An actor whose on_start always fails."""

    async def on_start(self) -> None:
        raise Boom("no start")

    async def receive(self, message: Any) -> Any:
        return message


async def test_spawn_nowait_turns_an_on_start_error_into_a_crash() -> None:
    """With spawn_nowait, an on_start error is a crash: a temporary actor ends, on the bus."""
    bus = EventBus()
    async with bus.subscribe(buffer=100) as events, open_supervisor(bus=bus) as supervisor:
        supervisor.spawn_nowait(FailsToStart, name="doomed", restart="temporary")
        seen: list[tuple[str, str]] = []
        async for event in events:
            seen.append((event.type, event.name))
            if event.type == "actor.stopped":
                break
        assert supervisor.children == ()
    assert seen == [("actor.crashed", "doomed"), ("actor.stopped", "doomed")]


async def test_spawn_nowait_on_start_errors_count_towards_giving_up() -> None:
    """A transient actor that never starts is restarted until the intensity limit, then gives up."""

    async def never_starting() -> None:
        async with open_supervisor(max_restarts=2) as supervisor:
            supervisor.spawn_nowait(FailsToStart, name="doomed")
            await trio.sleep_forever()

    with pytest.raises(SupervisorGaveUpError) as raised:
        await never_starting()
    assert isinstance(raised.value.__cause__, Boom)
