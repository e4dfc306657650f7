"""Serving the research microservice: Hypercorn on trio, signals, and the exit codes.

`serve(core, ...)` runs the app of `actors.research._service` until its shutdown trigger returns;
start it with `nursery.start` to get the URLs it listens on (port 0 picks a free port).
`run_service` is what `orchestr8 agent serve research` (and `python -m actors.research`) runs:
it prints the URL, stops cleanly on SIGINT or SIGTERM, and returns the exit code.
"""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Final, TextIO

import trio

from orchestr8 import AgentConfigurationError
from orchestr8._errors import InsecureBindError
from orchestr8._serve import is_loopback

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
EXIT_OK: Final = 0
EXIT_INVALID: Final = 1
EXIT_SECURITY: Final = 4
EXIT_INTERRUPTED: Final = 130


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
    import hypercorn.trio
    from hypercorn.config import Config

    if api_key is None and not is_loopback(host):
        raise InsecureBindError(_insecure(host))
    app = create_app(core, api_key=api_key, request_timeout=request_timeout, max_body=max_body)
    config = Config()
    bare = host.strip().removeprefix("[").removesuffix("]")
    config.bind = [f"[{bare}]:{port}" if ":" in bare else f"{bare}:{port}"]
    config.accesslog = None
    config.errorlog = service_logger
    config.include_server_header = False
    config.graceful_timeout = 5.0
    await hypercorn.trio.serve(
        app, config, shutdown_trigger=shutdown_trigger, task_status=task_status
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
    try:
        settings = (
            ResearchSettings.from_environment()
            if config is None
            else ResearchSettings.from_config(config)
        )
        if api_key is None and not is_loopback(host):
            raise InsecureBindError(_insecure(host))
        core = ResearchCore(settings)
        if not os.environ.get(ANTHROPIC_KEY_VARIABLE):
            err.write(
                f"warning: {ANTHROPIC_KEY_VARIABLE} is not set, so POST /process will "
                "answer 502 until the service is restarted with it\n"
            )
        return await _run(core, host, port, api_key, request_timeout, out, err)
    except BaseExceptionGroup as group:
        error = _only_error(group)
        if not isinstance(error, AgentConfigurationError | OSError):
            raise
    except (AgentConfigurationError, OSError) as caught:
        error = caught
    if isinstance(error, InsecureBindError):
        err.write(f"error: {error}\n")
        return EXIT_SECURITY
    if isinstance(error, OSError) and not isinstance(error, PermissionError | FileNotFoundError):
        err.write(f"error: cannot listen on {host}:{port}: {error.strerror or error}\n")
    else:
        err.write(f"error: {error}\n")
    return EXIT_INVALID


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
    interrupted = False
    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async with trio.open_nursery() as nursery:

            async def watch_signals() -> None:
                nonlocal interrupted
                async for signum in signals:
                    name = signal.Signals(signum).name
                    if not stop.is_set():
                        err.write(f"{name}: shutting down; signal again to stop at once\n")
                        err.flush()
                        stop.set()
                        continue
                    err.write(f"{name} again: stopping now\n")
                    interrupted = True
                    nursery.cancel_scope.cancel()

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

            nursery.start_soon(watch_signals)
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
    if interrupted:
        return EXIT_INTERRUPTED
    err.write("stopped\n")
    return EXIT_OK


def _insecure(host: str) -> str:
    return (
        f"refusing to listen on {host} without an API key: anyone who can reach it could "
        "spend your model and Context7 quota; set an API key or listen on 127.0.0.1"
    )


def _only_error(group: BaseExceptionGroup[BaseException]) -> BaseException:
    error: BaseException = group
    while isinstance(error, BaseExceptionGroup) and len(error.exceptions) == 1:
        error = error.exceptions[0]
    return error
