"""Serving the API: Hypercorn inside a runtime's scope, an orderly shutdown, and `orchestr8 serve`.

`serve(runtime, ...)` runs the app of `orchestr8._web` with Hypercorn until its shutdown trigger
returns, then shuts down in order: refuse new executions and stop accepting connections; optionally
cancel the runtime's executions (they end `cancelled`, recorded, and their event sockets see it);
close the event sockets still open (1001, `reconnect with after=N`); let Hypercorn finish the
requests in flight. Start it with `nursery.start` to get the URLs it listens on (port 0 picks a free
port). Executions live in the runtime, so they outlive any request that started them.

`serve_command` is the `serve` command; `register_serve(cli)` adds it to a click group. Heavy
imports (Quart, Hypercorn) happen when it runs, so `orchestr8 --help` stays fast.
"""

from __future__ import annotations

import contextlib
import ipaddress
import logging
import os
import signal
import socket
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, TextIO

import asyncclick as click
import trio

from ._cli import GraceSeconds, sync_workers_option
from ._errors import InsecureBindError, Orchestr8Error

if TYPE_CHECKING:
    from ._journal import Journal
    from ._runtime import Runtime

DEFAULT_HOST: Final = "127.0.0.1"
DEFAULT_PORT: Final = 8080
API_KEY_VARIABLE: Final = "ORCHESTR8_API_KEY"
EXIT_OK: Final = 0
EXIT_INVALID: Final = 1
EXIT_SECURITY: Final = 4
EXIT_INTERRUPTED: Final = 130

_MIB: Final = 1024 * 1024

#: After shutting down, how long requests still in flight may take before connections are cut.
_LINGER: Final = 1.0


def is_loopback(host: str) -> bool:
    """Whether `host` is `localhost` or a loopback IP address (`127.0.0.0/8`, `::1`)."""
    bare = host.strip().removeprefix("[").removesuffix("]")
    if bare.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(bare).is_loopback
    except ValueError:
        return False


def check_bind(host: str, api_key: str | None) -> None:
    """Refuse to expose the API beyond this machine without an API key.

    Raises:
        InsecureBindError: `host` is not loopback and there is no key.
    """
    if api_key is None and not is_loopback(host):
        raise InsecureBindError(
            f"refusing to listen on {host} without an API key: anyone who can reach it could "
            f"run workflows. Set {API_KEY_VARIABLE} (or --api-key), or listen on 127.0.0.1"
        )


