"""Benchmark of the dashboard in a real browser: a 10,000-step page, and 1,000 events a second.

Starts `orchestr8 serve` on a free loopback port with a fresh SQLite journal and drives Debian's
Chromium through Playwright, as the browser tests do. Every figure is read from the browser's own
performance timing (`performance.now()`, the `orchestr8:graph-ready`, `orchestr8:timeline-ready` and
`orchestr8:journal-ready` marks each panel sets once it has first drawn, long tasks, animation
frames), never from a timer around Playwright calls. It prints
one JSON object per line:

- `open_finished`: the execution page of a finished run, opened cold `--repeats` times, for the
  baseline run (10 steps) and the big one (10,000 steps by default), side by side in the same run:
  when each panel was first drawn (`graph_ready_ms`, `timeline_ready_ms`, `journal_ready_ms`:
  navigation start to the panel's `orchestr8:<panel>-ready` mark), `interactive_ms` (the latest of
  those marks and the end of the last long task: every panel drawn and the main thread free to
  answer input), `long_tasks_ms` (total main-thread time in long tasks), and the summary
  document's size in bytes.
- `live_stream`: the execution page open while the run emits about `--rate` events a second
  (parallel `sleep` steps under `max_concurrency`): events per second the journal recorded, and on
  the page the animation-frame gaps (p50/p99/max, ms), total long-task time, and the latency of a
  click on a tab (pointer to the tab selected, p50/p95, ms), measured every 250 ms while events
  arrive. A responsive page keeps frame gaps and click latency near one frame (16.7 ms).

    python benchmarks/dashboard.py                 # full size, about a minute on 2 cores
    python benchmarks/dashboard.py --quick         # small sizes, a smoke run
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
from playwright.sync_api import Browser, Page, sync_playwright

LAUNCH_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]

# The marks the execution page's panels set when first drawn, and the key each is reported under.
MARKS = {
    "orchestr8:graph-ready": "graph_ready_ms",
    "orchestr8:timeline-ready": "timeline_ready_ms",
    "orchestr8:journal-ready": "journal_ready_ms",
}

# Observers installed before any page script runs: long tasks and animation-frame gaps.
PROBES = """
window.__bench = {longTasks: [], frames: [], clicks: []};
new PerformanceObserver((list) => {
  for (const entry of list.getEntries()) {
    window.__bench.longTasks.push([entry.startTime, entry.duration]);
  }
}).observe({type: "longtask", buffered: true});
(function frame(last) {
  requestAnimationFrame((now) => {
    if (last !== null) window.__bench.frames.push(now - last);
    frame(now);
  });
})(null);
"""


def fan_out(size: int) -> dict[str, Any]:
    return {
        "schema_version": "1.0",
        "name": f"bench-fan-out-{size}",
        "strategy": "parallel",
        "steps": [{"id": f"s{index}", "agent": "echo", "input": index} for index in range(size)],
    }


def paced(steps: int, concurrency: int, seconds: float) -> dict[str, Any]:
    return {
        "schema_version": "1.0",
        "name": "bench-paced",
        "strategy": "parallel",
        "max_concurrency": concurrency,
        "steps": [
            {"id": f"s{index}", "agent": "sleep", "input": {"seconds": seconds}}
            for index in range(steps)
        ],
    }


@contextmanager
def server(journal: Path) -> Iterator[httpx.Client]:
    """`orchestr8 serve --port 0` over `journal` until the block ends; a client on it."""
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in ("ORCHESTR8_API_KEY", "ORCHESTR8_JOURNAL")
    }
    command = [sys.executable, "-m", "orchestr8", "serve", "--port", "0"]
    process = subprocess.Popen(
        [*command, "--journal", str(journal)],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        env=env,
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline().decode()
        if not line.startswith("orchestr8 serving on "):
            raise SystemExit(f"serve did not start: {line!r}")
        with httpx.Client(base_url=line.split()[-1], timeout=120) as client:
            yield client
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=60)


def start(client: httpx.Client, workflow: dict[str, Any]) -> str:
    response = client.post("/workflows/execute", json={"workflow": workflow, "inputs": {}})
    response.raise_for_status()
    execution_id: str = response.json()["execution_id"]
    return execution_id


def wait_until_finished(client: httpx.Client, execution_id: str) -> dict[str, Any]:
    while True:
        document: dict[str, Any] = client.get(f"/executions/{execution_id}").json()
        if document["status"] in ("succeeded", "failed", "cancelled"):
            return document
        time.sleep(0.1)


def summary_size(client: httpx.Client, execution_id: str) -> int:
    """The size of the document the page reads first (the graph's if there is one)."""
    response = client.get(f"/executions/{execution_id}/graph")
    if response.status_code == 404 and "graph" not in response.text:
        response = client.get(f"/executions/{execution_id}")
    return len(response.content)


def open_once(browser: Browser, url: str) -> dict[str, float]:
    """Open `url` in a fresh context and read the browser's timing of it."""
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    context.add_init_script(PROBES)
    page = context.new_page()
    page.goto(url)
    page.wait_for_function(
        f"() => {list(MARKS)!r}.every((mark) => performance.getEntriesByName(mark).length > 0)",
        timeout=120_000,
    )
    # Let the main thread settle, then read when it last was busy.
    page.wait_for_timeout(1500)
    timing = page.evaluate(
        """(marks) => {
          const at = (mark) => performance.getEntriesByName(mark)[0].startTime;
          const ready = {};
          for (const [mark, key] of Object.entries(marks)) ready[key] = at(mark);
          const tasks = window.__bench.longTasks;
          const lastEnd = tasks.reduce((end, [start, length]) => Math.max(end, start + length), 0);
          return {
            ...ready,
            interactive_ms: Math.max(lastEnd, ...Object.values(ready)),
            long_tasks_ms: tasks.reduce((sum, [, length]) => sum + length, 0),
          };
        }""",
        MARKS,
    )
    context.close()
    return {key: round(value, 1) for key, value in timing.items()}


def open_finished(browser: Browser, client: httpx.Client, sizes: list[int], repeats: int) -> None:
    results: dict[str, Any] = {"case": "open_finished", "repeats": repeats, "runs": []}
    for size in sizes:
        execution_id = start(client, fan_out(size))
        wait_until_finished(client, execution_id)
        url = f"{client.base_url}/ui/executions/{execution_id}"
        samples = [open_once(browser, url) for _ in range(repeats)]
        medians = {
            key: round(statistics.median(sample[key] for sample in samples), 1)
            for key in samples[0]
        }
        results["runs"].append(
            {"steps": size, "summary_bytes": summary_size(client, execution_id), **medians}
        )
    print(json.dumps(results))


def percentile(values: list[float], fraction: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(fraction * len(ordered)))], 1)


