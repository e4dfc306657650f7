"""Logging: text or JSON lines, the ids of the execution on every line, secrets redacted.

`configure_logging` installs one handler on the root logger (so the libraries agents use log the
same way), formatted by `TextFormatter` or `JsonFormatter`. Both add the ids of the execution a
line belongs to: `execution_id`, `step_id`, `attempt` and `correlation_id`, taken from the record
(the `AgentContext` logger sets them) or else from the *log context*, a context variable the engine
binds with `log_context(...)` — trio copies it into every task a scope spawns. Every string a
formatter emits passes through the redactor (`_redaction`).

A JSON line::

    {"time": "2025-05-01T09:30:12.345Z", "level": "WARNING", "message": "attempt 1 failed",
     "logger": "orchestr8.engine", "execution_id": "3f2a", "step_id": "search", "attempt": 1,
     "correlation_id": "req-17"}
"""

from __future__ import annotations

import contextvars
import json
import logging
import os
import sys
import time
from collections.abc import Mapping
from types import MappingProxyType, TracebackType
from typing import Any, Final, Literal, TextIO

from ._redaction import Redactor, default_redactor

__all__ = [
    "CONTEXT_FIELDS",
    "JsonFormatter",
    "LogContext",
    "TextFormatter",
    "bind_log_context",
    "configure_logging",
    "current_log_context",
    "installed_handler",
    "log_context",
    "remove_logging_handler",
    "reset_log_context",
    "resolve_log_settings",
]

LogFormat = Literal["text", "json"]

LOG_FORMAT_VARIABLE: Final = "ORCHESTR8_LOG_FORMAT"
LOG_LEVEL_VARIABLE: Final = "ORCHESTR8_LOG_LEVEL"
LOG_FORMATS: Final = ("text", "json")
LOG_LEVELS: Final = ("debug", "info", "warning", "error", "critical")
DEFAULT_FORMAT: Final = "text"
DEFAULT_LEVEL: Final = "warning"

CONTEXT_FIELDS: Final = ("execution_id", "step_id", "attempt", "correlation_id")
"""The ids every line carries when they apply, in this order, after the four standard fields."""

_EMPTY: Mapping[str, Any] = MappingProxyType({})
_context: contextvars.ContextVar[Mapping[str, Any]] = contextvars.ContextVar(
    "orchestr8_log_context", default=_EMPTY
)
_STANDARD_ATTRIBUTES = frozenset(
    {*logging.LogRecord("", 0, "", 0, "", None, None).__dict__, "message", "asctime", "taskName"}
)
_HANDLER_MARK = "_orchestr8_handler"


class LogContext:
    """A context manager that binds ids to the log context until it exits (see `log_context`)."""

    __slots__ = ("_ids", "_token")

    def __init__(self, ids: Mapping[str, Any]) -> None:
        """Bind `ids` (None values are left out) on entry."""
        self._ids = ids
        self._token: contextvars.Token[Mapping[str, Any]] | None = None

    def __enter__(self) -> Mapping[str, Any]:
        """Bind the ids over the current ones; return the whole log context now in force."""
        self._token = bind_log_context(self._ids)
        return _context.get()

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        """Restore the log context as it was on entry."""
        if self._token is not None:
            _context.reset(self._token)
            self._token = None


def log_context(**ids: Any) -> LogContext:
    """Bind ids (`execution_id=`, `step_id=`, `attempt=`, `correlation_id=`, ...) to log lines.

    Use it as ``with log_context(execution_id=...):``; lines logged inside, and in tasks spawned
    inside, carry the ids unless the record sets its own. None values are ignored.
    """
    return LogContext({key: value for key, value in ids.items() if value is not None})


def current_log_context() -> Mapping[str, Any]:
    """The ids bound to the log context of the current task (a read-only mapping)."""
    return _context.get()


def bind_log_context(ids: Mapping[str, Any]) -> contextvars.Token[Mapping[str, Any]]:
    """Bind `ids` over the current log context; pass the token to `reset_log_context` after."""
    return _context.set({**_context.get(), **ids})


def reset_log_context(token: contextvars.Token[Mapping[str, Any]]) -> None:
    """Restore the log context a `bind_log_context` call replaced (in the same task)."""
    _context.reset(token)


def utc_time(created: float) -> str:
    """Format a record's `created` time as UTC ISO-8601 with milliseconds and `Z`."""
    seconds = int(created)
    millis = min(999, int((created - seconds) * 1000))
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + f".{millis:03d}Z"


class _RedactingFormatter(logging.Formatter):
    """Shared parts: the redactor, the ids of a record, its extras, its exception text."""

    def __init__(self, redactor: Redactor | None = None) -> None:
        """Redact with `redactor` (default: the process-wide one, looked up per line)."""
        super().__init__()
        self._redactor = redactor

    @property
    def redactor(self) -> Redactor:
        """The redactor in use."""
        return self._redactor if self._redactor is not None else default_redactor()

    @staticmethod
    def fields(record: logging.LogRecord) -> dict[str, Any]:
        """The record's ids and extras: its own attributes first, then the log context."""
        fields = {
            key: value
            for key, value in record.__dict__.items()
            if key not in _STANDARD_ATTRIBUTES and not key.startswith("_")
        }
        for key, value in _context.get().items():
            fields.setdefault(key, value)
        return fields

    def exception_text(self, record: logging.LogRecord) -> str | None:
        """The formatted exception and stack of the record, if any."""
        parts = []
        if record.exc_info:
            parts.append(self.formatException(record.exc_info))
        elif record.exc_text:
            parts.append(record.exc_text)
        if record.stack_info:
            parts.append(self.formatStack(record.stack_info))
        return "\n".join(parts) if parts else None


