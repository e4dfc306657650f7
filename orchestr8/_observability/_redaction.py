"""Redaction: keep secrets out of logs, events, the journal, REST responses and error messages.

Two kinds of secret are recognised (the rules, with examples, are in `docs/observability.md`):

- **Secret keys.** In a JSON-like structure, the value under a key that *looks like a secret*
  becomes ``"***"``. A key looks like a secret when, lower-cased and with ``_``, ``-``, ``.`` and
  spaces removed, it is equal to or *ends with* one of the patterns: ``api_key``, ``token``,
  ``password``, ``passwd``, ``secret``, ``authorization``, ``private_key``, ``cookie`` (which
  covers ``apiKey``, ``X-Api-Key``, ``access_token``, ``client_secret``, ``Proxy-Authorization``),
  plus any configured key. ``max_tokens``, ``input_tokens`` and ``tokens_used`` end in *tokens*,
  not *token*, so LLM usage data is kept; ``key`` and ``idempotency_key`` are kept too.
- **Known values.** Every registered secret value (the service API key, ``ANTHROPIC_API_KEY``, any
  environment variable whose name looks like a secret key) is replaced by ``***`` wherever it
  occurs inside a string.

`Redactor.redact` applies both to data and never mutates its argument: parts that need no change
are shared with the input, so a structure with nothing to redact is returned as is, without a
copy (the hot path: every event). `Redactor.redact_text` is for free text (log lines, error
messages): known values, plus ``key=value`` / ``key: value`` pairs whose key looks like a secret,
e.g. ``Authorization: Bearer abc`` becomes ``Authorization: Bearer ***``.

Under a secret key, a string made only of ``${...}`` references (optionally after an auth scheme,
``Bearer ${secrets.TOKEN}``) is kept: it names where a value comes from, it is not the value, and a
resumed execution needs it. `Redactor.redact_workflow` redacts a workflow document without breaking
it: keys are looked at only where values live (each step's ``input``, each agent's ``config`` and
the ``output`` template); the ``inputs`` schema and every other structural part get known values
replaced, never a whole value, so a schema property named ``api_key`` stays a schema.

Values come in two lifetimes. `Redactor.add_secret` registers one for the life of the process (the
service API key, secrets from the environment); `Redactor.lease` registers an execution's secret
inputs, config values and ``${secrets.NAME}`` values until the lease is released (when the
execution ends), counted, so the same value leased twice stays known until both are released and
the set of known values stays as small as what runs (every string of every event is checked
against each known value).
"""

from __future__ import annotations

import os
import re
import threading
from collections.abc import Callable, Iterable, Mapping
from itertools import islice
from types import TracebackType
from typing import Any, Final

__all__ = [
    "DEFAULT_SECRET_KEYS",
    "REDACTED",
    "Redactor",
    "SecretLease",
    "default_redactor",
    "is_reference_template",
    "redact",
    "redact_text",
    "redact_workflow",
    "register_secret",
    "secret_values_in",
    "set_default_redactor",
]

REDACTED: Final = "***"
"""What a secret is replaced by."""

DEFAULT_SECRET_KEYS: Final = (
    "api_key",
    "apikey",
    "api-key",
    "x-api-key",
    "token",
    "access_token",
    "password",
    "passwd",
    "secret",
    "client_secret",
    "authorization",
    "private_key",
    "cookie",
)
"""The key patterns every redactor knows; a key equal to or ending with one is a secret key."""

REDACT_KEYS_VARIABLE: Final = "ORCHESTR8_REDACT_KEYS"
"""The environment variable holding extra secret key patterns, comma-separated."""

SECRET_VARIABLE_PREFIX: Final = "ORCHESTR8_SECRET_"
"""The prefix of the environment variables holding `${secrets.NAME}` values (see `_secrets`)."""

MIN_ENVIRONMENT_SECRET: Final = 8
"""Environment values shorter than this are not registered: they would mangle ordinary text."""

MIN_SECRET: Final = 4
"""Explicitly registered values shorter than this are refused, for the same reason."""

