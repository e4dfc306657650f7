"""Tests of `_secret_values`: values known for the process, or leased for an execution."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from orchestr8._observability._redaction import REDACTED, Redactor
from orchestr8._observability._secret_values import SecretLease


def test_leases_are_counted_and_released() -> None:
    """A value leased twice stays known until both leases end; then it is forgotten."""
    redactor = Redactor(secret_values=["permanent-1"])
    first = redactor.lease(["shared-value", "only-first", "abc"])
    with redactor.lease(["shared-value", "permanent-1"]) as second:
        assert set(second.values) == {"shared-value", "permanent-1"}
        assert redactor.redact_text("shared-value only-first") == "*** ***"
        assert redactor.secret_count == 3
    first.release()
    first.release()
    assert first.values == ()
    assert redactor.redact_text("shared-value only-first permanent-1") == (
        "shared-value only-first ***"
    )
    assert redactor.secret_count == 1


@given(
    st.lists(
        st.tuples(st.booleans(), st.lists(st.sampled_from(["aaaa", "bbbb", "cccc"]), max_size=3)),
        max_size=12,
    )
)
def test_known_values_are_exactly_those_held(steps: list[tuple[bool, list[str]]]) -> None:
    """After any leases and releases, the known values are the permanent ones and those held."""
    redactor = Redactor(secret_values=["perm"])
    held: list[SecretLease] = []
    for release, values in steps:
        if release and held:
            held.pop(0).release()
        else:
            held.append(redactor.lease(values))
    expected = {"perm"}.union(*(lease.values for lease in held))
    assert redactor.secret_count == len(expected)
    for value in ("perm", "aaaa", "bbbb", "cccc"):
        assert (redactor.redact_text(value) == REDACTED) == (value in expected)
