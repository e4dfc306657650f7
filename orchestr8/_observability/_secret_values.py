"""The secret values a redactor knows, in two lifetimes: for the life of the process, or leased.

`SecretValues.add` registers a value for the life of the process (the service API key, secrets
from the environment). `SecretValues.lease` registers an execution's secret inputs, config
values and ``${secrets.NAME}`` values until the returned `SecretLease` is released (when the
execution ends). Leases are counted, so the same value leased twice stays known until both are
released, and the set of known values stays as small as what runs: every string of every event
is checked against each known value (`_redaction`).

The walkers read `SecretValues.current`, a tuple replaced whole under the lock and never
mutated, so reading it needs no lock.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from types import TracebackType
from typing import Final

__all__ = ["MIN_SECRET", "SecretLease", "SecretValues"]

MIN_SECRET: Final = 4
"""Explicitly registered values shorter than this are refused: they would mangle ordinary text."""


class SecretValues:
    """The values to replace wherever they occur: permanent ones plus those leased now."""

    def __init__(self) -> None:
        """Know no value yet."""
        self.current: tuple[str, ...] = ()
        """Every value known now, longest first (so one containing another is replaced whole)."""
        self._permanent: set[str] = set()
        self._leased: dict[str, int] = {}
        self._lock = threading.Lock()

    def add(self, value: str) -> bool:
        """Know `value` for the life of the process; False if it is too short."""
        value = value.strip()
        if len(value) < MIN_SECRET:
            return False
        with self._lock:
            if value not in self._permanent:
                self._permanent.add(value)
                self._publish()
        return True

    def lease(self, values: Iterable[str]) -> SecretLease:
        """Know `values` until the returned lease is released (values too short are skipped)."""
        usable = tuple({value.strip() for value in values if len(value.strip()) >= MIN_SECRET})
        if usable:
            with self._lock:
                for value in usable:
                    self._leased[value] = self._leased.get(value, 0) + 1
                self._publish()
        return SecretLease(self, usable)

    def release(self, values: tuple[str, ...]) -> None:
        """Give back one lease's hold on `values`; those no longer held are forgotten."""
        with self._lock:
            for value in values:
                count = self._leased[value] - 1
                if count:
                    self._leased[value] = count
                else:
                    del self._leased[value]
            self._publish()

    def _publish(self) -> None:
        """Rebuild `current` (under the lock): replaced whole, never mutated."""
        known = self._permanent.union(self._leased)
        if len(known) != len(self.current) or not known.issuperset(self.current):
            self.current = tuple(sorted(known, key=len, reverse=True))


class SecretLease:
    """An execution's hold on secret values (`Redactor.lease`); `release` ends it, once."""

    __slots__ = ("_owner", "_values")

    def __init__(self, owner: SecretValues, values: tuple[str, ...]) -> None:
        """Hold `values` in `owner` (which has counted them already)."""
        self._owner: SecretValues | None = owner
        self._values = values

    @property
    def values(self) -> tuple[str, ...]:
        """The values this lease holds (empty once released)."""
        return self._values if self._owner is not None else ()

    def release(self) -> None:
        """Stop holding the values; those no other lease holds are forgotten."""
        owner, self._owner = self._owner, None
        if owner is not None and self._values:
            owner.release(self._values)

    def __enter__(self) -> SecretLease:
        """Use the lease as a context manager: released on leaving the block."""
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        """Release the lease."""
        self.release()
