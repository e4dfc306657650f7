"""Strict JSON: the one place deciding what a JSON value is, how it is read and how it is written.

Python's `json` is lenient where orchestr8 must not be: it reads `NaN` and `Infinity`, keeps the
last of two equal keys without a word, fails a whole document on an integer longer than
`sys.get_int_max_str_digits()` without saying where, and writes lone surrogates no UTF-8 store
accepts. This module holds the strict versions every boundary uses:

- reading: `parse_strict` (with `DuplicateKeyRecorder`, `reject_constant`, `parse_integer`), then
  `json_value_problems` to name each offending value by its JSON path (`append_path`);
- values handed over by code: `json_value` makes an agent's output or progress data what the
  journal will record, or raises where it was made;
- text: `has_lone_surrogate` and `escape_lone_surrogates`;
- writing: `ENCODER`, `encode_json` and `make_encoder`, the strict compact encoder of stored values;
- typing: the `JSON` alias for values users hand to orchestr8.

It imports nothing from orchestr8 but `_errors`, so every stage may use it.
"""

from __future__ import annotations

import collections
import json
import json.encoder
import math
import re
import sys
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Final, TypeAlias

import attrs

from ._errors import Problem

JSON: TypeAlias = Mapping[str, "JSON"] | Sequence["JSON"] | str | int | float | bool | None
"""A JSON value as a caller hands it to orchestr8: object, array, string, number, boolean, null.

Read-only and covariant (`Mapping`, `Sequence`) on purpose: with `dict[str, JSON]` and
`list[JSON]` a caller's `dict[str, int]` or `{"a": {"b": 1}}` would be refused by the type checker
(dict and list are invariant), so user code would fight the annotation. Values orchestr8 hands back
stay `Any`: a precise union would force an `isinstance` at every use of a step's output."""

PathSegment = str | int
"""One step of a JSON path: an object key or an array index."""

MAX_DEPTH: Final = 64
"""The deepest nesting of objects and arrays accepted in a document or in execution inputs."""

LARGEST_NUMBER: Final = sys.float_info.max
"""The largest number accepted: beyond it (a huge JSON integer) no float holds the value, so it
could not be used as seconds, rates or counts by the runtime."""

LONE_SURROGATE = re.compile(r"[\ud800-\udfff]")
"""Matches a lone surrogate: a character a Python string can hold but UTF-8 text cannot."""

ENCODER = json.JSONEncoder(allow_nan=False, ensure_ascii=False, separators=(",", ":"))
"""The JSON encoder of stored values: strict (no NaN or infinity), compact, UTF-8 text.

Its text can hold lone surrogates, which no UTF-8 store or stream accepts: stored text goes
through `escape_lone_surrogates` (`make_encoder` and `encode_json` do that)."""

_PLAIN_KEY = re.compile(r"[a-zA-Z][a-zA-Z0-9_]*")
_JSON_SCALARS = (str, bool, type(None))
# An int this long is written out well within Python's limit on int-to-text conversion (4,300
# digits by default); a longer one is checked by writing it.
_SHORT_INT_BITS = 14_000


def append_path(parent: str, segment: PathSegment) -> str:
    """Extend a JSON path (`$.steps[0]`) by one key or index, the way every message prints paths."""
    if isinstance(segment, int):
        return f"{parent}[{segment}]"
    if _PLAIN_KEY.fullmatch(segment):
        return f"{parent}.{segment}"
    escaped = "".join(
        char if char.isprintable() else char.encode("unicode_escape").decode("ascii")
        for char in segment.replace("\\", "\\\\").replace("'", "\\'")
    )
    return f"{parent}['{escaped}']"


def has_lone_surrogate(text: str) -> bool:
    """Whether `text` holds a lone surrogate, so it cannot be stored as text (cheap for ASCII)."""
    return not text.isascii() and LONE_SURROGATE.search(text) is not None


def escape_lone_surrogates(text: str) -> str:
    r"""Write each lone surrogate of JSON text as its escape (`\ud800`), so the text is UTF-8.

    A Python string can hold a lone surrogate (`"\ud800"` in JSON, bytes a process decoded with
    `surrogateescape`); JSON text made with `ensure_ascii=False` then keeps it raw, and SQLite,
    sockets and terminals refuse it. Outside strings JSON text has no such characters, so the
    escape is exactly what `ensure_ascii=True` writes, and decoding gives the same string back.
    Text with no surrogate (nearly all) is returned as it is after one scan, none if it is ASCII.
    """
    if text.isascii() or LONE_SURROGATE.search(text) is None:
        return text
    return LONE_SURROGATE.sub(lambda match: f"\\u{ord(match.group()):04x}", text)


def encode_json(value: Any) -> str:
    """Encode a stored value as `ENCODER` does, with lone surrogates escaped (valid UTF-8)."""
    return escape_lone_surrogates(ENCODER.encode(value))


def make_encoder() -> Callable[[Any], str]:
    """Return a function encoding exactly like `encode_json`, nearly twice as fast.

    It keeps one C encoder and its circular-reference markers instead of building both on every
    call, so use it from one thread at a time; without the C accelerator it is `encode_json`.
    """
    make: Any = getattr(json.encoder, "c_make_encoder", None)
    if make is None:
        return encode_json
    markers: dict[int, Any] = {}
    encoder = make(
        markers,
        ENCODER.default,
        json.encoder.encode_basestring,
        None,
        ENCODER.key_separator,
        ENCODER.item_separator,
        ENCODER.sort_keys,
        ENCODER.skipkeys,
        ENCODER.allow_nan,
    )

    def encode(value: Any) -> str:
        try:
            return escape_lone_surrogates("".join(encoder(value, 0)))
        except BaseException:
            # A failed encoding leaves the markers of the containers it was inside.
            markers.clear()
            raise

    return encode