_SEPARATORS = str.maketrans("", "", "_-. ")
_REFERENCE_SPAN = re.compile(r"\$\{[^}]*\}")
_REFERENCE = (
    r"\$\{\s*(?:inputs|steps\.[A-Za-z_][\w-]*\.output|secrets\.[A-Za-z_]\w*)"
    r"""(?:\.[\w-]+|\[\s*\d+\s*\]|\[\s*"(?:[^"\\]|\\.)*"\s*\]|\[\s*'(?:[^'\\]|\\['\\])*'\s*\])*\s*\}"""
)
_WELL_FORMED_SPANS = re.compile(rf"(?:[^$]|\$(?!\{{))*(?:{_REFERENCE}(?:[^$]|\$(?!\{{))*)+")
"""Text holding a reference (the grammar of `_workflow._expressions`) and no other `${`."""
# What may stand beside references in a kept template: nothing, or an HTTP auth scheme.
_TEMPLATE_LITERALS: Final = frozenset({"", "bearer", "basic", "token"})
# The parts of a step and of a workflow document whose values are data (redacted by key too).
_VALUE_PARTS: Final = frozenset({"input", "output"})
_KEY_CACHE_LIMIT = 4096
# The value after a secret key in free text: a quoted string, or a run up to a delimiter, after
# an optional auth scheme (so `Authorization: Bearer abc` keeps `Bearer` and loses `abc`).
_TEXT_VALUE = (
    r"""(?P<sep>["']?\s*[:=]\s*(?:(?:bearer|basic|token)\s+)?)"""
    r"""(?P<value>"[^"]*"|'[^']*'|[^\s"',;&)}\]]+)"""
)


def _normalise(key: str) -> str:
    return key.lower().translate(_SEPARATORS)


def _key_regex(pattern: str) -> str:
    """A free-text regex for one key pattern: separators may be `_`, `-`, `.` or absent."""
    parts = [re.escape(part) for part in re.split(r"[-_. ]+", pattern.strip()) if part]
    return r"[-_. ]?".join(parts)


