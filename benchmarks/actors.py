"""Benchmarks of the actor runtime, each figure beside a raw-trio baseline measured in the same run.

Prints one JSON object per line. Costs are medians over several rounds, and every `ratio` is
orchestr8's cost divided by the baseline's (time per operation, or bytes per actor), so 1.0 is
parity and 2.0 twice the cost; throughput figures are inverted before dividing. Times are CPU
times of the benchmark process, so other load on the machine does not skew them.

    python benchmarks/actors.py            # full size, under a minute on 2 cores
    python benchmarks/actors.py --quick    # small sizes, a smoke run of a few seconds
    python benchmarks/actors.py --bench ask_round_trip --bench memory_idle

The idle-memory benchmark runs each side in a fresh interpreter (this script, re-invoked with a
hidden option) so that one side's freed memory is not reused by the other; its figure is the
growth of the resident set size divided by the number of actors.
"""

from __future__ import annotations

import argparse
import functools
import gc
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from typing import Any, Literal

import outcome
import trio
import trio.testing

import orchestr8

MAILBOX = 64  # the default mailbox size; every baseline channel gets the same buffer
ACTORS_PER_SUPERVISOR = 100  # docs/architecture.md, "Costs we design around"
FREEZE_EVERY = 100  # spawns between gc.freeze() calls (halves the spawn cost at 100k, same page)

Row = dict[str, Any]

# CPU time of this process. The benchmarks never sleep or wait for I/O, so on an idle machine it
# equals wall time; on a busy one it leaves out the time other processes took from us.
clock = time.process_time


# -- actors under test ------------------------------------------------------------------------


class Counter(orchestr8.Actor):
    """Counts the messages it is told; answers any ask with the count so far."""

    def __init__(self) -> None:
        self.count = 0

    async def receive(self, message: Any) -> Any:
        if message is None:
            return self.count
        self.count += 1
        return None


class Echo(orchestr8.Actor):
    """Answers every ask with the message itself."""

    async def receive(self, message: Any) -> Any:
        return message


class Idle(orchestr8.Actor):
    """Never gets a message; exists to be spawned, held and stopped."""

    async def receive(self, message: Any) -> Any:
        return None


# -- helpers ----------------------------------------------------------------------------------


def timed_rounds(
    rounds: int, measurements: dict[str, Callable[[], Awaitable[float]]]
) -> dict[str, float]:
    """Run each measurement `rounds` times, interleaved so drift hits all sides alike; medians."""

    async def main() -> dict[str, list[float]]:
        results: dict[str, list[float]] = {key: [] for key in measurements}
        for _ in range(rounds):
            for key, measure in measurements.items():
                gc.collect()
                results[key].append(await measure())
        return results

    samples = trio.run(main)
    return {key: statistics.median(values) for key, values in samples.items()}


def rss_bytes() -> int:
    """The resident set size of this process (Linux `/proc`), in bytes."""
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def maybe_freeze(spawned: int) -> None:
    """Move everything allocated so far out of the collector's reach, every FREEZE_EVERY spawns."""
    if spawned % FREEZE_EVERY == 0:
        gc.freeze()


def unfreeze() -> None:
    """Give frozen objects back to the collector and collect, so rounds start alike."""
    gc.unfreeze()
    gc.collect()


def ratio(cost: float, baseline: float) -> float:
    """orchestr8's cost over the baseline's, rounded for printing."""
    return round(cost / baseline, 2)


# -- tell throughput --------------------------------------------------------------------------


async def tell_orchestr8(n: int) -> float:
    """`await ref.tell(i)` n times to one actor; seconds until it has handled them all."""
    async with orchestr8.open_supervisor() as supervisor:
        ref = await supervisor.spawn(Counter, name="counter", mailbox_size=MAILBOX)
        start = clock()
        for i in range(n):
            await ref.tell(i)
        handled = await ref.ask(None)  # queued behind the tells: answered once they are done
        elapsed = clock() - start
    assert handled == n
    return elapsed


async def tell_baseline(n: int) -> float:
    """`await send.send(i)` n times to a consumer task; seconds until it has received them all."""
    send, receive = trio.open_memory_channel[Any](MAILBOX)
    done = trio.Event()
    count = 0

    async def consume() -> None:
        nonlocal count
        async for _ in receive:
            count += 1
        done.set()

    async with trio.open_nursery() as nursery:
        nursery.start_soon(consume)
        start = clock()
        async with send:
            for i in range(n):
                await send.send(i)
        await done.wait()
        elapsed = clock() - start
    assert count == n
    return elapsed


