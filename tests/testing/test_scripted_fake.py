"""The machinery both scripted fakes share, checked on each of them: the record and the checks."""

from __future__ import annotations

import json

import pytest

from orchestr8.testing import FakeAnthropic, FakeOpenAI

FAKES = [
    pytest.param(FakeAnthropic, "/v1/messages", id="anthropic"),
    pytest.param(FakeOpenAI, "/v1/chat/completions", id="openai"),
]

Fake = type[FakeAnthropic] | type[FakeOpenAI]


@pytest.mark.parametrize(("fake_class", "path"), FAKES)
def test_requests_are_recorded_without_credentials_and_bodies_parsed(
    fake_class: Fake, path: str
) -> None:
    """A request keeps its lower-cased headers but no key; a body that is not JSON is None."""
    fake = fake_class()
    headers = {"X-Api-Key": "secret", "Authorization": "Bearer k", "X-Trace": "1"}
    fake._respond("post", path, headers, b"{")
    [request] = fake.requests
    assert (request.method, request.headers, request.json, request.has_credentials) == (
        "POST",
        {"x-trace": "1"},
        None,
        True,
    )


@pytest.mark.parametrize(("fake_class", "path"), FAKES)
def test_an_unscripted_request_is_answered_400_and_named_by_assert_all_used(
    fake_class: Fake, path: str
) -> None:
    """With no reply left the request gets a 400 naming it, and `with fake:` then fails."""
    fake = fake_class()
    answer = fake._respond("POST", path, {}, json.dumps({"model": "m"}).encode())
    assert answer.status == 400
    assert (
        f"{fake_class.__name__}: unexpected request #1 POST {path}"
        in b"".join(chunk for _, chunk in answer.chunks).decode()
    )
    expected = rf"^{fake_class.__name__}: unexpected request #1"
    with pytest.raises(AssertionError, match=expected), fake:
        pass


@pytest.mark.parametrize(("fake_class", "path"), FAKES)
def test_an_unused_reply_fails_the_check_and_pending_counts_it(fake_class: Fake, path: str) -> None:
    """`pending` counts the replies left; `assert_all_used` names each of them."""
    fake = fake_class()
    fake.reply_text("never asked for")
    assert fake.pending == 1
    with pytest.raises(AssertionError, match="scripted reply never requested"):
        fake.assert_all_used()


@pytest.mark.parametrize(("fake_class", "path"), FAKES)
def test_streaming_options_are_checked(fake_class: Fake, path: str) -> None:
    """A chunk size below 1 or a negative or infinite delay is refused at construction."""
    with pytest.raises(ValueError, match="chunk_size must be >= 1"):
        fake_class(chunk_size=0)
    for delay in (-1.0, float("inf")):
        with pytest.raises(ValueError, match="a finite number >= 0"):
            fake_class(delay=delay)
