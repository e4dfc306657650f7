"""Benchmark of journal appends, each figure beside a raw sqlite3 `executemany` baseline.

Prints one JSON object per line. For each batch size B the journal is fed B events, with awaited
`append` calls or with `append_nowait` (the emitter's path), then one `flush`, until all events are
written (B = 3 is about one engine step's events). The baseline writes the same rows, JSON-encoded
the same way, with one `BEGIN IMMEDIATE; executemany; COMMIT` per B rows on one connection in WAL
mode with `synchronous=NORMAL`, the journal's own settings. `stream` appends everything and flushes
once, so the writer picks its own batch sizes (group commit; its baseline uses 1000 rows per
transaction). Figures are wall-clock medians over the rounds; `us_per_event` is the journal's time
per event in microseconds, `ratio` is its time per event over the baseline's (1.0 is parity), and
`transactions` counts the journal's committed batches. The `memory` rows measure `MemoryJournal`
(pure Python, no SQLite) against the same file baseline: what the journal machinery itself costs.

    python benchmarks/journal.py            # full size, about half a minute on 2 cores
    python benchmarks/journal.py --quick    # small sizes, a smoke run of a few seconds
"""

from __future__ import annotations

import argparse
import functools
import json
import sqlite3
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import trio

from orchestr8._journal._events import Event, EventType
from orchestr8._journal._journal import ExecutionRecord, open_journal

TS = "2025-01-01T00:00:00.000Z"
EVENTS_TABLE = """CREATE TABLE events (
    execution_id TEXT NOT NULL, seq INTEGER NOT NULL, ts TEXT NOT NULL, elapsed REAL NOT NULL,
    type TEXT NOT NULL, step_id TEXT, attempt INTEGER, data TEXT NOT NULL,
    PRIMARY KEY (execution_id, seq)) WITHOUT ROWID"""


def make_events(count: int) -> list[Event]:
    data = {"message": "working", "fraction": 0.5}
    return [
        Event("run", seq, TS, seq / 1000, EventType.STEP_PROGRESS, "step-1", 1, dict(data))
        for seq in range(1, count + 1)
    ]


def baseline(directory: Path, events: list[Event], batch: int) -> float:
    """Seconds for raw sqlite3 to write the events, `batch` rows per transaction."""
    connection = sqlite3.connect(directory / "baseline.db", isolation_level=None)
    connection.execute("PRAGMA journal_mode = WAL")
    connection.execute("PRAGMA synchronous = NORMAL")
    connection.execute(EVENTS_TABLE)
    started = time.perf_counter()
    for start in range(0, len(events), batch):
        rows = [
            (e.execution_id, e.seq, e.ts, e.elapsed, str(e.type), e.step_id, e.attempt,
             json.dumps(e.data, allow_nan=False, ensure_ascii=False, separators=(",", ":")))
            for e in events[start : start + batch]
        ]  # fmt: skip
        connection.execute("BEGIN IMMEDIATE")
        connection.executemany("INSERT INTO events VALUES (?, ?, ?, ?, ?, ?, ?, ?)", rows)
        connection.execute("COMMIT")
    elapsed = time.perf_counter() - started
    connection.close()
    return elapsed


async def journal_run(
    path: Path | None, events: list[Event], batch: int | None, nowait: bool = False
) -> tuple[float, int]:
    """Seconds for the journal to append and flush the events, and the batches it committed.

    With `nowait`, events go in with `append_nowait` (the emitter's path), awaiting `append` only
    when the queue is full.
    """
    async with open_journal(path) as journal:
        await journal.create_execution(ExecutionRecord("run", "bench", {}))
        before = journal.statistics().batches_committed
        started = time.perf_counter()
        step = batch or len(events)
        for start in range(0, len(events), step):
            for event in events[start : start + step]:
                if nowait:
                    try:
                        journal.append_nowait(event)
                        continue
                    except trio.WouldBlock:
                        pass
                await journal.append(event)
            await journal.flush()
        elapsed = time.perf_counter() - started
        return elapsed, journal.statistics().batches_committed - before


def measure_baseline(directory: Path, events: list[Event], batch: int) -> tuple[float, int]:
    (directory / "baseline.db").unlink(missing_ok=True)
    return baseline(directory, events, batch), 0


def measure_journal(
    directory: Path | None, events: list[Event], batch: int | None, nowait: bool
) -> tuple[float, int]:
    path = None if directory is None else directory / f"journal-{time.monotonic_ns()}.db"
    return trio.run(journal_run, path, events, batch, nowait)


def median_of(rounds: int, measure: Any) -> tuple[float, int]:
    results = [measure() for _ in range(rounds)]
    return statistics.median(r[0] for r in results), int(statistics.median(r[1] for r in results))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, a smoke run")
    parser.add_argument("--rounds", type=int, default=3)
    options = parser.parse_args()
    scale = 10 if options.quick else 1
    plans: list[tuple[int | None, int]] = [
        (1, 2_000 // scale),
        (3, 6_000 // scale),
        (10, 10_000 // scale),
        (100, 50_000 // scale),
        (1000, 100_000 // scale),
        (None, 100_000 // scale),
    ]
    for batch, count in plans:
        events = make_events(count)
        with tempfile.TemporaryDirectory() as scratch:
            directory = Path(scratch)
            base_batch = batch or 1000
            base = functools.partial(measure_baseline, directory, events, base_batch)
            base_seconds, _ = median_of(options.rounds, base)
            runs = (("sqlite", False), ("sqlite", True), ("memory", False), ("memory", True))
            for storage, nowait in runs:
                where = directory if storage == "sqlite" else None
                measure = functools.partial(measure_journal, where, events, batch, nowait)
                seconds, transactions = median_of(options.rounds, measure)
                figure = {
                    "benchmark": "journal_append",
                    "storage": storage,
                    "append": "append_nowait" if nowait else "append",
                    "batch": batch or "stream",
                    "events": count,
                    "seconds": round(seconds, 4),
                    "events_per_second": round(count / seconds),
                    "us_per_event": round(seconds / count * 1e6, 2),
                    "transactions": transactions,
                    "baseline": "sqlite3_executemany",
                    "baseline_batch": base_batch,
                    "baseline_events_per_second": round(count / base_seconds),
                    "ratio": round(seconds / base_seconds, 2),
                }
                print(json.dumps(figure), flush=True)
    sys.stdout.flush()


if __name__ == "__main__":
    main()
