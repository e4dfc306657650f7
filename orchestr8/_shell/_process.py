"""The process shell: exit codes, the signal watcher and the error guard every command shares.

`orchestr8 run`, `resume`, `serve` and `agent serve` are long-running processes with one
contract (see `docs/cli.md`): an `ExitCode` says how they ended; the first SIGINT or SIGTERM
stops them gracefully and a second one at once (`watch_shutdown_signals`); once only agents that
ignored cancellation keep them alive, they exit within the grace anyway (`exit_despite_stragglers`);
an expected error is
one line on stderr and an exit code, never a traceback (`guard_errors`), and nursery groups
around it are unwrapped first. `run_command` runs a click command as a process under that
contract. The commands decide what "graceful" means for them; the shell decides the rest.
"""

from __future__ import annotations

import contextlib
import enum
import os
import signal
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Final, NoReturn

import trio

from .._errors import Orchestr8Error
from ._listening import InsecureBindError

if TYPE_CHECKING:
    import asyncclick as click

__all__ = [
    "FORCED_STOP_SECONDS",
    "SHUTDOWN_SIGNALS",
    "ExitCode",
    "exit_code_of_error",
    "exit_despite_stragglers",
    "guard_errors",
    "only_error",
    "open_shutdown_signals",
    "run_command",
    "watch_shutdown_signals",
]


class ExitCode(enum.IntEnum):
    """How an orchestr8 process ended: its exit status (the contract of `docs/cli.md`)."""

    OK = 0
    """Succeeded (a server: stopped cleanly)."""
    INVALID = 1
    """A configuration, validation or usage error: nothing ran."""
    STEP_FAILED = 2
    """A step failed (a step's own timeout included)."""
    TIMEOUT = 3
    """The execution ran past its own timeout."""
    SECURITY = 4
    """Refused for safety: asked to listen beyond loopback without an API key."""
    WAITING = 5
    """Stopped with approval gates open (status `waiting`): answer them, then resume it."""
    INTERRUPTED = 130
    """Interrupted by SIGINT or SIGTERM (128 + SIGINT, as shells report it)."""


SHUTDOWN_SIGNALS: Final = (signal.SIGINT, signal.SIGTERM)
"""The signals that stop a process: the first one gracefully, the second at once."""

FORCED_STOP_SECONDS: Final = 1.0
"""How long a forced stop may spend saving state (the journal) before the process exits."""


def open_shutdown_signals() -> contextlib.AbstractContextManager[AsyncIterator[int]]:
    """Catch SIGINT and SIGTERM from now on; read them with `watch_shutdown_signals`.

    Open it before any long setup: a signal that arrives meanwhile waits to be read instead of
    killing the process with a traceback.
    """
    return trio.open_signal_receiver(*SHUTDOWN_SIGNALS)


def _exit_at_once(code: int) -> NoReturn:
    """End the process now, without unwinding (what a second signal asks for)."""
    os._exit(code)


async def watch_shutdown_signals(
    signals: AsyncIterator[int],
    *,
    graceful: Callable[[str], object],
    forced: Callable[[str], Awaitable[object]],
    exit_process: Callable[[int], object] = _exit_at_once,
) -> None:
    """First signal: `graceful(name)`. Second: `forced(name)`, then exit 130 at once.

    `graceful` starts an orderly stop and returns (the command then ends on its own); `forced`
    says so and saves what it can, within `FORCED_STOP_SECONDS` (an `Orchestr8Error` from a
    failing save does not hold the exit back). Output is flushed, then `exit_process(130)`
    ends the process without unwinding (tests pass their own and see the watcher return).
    """
    stopping = False
    async for signum in signals:
        name = signal.Signals(signum).name
        if not stopping:
            stopping = True
            graceful(name)
            continue
        with trio.move_on_after(FORCED_STOP_SECONDS), contextlib.suppress(Orchestr8Error):
            await forced(name)
        _flush_output()
        exit_process(ExitCode.INTERRUPTED)
        return


