"""The client lease: one lazily made client shared by its holders, closed after the last of them."""

from __future__ import annotations

import trio
import trio.testing

from orchestr8._llm._client_lease import CLOSE_TIMEOUT, ClientLease


class RecordingClient:
    """A client that records when it is closed; closing can be made to hang."""

    def __init__(self, number: int, *, hang: bool = False) -> None:
        self.number = number
        self.hang = hang
        self.closed = False

    async def close(self) -> None:
        if self.hang:
            await trio.sleep_forever()
        self.closed = True


def lease_making(
    clients: list[RecordingClient], *, hang: bool = False
) -> ClientLease[RecordingClient]:
    """A lease whose clients are appended to `clients` as they are made."""

    def make() -> RecordingClient:
        clients.append(RecordingClient(len(clients), hang=hang))
        return clients[-1]

    return ClientLease(make)


async def test_nested_holders_share_one_client_closed_after_the_last() -> None:
    """Holders inside each other get the same client; it closes only when the outer one ends."""
    clients: list[RecordingClient] = []
    lease = lease_making(clients)
    async with lease.hold() as outer:
        async with lease.hold() as inner:
            assert inner is outer
        assert not outer.closed
    assert outer.closed
    assert len(clients) == 1


async def test_a_hold_after_the_release_makes_a_fresh_client() -> None:
    """Once the last holder ended, the next hold makes (and later closes) a new client."""
    clients: list[RecordingClient] = []
    lease = lease_making(clients)
    async with lease.hold():
        pass
    async with lease.hold() as second:
        assert second.number == 1
    assert [client.closed for client in clients] == [True, True]


def test_a_hanging_close_is_abandoned_after_the_timeout_even_when_cancelled() -> None:
    """A cancelled holder still closes its client, shielded, for at most CLOSE_TIMEOUT seconds."""
    clock = trio.testing.MockClock(autojump_threshold=0)

    async def main() -> float:
        lease = lease_making([], hang=True)
        with trio.CancelScope() as scope:
            async with lease.hold():
                scope.cancel()
                await trio.sleep(1)
        return trio.current_time()

    assert trio.run(main, clock=clock) == CLOSE_TIMEOUT
