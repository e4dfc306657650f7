"""A supervised pool of worker actors that survives a poisoned job.

Three workers run under a `one_for_one` supervisor. A dispatcher asks them in turn (round robin)
to square numbers. Job 5 is poisoned: the worker that gets it crashes, the dispatcher gets the
error as the answer to its ask, and the supervisor restarts that worker alone, with fresh state,
behind the same ref, while the other two keep theirs. Lifecycle events come from a subscription
to the supervisor's event bus.

Run it with `python examples/worker_pool.py`.
"""

from __future__ import annotations

import itertools
from typing import Any

import attrs
import trio

import orchestr8

JOBS_DONE = "jobs done?"  # the question every worker answers with its count


@attrs.frozen
class Job:
    """A number to square; a poisoned job crashes whichever worker takes it."""

    number: int
    poisoned: bool = False


class PoisonedJobError(Exception):
    """A worker was handed a job it cannot survive."""


class Worker(orchestr8.Actor):
    """Squares the numbers of jobs and counts how many it has done since it (re)started."""

    def __init__(self) -> None:
        self.jobs_done = 0  # the factory runs again on a restart: a new incarnation starts at 0

    async def receive(self, message: Any) -> Any:
        """Answer `JOBS_DONE` with the count, or run a job and answer with its result."""
        if message == JOBS_DONE:
            return self.jobs_done
        if message.poisoned:
            raise PoisonedJobError(f"job {message.number} is poisoned")
        self.jobs_done += 1
        return message.number**2


class Dispatcher:
    """Hands jobs to the workers in turn and waits for each answer."""

    def __init__(self, workers: list[orchestr8.ActorRef]) -> None:
        self._turns = itertools.cycle(workers)

    async def submit(self, job: Job) -> tuple[orchestr8.ActorRef, int | Exception]:
        """Ask the next worker to run `job`; return that worker and its answer, or its error."""
        worker = next(self._turns)
        try:
            return worker, await worker.ask(job, timeout=1.0)
        except PoisonedJobError as error:  # the handler's own exception, raised in the asker
            return worker, error


def show(event: object) -> None:
    """Print one lifecycle event from the bus."""
    if isinstance(event, orchestr8.ActorEvent):
        error = f"  {event.error!r}" if event.error is not None else ""
        print(f"  [bus] {event.type:<15} {event.name}{error}")


async def show_events_until(
    events: trio.MemoryReceiveChannel[object], event_type: str, name: str
) -> None:
    """Print events as they arrive until `event_type` for actor `name` has been printed."""
    with trio.fail_after(1):  # an event that never comes is a bug: fail loudly, do not hang
        async for event in events:
            show(event)
            if (
                isinstance(event, orchestr8.ActorEvent)
                and event.type == event_type
                and event.name == name
            ):
                return


async def main() -> None:
    """Start the pool, dispatch nine jobs (one poisoned), report each worker's count, stop."""
    bus = orchestr8.EventBus()
    async with bus.subscribe(buffer=100) as events:
        async with orchestr8.open_supervisor("one_for_one", name="pool", bus=bus) as pool:
            print("Starting 3 workers under a one_for_one supervisor:")
            workers = [
                await pool.spawn(Worker, name=f"worker-{i}", restart="permanent") for i in (1, 2, 3)
            ]
            await show_events_until(events, "actor.started", "worker-3")

            print("Dispatching jobs round robin (job 5 is poisoned):")
            dispatcher = Dispatcher(workers)
            for number in range(1, 10):
                worker, answer = await dispatcher.submit(Job(number, poisoned=number == 5))
                if isinstance(answer, Exception):
                    print(f"  job {number} -> {worker.name}: failed with {answer!r}")
                    await show_events_until(events, "actor.restarted", worker.name)
                else:
                    print(f"  job {number} -> {worker.name}: {number}^2 = {answer}")

            print("Jobs done since each worker's last (re)start:")
            for worker in workers:
                done = await worker.ask(JOBS_DONE)
                restarts = worker.statistics().restarts
                print(f"  {worker.name}: jobs done {done}, restarts {restarts}")
            restarts = pool.statistics().restarts
            print(
                f"  pool: restarts {restarts}; it gives up after more than {pool.max_restarts}"
                f" restarts within {pool.within:g} s"
            )

            print("Stopping the pool (children stop in reverse start order):")
        await show_events_until(events, "actor.stopped", "worker-1")


if __name__ == "__main__":
    trio.run(main)
