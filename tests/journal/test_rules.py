"""The journal's rules: how a record becomes its stored row."""

from __future__ import annotations

import json

from orchestr8._journal._records import ExecutionRecord
from orchestr8._journal._rules import (
    EXECUTION_FIELDS,
    decode_execution,
    encode_execution,
    remember_unchanging_workflow,
)

WORKFLOW = EXECUTION_FIELDS.index("workflow")


def document(name: str) -> dict[str, object]:
    return {"schema_version": "1.0", "name": name, "steps": [{"id": "a", "agent": "echo"}]}


def test_records_of_the_unchanging_document_share_its_encoding() -> None:
    """The document the engine said never changes is encoded once: its rows hold the same text."""
    shared = document("wf")
    remember_unchanging_workflow(shared)
    first = encode_execution(ExecutionRecord("run-1", "wf", shared))
    remember_unchanging_workflow(shared)
    second = encode_execution(ExecutionRecord("run-2", "wf", shared, inputs={"q": 1}))
    assert first[WORKFLOW] is second[WORKFLOW]
    assert json.loads(second[WORKFLOW]) == shared
    assert decode_execution(second).inputs == {"q": 1}


def test_a_document_of_the_callers_own_is_encoded_anew_for_each_record() -> None:
    """A document nobody promised to keep is encoded each time, so a change between shows."""
    remember_unchanging_workflow(document("wf"))
    mine = document("mine")
    first = encode_execution(ExecutionRecord("run-1", "mine", mine))
    mine["name"] = "changed"
    second = encode_execution(ExecutionRecord("run-2", "mine", mine))
    assert json.loads(first[WORKFLOW])["name"] == "mine"
    assert json.loads(second[WORKFLOW])["name"] == "changed"


def test_remembering_another_document_forgets_the_first() -> None:
    """Only the latest remembered document is kept; the one before is encoded anew again."""
    first = document("first")
    remember_unchanging_workflow(first)
    kept = encode_execution(ExecutionRecord("run-1", "first", first))[WORKFLOW]
    remember_unchanging_workflow(document("second"))
    again = encode_execution(ExecutionRecord("run-2", "first", first))[WORKFLOW]
    assert again == kept
    assert again is not kept
