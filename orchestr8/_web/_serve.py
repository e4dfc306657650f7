"""Serving the API: Hypercorn inside a runtime's scope, an orderly shutdown, and `orchestr8 serve`.

`serve(runtime, ...)` runs the app of `_app` with Hypercorn until its shutdown trigger
returns, then shuts down in order: refuse new executions and stop accepting connections; optionally
cancel the runtime's executions (they end `cancelled`, recorded, and their event sockets see it);
close the event sockets still open (1001, `reconnect with after=N`); let Hypercorn finish the
requests in flight. Start it with `nursery.start` to get the URLs it listens on (port 0 picks a free
port). Executions live in the runtime, so they outlive any request that started them.

`run_service` is what the `serve` command (`_command`) runs: signals, exit codes and errors
through the process shell (`_shell/_process.py`). Heavy imports (Quart, Hypercorn) happen when it
serves, so `orchestr8 --help` stays fast.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Awaitable, Callable
from functools import partial
from typing import TYPE_CHECKING, Final, TextIO

import trio

from .._errors import InsecureBindError, Orchestr8Error
from .._shell._listening import check_bind as _check_bind
from .._shell._listening import is_loopback, serve_app
from .._shell._process import (
    ExitCode,
    exit_despite_stragglers,
    guard_errors,
    open_shutdown_signals,
    watch_shutdown_signals,
)
from ._open_browser import dashboard_url, open_in_browser

if TYPE_CHECKING:
    from .._execution._runtime import Runtime
    from .._journal._journal import Journal
    from .._shell._options import JournalLocation

DEFAULT_HOST: Final = "127.0.0.1"
DEFAULT_PORT: Final = 8080
API_KEY_VARIABLE: Final = "ORCHESTR8_API_KEY"

MIB: Final = 1024 * 1024
"""A mebibyte: the default largest request body."""

#: After shutting down, how long requests still in flight may take before connections are cut.
_LINGER: Final = 1.0


__all__ = [
    "InsecureBindError",
    "check_bind",
    "is_loopback",
    "run_service",
    "serve",
]


def check_bind(host: str, api_key: str | None) -> None:
    """Refuse to expose the API beyond this machine without an API key.

    Raises:
        InsecureBindError: `host` is not loopback and there is no key.
    """
    _check_bind(
        host,
        api_key,
        f"refusing to listen on {host} without an API key: anyone who can reach it could "
        f"run workflows. Set {API_KEY_VARIABLE} (or --api-key), or listen on 127.0.0.1",
    )


async def serve(
    runtime: Runtime,
    *,
    host: str = DEFAULT_HOST,
    port: int = DEFAULT_PORT,
    api_key: str | None = None,
    max_body: int = MIB,
    shutdown_trigger: Callable[[], Awaitable[object]] | None = None,
    cancel_executions: bool = False,
    adopt_waiting: bool = False,
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
            (up to its cancel grace and a little more), so event sockets see them end; those
            blocked only on approval gates are suspended (left `waiting`) instead.
        adopt_waiting: once listening, and before reporting it, resume the journal's `waiting`
            executions that no process runs, so their gates' deadlines run and answers apply
            (`_execution/_adoption.py`); never on a journal workers run (`_worker_journal`).
        task_status: `nursery.start` gets the list of URLs the server listens on.

    Raises:
        InsecureBindError: `host` is not loopback and there is no key.
        OSError: the address cannot be listened on.
    """
    from .._execution._adoption import adopt_waiting as adopt_waiting_executions
    from .._execution._adoption import leave_executions
    from ._app import create_app
    from ._event_socket import MAX_CLIENT_MESSAGE
    from ._worker_journal import prepare_followers, workers_run

    check_bind(host, api_key)
    app = create_app(runtime, api_key=api_key, max_body=max_body)
    stop = trio.Event()
    stopped = trio.Event()

    async def run_hypercorn(task_status: trio.TaskStatus[list[str]]) -> None:
        await serve_app(
            app,
            host=host,
            port=port,
            error_log=logging.getLogger("orchestr8.http"),
            graceful_timeout=runtime.cancel_grace + 5.0,
            shutdown_trigger=stop.wait,
            # Event sockets only send: what a client sends is read and dropped, so keep it small.
            websocket_max_message_size=MAX_CLIENT_MESSAGE,
            task_status=task_status,
        )
        stopped.set()

    prepare_followers(runtime.journal)
    async with trio.open_nursery() as nursery:
        urls = await nursery.start(run_hypercorn)
        if adopt_waiting and not workers_run(runtime.journal):
            await adopt_waiting_executions(runtime)
        task_status.started(urls)
        if shutdown_trigger is None:
            await trio.sleep_forever()
        else:
            await shutdown_trigger()
        app.start_draining()
        stop.set()
        if cancel_executions:
            await leave_executions(runtime, runtime.handles(), "the server is shutting down")
            with trio.move_on_after(runtime.cancel_grace + 2.0):
                await runtime.wait_all()
        app.close_event_streams()
        # Hypercorn would keep idle keep-alive connections until their timeout; by now every
        # event stream is closed and requests had their time, so what remains is cut.
        with trio.move_on_after(_LINGER):
            await stopped.wait()
        nursery.cancel_scope.cancel()


