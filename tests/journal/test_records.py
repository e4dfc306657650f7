"""What the journal stores and hands out: the page cursors."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from orchestr8._journal._records import decode_cursor, encode_cursor


@given(created_at=st.text(), execution_id=st.text())
def test_cursors_round_trip(created_at: str, execution_id: str) -> None:
    """A cursor decodes to the position it was made from."""
    assert decode_cursor(encode_cursor(created_at, execution_id)) == (created_at, execution_id)


@pytest.mark.parametrize("cursor", ["", "not a cursor", "WzFd", "eyJhIjogMX0"])
def test_anything_but_a_cursor_is_refused(cursor: str) -> None:
    """Garbage, or JSON of the wrong shape, is a ValueError naming the cursor."""
    with pytest.raises(ValueError, match="not a cursor from a previous page"):
        decode_cursor(cursor)
