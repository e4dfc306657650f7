"""What the journal stores and hands out: the text rule for stored strings and the page cursors."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from orchestr8._journal_records import decode_cursor, encode_cursor, has_lone_surrogate


@pytest.mark.parametrize(
    ("text", "lone"),
    [("", False), ("plain", False), ("é😀", False), ("\ud800", True), ("a\udfffb", True)],
)
def test_has_lone_surrogate_finds_what_utf8_cannot_encode(text: str, lone: bool) -> None:
    """Only lone surrogates count; paired characters such as emoji are text."""
    assert has_lone_surrogate(text) is lone


@given(st.text(st.characters(codec="utf-8")))
def test_text_that_utf8_encodes_has_no_lone_surrogate(text: str) -> None:
    """Whatever UTF-8 can encode passes the rule."""
    text.encode("utf-8")
    assert not has_lone_surrogate(text)


@given(created_at=st.text(), execution_id=st.text())
def test_cursors_round_trip(created_at: str, execution_id: str) -> None:
    """A cursor decodes to the position it was made from."""
    assert decode_cursor(encode_cursor(created_at, execution_id)) == (created_at, execution_id)


@pytest.mark.parametrize("cursor", ["", "not a cursor", "WzFd", "eyJhIjogMX0"])
def test_anything_but_a_cursor_is_refused(cursor: str) -> None:
    """Garbage, or JSON of the wrong shape, is a ValueError naming the cursor."""
    with pytest.raises(ValueError, match="not a cursor from a previous page"):
        decode_cursor(cursor)
