"""The output cache of `orchestr8 eval`: a model's reply to a request is paid for once.

A reply is stored under the SHA-256 of what decides it: the provider's kind and base URL, the
bare model and the rendered request (system prompt, messages, max_tokens, temperature, tools, the
JSON schema asked for), as canonical JSON. The provider's catalog name is not part of the key, so
the same endpoint under another name still hits. Each entry is one small JSON file,
`DIR/ab/abcdef....json`, written to a temporary file and renamed into place, so a crash never
leaves half an entry and two evals sharing a directory never see one. An entry that cannot be
read or parsed is a miss (the call is made again and the entry rewritten), never an error. The
entry keeps what the report needs: the text, the usage, the cost and the latency of the original
call, and whether its token counts were estimated (a provider that sent no usage). Delete the
directory to start afresh. `EvalCache.check` makes sure, before the first call is paid for, that
the directory is one, can be written, and that no entry's place is taken by something else.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, Final

import attrs

from .._errors import EvalCacheError
from .._json import JSON, encode_json

__all__ = ["DEFAULT_CACHE_DIRECTORY", "CachedReply", "EvalCache", "cache_key"]

DEFAULT_CACHE_DIRECTORY: Final = ".orchestr8-eval-cache"
"""Where the cache lives when `--cache` does not say: in the working directory."""

_FORMAT: Final = 1


@attrs.frozen
class CachedReply:
    """What the report needs of one reply: its text, tokens, cost and how long it took."""

    text: str
    input_tokens: int
    output_tokens: int
    cost_usd: float | None
    latency_s: float
    estimated: bool = False
    """Whether the token counts are estimates (the provider sent no usage)."""

    def to_json(self) -> dict[str, JSON]:
        """The entry as stored."""
        return {
            "format": _FORMAT,
            "text": self.text,
            "input_tokens": self.input_tokens,
            "output_tokens": self.output_tokens,
            "cost_usd": self.cost_usd,
            "latency_s": self.latency_s,
            "estimated": self.estimated,
        }

    @classmethod
    def from_json(cls, document: Any) -> CachedReply | None:
        """The entry in `document`, or None when it is not one this version wrote."""
        if not isinstance(document, dict) or document.get("format") != _FORMAT:
            return None
        text, cost = document.get("text"), document.get("cost_usd")
        counts = [document.get(key) for key in ("input_tokens", "output_tokens")]
        latency = document.get("latency_s")
        estimated = document.get("estimated", False)
        if (
            not isinstance(estimated, bool)
            or not isinstance(text, str)
            or not all(isinstance(count, int) and not isinstance(count, bool) for count in counts)
            or not (cost is None or isinstance(cost, int | float))
            or not isinstance(latency, int | float)
        ):
            return None
        return cls(text, int(counts[0] or 0), int(counts[1] or 0), cost, float(latency), estimated)


def cache_key(*, kind: str, base_url: str | None, model: str, request: Mapping[str, JSON]) -> str:
    """The hex SHA-256 naming a reply: kind, base URL, bare model and rendered request."""
    document = {"kind": kind, "base_url": base_url, "model": model, "request": request}
    canonical = json.dumps(document, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


@attrs.define
class EvalCache:
    """A directory of cached replies, created on the first store."""

    directory: Path
    stored: int = 0
    """How many replies this cache object has stored (what an interrupted run kept)."""

    def _path(self, key: str) -> Path:
        return self.directory / key[:2] / f"{key}.json"

    def check(self, keys: Iterable[str]) -> None:
        """Make sure the replies of `keys` can be stored, before any call is paid for.

        Creates the directory when it is missing and writes a probe file into it.

        Raises:
            EvalCacheError: the path is not a directory or cannot be written, or an entry's
                place (its file, or its `ab/` folder) is taken by something of the other kind.
        """
        where = self.directory
        if where.exists() and not where.is_dir():
            raise EvalCacheError(
                f"cache {where} is not a directory: give --cache a directory (created if missing)"
            )
        try:
            where.mkdir(parents=True, exist_ok=True)
            handle, probe = tempfile.mkstemp(dir=where, prefix=".", suffix=".probe")
            os.close(handle)
            os.unlink(probe)
        except OSError as error:
            raise EvalCacheError(
                f"cache {where} cannot be written: {error.strerror or error}"
            ) from None
        for key in keys:
            path = self._path(key)
            for blocked, kind in ((path.parent, "a directory"), (path, "a file")):
                if blocked.exists() and blocked.is_dir() != (kind == "a directory"):
                    raise EvalCacheError(
                        f"cache entry {blocked} should be {kind} but is not: remove it, or "
                        "give --cache another directory"
                    )

    def load(self, key: str) -> CachedReply | None:
        """The reply stored under `key`, or None (absent, unreadable or not an entry)."""
        try:
            text = self._path(key).read_text(encoding="utf-8")
            return CachedReply.from_json(json.loads(text))
        except (OSError, ValueError, RecursionError):
            return None

    def store(self, key: str, reply: CachedReply) -> None:
        """Store `reply` under `key`, atomically (a temporary file renamed into place).

        Raises:
            OSError: the directory cannot be created or written.
        """
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=".", suffix=".tmp")
        try:
            with os.fdopen(handle, "w", encoding="utf-8") as file:
                file.write(encode_json(reply.to_json()))
            os.replace(temporary, path)
            self.stored += 1
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(temporary)
            raise