class Redactor:
    """Replaces secrets (by key and by known value) in JSON-like data and in free text."""

    def __init__(self, extra_keys: Iterable[str] = (), secret_values: Iterable[str] = ()) -> None:
        """Know the default key patterns plus `extra_keys`, and the values in `secret_values`."""
        keys = [*DEFAULT_SECRET_KEYS, *(key for key in extra_keys if key.strip())]
        self._keys: tuple[str, ...] = tuple(dict.fromkeys(keys))
        self._suffixes = tuple({_normalise(key) for key in self._keys if _normalise(key)})
        alternatives = sorted({_key_regex(key) for key in self._keys}, key=len, reverse=True)
        self._text_pattern = re.compile(
            rf"(?P<key>{'|'.join(alternatives)}){_TEXT_VALUE}", re.IGNORECASE
        )
        self._key_cache: dict[str, bool] = {}
        self._values: tuple[str, ...] = ()
        self._permanent: set[str] = set()
        self._leased: dict[str, int] = {}
        self._lock = threading.Lock()
        for value in secret_values:
            self.add_secret(value)

    @classmethod
    def from_environment(cls, environ: Mapping[str, str] | None = None) -> Redactor:
        """A redactor configured from the environment (default `os.environ`).

        Extra key patterns come from `ORCHESTR8_REDACT_KEYS` (comma-separated). The value of every
        variable whose name looks like a secret key (`ANTHROPIC_API_KEY`, `CONTEXT7_API_KEY`,
        `ORCHESTR8_API_KEY`, `GITHUB_TOKEN`, ...) or that holds a secret for `${secrets.NAME}`
        references (`ORCHESTR8_SECRET_NAME`) is registered when it has at least 8 characters.
        """
        environ = os.environ if environ is None else environ
        extra = [key.strip() for key in environ.get(REDACT_KEYS_VARIABLE, "").split(",")]
        redactor = cls(extra_keys=[key for key in extra if key])
        for name, value in environ.items():
            secret = redactor.is_secret_key(name) or name.startswith(SECRET_VARIABLE_PREFIX)
            if len(value.strip()) >= MIN_ENVIRONMENT_SECRET and secret:
                redactor.add_secret(value)
        return redactor

    @property
    def secret_keys(self) -> tuple[str, ...]:
        """The key patterns this redactor knows, defaults first."""
        return self._keys

    def is_secret_key(self, key: str) -> bool:
        """Whether the value under `key` is a secret: `key`, normalised, ends with a pattern."""
        known = self._key_cache.get(key)
        if known is None:
            known = _normalise(key).endswith(self._suffixes)
            if len(self._key_cache) >= _KEY_CACHE_LIMIT:
                self._key_cache.clear()
            self._key_cache[key] = known
        return known

    @property
    def secret_count(self) -> int:
        """How many distinct values are known now (for the life of the process or leased)."""
        return len(self._values)

    def add_secret(self, value: str) -> bool:
        """Register a secret value to replace wherever it occurs; False if it is too short."""
        value = value.strip()
        if len(value) < MIN_SECRET:
            return False
        with self._lock:
            if value not in self._permanent:
                self._permanent.add(value)
                self._publish()
        return True

    def lease(self, values: Iterable[str]) -> SecretLease:
        """Know `values` until the returned lease is released (values too short are skipped).

        The runtime takes one lease per execution and releases it when the execution ends, so
        a service seeing a new `api_key` on every request knows only those still running.
        """
        usable = tuple({value.strip() for value in values if len(value.strip()) >= MIN_SECRET})
        if usable:
            with self._lock:
                for value in usable:
                    self._leased[value] = self._leased.get(value, 0) + 1
                self._publish()
        return SecretLease(self, usable)

    def _release(self, values: tuple[str, ...]) -> None:
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
        """Rebuild the tuple the walkers read (under the lock): replaced whole, never mutated."""
        known = self._permanent.union(self._leased)
        if len(known) != len(self._values) or not known.issuperset(self._values):
            # Longest first, so a secret that contains another is replaced whole.
            self._values = tuple(sorted(known, key=len, reverse=True))

    def redact(self, value: Any) -> Any:
        """Return `value` with secrets replaced; unchanged parts are shared, the input untouched."""
        return self._walk(value, self._values)

    def redact_workflow(self, document: Mapping[str, Any]) -> Any:
        """Redact a workflow document so that it stays a valid workflow (see the module doc).

        Keys are looked at in each step's `input`, each agent's `config` and the `output`; all
        other parts (the `inputs` schema first) only get known values replaced inside strings.
        """
        values = self._values
        out: dict[str, Any] | None = None
        for index, (name, part) in enumerate(document.items()):
            if name == "steps" and type(part) in (list, tuple):
                new = self._walk_sequence(part, values, self._redact_step)
            elif name in _VALUE_PARTS:
                new = self._walk(part, values)
            else:
                new = self._walk_values(part, values)
            if out is None:
                if new is part:
                    continue
                out = dict(islice(document.items(), index))
            out[name] = new
        return document if out is None else out

    def _redact_step(self, step: Any, values: tuple[str, ...]) -> Any:
        """One step of a workflow document: its `input` and its agent's `config` by key too."""
        if not isinstance(step, Mapping):
            return self._walk_values(step, values)
        out: dict[str, Any] | None = None
        for index, (name, part) in enumerate(step.items()):
            if name in _VALUE_PARTS:
                new = self._walk(part, values)
            elif name == "agent" and isinstance(part, Mapping):
                new = {
                    key: self._walk(item, values)
                    if key == "config"
                    else self._walk_values(item, values)
                    for key, item in part.items()
                }
                new = part if all(new[key] is item for key, item in part.items()) else new
            else:
                new = self._walk_values(part, values)
            if out is None:
                if new is part:
                    continue
                out = dict(islice(step.items(), index))
            out[name] = new
        return step if out is None else out

    def _walk_values(self, value: Any, values: tuple[str, ...]) -> Any:
        """Replace known values inside strings only: no key is looked at, none is renamed."""
        if not values:
            return value
        kind = type(value)
        if kind is str:
            return self._replace_values(value, values)
        if isinstance(value, Mapping):
            out = {key: self._walk_values(item, values) for key, item in value.items()}
            return value if all(out[key] is item for key, item in value.items()) else out
        if kind is list or kind is tuple:
            return self._walk_sequence(value, values, self._walk_values)
        return value

    def redact_text(self, text: str) -> str:
        """Return free text with known values and `key=value` secrets replaced by `***`."""
        if self._values:
            text = self._replace_values(text, self._values)
        if ":" not in text and "=" not in text:
            return text
        return self._text_pattern.sub(_replace_match, text)

    @staticmethod
    def _replace_values(text: str, values: tuple[str, ...]) -> str:
        for secret in values:
            if secret in text:
                text = text.replace(secret, REDACTED)
        return text

    def _walk(self, value: Any, values: tuple[str, ...]) -> Any:
        kind = type(value)
        if kind in _PLAIN_SCALARS:
            # Numbers, booleans and null hold no secret (and are no Mapping: skip that check).
            return value
        if kind is str:
            return self._replace_values(value, values) if values else value
        if kind is dict or (kind is not list and kind is not tuple and isinstance(value, Mapping)):
            return self._walk_mapping(value, values)
        if kind is list or kind is tuple:
            return self._walk_sequence(value, values, self._walk)
        return value

    @staticmethod
    def _walk_sequence(
        value: list[Any] | tuple[Any, ...],
        values: tuple[str, ...],
        walk: Callable[[Any, tuple[str, ...]], Any],
    ) -> Any:
        """Apply `walk` to each item; the same list or tuple back when nothing changed."""
        out: list[Any] | None = None
        for index, item in enumerate(value):
            new = walk(item, values)
            if out is None:
                if new is item:
                    continue
                out = list(value[:index])
            out.append(new)
        if out is None:
            return value
        return out if type(value) is list else tuple(out)

    def _walk_mapping(self, value: Mapping[Any, Any], values: tuple[str, ...]) -> Any:
        out: dict[Any, Any] | None = None
        for index, (key, item) in enumerate(value.items()):
            new_key = key
            if type(key) is str:
                if (
                    self.is_secret_key(key)
                    and item is not None
                    and item != ""
                    and not is_reference_template(item)
                ):
                    new = REDACTED
                else:
                    new = self._walk(item, values)
                if values:
                    new_key = self._replace_values(key, values)
            else:
                new = self._walk(item, values)
            if out is None:
                if new is item and new_key is key:
                    continue
                out = dict(islice(value.items(), index))
            out[new_key] = new
        return value if out is None else out


