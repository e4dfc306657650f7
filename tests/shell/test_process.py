"""The process shell: exit codes, the two-signal watcher and the error guard all commands share."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap

import pytest
import trio

from orchestr8 import (
    ExitCode,
    InsecureBindError,
    JournalError,
    guard_errors,
    open_shutdown_signals,
    watch_shutdown_signals,
)
from orchestr8._shell._process import (
    FORCED_STOP_SECONDS,
    exit_code_of_error,
    exit_despite_stragglers,
    only_error,
)


def test_exit_codes_are_the_documented_contract() -> None:
    """The codes are those of docs/cli.md: 0, 1, 2, 3, 4, 5 and 130."""
    assert {code.name: int(code) for code in ExitCode} == {
        "OK": 0,
        "INVALID": 1,
        "STEP_FAILED": 2,
        "TIMEOUT": 3,
        "SECURITY": 4,
        "WAITING": 5,
        "INTERRUPTED": 130,
    }


class _Exited(Exception):
    """Stands in for the process ending, so the watcher can be tested in process."""


async def _watch(signals: list[int], forced_blocks: bool = False) -> list[str]:
    """Feed `signals` to the watcher; return what it did, in order."""
    seen: list[str] = []
    send, receive = trio.open_memory_channel[int](len(signals))
    for signum in signals:
        send.send_nowait(signum)
    send.close()

    async def forced(name: str) -> None:
        seen.append(f"forced {name}")
        if forced_blocks:
            await trio.sleep_forever()

    def exit_process(code: int) -> None:
        seen.append(f"exit {code}")

    async with receive:
        await watch_shutdown_signals(
            receive,
            graceful=lambda name: seen.append(f"graceful {name}"),
            forced=forced,
            exit_process=exit_process,
        )
    return seen


async def test_first_signal_stops_gracefully_and_nothing_more() -> None:
    """One SIGINT or SIGTERM asks for an orderly stop; the process is not ended."""
    assert await _watch([signal.SIGTERM]) == ["graceful SIGTERM"]


async def test_second_signal_stops_at_once_with_130() -> None:
    """A second signal runs the forced stop, then exits 130 without waiting for the first."""
    seen = await _watch([signal.SIGINT, signal.SIGINT])
    assert seen == ["graceful SIGINT", "forced SIGINT", "exit 130"]


async def test_a_forced_stop_that_hangs_is_bounded(autojump_clock: trio.abc.Clock) -> None:
    """Saving state on a forced stop gets `FORCED_STOP_SECONDS`, then the process exits anyway."""
    start = trio.current_time()
    seen = await _watch([signal.SIGINT, signal.SIGTERM], forced_blocks=True)
    assert seen == ["graceful SIGINT", "forced SIGTERM", "exit 130"]
    assert trio.current_time() - start == pytest.approx(FORCED_STOP_SECONDS)


async def test_a_failing_save_does_not_hold_the_forced_exit_back() -> None:
    """An `Orchestr8Error` while saving (a broken journal) still ends in exit 130."""
    seen: list[int] = []
    send, receive = trio.open_memory_channel[int](2)
    send.send_nowait(signal.SIGINT)
    send.send_nowait(signal.SIGINT)
    send.close()

    async def forced(name: str) -> None:
        raise JournalError("disk full")

    await watch_shutdown_signals(
        receive, graceful=lambda name: None, forced=forced, exit_process=seen.append
    )
    assert seen == [ExitCode.INTERRUPTED]


async def test_the_watcher_reads_real_signals() -> None:
    """A real SIGINT sent to the process reaches the watcher, not a KeyboardInterrupt."""
    graceful = trio.Event()
    with open_shutdown_signals() as signals:
        async with trio.open_nursery() as nursery:

            async def forced(name: str) -> None:
                raise AssertionError("only one signal was sent")

            nursery.start_soon(
                lambda: watch_shutdown_signals(
                    signals, graceful=lambda name: graceful.set(), forced=forced
                )
            )
            os.kill(os.getpid(), signal.SIGINT)
            await graceful.wait()
            nursery.cancel_scope.cancel()


async def _watch_stragglers(
    only_stragglers: trio.Event, grace: float, seen: list[str], *, task_status: trio.TaskStatus
) -> None:
    """Run `exit_despite_stragglers`, noting in `seen` what it does, at what trio time."""
    task_status.started()

    def conclude() -> int:
        seen.append("conclude")
        return ExitCode.TIMEOUT

    await exit_despite_stragglers(
        only_stragglers.wait,
        grace,
        warn=lambda message: seen.append(f"warn at {trio.current_time():g}: {message}"),
        conclude=conclude,
        exit_process=lambda code: seen.append(f"exit {code}"),
    )


async def test_stragglers_get_the_grace_then_the_process_exits_with_its_code(
    autojump_clock: trio.abc.Clock,
) -> None:
    """Once only stragglers remain, after `grace`: a warning, the conclusion, exit with its code."""
    seen: list[str] = []
    only_stragglers = trio.Event()
    async with trio.open_nursery() as nursery:
        await nursery.start(_watch_stragglers, only_stragglers, 2.0, seen)
        await trio.sleep(10)
        assert seen == []
        only_stragglers.set()
    assert seen == [
        "warn at 12: steps that ignored cancellation still run after 2s; exiting without "
        "waiting for them (the journal holds how every execution ended)",
        "conclude",
        f"exit {ExitCode.TIMEOUT}",
    ]


async def test_a_shutdown_that_ends_within_the_grace_is_not_cut_short(
    autojump_clock: trio.abc.Clock,
) -> None:
    """Stragglers that return within the grace: the caller cancels the watch, nothing exits."""
    seen: list[str] = []
    only_stragglers = trio.Event()
    async with trio.open_nursery() as nursery:
        await nursery.start(_watch_stragglers, only_stragglers, 2.0, seen)
        only_stragglers.set()
        await trio.sleep(1.5)
        nursery.cancel_scope.cancel()
    assert seen == []


async def test_the_guard_turns_an_expected_error_into_one_line_and_exit_1() -> None:
    """An expected error is reported once and becomes exit code 1, with no traceback."""
    lines: list[str] = []

    async def action() -> int:
        raise JournalError("the journal is locked")

    code = await guard_errors(
        action, expected=lambda error: True, report=lambda error: lines.append(str(error))
    )
    assert code == ExitCode.INVALID
    assert lines == ["the journal is locked"]


async def test_the_guard_unwraps_nursery_groups() -> None:
    """An error raised in a task reaches the guard grouped; it is reported as itself."""
    lines: list[str] = []

    async def action() -> int:
        async def fail() -> None:
            raise InsecureBindError("refusing to listen on 0.0.0.0")

        async with trio.open_nursery() as nursery:
            nursery.start_soon(fail)
        return ExitCode.OK

    code = await guard_errors(
        action, expected=lambda error: True, report=lambda error: lines.append(str(error))
    )
    assert code == ExitCode.SECURITY
    assert lines == ["refusing to listen on 0.0.0.0"]


async def test_the_guard_lets_unexpected_errors_through() -> None:
    """A bug is not disguised as a configuration error: it propagates untouched."""

    async def action() -> int:
        raise KeyError("bug")

    with pytest.raises(KeyError, match="bug"):
        await guard_errors(action, expected=lambda error: False, report=lambda error: None)


async def test_the_guard_never_catches_cancellation() -> None:
    """`trio.Cancelled` passes through the guard, even when every error is expected."""
    reported: list[BaseException] = []
    with trio.CancelScope() as scope:
        scope.cancel()

        async def action() -> int:
            await trio.sleep(1)
            return ExitCode.OK

        await guard_errors(action, expected=lambda error: True, report=reported.append)
    assert scope.cancelled_caught
    assert reported == []


def test_only_error_unwraps_single_member_groups_only() -> None:
    """Nested one-member groups give their error; a group of several stays a group."""
    error = ValueError("x")
    assert only_error(ExceptionGroup("a", [ExceptionGroup("b", [error])])) is error
    several = ExceptionGroup("a", [ValueError("x"), KeyError("y")])
    assert only_error(several) is several


def test_an_insecure_bind_is_exit_4_and_anything_else_exit_1() -> None:
    """Refusing to listen beyond loopback without a key is the security code, 4."""
    assert exit_code_of_error(InsecureBindError("no")) == ExitCode.SECURITY
    assert exit_code_of_error(OSError("no")) == ExitCode.INVALID


def test_run_command_maps_usage_errors_to_1_and_interrupts_to_130() -> None:
    """A click command run as a process: its code, 1 for a usage error, 130 for Ctrl-C."""
    program = textwrap.dedent(
        """
        import sys
        import asyncclick as click
        from orchestr8 import run_command

        @click.command()
        @click.argument("what")
        async def command(what: str) -> int:
            if what == "interrupt":
                raise KeyboardInterrupt
            return int(what)

        run_command(command, sys.argv[1:])
        """
    )
    codes = [
        subprocess.run([sys.executable, "-c", program, *args], capture_output=True).returncode
        for args in (["0"], ["2"], [], ["interrupt"])
    ]
    assert codes == [0, 2, 1, 130]


def test_two_real_signals_end_a_real_process_with_130() -> None:
    """In a real process, SIGINT then SIGTERM: graceful, then forced, then exit 130 at once."""
    program = textwrap.dedent(
        """
        import os, signal, sys
        from functools import partial
        import asyncclick as click
        import trio
        from orchestr8 import open_shutdown_signals, run_command, watch_shutdown_signals

        @click.command()
        async def command() -> int:
            async def forced(name: str) -> None:
                sys.stderr.write(f"forced {name}\\n")

            with open_shutdown_signals() as signals:
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(partial(
                        watch_shutdown_signals,
                        signals,
                        graceful=lambda name: sys.stderr.write(f"graceful {name}\\n"),
                        forced=forced,
                    ))
                    os.kill(os.getpid(), signal.SIGINT)
                    os.kill(os.getpid(), signal.SIGTERM)
                    await trio.sleep_forever()
            return 0

        run_command(command, [])
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", program], capture_output=True, text=True, timeout=60
    )
    assert (done.returncode, done.stderr) == (130, "graceful SIGINT\nforced SIGTERM\n")