def click_latency(page: Page) -> float:
    """Click the tab that is not selected; ms from the click to the page showing it selected."""
    return float(
        page.evaluate(
            """() => new Promise((resolve) => {
              const tab = document.querySelector('[role="tab"][aria-selected="false"]');
              if (!tab) { resolve(0); return; }
              const started = performance.now();
              tab.click();
              requestAnimationFrame(() => resolve(performance.now() - started));
            })"""
        )
    )


def live_stream(browser: Browser, client: httpx.Client, steps: int, rate: int) -> None:
    seconds = 0.05
    # Three events per step (step.started, attempt.started, step.succeeded).
    concurrency = max(1, round(rate * seconds / 3))
    execution_id = start(client, paced(steps, concurrency, seconds))
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    context.add_init_script(PROBES)
    page = context.new_page()
    page.goto(f"{client.base_url}/ui/executions/{execution_id}")
    page.wait_for_function(
        "() => performance.getEntriesByName('orchestr8:graph-ready').length > 0", timeout=120_000
    )
    page.evaluate("window.__bench.frames = []; window.__bench.longTasks = []")
    clicks: list[float] = []
    while client.get(f"/executions/{execution_id}").json()["status"] == "running":
        clicks.append(click_latency(page))
        page.wait_for_timeout(250)
    probes = page.evaluate("window.__bench")
    context.close()
    document = wait_until_finished(client, execution_id)
    frames = probes["frames"]
    print(
        json.dumps(
            {
                "case": "live_stream",
                "steps": steps,
                "max_concurrency": concurrency,
                "events_per_second": round(document["last_seq"] / (document["duration"] or 1)),
                "frame_gap_ms": {
                    "p50": percentile(frames, 0.5),
                    "p99": percentile(frames, 0.99),
                    "max": round(max(frames, default=0.0), 1),
                },
                "long_tasks_ms": round(sum(length for _, length in probes["longTasks"]), 1),
                "click_latency_ms": {
                    "samples": len(clicks),
                    "p50": percentile(clicks, 0.5),
                    "p95": percentile(clicks, 0.95),
                },
            }
        )
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, a smoke run")
    parser.add_argument("--size", type=int, default=10_000, help="steps of the big run")
    parser.add_argument("--repeats", type=int, default=3, help="cold opens of each page")
    parser.add_argument("--rate", type=int, default=1000, help="events a second, live case")
    parser.add_argument("--chromium", default=shutil.which("chromium") or "/usr/bin/chromium")
    arguments = parser.parse_args()
    size = 500 if arguments.quick else arguments.size
    repeats = 1 if arguments.quick else arguments.repeats
    live_steps = 300 if arguments.quick else 3000
    with (
        tempfile.TemporaryDirectory() as folder,
        server(Path(folder) / "journal.db") as client,
        sync_playwright() as playwright,
    ):
        browser = playwright.chromium.launch(executable_path=arguments.chromium, args=LAUNCH_ARGS)
        open_finished(browser, client, [10, size], repeats)
        live_stream(browser, client, live_steps, arguments.rate)
        browser.close()


if __name__ == "__main__":
    main()
