"""The event bus: lossy subscribers never stall a publisher, lossless ones push back."""

from __future__ import annotations

from typing import Any

import pytest
import trio
import trio.testing

from orchestr8 import EventBus


def drain(events: trio.MemoryReceiveChannel[Any]) -> list[Any]:
    """Everything buffered so far on a subscription."""
    found = []
    while True:
        try:
            found.append(events.receive_nowait())
        except trio.WouldBlock:
            return found


async def test_every_subscriber_gets_every_event_in_order() -> None:
    """Each subscriber receives every event published while it is subscribed, in order."""
    bus = EventBus()
    assert not bus.has_subscribers
    async with bus.subscribe() as first, bus.subscribe(lossless=True) as second:
        assert bus.has_subscribers
        for number in range(5):
            await bus.publish(number)
        bus.publish_nowait(5)
        assert drain(first) == [0, 1, 2, 3, 4, 5]
        assert drain(second) == [0, 1, 2, 3, 4, 5]
    assert not bus.has_subscribers


async def test_events_published_outside_a_subscription_are_not_seen() -> None:
    """A subscriber sees only the events published while its block is open."""
    bus = EventBus()
    await bus.publish("before")
    async with bus.subscribe() as events:
        await bus.publish("during")
        assert drain(events) == ["during"]
    await bus.publish("after")
    assert bus.statistics().published == 3


async def test_slow_lossy_subscriber_never_blocks_the_publisher() -> None:
    """A full lossy subscriber loses its oldest events, counted, and `publish` never waits."""
    bus = EventBus()
    async with bus.subscribe(buffer=3) as events:
        with trio.testing.assert_no_checkpoints():
            for number in range(10):
                await bus.publish(number)
        assert drain(events) == [7, 8, 9]
        stats = bus.statistics()
        assert stats.dropped == 7
        (subscriber,) = stats.subscribers
        assert (subscriber.lossless, subscriber.buffer, subscriber.dropped) == (False, 3, 7)
        assert subscriber.delivered == 10


async def test_lossless_subscriber_applies_backpressure(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """A full lossless subscriber makes `publish` wait for it, and it loses nothing."""
    bus = EventBus()
    finished: list[float] = []
    received: list[Any] = []

    async def publisher() -> None:
        for number in range(5):
            await bus.publish(number)
        finished.append(trio.current_time())

    async with bus.subscribe(buffer=2, lossless=True) as events, trio.open_nursery() as nursery:
        nursery.start_soon(publisher)
        with trio.fail_after(10):
            for _ in range(5):
                await trio.sleep(1)
                received.append(await events.receive())
    assert received == [0, 1, 2, 3, 4]
    assert finished == [3]
    assert bus.statistics().dropped == 0


async def test_lossy_subscriber_is_not_held_back_by_a_lossless_one() -> None:
    """A lossy subscriber ahead of a full lossless one has the event while the publisher waits."""
    bus = EventBus()
    async with bus.subscribe() as lossy, bus.subscribe(buffer=1, lossless=True) as lossless:
        bus.publish_nowait("first")
        async with trio.open_nursery() as nursery:
            nursery.start_soon(bus.publish, "second")
            await trio.testing.wait_all_tasks_blocked()
            assert drain(lossy) == ["first", "second"]
            assert await lossless.receive() == "first"
        assert drain(lossless) == ["second"]


async def test_publish_nowait_is_all_or_nothing() -> None:
    """`publish_nowait` raises WouldBlock when a lossless subscriber is full, and nobody gets it."""
    bus = EventBus()
    async with bus.subscribe() as lossy, bus.subscribe(buffer=1, lossless=True) as lossless:
        bus.publish_nowait(1)
        with pytest.raises(trio.WouldBlock):
            bus.publish_nowait(2)
        assert drain(lossy) == [1]
        assert drain(lossless) == [1]
        stats = bus.statistics()
        assert (stats.published, stats.unpublished) == (1, 1)
        bus.publish_nowait(3)
        assert drain(lossy) == [3]
        assert drain(lossless) == [3]


async def test_leaving_lossless_subscriber_releases_a_waiting_publisher(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """A lossless subscriber that leaves while a publisher waits for it lets the publisher go."""
    bus = EventBus()

    async def leave_later(task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        async with bus.subscribe(buffer=1, lossless=True):
            task_status.started()
            await trio.sleep(2)

    async with trio.open_nursery() as nursery:
        await nursery.start(leave_later)
        await bus.publish("fills it")
        await bus.publish("waits")
        assert trio.current_time() == 2


async def test_subscriber_leaving_mid_publish_does_not_hide_the_event_from_others(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """While a publisher waits for a lossless subscriber, others leaving never skip anyone."""
    bus = EventBus()

    async def leave_later(
        delay: float, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
    ) -> None:
        async with bus.subscribe(buffer=1, lossless=True) as events:
            task_status.started()
            await trio.sleep(delay)
            drain(events)

    async with trio.open_nursery() as nursery:
        await nursery.start(leave_later, 1.0)
        async with bus.subscribe(buffer=1, lossless=True) as slow, bus.subscribe() as watcher:
            await bus.publish("first")
            nursery.start_soon(bus.publish, "second")
            await trio.sleep(2)
            assert drain(slow) == ["first", "second"]
            await trio.sleep(0.5)
            assert drain(watcher) == ["first", "second"]


async def test_subscribe_needs_a_buffer() -> None:
    """A subscription buffer must hold at least one event."""
    with pytest.raises(ValueError, match="buffer"):
        async with EventBus().subscribe(buffer=0):
            pass
