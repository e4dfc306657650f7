"""Locks that keep two processes from running the same execution at the same time.

A runtime on a SQLite file journal locks every execution it runs, so `orchestr8 resume` started
while another process still runs that execution is refused instead of running its unfinished steps
a second time. The locks are POSIX byte-range locks (`fcntl.lockf`) on one file next to the journal
(`journal.db-locks`): the byte at an offset derived from the execution id stands for the execution.
The kernel drops a process's locks when it dies, even by SIGKILL, so a crashed run's executions can
be resumed at once. Locks are only ever tried (`LOCK_NB`), never waited for.

POSIX record locks belong to a process, not to a file descriptor, and closing any descriptor of the
file drops all of the process's locks on it. So a process opens each lock file once, shared by
every `ExecutionLocks` on it, and keeps the executions its runtimes hold there: a runtime is refused
what another runtime of the same process holds, too. A memory journal, or a platform without
`fcntl` (Windows), has no lock file: its runtimes exclude each other within the process only,
through a set of held executions kept per journal object.

`held_executions` asks, without taking anything, which executions some runtime holds: how
`inspect`, the REST API and the WebSocket tell a run that is going on from one whose process died
(the derived status `interrupted`, see `_liveness`).
"""

from __future__ import annotations

import errno
import hashlib
import os
import struct
import sys
import threading
import weakref
from collections import Counter
from collections.abc import Iterable
from pathlib import Path

import attrs

from .._errors import JournalError

if sys.platform != "win32":
    import fcntl

LOCK_FILE_SUFFIX = "-locks"
"""Appended to the journal's path to name its lock file."""

_OFFSET_BYTES = 5


def lock_file_path(journal_path: Path) -> Path:
    """The lock file of the journal at `journal_path`."""
    return Path(f"{journal_path}{LOCK_FILE_SUFFIX}")


def lock_offset(execution_id: str) -> int:
    """The byte of the lock file that stands for the execution: part of its id's SHA-256."""
    digest = hashlib.sha256(execution_id.encode()).digest()
    return int.from_bytes(digest[:_OFFSET_BYTES], "big")


@attrs.define(eq=False)
class _LockFile:
    """One lock file open in this process, with the number of holders of each byte it locked."""

    path: str
    descriptor: int
    users: int = 0
    holders: Counter[int] = attrs.Factory(Counter)


_open_files: dict[str, _LockFile] = {}
_registry_lock = threading.Lock()
_unfiled: weakref.WeakKeyDictionary[object, set[str]] = weakref.WeakKeyDictionary()
"""The executions held in this process per journal without a lock file (memory, no `fcntl`)."""


def _forget_after_fork() -> None:
    """A forked child holds none of its parent's locks: it starts with no lock file open."""
    global _registry_lock
    _open_files.clear()
    _unfiled.clear()
    _registry_lock = threading.Lock()


if sys.platform != "win32":
    os.register_at_fork(after_in_child=_forget_after_fork)


class ExecutionLocks:
    """The execution locks of one runtime; `acquire` is refused while another run holds one."""

    def __init__(self, journal_path: Path | None, *, journal: object | None = None) -> None:
        """Open the lock file of the journal at `journal_path` (None: a memory journal).

        Without a lock file, `journal` (the journal object) is what runtimes of this process
        share their held executions through; without it, this object excludes only itself.

        Raises:
            JournalError: the lock file cannot be opened.
        """
        self._file: _LockFile | None = None
        self._held: set[str] = set()
        self._closed = False
        if journal_path is not None and sys.platform != "win32":
            # By the journal's real path, so every name of one journal finds the same lock file.
            self._file = _open_lock_file(str(lock_file_path(journal_path.resolve())))
            self._unfiled: set[str] = set()
        elif journal is not None:
            with _registry_lock:
                self._unfiled = _unfiled.setdefault(journal, set())
        else:
            self._unfiled = set()

    @property
    def path(self) -> Path | None:
        """The lock file, or None when nothing is locked (memory journal, no `fcntl`)."""
        return None if self._file is None else Path(self._file.path)

    def acquire(self, execution_id: str) -> bool:
        """Lock the execution without waiting; False when another process or runtime holds it.

        Raises:
            JournalError: the lock file cannot be locked.
            RuntimeError: the locks are closed.
        """
        if self._closed:
            raise RuntimeError("the execution locks are closed")
        if execution_id in self._held:
            return False
        with _registry_lock:
            if self._file is None:
                if execution_id in self._unfiled:
                    return False
                self._unfiled.add(execution_id)
            else:
                offset = lock_offset(execution_id)
                # Held by another runtime of this process, or refused by another process.
                if self._file.holders[offset] or not _try_lock(self._file, offset):
                    return False
                self._file.holders[offset] += 1
        self._held.add(execution_id)
        return True

    def release(self, execution_id: str) -> None:
        """Unlock the execution, if this object holds its lock."""
        if execution_id not in self._held:
            return
        self._held.discard(execution_id)
        with _registry_lock:
            if self._file is None:
                self._unfiled.discard(execution_id)
            else:
                _release(self._file, lock_offset(execution_id))

    def close(self) -> None:
        """Release every lock held here and, once no `ExecutionLocks` uses it, close the file."""
        if self._closed:
            return
        self._closed = True
        file, self._file = self._file, None
        if file is None:
            with _registry_lock:
                self._unfiled.difference_update(self._held)
            self._held.clear()
            return
        with _registry_lock:
            for execution_id in self._held:
                _release(file, lock_offset(execution_id))
            file.users -= 1
            if file.users == 0:
                if _open_files.get(file.path) is file:
                    del _open_files[file.path]
                os.close(file.descriptor)
        self._held.clear()