STRAGGLERS_WARNING: Final = (
    "steps that ignored cancellation still run after {grace:g}s; exiting without waiting "
    "for them (the journal holds how every execution ended)"
)
"""What `exit_despite_stragglers` warns before it ends the process."""


async def exit_despite_stragglers(
    only_stragglers: Callable[[], Awaitable[object]],
    grace: float,
    *,
    warn: Callable[[str], object],
    conclude: Callable[[], int],
    exit_process: Callable[[int], object] = _exit_at_once,
) -> None:
    """Once `only_stragglers` returns, give the process `grace` seconds to end, then end it.

    Run it beside a runtime's shutdown (`Runtime.wait_only_stragglers`): every execution has
    ended and is journaled, and only tasks of agents that ignored cancellation are awaited, maybe
    forever (trio cannot abandon a task). When the grace runs out, `warn` says so, `conclude`
    writes what the command still had to and returns its exit code, output is flushed and
    `exit_process` ends the process with that code without unwinding. The caller cancels this
    watch when the shutdown finishes first.
    """
    await only_stragglers()
    await trio.sleep(grace)
    warn(STRAGGLERS_WARNING.format(grace=grace))
    code = conclude()
    _flush_output()
    exit_process(code)


def _flush_output() -> None:
    """Write out what stdout and stderr hold, before the process ends without unwinding."""
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError):
            stream.flush()


def only_error(group: BaseExceptionGroup[BaseException]) -> BaseException:
    """The one error inside nested single-member groups (nurseries wrap what they propagate)."""
    error: BaseException = group
    while isinstance(error, BaseExceptionGroup) and len(error.exceptions) == 1:
        error = error.exceptions[0]
    return error


def exit_code_of_error(error: BaseException) -> ExitCode:
    """The exit code of an expected error: 4 for an insecure bind, else 1 (configuration)."""
    return ExitCode.SECURITY if isinstance(error, InsecureBindError) else ExitCode.INVALID


async def guard_errors(
    action: Callable[[], Awaitable[int]],
    *,
    expected: Callable[[BaseException], bool],
    report: Callable[[BaseException], None],
) -> int:
    """Run a command's body; an `expected` error is `report`ed and becomes its exit code.

    Single-member exception groups are unwrapped first. Anything else (a bug, `trio.Cancelled`,
    `KeyboardInterrupt`) propagates untouched.
    """
    try:
        return await action()
    except BaseExceptionGroup as group:
        error = only_error(group)
        if not expected(error):
            raise
    except Exception as caught:
        if not expected(caught):
            raise
        error = caught
    report(error)
    return exit_code_of_error(error)


def run_command(
    command: click.Command,
    args: Sequence[str] | None = None,
    *,
    prog_name: str | None = None,
    show_usage_error: Callable[[click.ClickException], None] | None = None,
) -> NoReturn:
    """Run a click command on trio as the whole process, and exit with its code.

    The command returns its exit code. A usage error is shown (by `show_usage_error`, else as
    click does) and exits 1, not click's usual 2, so that 2 always means a step failed; Ctrl-C
    that reaches here (from click's prompt or from a task, grouped with what it cut) exits 130.
    """
    import asyncclick as click

    code: object
    try:
        code = command(
            None if args is None else list(args),
            prog_name=prog_name,
            standalone_mode=False,
            _anyio_backend="trio",
        )
    except click.ClickException as error:
        (show_usage_error or click.ClickException.show)(error)
        code = ExitCode.INVALID
    except (click.Abort, KeyboardInterrupt):
        code = ExitCode.INTERRUPTED
    except BaseExceptionGroup as group:
        if group.subgroup(KeyboardInterrupt) is None:
            raise
        code = ExitCode.INTERRUPTED
    sys.exit(int(code) if isinstance(code, int) else ExitCode.OK)