async def serve(
    runtime: Runtime,
    *,
    host: str = DEFAULT_HOST,
    port: int = DEFAULT_PORT,
    api_key: str | None = None,
    max_body: int = _MIB,
    shutdown_trigger: Callable[[], Awaitable[object]] | None = None,
    cancel_executions: bool = False,
    task_status: trio.TaskStatus[list[str]] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve the API of `runtime` until `shutdown_trigger` returns (forever without one).

    Args:
        runtime: the runtime whose executions the API starts, reads and cancels.
        host: the address to listen on; beyond loopback only with an `api_key`.
        port: the TCP port; 0 picks a free one (read it from the started URLs).
        api_key: when set, every route but `GET /health` requires `Authorization: Bearer <key>`.
        max_body: the largest request body accepted, in bytes.
        shutdown_trigger: awaited; when it returns, the server shuts down in order.
        cancel_executions: on shutdown, also cancel the runtime's executions and wait for them
            (up to its cancel grace and a little more), so event sockets see them end.
        task_status: `nursery.start` gets the list of URLs the server listens on.

    Raises:
        InsecureBindError: `host` is not loopback and there is no key.
        OSError: the address cannot be listened on.
    """
    import hypercorn.trio
    from hypercorn.config import Config

    from ._web import create_app
    from ._web_events import MAX_CLIENT_MESSAGE

    check_bind(host, api_key)
    app = create_app(runtime, api_key=api_key, max_body=max_body)
    config = Config()
    # Bound here, so a refused address leaks no socket and fails before anything else starts;
    # Hypercorn takes the descriptor over.
    config.bind = [f"fd://{_bound_socket(host, port).detach()}"]
    # No access log: nothing about requests (least of all their headers) is written anywhere.
    config.accesslog = None
    config.errorlog = logging.getLogger("orchestr8.http")
    config.include_server_header = False
    # Event sockets only send: what a client sends is read and dropped, so keep it small.
    config.websocket_max_message_size = MAX_CLIENT_MESSAGE
    config.graceful_timeout = runtime.cancel_grace + 5.0
    stop = trio.Event()
    stopped = trio.Event()

    async def run_hypercorn(task_status: trio.TaskStatus[list[str]]) -> None:
        await hypercorn.trio.serve(app, config, shutdown_trigger=stop.wait, task_status=task_status)
        stopped.set()

    async with trio.open_nursery() as nursery:
        task_status.started(await nursery.start(run_hypercorn))
        if shutdown_trigger is None:
            await trio.sleep_forever()
        else:
            await shutdown_trigger()
        app.start_draining()
        stop.set()
        if cancel_executions:
            runtime.cancel_all("the server is shutting down")
            with trio.move_on_after(runtime.cancel_grace + 2.0):
                await runtime.wait_all()
        app.close_event_streams()
        # Hypercorn would keep idle keep-alive connections until their timeout; by now every
        # event stream is closed and requests had their time, so what remains is cut.
        with trio.move_on_after(_LINGER):
            await stopped.wait()
        nursery.cancel_scope.cancel()


def _bound_socket(host: str, port: int) -> socket.socket:
    """A TCP socket bound to `host:port` (IPv6 when the host has a colon), closed on failure.

    Raises:
        OSError: the address cannot be bound.
    """
    bare = host.strip().removeprefix("[").removesuffix("]")
    bound = socket.socket(socket.AF_INET6 if ":" in bare else socket.AF_INET, socket.SOCK_STREAM)
    try:
        bound.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        bound.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        bound.bind((bare, port))
    except OSError as error:
        bound.close()
        reason = error.strerror or str(error)
        raise OSError(error.errno, f"cannot listen on {host}:{port}: {reason}") from None
    return bound


async def run_service(
    *,
    host: str = DEFAULT_HOST,
    port: int = DEFAULT_PORT,
    journal: str | None = None,
    api_key: str | None = None,
    max_body: int = _MIB,
    cancel_grace: float = 5.0,
    out: TextIO = sys.stdout,
    err: TextIO = sys.stderr,
    secrets_file: str | None = None,
    sync_workers: int | None = None,
) -> int:
    """Run the service the way `orchestr8 serve` does and return its exit code.

    `${secrets.NAME}` references are resolved from `secrets_file` (a JSON object of strings),
    then from `ORCHESTR8_SECRET_NAME` environment variables. `sync_workers` bounds the threads
    of blocking agent code (None: the runtime's default).

    Prints `orchestr8 serving on URL` on `out` once listening; stops on SIGINT or SIGTERM (exit
    0; a second signal exits 130 at once, after saving the journal). Exit 4 when asked to listen
    beyond loopback without a key, 1 for other configuration problems (printed as `error: ...`).
    """
    try:
        check_bind(host, api_key)
        return await _run_service(
            host,
            port,
            journal,
            api_key,
            max_body,
            cancel_grace,
            out,
            err,
            secrets_file,
            sync_workers,
        )
    except BaseExceptionGroup as group:
        error = _only_error(group)
        if not isinstance(error, Orchestr8Error | OSError | ValueError):
            raise
    except (Orchestr8Error, OSError, ValueError) as caught:
        error = caught
    message = error.strerror if isinstance(error, OSError) and error.strerror else error
    err.write(f"error: {message}\n")
    return EXIT_SECURITY if isinstance(error, InsecureBindError) else EXIT_INVALID


async def _run_service(
    host: str,
    port: int,
    journal: str | None,
    api_key: str | None,
    max_body: int,
    cancel_grace: float,
    out: TextIO,
    err: TextIO,
    secrets_file: str | None,
    sync_workers: int | None = None,
) -> int:
    from ._errors import JournalError
    from ._journal_recovery import keep_journal_working
    from ._runtime import open_runtime
    from ._secrets import Secrets
    from ._sync_calls import DEFAULT_SYNC_WORKERS

    if api_key is not None and not (api_key.isascii() and api_key.isprintable()):
        raise ValueError("the API key must be printable ASCII")
    path = _journal_path(journal)
    secrets = None if secrets_file is None else Secrets.from_file(secrets_file)
    _allow_local_imports()
    if not logging.getLogger().handlers:
        logging.basicConfig(
            level=logging.WARNING,
            stream=err,
            format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        )
    stop = trio.Event()
    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        try:
            async with (
                open_runtime(
                    journal=path,
                    cancel_grace=cancel_grace,
                    secrets=secrets,
                    sync_workers=sync_workers or DEFAULT_SYNC_WORKERS,
                ) as runtime,
                trio.open_nursery() as nursery,
            ):
                nursery.start_soon(_watch_signals, signals, stop, runtime.journal, err)
                # A failed journal is reopened once it can write again: no restart needed.
                nursery.start_soon(keep_journal_working, runtime.journal)

                async def serve_then_stop(task_status: trio.TaskStatus[list[str]]) -> None:
                    await serve(
                        runtime,
                        host=host,
                        port=port,
                        api_key=api_key,
                        max_body=max_body,
                        shutdown_trigger=stop.wait,
                        cancel_executions=True,
                        task_status=task_status,
                    )
                    nursery.cancel_scope.cancel()

                urls: list[str] = await nursery.start(serve_then_stop)
                for url in urls:
                    out.write(f"orchestr8 serving on {url}\n")
                out.flush()
                auth = "API key required" if api_key else "no API key (loopback only)"
                err.write(f"journal: {path}; {auth}; stop with Ctrl-C\n")
                err.flush()
        except JournalError as error:
            if not stop.is_set():
                raise
            # Asked to stop while the journal is failed: that was logged when it happened and
            # /health said so; what was journaled is intact. An orderly stop all the same.
            err.write(f"stopped: {error}; the executions it stopped stay resumable\n")
            return EXIT_OK
    err.write("stopped: running executions were cancelled and the journal is saved\n")
    return EXIT_OK


async def _watch_signals(
    signals: AsyncIterator[int], stop: trio.Event, journal: Journal, err: TextIO
) -> None:
    """First SIGINT/SIGTERM: shut down in order. Second: save the journal and exit at once."""
    async for signum in signals:
        name = signal.Signals(signum).name
        if not stop.is_set():
            err.write(
                f"{name}: shutting down (running executions are cancelled); "
                "signal again to stop at once\n"
            )
            err.flush()
            stop.set()
            continue
        err.write(f"{name} again: stopping now\n")
        err.flush()
        with trio.move_on_after(1.0), contextlib.suppress(Orchestr8Error):
            await journal.flush()
        os._exit(EXIT_INTERRUPTED)


def _journal_path(journal: str | None) -> Path:
    """The journal `orchestr8 run` would use (`_cli_support.journal_path`), made if missing.

    Raises:
        ValueError: `--journal` is empty (or only blanks).
    """
    from ._cli_support import CommandError, journal_path

    try:
        return journal_path(journal)
    except CommandError as error:
        raise ValueError(str(error)) from None


def _only_error(group: BaseExceptionGroup[BaseException]) -> BaseException:
    error: BaseException = group
    while isinstance(error, BaseExceptionGroup) and len(error.exceptions) == 1:
        error = error.exceptions[0]
    return error


def _allow_local_imports() -> None:
    """Let `module:attribute` agents come from the current directory (appended: no shadowing)."""
    cwd = os.getcwd()
    if cwd not in sys.path and "" not in sys.path:
        sys.path.append(cwd)


@click.command("serve")
@click.option(
    "--host",
    default=DEFAULT_HOST,
    show_default=True,
    help="The address to listen on; beyond loopback only with an API key.",
)
@click.option(
    "--port",
    type=click.IntRange(0, 65535),
    default=DEFAULT_PORT,
    show_default=True,
    help="The TCP port; 0 picks a free one (the printed URL tells which).",
)
@click.option(
    "--journal",
    metavar="PATH",
    default=None,
    help="The SQLite journal. [default: $ORCHESTR8_JOURNAL, else ./.orchestr8/journal.db]",
)
@click.option(
    "--api-key",
    envvar=API_KEY_VARIABLE,
    show_envvar=True,
    default=None,
    metavar="KEY",
    help="Require `Authorization: Bearer KEY` on every route but /health. Prefer the "
    "environment variable: command lines are visible to other users.",
)
@click.option(
    "--max-body",
    type=click.IntRange(min=1),
    default=_MIB,
    show_default=True,
    metavar="BYTES",
    help="The largest request body accepted.",
)
@click.option(
    "--cancel-grace",
    type=GraceSeconds(),
    default=5.0,
    show_default=True,
    metavar="SECONDS",
    help="On shutdown, how long steps may finish before being forced.",
)
@click.option(
    "--secrets-file",
    metavar="FILE",
    help="A JSON object of secrets by name for ${secrets.NAME}; "
    "over $ORCHESTR8_SECRET_NAME variables.",
)
@sync_workers_option
async def serve_command(
    host: str,
    port: int,
    journal: str | None,
    api_key: str | None,
    max_body: int,
    cancel_grace: float,
    secrets_file: str | None,
    sync_workers: int | None,
) -> int:
    """Serve the REST API and live event WebSockets (see docs/rest.md).

    Prints the URL it listens on. SIGINT or SIGTERM stops it cleanly: no new connections, running
    executions cancelled (recorded as cancelled), the journal saved; exit code 0. Exit code 4 when
    asked to listen beyond loopback without an API key.
    """
    return await run_service(
        host=host,
        port=port,
        journal=journal,
        api_key=api_key or None,
        max_body=max_body,
        cancel_grace=cancel_grace,
        secrets_file=secrets_file,
        sync_workers=sync_workers,
    )


def register_serve(cli: click.Group) -> None:
    """Add the `serve` command to a click group (the `orchestr8` command line)."""
    cli.add_command(serve_command)


def main(args: list[str] | None = None) -> None:
    """Run `serve` alone, as `python -m orchestr8._serve`."""
    code: Any
    try:
        code = serve_command(
            args, prog_name="orchestr8 serve", standalone_mode=False, _anyio_backend="trio"
        )
    except click.ClickException as error:
        error.show()
        code = EXIT_INVALID
    except (click.Abort, KeyboardInterrupt):
        code = EXIT_INTERRUPTED
    sys.exit(code if isinstance(code, int) else EXIT_OK)


if __name__ == "__main__":
    main()
