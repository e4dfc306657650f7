"""The eval output cache: keyed by what decides a reply, atomic, and forgiving of bad entries."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from orchestr8._errors import EvalCacheError
from orchestr8._llm._eval_cache import CachedReply, EvalCache, cache_key

REQUEST = {"system": "be brief", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 9}
REPLY = CachedReply("hello", 12, 3, 0.0001, 0.42)


def key(**changes: object) -> str:
    arguments: dict[str, object] = {
        "kind": "openai",
        "base_url": "http://127.0.0.1:11434/v1",
        "model": "llama3.1",
        "request": REQUEST,
    }
    arguments.update(changes)
    return cache_key(**arguments)  # type: ignore[arg-type]


def test_the_key_changes_with_everything_that_decides_a_reply() -> None:
    """Kind, base URL, model and each part of the request change the key."""
    keys = {
        key(),
        key(kind="anthropic"),
        key(base_url="http://127.0.0.1:8000/v1"),
        key(base_url=None),
        key(model="llama3.2"),
        key(request={**REQUEST, "max_tokens": 10}),
        key(request={**REQUEST, "system": "be long"}),
    }
    assert len(keys) == 7
    assert len(key()) == 64


def test_the_key_ignores_the_order_of_object_keys() -> None:
    """Canonical JSON: the same request written in another order is the same entry."""
    reordered = dict(reversed(list(REQUEST.items())))
    assert key(request=reordered) == key()


def test_a_stored_reply_is_loaded_back(tmp_path: Path) -> None:
    """Store, then load: the same reply, under DIR/ab/abc....json, no temporary files left."""
    cache = EvalCache(tmp_path / "cache")
    assert cache.load(key()) is None
    cache.store(key(), REPLY)
    assert cache.load(key()) == REPLY
    entry = tmp_path / "cache" / key()[:2] / f"{key()}.json"
    assert entry.is_file()
    assert os.listdir(entry.parent) == [entry.name]


@given(
    st.text(),
    st.integers(min_value=0, max_value=10**9),
    st.one_of(st.none(), st.floats(min_value=0, max_value=100)),
    st.booleans(),
)
def test_any_reply_round_trips(text: str, tokens: int, cost: float | None, estimated: bool) -> None:
    """Whatever the text (any Unicode), tokens, cost and estimate flag, the entry reads back."""
    reply = CachedReply(text, tokens, tokens, cost, 1.5, estimated)
    assert CachedReply.from_json(reply.to_json()) == reply


@pytest.mark.parametrize(
    "content",
    [
        "not json",
        "[]",
        '{"format": 99, "text": "x"}',
        '{"format": 1, "text": 3, "input_tokens": 1, "output_tokens": 1, "latency_s": 1}',
        '{"format": 1, "text": "x", "input_tokens": true, "output_tokens": 1, "latency_s": 1}',
        '{"format": 1, "text": "x", "input_tokens": 1, "output_tokens": 1, "latency_s": "1"}',
        '{"format": 1, "text": "x", "input_tokens": 1, "output_tokens": 1, "latency_s": 1, '
        '"cost_usd": "free"}',
        '{"format": 1, "text": "x", "input_tokens": 1, "output_tokens": 1, "latency_s": 1, '
        '"cost_usd": null, "estimated": "yes"}',
    ],
)
def test_a_damaged_entry_is_a_miss(tmp_path: Path, content: str) -> None:
    """An entry that is not JSON or not this version's shape is not used: the call is remade."""
    cache = EvalCache(tmp_path)
    cache.store(key(), REPLY)
    (tmp_path / key()[:2] / f"{key()}.json").write_text(content, encoding="utf-8")
    assert cache.load(key()) is None


def test_a_failed_store_leaves_no_temporary_file(tmp_path: Path) -> None:
    """Renaming onto a directory fails: the error surfaces and the temporary file is removed."""
    cache = EvalCache(tmp_path)
    (tmp_path / key()[:2] / f"{key()}.json").mkdir(parents=True)
    with pytest.raises(IsADirectoryError):
        cache.store(key(), REPLY)
    assert os.listdir(tmp_path / key()[:2]) == [f"{key()}.json"]


def test_a_usable_cache_passes_its_check_and_an_unwritable_one_does_not(tmp_path: Path) -> None:
    """check() creates a missing directory; one that cannot be written is refused by name."""
    EvalCache(tmp_path / "new").check([key()])
    assert (tmp_path / "new").is_dir()
    blocked = tmp_path / "blocked"
    (blocked / key()[:2]).parent.mkdir()
    (blocked / key()[:2]).write_text("a file where a folder goes")
    with pytest.raises(EvalCacheError, match=r"should be a directory but is not"):
        EvalCache(blocked).check([key()])
    (tmp_path / "parent").write_text("x")
    with pytest.raises(EvalCacheError, match=r"cannot be written"):
        EvalCache(tmp_path / "parent" / "child").check([])
