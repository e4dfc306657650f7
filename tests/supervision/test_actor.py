"""Actors, mailboxes and refs: one message at a time, overflow policies, ask, stop."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from contextlib import nullcontext
from typing import Any

import pytest
import trio
import trio.testing

from orchestr8 import (
    Actor,
    ActorEvent,
    ActorStoppedError,
    AskTimeoutError,
    EventBus,
    MailboxFullError,
    RestartBackoff,
    open_supervisor,
)


class Boom(Exception):
    """A crash the tests raise on purpose, told to an actor as a message."""


class Probe(Actor):
    """An actor that logs its lifecycle and understands a few test messages.

    Messages: an exception instance is raised (a crash); ("sleep", s) sleeps s seconds and logs
    whether it was cancelled; "count" increments and returns a per-incarnation counter; "who"
    returns the incarnation number; "stop-self" stops the actor from inside its handler; anything
    else is echoed back.
    """

    def __init__(self, incarnation: int, log: list[Any], on_stop_delay: float = 0.0) -> None:
        self.incarnation = incarnation
        self.log = log
        self.on_stop_delay = on_stop_delay
        self.count = 0

    async def on_start(self) -> None:
        self.log.append(("start", self.incarnation, self.ref.name))

    async def on_restart(self, error: BaseException) -> None:
        self.log.append(("restart", self.incarnation, error))

    async def on_stop(self) -> None:
        self.log.append(("stopping", self.incarnation, trio.current_time()))
        await trio.sleep(self.on_stop_delay)
        self.log.append(("stopped", self.incarnation, trio.current_time()))

    async def receive(self, message: Any) -> Any:
        if isinstance(message, BaseException):
            raise message
        if isinstance(message, tuple) and message[0] == "sleep":
            try:
                await trio.sleep(message[1])
            except trio.Cancelled:
                self.log.append(("cancelled", message, trio.current_time()))
                raise
            self.log.append(("slept", message, trio.current_time()))
            return message[1]
        if message == "count":
            self.count += 1
            return self.count
        if message == "who":
            return self.incarnation
        if message == "stop-self":
            await self.ref.stop()
            return "bye"
        self.log.append(("handled", message, trio.current_time()))
        return message


def probes(log: list[Any], on_stop_delay: float = 0.0) -> Callable[[], Probe]:
    """A factory building a fresh, numbered Probe on every call."""
    numbers = itertools.count(1)
    return lambda: Probe(next(numbers), log, on_stop_delay)


def drain(events: trio.MemoryReceiveChannel[Any]) -> list[ActorEvent]:
    """Everything published so far on a subscription."""
    found = []
    while True:
        try:
            found.append(events.receive_nowait())
        except trio.WouldBlock:
            return found


def handled(log: list[Any]) -> list[Any]:
    return [entry[1] for entry in log if entry[0] in ("handled", "slept")]


# The Actor base class


async def test_only_receive_is_required() -> None:
    """An actor needs only `receive`; the lifecycle hooks default to doing nothing."""

    class Minimal(Actor):
        async def receive(self, message: Any) -> Any:
            return message * 2

    async with open_supervisor() as sup:
        ref = await sup.spawn(Minimal, name="minimal")
        assert await ref.ask(21) == 42
        await ref.stop()
    assert ref.statistics().state == "stopped"


def test_receive_is_abstract() -> None:
    """An Actor subclass without `receive` cannot be instantiated."""

    class Empty(Actor):
        pass

    with pytest.raises(TypeError, match="receive"):
        Empty()  # type: ignore[abstract]


async def test_receive_return_value_answers_ask() -> None:
    """The value `receive` returns is what `ask` returns."""
    async with open_supervisor() as sup:
        ref = await sup.spawn(probes([]), name="echo")
        assert await ref.ask({"x": 1}) == {"x": 1}
        assert ref.name == "echo"
        assert "echo" in repr(ref)


async def test_spawn_returns_only_after_on_start(autojump_clock: trio.testing.MockClock) -> None:
    """`spawn` returns once `on_start` has finished, with the ref already set on the actor."""
    seen: list[Any] = []

    class Slow(Actor):
        async def on_start(self) -> None:
            await trio.sleep(1.5)
            seen.append(self.ref.name)

        async def receive(self, message: Any) -> Any:
            return message

    async with open_supervisor() as sup:
        await sup.spawn(Slow, name="slow")
        assert seen == ["slow"]
        assert trio.current_time() == 1.5


async def test_on_start_error_is_raised_from_spawn() -> None:
    """An error in `on_start` is raised from `spawn`, and the supervisor keeps working."""

    class Broken(Actor):
        async def on_start(self) -> None:
            raise Boom("cannot start")

        async def receive(self, message: Any) -> Any:
            return message

    async with open_supervisor() as sup:
        with pytest.raises(Boom, match="cannot start"):
            await sup.spawn(Broken, name="broken")
        assert sup.children == ()
        ref = await sup.spawn(probes([]), name="broken")
        assert await ref.ask("ok") == "ok"


async def test_factory_error_is_raised_from_spawn() -> None:
    """An error in the factory itself is raised from `spawn` without crashing the supervisor."""

    def factory() -> Actor:
        raise Boom("no actor")

    async with open_supervisor() as sup:
        with pytest.raises(Boom, match="no actor"):
            await sup.spawn(factory, name="nothing")
        ref = await sup.spawn(probes([]), name="other")
        assert await ref.ask(1) == 1


# One message at a time


async def test_concurrent_messages_never_overlap(autojump_clock: trio.testing.MockClock) -> None:
    """Concurrent tells and asks are handled one at a time, each handler running alone."""
    active = 0
    peak = 0
    done: list[Any] = []

    class Exclusive(Actor):
        async def receive(self, message: Any) -> Any:
            nonlocal active, peak
            active += 1
            peak = max(peak, active)
            await trio.sleep(1)
            active -= 1
            done.append(message)
            return message

    async with open_supervisor() as sup:
        ref = await sup.spawn(Exclusive, name="exclusive")
        async with trio.open_nursery() as senders:
            for number in range(5):
                senders.start_soon(ref.tell, ("tell", number))
                senders.start_soon(ref.ask, ("ask", number), 100.0)
        assert await ref.ask("last", timeout=100) == "last"
    assert peak == 1
    assert done[-1] == "last"
    assert sorted(done[:-1]) == sorted([(kind, n) for kind in ("ask", "tell") for n in range(5)])
    assert trio.current_time() == 11


async def test_messages_from_one_sender_are_handled_in_order() -> None:
    """Messages from one sender are handled in the order they were sent."""
    log: list[Any] = []
    async with open_supervisor() as sup:
        ref = await sup.spawn(probes(log), name="fifo")
        for number in range(20):
            await ref.tell(number)
        await ref.ask("last")
    assert handled(log) == [*range(20), "last"]


# Overflow policies


async def test_block_overflow_makes_tell_wait_for_room(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """Under `block`, `tell` to a full mailbox waits until the actor takes a message."""
    log: list[Any] = []
    async with open_supervisor() as sup:
        ref = await sup.spawn(probes(log), name="busy", mailbox_size=1, overflow="block")
        await ref.tell(("sleep", 3))
        await trio.sleep(0.5)
        await ref.tell("a")
        assert trio.current_time() == 0.5
        assert ref.statistics().mailbox_used == 1
        with pytest.raises(MailboxFullError):
            ref.tell_nowait("refused")
        await ref.tell("b")
        assert trio.current_time() == 3
        await ref.ask("end")
    assert handled(log) == [("sleep", 3), "a", "b", "end"]


@pytest.mark.parametrize("overflow", ["fail", "drop"])
async def test_fail_and_drop_never_make_tell_wait(
    autojump_clock: trio.testing.MockClock, overflow: Any
) -> None:
    """Under `fail` and `drop`, `tell` to a full mailbox returns or raises at once."""
    async with open_supervisor() as sup:
        ref = await sup.spawn(probes([]), name="busy", mailbox_size=1, overflow=overflow)
        await ref.tell(("sleep", 3))
        await trio.sleep(0.5)
        await ref.tell("a")
        with pytest.raises(MailboxFullError) if overflow == "fail" else nullcontext():
            await ref.tell("b")
        assert trio.current_time() == 0.5


async def test_fail_overflow_raises_mailbox_full(autojump_clock: trio.testing.MockClock) -> None:
    """Under `fail`, `tell`, `tell_nowait` and `ask` on a full mailbox raise MailboxFullError."""
    log: list[Any] = []
    async with open_supervisor() as sup:
        ref = await sup.spawn(probes(log), name="strict", mailbox_size=1, overflow="fail")
        await ref.tell(("sleep", 3))
        await trio.sleep(0.5)
        ref.tell_nowait("a")
        with pytest.raises(MailboxFullError, match="strict"):
            await ref.tell("b")
        with pytest.raises(MailboxFullError):
            ref.tell_nowait("c")
        with pytest.raises(MailboxFullError):
            await ref.ask("d")
        assert trio.current_time() == 0.5
        await trio.sleep(3)
        assert await ref.ask("e") == "e"
    assert handled(log) == [("sleep", 3), "a", "e"]


async def test_drop_overflow_turns_messages_into_dead_letters(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """Under `drop`, a message for a full mailbox becomes a dead letter event on the bus."""
    log: list[Any] = []
    bus = EventBus()
    async with bus.subscribe() as events, open_supervisor(bus=bus) as sup:
        ref = await sup.spawn(probes(log), name="lossy", mailbox_size=1, overflow="drop")
        await ref.tell(("sleep", 3))
        await trio.sleep(0.5)
        await ref.tell("kept")
        await ref.tell("dropped")
        ref.tell_nowait("dropped too")
        dead = [event for event in drain(events) if event.type == "actor.dead_letter"]
        assert [(event.name, event.message, event.time) for event in dead] == [
            ("lossy", "dropped", 0.5),
            ("lossy", "dropped too", 0.5),
        ]
        assert ref.statistics().dead_letters == 2
        await trio.sleep(3)
        await ref.ask("end")
    assert handled(log) == [("sleep", 3), "kept", "end"]


# ask


async def test_ask_reraises_the_handler_exception_and_crashes_the_actor() -> None:
    """A handler's exception is raised in the asker, and it crashes (and restarts) the actor."""
    error = Boom("bad question")
    bus = EventBus()
    async with bus.subscribe() as events, open_supervisor(bus=bus) as sup:
        ref = await sup.spawn(probes([]), name="asked")
        with pytest.raises(Boom) as caught:
            await ref.ask(error)
        assert caught.value is error
        assert await ref.ask("who") == 2
        assert ref.statistics().restarts == 1
        crashes = [event for event in drain(events) if event.type == "actor.crashed"]
        assert [(event.name, event.error) for event in crashes] == [("asked", error)]