async def burst_orchestr8(n: int) -> float:
    """`tell_nowait` n messages into a mailbox of n; seconds until the actor has handled them."""
    async with orchestr8.open_supervisor() as supervisor:
        ref = await supervisor.spawn(Counter, name="counter", mailbox_size=n + 1, overflow="fail")
        start = clock()
        for i in range(n):
            ref.tell_nowait(i)
        handled = await ref.ask(None)
        elapsed = clock() - start
    assert handled == n
    return elapsed


async def burst_baseline(n: int) -> float:
    """`send_nowait` n messages into a channel of n; seconds until a consumer task drained them."""
    send, receive = trio.open_memory_channel[Any](n + 1)
    done = trio.Event()
    count = 0

    async def consume() -> None:
        nonlocal count
        async for _ in receive:
            count += 1
        done.set()

    async with trio.open_nursery() as nursery:
        nursery.start_soon(consume)
        start = clock()
        with send:
            for i in range(n):
                send.send_nowait(i)
        await done.wait()
        elapsed = clock() - start
    assert count == n
    return elapsed


def bench_tell(n: int, rounds: int) -> list[Row]:
    """Messages per second through `tell` (awaited, and a `tell_nowait` burst) vs a raw channel."""
    rows: list[Row] = []
    for bench, actor, base in (
        ("tell_throughput", tell_orchestr8, tell_baseline),
        ("tell_nowait_burst", burst_orchestr8, burst_baseline),
    ):
        medians = timed_rounds(
            rounds,
            {
                "orchestr8": functools.partial(actor, n),
                "baseline": functools.partial(base, n),
            },
        )
        rows.append(
            {
                "bench": bench,
                "orchestr8_msgs_per_s": round(n / medians["orchestr8"]),
                "baseline_msgs_per_s": round(n / medians["baseline"]),
                "ratio": ratio(medians["orchestr8"], medians["baseline"]),
                "n": n,
            }
        )
    return rows


# -- ask round trip ---------------------------------------------------------------------------


async def ask_orchestr8(n: int, overflow: Literal["block", "fail"]) -> float:
    """Microseconds per `await ref.ask(i)` to an echo actor, one at a time."""
    async with orchestr8.open_supervisor() as supervisor:
        ref = await supervisor.spawn(Echo, name="echo", overflow=overflow)
        for i in range(100):  # warm up
            await ref.ask(i)
        start = clock()
        for i in range(n):
            await ref.ask(i)
        elapsed = clock() - start
    return elapsed / n * 1e6


async def ask_channel_baseline(n: int) -> float:
    """Microseconds per request/reply through a request and a reply channel to a server task."""
    request_send, request_receive = trio.open_memory_channel[int](MAILBOX)
    reply_send, reply_receive = trio.open_memory_channel[int](1)

    async def serve() -> None:
        async for request in request_receive:
            await reply_send.send(request)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(serve)
        for i in range(100):
            await request_send.send(i)
            await reply_receive.receive()
        start = clock()
        for i in range(n):
            await request_send.send(i)
            await reply_receive.receive()
        elapsed = clock() - start
        request_send.close()
    return elapsed / n * 1e6


async def ask_reschedule_baseline(n: int) -> float:
    """Microseconds per request/reply where the server wakes the asker by `lowlevel.reschedule`."""
    request_send, request_receive = trio.open_memory_channel[tuple[int, Any]](MAILBOX)

    async def serve() -> None:
        async for request, task in request_receive:
            trio.lowlevel.reschedule(task, outcome.Value(request))

    def abort(_: Any) -> trio.lowlevel.Abort:
        return trio.lowlevel.Abort.SUCCEEDED

    async with trio.open_nursery() as nursery:
        nursery.start_soon(serve)
        task = trio.lowlevel.current_task()
        start = clock()
        for i in range(n):
            request_send.send_nowait((i, task))  # no yield before parking: no lost wake-up
            await trio.lowlevel.wait_task_rescheduled(abort)
        elapsed = clock() - start
        request_send.close()
    return elapsed / n * 1e6


def bench_ask(n: int, rounds: int) -> list[Row]:
    """Ask round trip vs a raw channel request/reply (the target: at most 2x)."""
    medians = timed_rounds(
        rounds,
        {
            "orchestr8": functools.partial(ask_orchestr8, n, "block"),
            "orchestr8_fail": functools.partial(ask_orchestr8, n, "fail"),
            "baseline": functools.partial(ask_channel_baseline, n),
            "reschedule": functools.partial(ask_reschedule_baseline, n),
        },
    )
    value = ratio(medians["orchestr8"], medians["baseline"])
    return [
        {
            "bench": "ask_round_trip",
            "orchestr8_us": round(medians["orchestr8"], 2),
            "baseline_us": round(medians["baseline"], 2),
            "ratio": value,
            "n": n,
            "target": "ratio <= 2",
            "meets_target": value <= 2,
            "orchestr8_overflow_fail_us": round(medians["orchestr8_fail"], 2),
            "baseline_reschedule_us": round(medians["reschedule"], 2),
        }
    ]