_PLAIN_SCALARS: Final = frozenset({int, float, bool, type(None)})


class SecretLease:
    """An execution's hold on secret values (`Redactor.lease`); `release` ends it, once."""

    __slots__ = ("_redactor", "_values")

    def __init__(self, redactor: Redactor, values: tuple[str, ...]) -> None:
        """Hold `values` in `redactor` (which has counted them already)."""
        self._redactor: Redactor | None = redactor
        self._values = values

    @property
    def values(self) -> tuple[str, ...]:
        """The values this lease holds (empty once released)."""
        return self._values if self._redactor is not None else ()

    def release(self) -> None:
        """Stop holding the values; the redactor forgets those no other lease holds."""
        redactor, self._redactor = self._redactor, None
        if redactor is not None and self._values:
            redactor._release(self._values)

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


def is_reference_template(value: Any) -> bool:
    """Whether `value` is a string of `${...}` references only (maybe after an auth scheme).

    Such a string under a secret key names where the value comes from (`${secrets.TOKEN}`,
    `Bearer ${inputs.token}`); it holds no secret, and a resume needs it as written.
    """
    if type(value) is not str or "${" not in value:
        return False
    # The shape of a reference suffices here: a malformed one fails the workflow's own checks.
    if not _WELL_FORMED_SPANS.fullmatch(value):
        return False
    return _REFERENCE_SPAN.sub("", value).strip().lower() in _TEMPLATE_LITERALS


def _replace_match(match: re.Match[str]) -> str:
    value = match["value"]
    quote = value[0] if value[0] in "\"'" else ""
    return f"{match['key']}{match['sep']}{quote}{REDACTED}{quote}"


_default: Redactor | None = None
_default_lock = threading.Lock()


def default_redactor() -> Redactor:
    """The process-wide redactor, built from the environment on first use."""
    redactor = _default
    if redactor is None:
        with _default_lock:
            redactor = _default
            if redactor is None:
                redactor = Redactor.from_environment()
                _set(redactor)
    return redactor


def _set(redactor: Redactor | None) -> Redactor | None:
    global _default
    previous, _default = _default, redactor
    return previous


def set_default_redactor(redactor: Redactor | None) -> Redactor | None:
    """Replace the process-wide redactor (None: rebuild from the environment); return the old."""
    with _default_lock:
        return _set(redactor)


def register_secret(value: str) -> bool:
    """Register a secret value (e.g. the service API key) with the process-wide redactor."""
    return default_redactor().add_secret(value)


def secret_values_in(value: Any, redactor: Redactor | None = None) -> list[str]:
    """Every string under a secret-looking key in JSON-like `value` (reference templates aside).

    The runtime leases them for an execution (its inputs, each step's `input` and agent
    `config`), so that a config's `api_key` is also redacted where an agent echoes it in free
    text (an error message, a log line), not only where it sits under its key.
    """
    redactor = redactor or default_redactor()
    found: list[str] = []
    stack = [value]
    while stack:
        current = stack.pop()
        if isinstance(current, Mapping):
            for key, item in current.items():
                if isinstance(item, str) and isinstance(key, str) and redactor.is_secret_key(key):
                    if not is_reference_template(item):
                        found.append(item)
                elif isinstance(item, Mapping | list | tuple):
                    stack.append(item)
        elif isinstance(current, list | tuple):
            stack.extend(item for item in current if isinstance(item, Mapping | list | tuple))
    return found


def redact(value: Any) -> Any:
    """Redact JSON-like data with the process-wide redactor (see `Redactor.redact`)."""
    return default_redactor().redact(value)


def redact_text(text: str) -> str:
    """Redact free text with the process-wide redactor (see `Redactor.redact_text`)."""
    return default_redactor().redact_text(text)


def redact_workflow(document: Mapping[str, Any]) -> Any:
    """Redact a workflow document with the process-wide redactor, keeping it a valid workflow."""
    return default_redactor().redact_workflow(document)