async def run_service(
    *,
    host: str = DEFAULT_HOST,
    port: int = DEFAULT_PORT,
    journal: str | None = None,
    api_key: str | None = None,
    max_body: int = MIB,
    cancel_grace: float = 5.0,
    out: TextIO = sys.stdout,
    err: TextIO = sys.stderr,
    secrets_file: str | None = None,
    sync_workers: int | None = None,
    open_browser: bool = False,
    providers_file: str | None = None,
) -> int:
    """Run the service the way `orchestr8 serve` does and return its exit code.

    `${secrets.NAME}` references are resolved from `secrets_file` (a JSON object of strings),
    then from `ORCHESTR8_SECRET_NAME` environment variables. `providers_file` is the provider
    config file (None: the one `ORCHESTR8_PROVIDERS` names, if any). `sync_workers` bounds the
    threads of blocking agent code (None: the runtime's default).

    Prints `orchestr8 serving on URL` on `out` once listening, then with `open_browser` opens
    the dashboard (`URL/ui/`) in a web browser; stops on SIGINT or SIGTERM (exit
    0; a second signal exits 130 at once, after saving the journal). Exit 4 when asked to listen
    beyond loopback without a key, 1 for other configuration problems (printed as `error: ...`).
    """

    async def action() -> int:
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
            open_browser,
            providers_file,
        )

    def report(error: BaseException) -> None:
        message = error.strerror if isinstance(error, OSError) and error.strerror else error
        err.write(f"error: {message}\n")

    return await guard_errors(action, expected=_expected, report=report)


def _expected(error: BaseException) -> bool:
    """Whether `error` is a configuration problem `serve` reports as one line (exit 1 or 4)."""
    return isinstance(error, Orchestr8Error | OSError | ValueError)


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
    open_browser: bool = False,
    providers_file: str | None = None,
) -> int:
    from .._agents._sync_calls import DEFAULT_SYNC_WORKERS
    from .._errors import JournalError
    from .._execution._runtime import open_runtime
    from .._execution._secrets import Secrets
    from .._journal._recovery import keep_journal_working
    from .._shell._options import describe_journal

    if api_key is not None and not (api_key.isascii() and api_key.isprintable()):
        raise ValueError("the API key must be printable ASCII")
    location = _journal_location(journal)
    secrets = None if secrets_file is None else Secrets.from_file(secrets_file)
    _allow_local_imports()
    if not logging.getLogger().handlers:
        logging.basicConfig(
            level=logging.WARNING,
            stream=err,
            format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        )
    stop = trio.Event()

    def shut_down(signal_name: str) -> None:
        err.write(
            f"{signal_name}: shutting down (running executions are cancelled, those waiting "
            "only on approval gates stay waiting); signal again to stop at once\n"
        )
        err.flush()
        stop.set()

    with open_shutdown_signals() as signals:
        # The signal watcher and the stragglers' deadline outlive the runtime: leaving it may
        # wait for agents that ignored cancellation, and signals still count then.
        async with trio.open_nursery() as shell:
            try:
                async with (
                    open_runtime(
                        journal=location,
                        cancel_grace=cancel_grace,
                        secrets=secrets,
                        sync_workers=sync_workers or DEFAULT_SYNC_WORKERS,
                        providers=providers_file,
                    ) as runtime,
                    trio.open_nursery() as nursery,
                ):
                    shell.start_soon(
                        partial(
                            watch_shutdown_signals,
                            signals,
                            graceful=shut_down,
                            forced=partial(_stop_now, runtime.journal, err),
                        )
                    )
                    shell.start_soon(
                        partial(
                            exit_despite_stragglers,
                            runtime.wait_only_stragglers,
                            cancel_grace,
                            warn=partial(_warn, err),
                            conclude=partial(_stopped, err),
                        )
                    )
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
                            adopt_waiting=True,
                            task_status=task_status,
                        )
                        nursery.cancel_scope.cancel()

                    urls: list[str] = await nursery.start(serve_then_stop)
                    for url in urls:
                        out.write(f"orchestr8 serving on {url}\n")
                    out.flush()
                    if open_browser:
                        open_in_browser(dashboard_url(urls[0]), err)
                    auth = "API key required" if api_key else "no API key (loopback only)"
                    err.write(f"journal: {describe_journal(location)}; {auth}; stop with Ctrl-C\n")
                    err.flush()
            except JournalError as error:
                if not stop.is_set():
                    raise
                # Asked to stop while the journal is failed: that was logged when it happened
                # and /health said so; what was journaled is intact. An orderly stop all the same.
                err.write(f"stopped: {error}; the executions it stopped stay resumable\n")
                shell.cancel_scope.cancel()
                return ExitCode.OK
            shell.cancel_scope.cancel()
    return _stopped(err)


def _warn(err: TextIO, message: str) -> None:
    """Write a warning line to the server's stderr."""
    err.write(f"warning: {message}\n")


def _stopped(err: TextIO) -> int:
    """Say the server stopped in order; its exit code, 0."""
    err.write("stopped: running executions were cancelled and the journal is saved\n")
    return ExitCode.OK


async def _stop_now(journal: Journal, err: TextIO, signal_name: str) -> None:
    """The second SIGINT/SIGTERM: say so and save the journal; the shell then exits 130."""
    err.write(f"{signal_name} again: stopping now\n")
    err.flush()
    await journal.flush()


def _journal_location(journal: str | None) -> JournalLocation:
    """The journal `orchestr8 run` would use (`_shell._options.journal_location`), made if missing.

    Raises:
        ValueError: `--journal` is empty (or only blanks).
        JournalError: the PostgreSQL URL is malformed (or psycopg is not installed).
    """
    from .._shell._options import CommandError, journal_location

    try:
        return journal_location(journal)
    except CommandError as error:
        raise ValueError(str(error)) from None


def _allow_local_imports() -> None:
    """Let `module:attribute` agents come from the current directory (appended: no shadowing)."""
    cwd = os.getcwd()
    if cwd not in sys.path and "" not in sys.path:
        sys.path.append(cwd)
