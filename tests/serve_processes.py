"""Serving the REST API in tests: `orchestr8 serve` as a real process, or an app in this one."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import partial
from pathlib import Path
from typing import Any

import attrs
import hypercorn
import hypercorn.trio
import trio

from orchestr8 import Runtime
from orchestr8._web._app import create_app


@attrs.define
class Server:
    """A running `orchestr8 serve` process, its URL and what it printed."""

    process: trio.Process
    url: str = ""
    stdout: bytearray = attrs.Factory(bytearray)
    stderr: bytearray = attrs.Factory(bytearray)

    @property
    def ws_url(self) -> str:
        return self.url.replace("http", "ws", 1)

    async def stop(self) -> int:
        """SIGTERM, then wait for the exit code."""
        self.process.send_signal(signal.SIGTERM)
        with trio.fail_after(20):
            return await self.process.wait()


def environment(**extra: str) -> dict[str, str]:
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in ("ORCHESTR8_API_KEY", "ORCHESTR8_JOURNAL")
    }
    return {**env, "NO_COLOR": "1", **extra}


@asynccontextmanager
async def orchestr8_serve(
    journal: Path | str, *args: str, env: dict[str, str] | None = None
) -> AsyncIterator[Server]:
    """Start `orchestr8 serve --port 0` on `journal` (a path or a URL); yield it once it is up."""
    command = [
        sys.executable,
        "-m",
        "orchestr8",
        "serve",
        "--port",
        "0",
        "--journal",
        str(journal),
        "--cancel-grace",
        "0.5",
        *args,
    ]
    process = await trio.lowlevel.open_process(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env or environment()
    )
    server = Server(process)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(drain, process.stderr, server.stderr)
        try:
            with trio.fail_after(20):
                assert process.stdout is not None
                while b"\n" not in server.stdout:
                    chunk = await process.stdout.receive_some()
                    assert chunk, f"serve exited: {server.stderr.decode()}"
                    server.stdout += chunk
            line = server.stdout.decode().splitlines()[0]
            assert line.startswith("orchestr8 serving on http://127.0.0.1:"), line
            server.url = line.rsplit(" ", 1)[1]
            nursery.start_soon(drain, process.stdout, server.stdout)
            yield server
        except BaseException:
            # Shown by pytest with the failure: what the server said.
            sys.stderr.write(f"server stderr:\n{server.stderr.decode()}\n")
            raise
        finally:
            if process.returncode is None:
                await server.stop()
            nursery.cancel_scope.cancel()


async def drain(stream: Any, into: bytearray) -> None:
    while chunk := await stream.receive_some():
        into += chunk


@asynccontextmanager
async def serving(runtime: Runtime, api_key: str | None = None) -> AsyncIterator[str]:
    """The service of `runtime` on a free loopback port, for the block; yields its URL."""
    config = hypercorn.Config()
    config.bind = ["127.0.0.1:0"]
    stop = trio.Event()
    async with trio.open_nursery() as nursery:
        urls: list[str] = await nursery.start(
            partial(
                hypercorn.trio.serve,
                create_app(runtime, api_key=api_key),
                config,
                shutdown_trigger=stop.wait,
            )
        )
        try:
            yield urls[0]
        finally:
            stop.set()