class DuplicateKeyRecorder:
    """Builds JSON objects and remembers which of them repeated a key (JSON keeps the last)."""

    def __init__(self) -> None:
        self.duplicates: dict[int, list[str]] = {}

    def __call__(self, pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        result = dict(pairs)
        if len(result) != len(pairs):
            counts = collections.Counter(key for key, _ in pairs)
            self.duplicates[id(result)] = [key for key, count in counts.items() if count > 1]
        return result


def reject_constant(name: str) -> Any:
    """Refuse `NaN` and `Infinity`, which Python's json accepts but JSON does not."""
    raise ValueError(f"{name} is not valid JSON (numbers must be finite)")


@attrs.frozen
class OversizedInteger:
    """Stands for a JSON integer with more digits than Python converts, so it can be located."""

    digits: int


def parse_integer(text: str) -> int | OversizedInteger:
    """`json.loads`'s `parse_int`: the integer, or a marker when it has too many digits.

    Python refuses to convert integers of more than `sys.get_int_max_str_digits()` digits (4300),
    which would fail the whole parse without saying where; the marker lets `json_value_problems`
    name the value's path instead.
    """
    limit = sys.get_int_max_str_digits()
    digits = len(text) - text.startswith("-")
    return OversizedInteger(digits) if limit and digits > limit else int(text)


def parse_strict(text: str) -> tuple[Any, Mapping[int, list[str]]]:
    """Parse JSON text strictly: the document and, by object id, the keys each object repeated.

    The document still needs `json_value_problems(document, duplicates=...)`, which names each
    duplicate key and oversized integer by its path; parsing alone only refuses what has no path.

    Raises:
        json.JSONDecodeError: the text is not JSON (it carries the line and column).
        ValueError: `NaN`, `Infinity` or `-Infinity`.
        RecursionError: nested deeper than Python's parser goes.
    """
    recorder = DuplicateKeyRecorder()
    document = json.loads(
        text,
        object_pairs_hook=recorder,
        parse_constant=reject_constant,
        parse_int=parse_integer,
    )
    return document, recorder.duplicates


def json_value_problems(
    value: Any, path: str = "$", *, duplicates: Mapping[int, list[str]] | None = None
) -> list[Problem]:
    """Find what JSON cannot hold: other types, non-string keys, NaN or infinity, deep nesting."""
    problems: list[Problem] = []
    pending = [(value, path, 0)]
    while pending:
        item, where, depth = pending.pop()
        if isinstance(item, dict):
            for repeated in (duplicates or {}).get(id(item), ()):
                problems.append(Problem(where, f"duplicate key '{repeated}'"))
        if isinstance(item, dict | list):
            if depth >= MAX_DEPTH:
                problems.append(Problem(where, f"nested deeper than {MAX_DEPTH} levels"))
                continue
            children: Any = item.items() if isinstance(item, dict) else enumerate(item)
            for key, child in children:
                if isinstance(item, dict) and not isinstance(key, str):
                    problems.append(Problem(where, f"object keys must be strings, got {key!r}"))
                else:
                    pending.append((child, append_path(where, key), depth + 1))
        elif isinstance(item, Mapping | tuple):
            kind = type(item).__name__
            problems.append(Problem(where, f"not a JSON value: a {kind} (use a dict or a list)"))
        elif isinstance(item, float) and not math.isfinite(item):
            problems.append(Problem(where, f"numbers must be finite, got {item!r}"))
        elif isinstance(item, OversizedInteger):
            problems.append(
                Problem(
                    where,
                    f"a number with {item.digits} digits is larger than "
                    f"any float (at most {LARGEST_NUMBER!r})",
                )
            )
        elif item is not None and not isinstance(item, str | int | float):
            problems.append(Problem(where, f"not a JSON value: a {type(item).__name__}"))
    return problems


def json_value(value: Any) -> Any:
    """`value` as the journal will record it (tuples become lists, keys strings), or raise.

    Agents' outputs, progress data and anything else an agent hands the engine go through this
    before they become event data, so a value JSON cannot hold fails where it was made instead of
    failing the journal.

    Raises:
        TypeError: a value JSON has no form for (a set, bytes, an object).
        ValueError: NaN or infinity, an int too long to write, or two keys that are the same
            once written as JSON strings (`{1: "a", "1": "b"}`).
    """
    kind = type(value)
    if (
        kind in _JSON_SCALARS
        or (kind is float and math.isfinite(value))
        or (kind is int and value.bit_length() <= _SHORT_INT_BITS)
    ):
        # Already what a JSON round trip would give back (exact types, not subclasses).
        return value
    return json.loads(json.dumps(value, allow_nan=False), object_pairs_hook=_distinct_keys)


def _distinct_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """Build one decoded object, refusing keys that collided when written (data would be lost)."""
    found = dict(pairs)
    if len(found) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise ValueError(f"two keys are both {key!r} once written as JSON strings")
            seen.add(key)
    return found
