"""The journal's rules: how a record becomes its stored row."""

from __future__ import annotations

import hashlib
import json

from orchestr8._journal._records import ExecutionRecord
from orchestr8._journal._rules import (
    EXECUTION_FIELDS,
    decode_execution,
    document_digest,
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


def test_the_unchanging_documents_digest_is_made_once_and_is_the_sha256_of_its_text() -> None:
    """Records of the remembered document share its text, and its digest is made once."""
    shared = document("digest")
    remember_unchanging_workflow(shared)
    text = encode_execution(ExecutionRecord("run-1", "wf", shared))[WORKFLOW]
    first = document_digest(text)
    assert first == hashlib.sha256(text.encode()).hexdigest()
    assert document_digest(text) is first
    assert document_digest(str(text)) == first