class JsonFormatter(_RedactingFormatter):
    """One JSON object per line: time, level, message, logger, the ids, extras, exception."""

    def format(self, record: logging.LogRecord) -> str:
        """Render one record as a single line of JSON, redacted."""
        redactor = self.redactor
        document: dict[str, Any] = {
            "time": utc_time(record.created),
            "level": record.levelname,
            "message": redactor.redact_text(record.getMessage()),
            "logger": record.name,
        }
        fields = self.fields(record)
        for key in CONTEXT_FIELDS:
            if fields.get(key) is not None:
                document[key] = fields.pop(key)
        extras = redactor.redact(fields)
        for key, value in extras.items():
            document.setdefault(key, value)
        exception = self.exception_text(record)
        if exception is not None:
            document["exception"] = redactor.redact_text(exception)
        line = json.dumps(document, ensure_ascii=False, default=_json_fallback)
        # A last pass for known values inside extras that were not JSON (rendered with repr).
        return redactor.redact(line)  # type: ignore[no-any-return]


def _json_fallback(value: object) -> str:
    return str(value) if isinstance(value, BaseException) else repr(value)


class TextFormatter(_RedactingFormatter):
    """``TIME LEVEL LOGGER: message [execution_id=… step_id=… attempt=… correlation_id=…]``."""

    def format(self, record: logging.LogRecord) -> str:
        """Render one record (plus its traceback on the following lines), redacted."""
        fields = self.fields(record)
        ids = [
            f"{key}={fields[key]}"
            for key in CONTEXT_FIELDS
            if fields.get(key) is not None
            # The correlation id defaults to the execution id: say it only when it differs.
            and not (key == "correlation_id" and fields[key] == fields.get("execution_id"))
        ]
        line = f"{utc_time(record.created)} {record.levelname:<8} {record.name}: "
        line += record.getMessage()
        if ids:
            line += f" [{' '.join(ids)}]"
        exception = self.exception_text(record)
        if exception is not None:
            line += "\n" + exception
        return self.redactor.redact_text(line)


def parse_level(level: str | int) -> int:
    """Turn `debug`/`info`/`warning`/`error`/`critical` (any case) or a number into a level.

    Raises:
        ValueError: not a level.
    """
    if isinstance(level, int):
        return level
    text = level.strip().lower()
    if text.isdigit():
        return int(text)
    if text == "warn":
        text = "warning"
    if text not in LOG_LEVELS:
        raise ValueError(f"unknown log level {level!r}: expected one of {', '.join(LOG_LEVELS)}")
    return int(getattr(logging, text.upper()))


def resolve_log_settings(
    format: str | None = None,
    level: str | int | None = None,
    environ: Mapping[str, str] | None = None,
) -> tuple[LogFormat, int]:
    """The log format and level: the arguments, else the environment, else `text`/`warning`.

    Raises:
        ValueError: the format or the level is not valid (the message says which and why).
    """
    environ = os.environ if environ is None else environ
    chosen = format or environ.get(LOG_FORMAT_VARIABLE) or DEFAULT_FORMAT
    chosen = chosen.strip().lower()
    if chosen == "text":
        log_format: LogFormat = "text"
    elif chosen == "json":
        log_format = "json"
    else:
        raise ValueError(f"unknown log format {chosen!r}: expected one of text, json")
    if level is None or level == "":
        level = environ.get(LOG_LEVEL_VARIABLE) or DEFAULT_LEVEL
    return log_format, parse_level(level)


def configure_logging(
    format: str | None = None,
    level: str | int | None = None,
    *,
    stream: TextIO | None = None,
    redactor: Redactor | None = None,
    environ: Mapping[str, str] | None = None,
) -> logging.Handler:
    """Send log records to `stream` (default stderr) as text or JSON lines, redacted.

    The format and level come from the arguments, else `ORCHESTR8_LOG_FORMAT` and
    `ORCHESTR8_LOG_LEVEL`, else `text` and `warning`. The handler goes on the root logger,
    replacing one installed by an earlier call, and the root logger's level is set.

    Raises:
        ValueError: the format or the level is not valid.
    """
    log_format, log_level = resolve_log_settings(format, level, environ)
    formatter: logging.Formatter = (
        JsonFormatter(redactor) if log_format == "json" else TextFormatter(redactor)
    )
    handler = logging.StreamHandler(sys.stderr if stream is None else stream)
    handler.setFormatter(formatter)
    handler.setLevel(log_level)
    setattr(handler, _HANDLER_MARK, log_format)
    root = logging.getLogger()
    for existing in list(root.handlers):
        if getattr(existing, _HANDLER_MARK, False):
            root.removeHandler(existing)
    root.addHandler(handler)
    root.setLevel(log_level)
    return handler


def installed_handler() -> tuple[logging.Handler, LogFormat] | None:
    """The handler `configure_logging` put on the root logger and its format, if one is there.

    The command line asks, to route log lines around its status line and to keep stderr JSON
    only when the format is `json`.
    """
    for handler in logging.getLogger().handlers:
        log_format = getattr(handler, _HANDLER_MARK, None)
        if log_format in LOG_FORMATS:
            return handler, log_format
    return None


def remove_logging_handler(handler: logging.Handler) -> None:
    """Take a handler installed by `configure_logging` off the root logger again."""
    logging.getLogger().removeHandler(handler)