# -- spawn and stop ---------------------------------------------------------------------------


async def spawn_stop_orchestr8(n: int) -> tuple[float, float]:
    """Seconds to spawn n idle actors in one supervisor, and to stop them all by leaving it."""
    async with orchestr8.open_supervisor() as supervisor:
        start = clock()
        for i in range(n):
            await supervisor.spawn(Idle, name=f"idle-{i}")
            maybe_freeze(i + 1)
        spawned = clock()
    stopped = clock()
    unfreeze()
    return spawned - start, stopped - spawned


async def spawn_stop_bare(n: int) -> tuple[float, float]:
    """Seconds to `start_soon` n no-op tasks in a nursery, and to join them."""

    async def noop() -> None:
        await trio.lowlevel.checkpoint()

    async with trio.open_nursery() as nursery:
        start = clock()
        for i in range(n):
            nursery.start_soon(noop)
            maybe_freeze(i + 1)
        spawned = clock()
    joined = clock()
    unfreeze()
    return spawned - start, joined - spawned


async def spawn_stop_task_channel(n: int) -> tuple[float, float]:
    """Seconds to `nursery.start` n tasks, each reading its own channel; then to close them all."""

    async def serve(
        receive: trio.MemoryReceiveChannel[Any],
        task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        task_status.started()
        with receive:
            async for _ in receive:
                pass

    senders: list[trio.MemorySendChannel[Any]] = []
    async with trio.open_nursery() as nursery:
        start = clock()
        for i in range(n):
            send, receive = trio.open_memory_channel[Any](MAILBOX)
            senders.append(send)
            await nursery.start(serve, receive)
            maybe_freeze(i + 1)
        spawned = clock()
        for send in senders:
            send.close()
    stopped = clock()
    unfreeze()
    return spawned - start, stopped - spawned


def bench_spawn_stop(n: int, rounds: int) -> list[Row]:
    """Spawn and stop cost per actor vs a bare task, and vs a started task with its own channel."""

    async def main() -> dict[str, list[tuple[float, float]]]:
        samples: dict[str, list[tuple[float, float]]] = {"orchestr8": [], "bare": [], "chan": []}
        for _ in range(rounds):
            samples["orchestr8"].append(await spawn_stop_orchestr8(n))
            samples["bare"].append(await spawn_stop_bare(n))
            samples["chan"].append(await spawn_stop_task_channel(n))
        return samples

    samples = trio.run(main)

    def per_actor_us(key: str, part: int | None = None) -> float:
        values = [sum(s) if part is None else s[part] for s in samples[key]]
        return statistics.median(values) / n * 1e6

    total, bare = per_actor_us("orchestr8"), per_actor_us("bare")
    return [
        {
            "bench": "spawn_stop_per_actor",
            "orchestr8_us": round(total, 2),
            "baseline_us": round(bare, 2),
            "ratio": ratio(total, bare),
            "n": n,
            "orchestr8_spawn_us": round(per_actor_us("orchestr8", 0), 2),
            "orchestr8_stop_us": round(per_actor_us("orchestr8", 1), 2),
            "baseline_task_channel_us": round(per_actor_us("chan"), 2),
            "baseline_task_channel_spawn_us": round(per_actor_us("chan", 0), 2),
            "baseline_task_channel_stop_us": round(per_actor_us("chan", 1), 2),
            "gc_freeze_every": FREEZE_EVERY,
        }
    ]


# -- memory per idle actor --------------------------------------------------------------------


async def hold_orchestr8(n: int) -> dict[str, float]:
    """Spawn n idle actors, ACTORS_PER_SUPERVISOR per nested supervisor; measure, then stop."""
    per = ACTORS_PER_SUPERVISOR

    async def fill(supervisor: orchestr8.Supervisor) -> None:
        for i in range(per):
            await supervisor.spawn(Idle, name=f"idle-{i}")
        gc.freeze()

    gc.collect()
    before = rss_bytes()
    start = clock()
    async with orchestr8.open_supervisor(name="root") as root:
        for group in range(-(-n // per)):
            await root.spawn_supervisor(fill, name=f"group-{group}")
        spawned = clock()
        gc.collect()
        held = rss_bytes()
        count = sum(len(root.child_supervisor(name).children) for name in root.children)
        assert count >= n, count
    stopped = clock()
    return {
        "bytes": (held - before) / count,
        "spawn_us": (spawned - start) / count * 1e6,
        "stop_s": stopped - spawned,
        "rss_mb": held / 2**20,
        "actors": count,
    }


async def hold_baseline(n: int) -> dict[str, float]:
    """Start n tasks, each waiting on its own channel's receive; measure, then close them all."""

    async def wait(receive: trio.MemoryReceiveChannel[Any]) -> None:
        with receive:
            async for _ in receive:
                pass

    senders: list[trio.MemorySendChannel[Any]] = []
    gc.collect()
    before = rss_bytes()
    start = clock()
    async with trio.open_nursery() as nursery:
        for i in range(n):
            send, receive = trio.open_memory_channel[Any](MAILBOX)
            senders.append(send)
            nursery.start_soon(wait, receive)
            maybe_freeze(i + 1)
        await trio.testing.wait_all_tasks_blocked()
        spawned = clock()
        gc.collect()
        held = rss_bytes()
        for send in senders:
            send.close()
    stopped = clock()
    return {
        "bytes": (held - before) / n,
        "spawn_us": (spawned - start) / n * 1e6,
        "stop_s": stopped - spawned,
        "rss_mb": held / 2**20,
        "actors": n,
    }


def memory_child(side: str, n: int) -> None:
    """Measure one side in this (fresh) interpreter and print its figures as one JSON object."""
    hold = hold_orchestr8 if side == "orchestr8" else hold_baseline

    async def main() -> dict[str, float]:
        # Warm up: import lazily loaded modules and build the first objects outside the measurement.
        await hold(200)
        gc.collect()
        return await hold(n)

    print(json.dumps(trio.run(main)))


def bench_memory(sizes: list[int]) -> list[Row]:
    """Bytes per idle actor at each size, each side measured in its own fresh interpreter."""

    def run_child(side: str, n: int) -> dict[str, float]:
        command = [sys.executable, os.path.abspath(__file__), "--memory-child", side, str(n)]
        done = subprocess.run(command, capture_output=True, text=True, check=True)
        figures: dict[str, float] = json.loads(done.stdout.strip().splitlines()[-1])
        return figures

    rows: list[Row] = []
    for n in sizes:
        actor, base = run_child("orchestr8", n), run_child("baseline", n)
        rows.append(
            {
                "bench": "memory_idle_actor",
                "orchestr8_bytes": round(actor["bytes"]),
                "baseline_bytes": round(base["bytes"]),
                "ratio": ratio(actor["bytes"], base["bytes"]),
                "n": n,
                "orchestr8_rss_mb": round(actor["rss_mb"], 1),
                "orchestr8_spawn_us": round(actor["spawn_us"], 2),
                "orchestr8_stop_s": round(actor["stop_s"], 2),
                "baseline_spawn_us": round(base["spawn_us"], 2),
                "baseline_stop_s": round(base["stop_s"], 2),
                "actors_per_supervisor": ACTORS_PER_SUPERVISOR,
            }
        )
    return rows


# -- main -------------------------------------------------------------------------------------

BENCHES = ("tell_throughput", "ask_round_trip", "spawn_stop", "memory_idle")


def main() -> None:
    """Parse the options, run the selected benchmarks, print one JSON line per figure."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--quick", action="store_true", help="small sizes: a smoke run")
    parser.add_argument(
        "--bench", action="append", choices=BENCHES, help="run only this benchmark (repeatable)"
    )
    parser.add_argument("--memory-child", nargs=2, metavar=("SIDE", "N"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.memory_child:
        memory_child(args.memory_child[0], int(args.memory_child[1]))
        return

    quick: bool = args.quick
    selected = set(args.bench or BENCHES)
    emit(
        {
            "bench": "environment",
            "python": platform.python_version(),
            "trio": trio.__version__,
            "orchestr8": orchestr8.__version__,
            "cpus": os.cpu_count(),
            "quick": quick,
        }
    )
    rounds = 3 if quick else 5
    if "tell_throughput" in selected:
        for row in bench_tell(5_000 if quick else 100_000, rounds):
            emit(row)
    if "ask_round_trip" in selected:
        for row in bench_ask(2_000 if quick else 20_000, rounds):
            emit(row)
    if "spawn_stop" in selected:
        for row in bench_spawn_stop(1_000 if quick else 10_000, 3):
            emit(row)
    if "memory_idle" in selected:
        for row in bench_memory([1_000, 5_000] if quick else [10_000, 100_000]):
            emit(row)


def emit(row: Row) -> None:
    """Print one figure as a JSON line, at once (the slow benchmarks come last)."""
    print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