async def test_ask_timeout_raises_at_exactly_the_timeout(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """An unanswered ask raises AskTimeoutError (a TimeoutError) at exactly its timeout."""
    async with open_supervisor() as sup:
        ref = await sup.spawn(probes([]), name="slow")
        with pytest.raises(AskTimeoutError, match="slow") as caught:
            await ref.ask(("sleep", 10), timeout=2.5)
        assert isinstance(caught.value, TimeoutError)
        assert trio.current_time() == 2.5


async def test_ask_timeout_cancels_its_handler_without_crashing(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """An ask timeout cancels that handler; the actor keeps its state and is not restarted."""
    log: list[Any] = []
    bus = EventBus()
    async with bus.subscribe() as events, open_supervisor(bus=bus) as sup:
        ref = await sup.spawn(probes(log), name="slow")
        assert await ref.ask("count") == 1
        with pytest.raises(AskTimeoutError):
            await ref.ask(("sleep", 10), timeout=2)
        assert await ref.ask("count") == 2
        assert ("cancelled", ("sleep", 10), 2) in log
        assert trio.current_time() == 2
        assert ref.statistics().restarts == 0
        assert [event.type for event in drain(events)] == ["actor.started"]


async def test_ask_that_timed_out_while_queued_is_never_handled(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """An ask that timed out before the actor reached it is skipped, not handled late."""
    log: list[Any] = []
    async with open_supervisor() as sup:
        ref = await sup.spawn(probes(log), name="busy")
        await ref.tell(("sleep", 5))
        with pytest.raises(AskTimeoutError):
            await ref.ask("too late", timeout=1)
        assert await ref.ask("ping") == "ping"
        assert trio.current_time() == 5
    assert handled(log) == [("sleep", 5), "ping"]


async def test_ask_timeout_covers_waiting_for_room(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """Under `block`, time spent waiting for mailbox room counts against the ask timeout."""
    log: list[Any] = []
    async with open_supervisor() as sup:
        ref = await sup.spawn(probes(log), name="full", mailbox_size=1)
        await ref.tell(("sleep", 5))
        await trio.sleep(0.5)
        await ref.tell("queued")
        with pytest.raises(AskTimeoutError):
            await ref.ask("waits", timeout=2)
        assert trio.current_time() == 2.5
        await ref.ask("end", timeout=10)
    assert handled(log) == [("sleep", 5), "queued", "end"]


@pytest.mark.parametrize("overflow", ["block", "fail", "drop"])
async def test_messages_to_a_stopped_actor_fail_at_once(
    autojump_clock: trio.testing.MockClock, overflow: Any
) -> None:
    """`ask`, `tell` and `tell_nowait` to a stopped actor raise ActorStoppedError at once."""
    async with open_supervisor() as sup:
        ref = await sup.spawn(probes([]), name="gone", overflow=overflow)
        await ref.stop()
        start = trio.current_time()
        with pytest.raises(ActorStoppedError, match="gone"):
            await ref.ask("anyone?")
        with pytest.raises(ActorStoppedError):
            await ref.tell("hello")
        with pytest.raises(ActorStoppedError):
            ref.tell_nowait("hello")
        assert trio.current_time() == start
        await ref.stop()  # stopping twice is harmless


async def test_queued_messages_fail_when_the_actor_stops(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """When an actor stops, queued asks fail with ActorStoppedError and queued tells die."""
    log: list[Any] = []
    outcomes: list[Any] = []
    bus = EventBus()

    async def asker(message: str) -> None:
        try:
            await ref.ask(message, timeout=100)
        except ActorStoppedError:
            outcomes.append((message, trio.current_time()))

    async with bus.subscribe() as events, open_supervisor(bus=bus) as sup:
        ref = await sup.spawn(probes(log), name="worker")
        async with trio.open_nursery() as nursery:
            await ref.tell(("sleep", 2))
            nursery.start_soon(asker, "q1")
            nursery.start_soon(asker, "q2")
            await trio.sleep(0.5)
            await ref.tell("t1")
            await trio.sleep(0.5)
            await ref.stop()
            assert trio.current_time() == 2
        dead = [event.message for event in drain(events) if event.type == "actor.dead_letter"]
    assert sorted(outcomes) == [("q1", 1), ("q2", 1)]
    assert dead == ["t1"]
    assert handled(log) == [("sleep", 2)]


# stop


async def test_stop_waits_for_on_stop(autojump_clock: trio.testing.MockClock) -> None:
    """`ref.stop()` returns once the actor's `on_stop` has finished."""
    log: list[Any] = []
    async with open_supervisor(shutdown_grace=5) as sup:
        ref = await sup.spawn(probes(log, on_stop_delay=2), name="tidy")
        await ref.stop()
        assert trio.current_time() == 2
        assert ("stopped", 1, 2) in log
        assert ref.statistics().state == "stopped"
        assert sup.children == ()


async def test_stop_of_a_busy_actor_takes_exactly_the_grace(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """`ref.stop()` of an actor stuck in a handler cancels it when the grace period runs out."""
    log: list[Any] = []
    async with open_supervisor(shutdown_grace=3) as sup:
        ref = await sup.spawn(probes(log, on_stop_delay=10), name="stuck")
        await ref.tell(("sleep", 100))
        await trio.sleep(1)
        await ref.stop()
        assert trio.current_time() == 4
    assert ("cancelled", ("sleep", 100), 4) in log
    assert ref.statistics().state == "stopped"


async def test_in_flight_ask_fails_when_its_actor_is_cancelled(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """An ask whose handler is cancelled by a stop's grace deadline raises ActorStoppedError."""
    async with open_supervisor(shutdown_grace=3) as sup:
        ref = await sup.spawn(probes([]), name="stuck")
        async with trio.open_nursery() as nursery:
            nursery.start_soon(ref.stop)
            with pytest.raises(ActorStoppedError):
                await ref.ask(("sleep", 100), timeout=50)
        assert trio.current_time() == 3


async def test_on_stop_is_cut_off_at_the_grace(autojump_clock: trio.testing.MockClock) -> None:
    """An `on_stop` that outlasts the grace period is cancelled at its end."""
    log: list[Any] = []
    async with open_supervisor(shutdown_grace=2) as sup:
        ref = await sup.spawn(probes(log, on_stop_delay=10), name="slow-stop")
        await ref.stop()
        assert trio.current_time() == 2
    assert ("stopping", 1, 0) in log
    assert not [entry for entry in log if entry[0] == "stopped"]


async def test_stop_never_waits_behind_a_full_mailbox(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """A stop skips a full mailbox: blocked senders go free at once; only the handler is awaited."""
    log: list[Any] = []
    released: list[float] = []
    bus = EventBus()

    async def blocked_sender() -> None:
        await ref.tell(("sleep", 1))
        released.append(trio.current_time())

    async with bus.subscribe() as events, open_supervisor(bus=bus) as sup:
        ref = await sup.spawn(probes(log), name="swamped", mailbox_size=3)
        for _ in range(4):
            await ref.tell(("sleep", 1))
        async with trio.open_nursery() as nursery:
            nursery.start_soon(blocked_sender)
            await trio.sleep(0.5)
            await ref.stop()
            assert trio.current_time() == 1
        dead = [event for event in drain(events) if event.type == "actor.dead_letter"]
    assert handled(log) == [("sleep", 1)]
    assert released == [0.5]
    assert len(dead) == 4


async def test_actor_can_stop_itself_from_a_handler() -> None:
    """An actor stopping itself finishes the handler (its ask is answered), then stops."""
    async with open_supervisor() as sup:
        ref = await sup.spawn(probes([]), name="quitter")
        assert await ref.ask("stop-self") == "bye"
        with pytest.raises(ActorStoppedError):
            await ref.ask("still there?")
        assert ref.statistics().state == "stopped"
        assert sup.children == ()


# Refs across restarts


async def test_ref_stays_valid_across_restarts(autojump_clock: trio.testing.MockClock) -> None:
    """Messages sent while an actor restarts wait in its mailbox for the new incarnation."""
    log: list[Any] = []
    backoff = RestartBackoff(min_delay=2, jitter=0)
    async with open_supervisor(restart_backoff=backoff) as sup:
        ref = await sup.spawn(probes(log), name="phoenix")
        assert await ref.ask("count") == 1
        await ref.tell(Boom("down"))
        await trio.sleep(1)
        assert ref.statistics().state == "restarting"
        await ref.tell("sent while down")
        assert await ref.ask("who") == 2
        assert trio.current_time() == 2
        assert await ref.ask("count") == 1
        assert sup.get("phoenix") is ref
    assert handled(log) == ["sent while down"]


async def test_on_restart_gets_the_crash_before_on_start() -> None:
    """A fresh incarnation's `on_restart` receives the crash, before its `on_start` runs."""
    log: list[Any] = []
    error = Boom("first life ended")
    async with open_supervisor() as sup:
        ref = await sup.spawn(probes(log), name="reborn")
        await ref.tell(error)
        await ref.ask("ping")
    lifecycle = [entry for entry in log if entry[0] in ("start", "restart")]
    assert lifecycle == [("start", 1, "reborn"), ("restart", 2, error), ("start", 2, "reborn")]


async def test_statistics_describe_the_actor(autojump_clock: trio.testing.MockClock) -> None:
    """`statistics()` reports state, mailbox fill and the message, restart and drop counts."""
    async with open_supervisor() as sup:
        ref = await sup.spawn(probes([]), name="stats", mailbox_size=2, overflow="drop")
        await ref.ask("a")
        await ref.tell(Boom("once"))
        await ref.ask("b")
        await ref.tell(("sleep", 1))
        await trio.sleep(0.5)
        await ref.tell("c")
        await ref.tell("d")
        await ref.tell("e")
        stats = ref.statistics()
        assert (stats.name, stats.state, stats.overflow) == ("stats", "running", "drop")
        assert (stats.mailbox_size, stats.mailbox_used) == (2, 2)
        assert (stats.messages_handled, stats.restarts, stats.dead_letters) == (2, 1, 1)
