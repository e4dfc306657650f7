"""The event bus: one publisher side, many bounded subscribers, and nobody stalls on a slow screen.

Every state change in orchestr8 becomes an event published here. Subscribers come in two kinds:

- **lossless** (the journal): when its buffer is full, `publish` waits for it: backpressure.
- **lossy** (views: CLI, REST, WebSocket): when its buffer is full the *oldest* event is dropped and
  counted, so the publisher never waits on it and the subscriber always sees the newest events.

Publishing costs one `send_nowait` per subscriber when buffers have room (no scheduling point),
which is what lets the engine publish several events per step cheaply.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import attrs
import trio


@attrs.frozen
class SubscriberStatistics:
    """What one subscriber has been sent and lost, so a view can tell its user it fell behind."""

    lossless: bool
    buffer: int
    buffered: int
    delivered: int
    dropped: int


@attrs.frozen
class BusStatistics:
    """Counts across the bus: events published and unpublished, and each subscriber's figures."""

    published: int
    unpublished: int
    subscribers: tuple[SubscriberStatistics, ...]

    @property
    def dropped(self) -> int:
        """Events dropped across all lossy subscribers."""
        return sum(subscriber.dropped for subscriber in self.subscribers)


@attrs.define(eq=False)
class _Subscription:
    send: trio.MemorySendChannel[Any]
    oldest: trio.MemoryReceiveChannel[Any] | None
    lossless: bool
    buffer: int
    delivered: int = 0
    dropped: int = 0

    def offer(self, event: object) -> None:
        """Deliver to a lossy subscriber, evicting its oldest events while its buffer is full."""
        while True:
            try:
                self.send.send_nowait(event)
            except trio.WouldBlock:
                assert self.oldest is not None
                try:
                    self.oldest.receive_nowait()
                except trio.WouldBlock:  # pragma: no cover - a full buffer always has an oldest
                    return
                self.dropped += 1
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                return
            else:
                self.delivered += 1
                return


class EventBus:
    """Fan events out to bounded subscribers: lossless ones push back, lossy ones drop their oldest.

    Events are any objects; orchestr8 publishes frozen attrs records (actor lifecycle events,
    execution events). Subscribers receive events in publication order.
    """

    def __init__(self) -> None:
        """Create a bus with no subscribers."""
        self._subscriptions: list[_Subscription] = []
        self._lossless: list[_Subscription] = []
        self._published = 0
        self._unpublished = 0

    @property
    def has_subscribers(self) -> bool:
        """Whether anybody listens, so publishers may skip building events nobody would see."""
        return bool(self._subscriptions)

    async def publish(self, event: object) -> None:
        """Deliver `event` to every subscriber, waiting only while a lossless subscriber is full."""
        self._published += 1
        # A snapshot: while this waits for a lossless subscriber, others may come and go, and
        # removing one from the live list would make this loop skip the next subscriber.
        for subscription in tuple(self._subscriptions):
            if subscription.lossless:
                try:
                    subscription.send.send_nowait(event)
                except trio.WouldBlock:
                    try:
                        await subscription.send.send(event)
                    except (trio.BrokenResourceError, trio.ClosedResourceError):
                        continue
                except (trio.BrokenResourceError, trio.ClosedResourceError):
                    continue
                subscription.delivered += 1
            else:
                subscription.offer(event)

    def publish_nowait(self, event: object) -> None:
        """Deliver `event` without waiting, or raise `trio.WouldBlock` if a lossless one is full.

        For synchronous callers (callbacks, `tell_nowait`). All-or-nothing: when it raises, nobody
        got the event, so a lossless subscriber never misses an event that lossy ones saw.
        """
        for subscription in self._lossless:
            statistics = subscription.send.statistics()
            if (
                statistics.current_buffer_used >= statistics.max_buffer_size
                and statistics.tasks_waiting_receive == 0
                and statistics.open_receive_channels > 0
            ):
                self._unpublished += 1
                raise trio.WouldBlock
        self._published += 1
        for subscription in self._subscriptions:
            if subscription.lossless:
                try:
                    subscription.send.send_nowait(event)
                except (trio.BrokenResourceError, trio.ClosedResourceError):
                    continue
                subscription.delivered += 1
            else:
                subscription.offer(event)

    @asynccontextmanager
    async def subscribe(
        self, *, buffer: int = 1024, lossless: bool = False
    ) -> AsyncIterator[trio.MemoryReceiveChannel[Any]]:
        """Receive every event published while the block is open, through a bounded channel.

        Args:
            buffer: how many undelivered events the subscription holds (at least 1).
            lossless: wait for this subscriber when it is full instead of dropping its oldest
                events. Use it only for consumers that must see everything, such as the journal.
        """
        if buffer < 1:
            raise ValueError(f"buffer must be at least 1, got {buffer}")
        send, receive = trio.open_memory_channel[Any](buffer)
        # A lossy subscription keeps a second receive handle of its own to evict the oldest event;
        # a lossless one must not, so that a consumer that closes its end unblocks publishers.
        oldest = None if lossless else receive.clone()
        subscription = _Subscription(send=send, oldest=oldest, lossless=lossless, buffer=buffer)
        self._subscriptions.append(subscription)
        if lossless:
            self._lossless.append(subscription)
        try:
            yield receive
        finally:
            self._subscriptions.remove(subscription)
            if lossless:
                self._lossless.remove(subscription)
            send.close()
            if oldest is not None:
                oldest.close()
            receive.close()

    def statistics(self) -> BusStatistics:
        """Report published and dropped counts, per subscriber, for monitoring and tests."""
        return BusStatistics(
            published=self._published,
            unpublished=self._unpublished,
            subscribers=tuple(
                SubscriberStatistics(
                    lossless=subscription.lossless,
                    buffer=subscription.buffer,
                    buffered=subscription.send.statistics().current_buffer_used,
                    delivered=subscription.delivered,
                    dropped=subscription.dropped,
                )
                for subscription in self._subscriptions
            ),
        )