def held_executions(journal_path: Path, execution_ids: Iterable[str]) -> frozenset[str]:
    """Which of the executions a runtime holds the lock of now, in this process or another.

    Nothing is locked to find out: another process's locks are read (`F_GETLK` on Linux) or, on
    other POSIX systems, tried and at once released. Without `fcntl` (Windows) every execution
    counts as held, as nothing tells.

    Raises:
        JournalError: the lock file exists but cannot be read.
    """
    wanted = frozenset(execution_ids)
    if sys.platform == "win32" or not wanted:
        return wanted
    path = str(lock_file_path(journal_path.resolve()))
    with _registry_lock:
        file = _open_files.get(path)
        if file is not None:
            return frozenset(
                execution_id
                for execution_id in wanted
                if file.holders[lock_offset(execution_id)]
                or _held_elsewhere(file.descriptor, path, lock_offset(execution_id))
            )
        # This process holds no lock on the file (it is not open here), so closing this
        # descriptor drops none; the registry lock keeps other threads from taking one meanwhile.
        try:
            descriptor = os.open(path, os.O_RDWR)
        except FileNotFoundError:
            return frozenset()  # no runtime ever locked an execution of this journal
        except OSError as error:
            raise JournalError(
                f"cannot open the execution lock file {path}: {error.strerror or error}"
            ) from None
        try:
            return frozenset(
                execution_id
                for execution_id in wanted
                if _held_elsewhere(descriptor, path, lock_offset(execution_id))
            )
        finally:
            os.close(descriptor)


_FLOCK_LINUX = "hhqqi4x"
"""`struct flock` on 64-bit Linux: type, whence, start, length, pid (and padding)."""


def _held_elsewhere(descriptor: int, path: str, offset: int) -> bool:
    """Whether another process locks the byte. Hold the registry lock."""
    try:
        if sys.platform == "linux" and struct.calcsize("P") == 8:
            request = struct.pack(_FLOCK_LINUX, fcntl.F_WRLCK, os.SEEK_SET, offset, 1, 0)
            answer = fcntl.fcntl(descriptor, fcntl.F_GETLK, request)
            lock_type: int = struct.unpack(_FLOCK_LINUX, answer)[0]
            return lock_type != fcntl.F_UNLCK
        fcntl.lockf(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB, 1, offset, os.SEEK_SET)
    except OSError as error:
        if error.errno in (errno.EACCES, errno.EAGAIN):
            return True
        raise JournalError(f"cannot read the locks of {path}: {error.strerror or error}") from None
    fcntl.lockf(descriptor, fcntl.LOCK_UN, 1, offset, os.SEEK_SET)
    return False


def _open_lock_file(path: str) -> _LockFile:
    """The process's one open descriptor of the lock file at `path`, opening it the first time."""
    with _registry_lock:
        file = _open_files.get(path)
        if file is None:
            try:
                descriptor = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
            except OSError as error:
                raise JournalError(
                    f"cannot open the execution lock file {path}: {error.strerror or error}"
                ) from None
            file = _open_files[path] = _LockFile(path, descriptor)
        file.users += 1
        return file


def _try_lock(file: _LockFile, offset: int) -> bool:
    """Lock one byte without waiting; False if another process holds it. Hold the registry lock."""
    try:
        fcntl.lockf(file.descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB, 1, offset, os.SEEK_SET)
    except OSError as error:
        if error.errno in (errno.EACCES, errno.EAGAIN):
            return False
        raise JournalError(f"cannot lock {file.path}: {error.strerror or error}") from None
    return True


def _release(file: _LockFile, offset: int) -> None:
    """Drop one holder of the byte, unlocking it after the last. Hold the registry lock."""
    file.holders[offset] -= 1
    if file.holders[offset] == 0:
        del file.holders[offset]
        fcntl.lockf(file.descriptor, fcntl.LOCK_UN, 1, offset, os.SEEK_SET)
