"""Importing agent code named by a ``module:attribute`` path, and saying why it failed.

Workflows name agents (and `python` callables) by import path; importing runs the module's code,
which may fail in any way, even by trying to end the process (`sys.exit`, `raise
KeyboardInterrupt`). `import_object` turns each failure into an `ImportError` naming what was
raised and where, and lets only a real Ctrl-C and cancellation through, so `validate`, `run` and
the REST API report a bad module instead of dying with it.
"""

from __future__ import annotations

import contextlib
import difflib
import importlib
import signal
import threading
import traceback
from collections.abc import Iterator
from types import FrameType
from typing import Any

import trio

__all__ = ["import_object"]


def import_object(path: str) -> Any:
    """Import the object named by a ``module:attribute`` path (the attribute may be dotted).

    Importing runs the module's code, which may fail in any way: whatever it raises, `SystemExit`
    and `KeyboardInterrupt` included, becomes an `ImportError` naming the exception, its message
    and where it was raised (a `SyntaxError`'s own file and line), so a caller can report why
    instead of ending the process. Only a real Ctrl-C and cancellation pass through: a SIGINT that
    arrives during the import is recorded (`_watch_interrupts`), and a `KeyboardInterrupt` goes on
    only if one did.

    Raises:
        ValueError: the path is not of the form ``module:attribute``.
        ModuleNotFoundError: there is no such module (nor its package).
        ImportError: the module was found but importing it failed (the original error is the cause).
        AttributeError: the module has no such attribute.
    """
    module_name, colon, attribute = path.partition(":")
    if not colon or not module_name or not attribute or ":" in attribute:
        raise ValueError(f"{path!r} is not a 'module:attribute' path")
    try:
        with _watch_interrupts() as interrupted:
            target: Any = importlib.import_module(module_name)
    except trio.Cancelled:
        raise
    except KeyboardInterrupt as error:
        if interrupted:
            raise
        raise ImportError(_import_failure(module_name, error)) from error
    except ModuleNotFoundError as error:
        if error.name is not None and (
            module_name == error.name or module_name.startswith(error.name + ".")
        ):
            raise ModuleNotFoundError(f"no module named {error.name!r}", name=error.name) from None
        raise ImportError(_import_failure(module_name, error)) from error
    except BaseException as error:
        raise ImportError(_import_failure(module_name, error)) from error
    parts = attribute.split(".")
    for index, part in enumerate(parts):
        if not hasattr(target, part):
            owner = f"module {module_name!r}"
            if index:
                owner = repr(f"{module_name}:{'.'.join(parts[:index])}")
            public = [name for name in dir(target) if not name.startswith("_")]
            close = difflib.get_close_matches(part, public, n=3)
            hint = f" (did you mean {' or '.join(map(repr, close))}?)" if close else ""
            raise AttributeError(f"{owner} has no attribute {part!r}{hint}")
        target = getattr(target, part)
    return target


@contextlib.contextmanager
def _watch_interrupts() -> Iterator[list[int]]:
    """Record the SIGINTs that arrive in the block, still handling them as before.

    A `KeyboardInterrupt` that module code raises looks just like the one Python's default
    handler raises for the user's key (neither leaves a frame of its own), so the block runs
    under a handler that notes the signal, then calls the one it replaces (trio's, a signal
    receiver's or Python's). The yielded list is non-empty once a real SIGINT came. Signals
    reach only the main thread: elsewhere, and when SIGINT is ignored or left to the system's
    default (neither raises `KeyboardInterrupt`), nothing needs replacing and nothing is noted.
    """
    received: list[int] = []
    previous = (
        signal.getsignal(signal.SIGINT)
        if threading.current_thread() is threading.main_thread()
        else None
    )
    if not callable(previous):
        yield received
        return
    forward = previous

    def note(signum: int, frame: FrameType | None) -> Any:
        received.append(signum)
        return forward(signum, frame)

    signal.signal(signal.SIGINT, note)
    try:
        yield received
    finally:
        signal.signal(signal.SIGINT, previous)


def _import_failure(module_name: str, error: BaseException) -> str:
    """Why importing `module_name` failed: the exception, its message and its file:line."""
    message = str(error.msg if isinstance(error, SyntaxError) else error)
    described = f"{type(error).__name__}: {message}" if message else type(error).__name__
    if isinstance(error, SyntaxError) and error.filename:
        where: str | None = f"{error.filename}:{error.lineno}"
    else:
        frames = traceback.extract_tb(error.__traceback__)
        where = f"{frames[-1].filename}:{frames[-1].lineno}" if frames else None
    located = f" ({where})" if where else ""
    return f"importing module {module_name!r} raised {described}{located}"
