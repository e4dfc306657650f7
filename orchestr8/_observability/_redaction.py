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
it (`_workflow_redaction`).

Values come in two lifetimes (`_secret_values`): `Redactor.add_secret` registers one for the life
of the process (the service API key, secrets from the environment); `Redactor.lease` registers an
execution's secret values until the execution ends. This module also holds the process-wide
redactor and the functions that use it (`redact`, `redact_text`, `redact_workflow`).
"""

from __future__ import annotations

import os
import re
import threading
from collections.abc import Callable, Iterable, Mapping
from itertools import islice
from typing import Any, Final

from ._secret_values import SecretLease, SecretValues
from ._workflow_redaction import redact_workflow_document

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
        # A key right after `/` or a backslash names a file (`/etc/passwd: the file`): no key.
        self._text_pattern = re.compile(
            rf"(?<![/\\])(?P<key>{'|'.join(alternatives)}){_TEXT_VALUE}", re.IGNORECASE
        )
        self._key_cache: dict[str, bool] = {}
        self._secrets = SecretValues()
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
    def known_values(self) -> tuple[str, ...]:
        """The secret values known now: a tuple replaced whole when they change, never mutated.

        The same tuple object means the same values, so a caller may keep a redaction made
        under it (of a value that never changes) for as long as it stays the same object.
        """
        return self._secrets.current

    @property
    def secret_count(self) -> int:
        """How many distinct values are known now (for the life of the process or leased)."""
        return len(self._secrets.current)

    def add_secret(self, value: str) -> bool:
        """Register a secret value to replace wherever it occurs; False if it is too short."""
        return self._secrets.add(value)

    def lease(self, values: Iterable[str]) -> SecretLease:
        """Know `values` until the returned lease is released (values too short are skipped).

        The runtime takes one lease per execution and releases it when the execution ends, so
        a service seeing a new `api_key` on every request knows only those still running.
        """
        return self._secrets.lease(values)

    def redact(self, value: Any) -> Any:
        """Return `value` with secrets replaced; unchanged parts are shared, the input untouched."""
        return self._walk(value, self._secrets.current)

    def redact_values(self, value: Any) -> Any:
        """Return `value` with known values replaced inside strings only: no key is looked at."""
        return self._walk_values(value, self._secrets.current)

    def redact_workflow(self, document: Mapping[str, Any]) -> Any:
        """Redact a workflow document so that it stays a valid workflow (`_workflow_redaction`).

        Keys are looked at in each step's `input`, each agent's `config` and the `output`; all
        other parts (the `inputs` schema first) only get known values replaced inside strings.
        """
        return redact_workflow_document(document, self.redact, self.redact_values)

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
        values = self._secrets.current
        if values:
            text = self._replace_values(text, values)
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
