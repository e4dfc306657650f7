"""The journal's rules: how a record becomes its stored row."""

from __future__ import annotations

import json

from orchestr8._journal._records import ExecutionRecord
from orchestr8._journal._rules import EXECUTION_FIELDS, decode_execution, encode_execution

WORKFLOW = EXECUTION_FIELDS.index("workflow")


def document(name: str) -> dict[str, object]:
    return {"schema_version": "1.0", "name": name, "steps": [{"id": "a", "agent": "echo"}]}


def test_records_of_one_document_object_share_its_encoding() -> None:
    """The same document object, started again, is encoded once: its rows hold the same text."""
    shared = document("wf")
    first = encode_execution(ExecutionRecord("run-1", "wf", shared))
    second = encode_execution(ExecutionRecord("run-2", "wf", shared, inputs={"q": 1}))
    assert first[WORKFLOW] is second[WORKFLOW]
    assert json.loads(second[WORKFLOW]) == shared
    assert decode_execution(second).inputs == {"q": 1}


def test_another_document_object_is_encoded_anew() -> None:
    """An equal-looking or different document that is another object gets its own encoding."""
    encode_execution(ExecutionRecord("run-1", "wf", document("wf")))
    other = document("other")
    row = encode_execution(ExecutionRecord("run-2", "other", other))
    assert json.loads(row[WORKFLOW]) == other
    again = encode_execution(ExecutionRecord("run-3", "wf", document("wf")))
    assert json.loads(again[WORKFLOW])["name"] == "wf"
