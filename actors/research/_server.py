"""Serving the research microservice: Hypercorn on trio, signals, and the exit codes.

`serve(core, ...)` runs the app of `actors.research._service` until its shutdown trigger returns;
start it with `nursery.start` to get the URLs it listens on (port 0 picks a free port).
`run_service` is what `orchestr8 agent serve research` (and `python -m actors.research`) runs:
it prints the URL, stops cleanly on SIGINT or SIGTERM, and returns the exit code. Listening,
signals, exit codes and error reporting are orchestr8's public process shell (`serve_app`,
`watch_shutdown_signals`, `guard_errors`, `ExitCode`), the same as `orchestr8 serve`'s.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Awaitable, Callable, Mapping
from functools import partial
from typing import Any, Final, TextIO

import trio

from orchestr8 import (
    AgentConfigurationError,
    ExitCode,
    InsecureBindError,
    guard_errors,
    is_loopback,
    open_shutdown_signals,
    serve_app,
    watch_shutdown_signals,
)

from ._core import ResearchCore, ResearchSettings
from ._service import DEFAULT_MAX_BODY, DEFAULT_REQUEST_TIMEOUT, create_app, service_logger

__all__ = [
    "DEFAULT_HOST",
    "DEFAULT_PORT",
    "InsecureBindError",
    "is_loopback",
    "run_service",
    "serve",
]

DEFAULT_HOST: Final = "127.0.0.1"
DEFAULT_PORT: Final = 8090
ANTHROPIC_KEY_VARIABLE: Final = "ANTHROPIC_API_KEY"


async def serve(
    core: ResearchCore,
    *,
    host: str = DEFAULT_HOST,
    port: int = DEFAULT_PORT,
    api_key: str | None = None,
    request_timeout: float = DEFAULT_REQUEST_TIMEOUT,
    max_body: int = DEFAULT_MAX_BODY,
    shutdown_trigger: Callable[[], Awaitable[None]] | None = None,
    task_status: trio.TaskStatus[list[str]] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve the microservice with Hypercorn until `shutdown_trigger()` returns (else forever).

    Options are those of `create_app`; `task_status` gets the URLs listened on (port 0 works).

    Raises:
        InsecureBindError: `host` is not loopback and there is no `api_key`.
        OSError: the address cannot be listened on.
    """
    _check_bind(host, api_key)
    app = create_app(core, api_key=api_key, request_timeout=request_timeout, max_body=max_body)
    await serve_app(
        app,
        host=host,
        port=port,
        error_log=service_logger,
        graceful_timeout=5.0,
        shutdown_trigger=shutdown_trigger,
        task_status=task_status,
    )


async def run_service(
    config: Mapping[str, Any] | None,
    *,
    host: str = DEFAULT_HOST,
    port: int = DEFAULT_PORT,
    api_key: str | None = None,
    request_timeout: float = DEFAULT_REQUEST_TIMEOUT,
    out: TextIO = sys.stdout,
    err: TextIO = sys.stderr,
) -> int:
    """Run the microservice as `orchestr8 agent serve research` does; return the exit code.

    `config` is the research config (`None`: from the environment). Prints
    `research agent serving on URL` on `out` once listening and stops cleanly on SIGINT or
    SIGTERM (exit 0; a second signal stops at once, exit 130). Exit 4 when asked to listen
    beyond loopback without an API key, 1 for any other configuration problem.
    """

    async def action() -> int:
        settings = (
            ResearchSettings.from_environment()
            if config is None
            else ResearchSettings.from_config(config)
        )
        _check_bind(host, api_key)
        core = ResearchCore(settings)
        if not os.environ.get(ANTHROPIC_KEY_VARIABLE):
            err.write(
                f"warning: {ANTHROPIC_KEY_VARIABLE} is not set, so POST /process will "
                "answer 502 until the service is restarted with it\n"
            )
        return await _run(core, host, port, api_key, request_timeout, out, err)

    def report(error: BaseException) -> None:
        # A refused address says `cannot listen on HOST:PORT: reason` (see `serve_app`).
        if isinstance(error, OSError) and not isinstance(error, InsecureBindError):
            err.write(f"error: {error.strerror or error}\n")
        else:
            err.write(f"error: {error}\n")

    return await guard_errors(action, expected=_expected, report=report)


def _expected(error: BaseException) -> bool:
    """Whether `error` is a configuration problem reported as one line (exit 1 or 4)."""
    return isinstance(error, AgentConfigurationError | OSError)


async def _run(
    core: ResearchCore,
    host: str,
    port: int,
    api_key: str | None,
    request_timeout: float,
    out: TextIO,
    err: TextIO,
) -> int:
    stop = trio.Event()

    def shut_down(signal_name: str) -> None:
        err.write(f"{signal_name}: shutting down; signal again to stop at once\n")
        err.flush()
        stop.set()

    async def stop_now(signal_name: str) -> None:
        err.write(f"{signal_name} again: stopping now\n")

    with open_shutdown_signals() as signals:
        async with trio.open_nursery() as nursery:

            async def serve_then_stop(task_status: trio.TaskStatus[list[str]]) -> None:
                await serve(
                    core,
                    host=host,
                    port=port,
                    api_key=api_key,
                    request_timeout=request_timeout,
                    shutdown_trigger=stop.wait,
                    task_status=task_status,
                )
                nursery.cancel_scope.cancel()

            nursery.start_soon(
                partial(watch_shutdown_signals, signals, graceful=shut_down, forced=stop_now)
            )
            urls: list[str] = await nursery.start(serve_then_stop)
            for url in urls:
                out.write(f"research agent serving on {url}\n")
            out.flush()
            auth = "API key required" if api_key else "no API key (loopback only)"
            err.write(
                f"model {core.settings.model}; Context7 at {core.settings.base_url}; "
                f"{auth}; stop with Ctrl-C\n"
            )
            err.flush()
    err.write("stopped\n")
    return ExitCode.OK


def _check_bind(host: str, api_key: str | None) -> None:
    """Refuse to listen beyond loopback without an API key (`InsecureBindError`, exit 4)."""
    if api_key is None and not is_loopback(host):
        raise InsecureBindError(_insecure(host))


def _insecure(host: str) -> str:
    return (
        f"refusing to listen on {host} without an API key: anyone who can reach it could "
        "spend your model and Context7 quota; set an API key or listen on 127.0.0.1"
    )
