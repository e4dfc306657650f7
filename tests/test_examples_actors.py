"""The actor examples run as real programs and print what docs/actors.md says they print."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"
DOCS = ROOT / "docs" / "actors.md"


def marked_blocks(marker: str) -> list[str]:
    """The fenced blocks of docs/actors.md that follow an HTML comment `<!-- marker -->`."""
    pattern = rf"<!-- {re.escape(marker)} -->\n```[a-z]*\n(.*?)```"
    return re.findall(pattern, DOCS.read_text(), flags=re.DOTALL)


@pytest.fixture(scope="module")
def worker_pool() -> subprocess.CompletedProcess[str]:
    """Run examples/worker_pool.py once, with this interpreter, and capture its output."""
    return subprocess.run(
        [sys.executable, str(EXAMPLES / "worker_pool.py")],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def stripped_lines(done: subprocess.CompletedProcess[str]) -> list[str]:
    """The program's output lines without their indentation."""
    return [line.strip() for line in done.stdout.splitlines()]


def test_worker_pool_exits_cleanly(worker_pool: subprocess.CompletedProcess[str]) -> None:
    """The worker pool example exits 0 and writes nothing to stderr."""
    assert worker_pool.returncode == 0, worker_pool.stderr
    assert worker_pool.stderr == ""


def test_worker_pool_restarts_only_the_crashed_worker(
    worker_pool: subprocess.CompletedProcess[str],
) -> None:
    """The poisoned job crashes worker-2 alone; it restarts fresh, the others keep their counts."""
    lines = stripped_lines(worker_pool)
    assert "job 5 -> worker-2: failed with PoisonedJobError('job 5 is poisoned')" in lines
    assert "[bus] actor.crashed   worker-2  PoisonedJobError('job 5 is poisoned')" in lines
    assert "[bus] actor.restarted worker-2" in lines
    assert "job 8 -> worker-2: 8^2 = 64" in lines  # the same ref reaches the new incarnation
    assert "worker-1: jobs done 3, restarts 0" in lines
    assert "worker-2: jobs done 1, restarts 1" in lines
    assert "worker-3: jobs done 3, restarts 0" in lines
    assert sum("actor.crashed" in line for line in lines) == 1


def test_worker_pool_prints_events_in_lifecycle_order(
    worker_pool: subprocess.CompletedProcess[str],
) -> None:
    """Workers start in order, and stop in reverse start order when the pool closes."""
    lines = stripped_lines(worker_pool)
    events = [line.removeprefix("[bus] ").split()[:2] for line in lines if line.startswith("[bus]")]
    assert events[:3] == [["actor.started", f"worker-{i}"] for i in (1, 2, 3)]
    assert events[-3:] == [["actor.stopped", f"worker-{i}"] for i in (3, 2, 1)]


def test_docs_show_the_worker_pool_output(worker_pool: subprocess.CompletedProcess[str]) -> None:
    """The output shown in docs/actors.md is exactly what the example prints."""
    assert marked_blocks("output of examples/worker_pool.py") == [worker_pool.stdout]


def test_docs_quote_the_worker_pool_verbatim() -> None:
    """Every code block docs/actors.md says it quotes from the example appears in it as written."""
    source = (EXAMPLES / "worker_pool.py").read_text()
    quotes = marked_blocks("quoted from examples/worker_pool.py")
    assert len(quotes) == 3
    for quote in quotes:
        assert quote in source
