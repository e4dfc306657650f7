"""`_spec_hashes`: one sha256 per step spec of a workflow document, and the diff of a change."""

from __future__ import annotations

import hashlib
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from orchestr8._workflow._codec import journal_document, load_workflow
from orchestr8._workflow._spec_hashes import (
    canonical_json,
    spec_hash,
    step_spec_difference,
    step_spec_hashes,
    step_specs,
)

DOCUMENT: dict[str, Any] = {
    "schema_version": "1.0",
    "name": "two",
    "steps": [
        {"id": "a", "agent": "echo", "input": "é"},
        {"id": "b", "agent": "echo", "input": {"y": 1, "x": [1, 2]}, "depends_on": ["a"]},
    ],
}


def test_each_step_hashes_the_sha256_of_its_canonical_json() -> None:
    """Keys sorted, no spaces, UTF-8: the hash is the one anyone can recompute."""
    text = '{"agent":"echo","id":"a","input":"é"}'
    assert canonical_json(DOCUMENT["steps"][0]) == text
    expected = hashlib.sha256(text.encode("utf-8")).hexdigest()
    assert step_spec_hashes(DOCUMENT) == {"a": expected, "b": spec_hash(DOCUMENT["steps"][1])}


def test_steps_written_two_ways_that_load_the_same_hash_the_same() -> None:
    """Hashes of journal documents hold every field: leaving out a default changes nothing."""
    explicit = {
        **DOCUMENT,
        "steps": [{**DOCUMENT["steps"][0], "depends_on": []}, DOCUMENT["steps"][1]],
    }
    first = step_spec_hashes(journal_document(load_workflow(DOCUMENT)))
    second = step_spec_hashes(journal_document(load_workflow(explicit)))
    assert first == second


def test_entries_without_a_string_id_are_left_out() -> None:
    """A document entry that is not a step with an id has no hash; the first of an id counts."""
    document = {"steps": [{"id": 1}, "x", {"id": "a", "n": 1}, {"id": "a", "n": 2}]}
    assert step_specs(document) == {"a": {"id": "a", "n": 1}}
    assert step_spec_hashes({"steps": "nope"}) == {}


def test_a_difference_is_a_unified_diff_of_the_pretty_specs() -> None:
    """Before and after as sorted, indented JSON; a missing step is an empty side."""
    before = {"id": "a", "input": "old"}
    after = {"id": "a", "input": "new"}
    assert step_spec_difference("a", before, after) == (
        "--- a (recorded)\n"
        "+++ a (now)\n"
        "@@ -1,4 +1,4 @@\n"
        " {\n"
        '   "id": "a",\n'
        '-  "input": "old"\n'
        '+  "input": "new"\n'
        " }\n"
    )
    removed = step_spec_difference("a", before, None)
    assert removed.startswith("--- a (recorded)\n+++ a (now)\n@@ -1,4 +0,0 @@\n")


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(), inner, max_size=3),
    max_leaves=10,
)


@given(spec=st.dictionaries(st.text(), json_values, max_size=5))
def test_the_hash_ignores_key_order_and_sees_every_value(spec: dict[str, Any]) -> None:
    """Reordering keys keeps the hash; changing any value changes it."""
    reordered = dict(reversed(list(spec.items())))
    assert spec_hash(reordered) == spec_hash(spec)
    assert spec_hash({**spec, "__changed__": True}) != spec_hash(spec)
