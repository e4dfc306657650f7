"""Tests of `redaction`: secret keys, known values, free text, the process default."""

from __future__ import annotations

import re
from collections.abc import Iterator
from types import MappingProxyType
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from orchestr8._observability._redaction import (
    REDACTED,
    Redactor,
    default_redactor,
    is_reference_template,
    redact,
    redact_text,
    register_secret,
    set_default_redactor,
)

KEY = "sk-ant-api03-abcdefgh12345678"


@pytest.fixture
def fresh_default() -> Iterator[None]:
    previous = set_default_redactor(Redactor())
    try:
        yield
    finally:
        set_default_redactor(previous)


@pytest.mark.parametrize(
    "key",
    [
        "api_key",
        "apikey",
        "api-key",
        "API_KEY",
        "apiKey",
        "x-api-key",
        "X-Api-Key",
        "token",
        "access_token",
        "accessToken",
        "refresh_token",
        "auth-token",
        "password",
        "db_password",
        "passwd",
        "secret",
        "client_secret",
        "clientSecret",
        "Authorization",
        "Proxy-Authorization",
        "private_key",
        "Cookie",
        "set-cookie",
        "ANTHROPIC_API_KEY",
    ],
)
def test_secret_keys(key: str) -> None:
    assert Redactor().is_secret_key(key)
    assert Redactor().redact({key: "value"}) == {key: REDACTED}


@pytest.mark.parametrize(
    "key",
    [
        "input_tokens",
        "output_tokens",
        "max_tokens",
        "tokens_used",
        "cache_read_input_tokens",
        "token_count",
        "tokenizer",
        "key",
        "idempotency_key",
        "keys",
        "secret_name",
        "password_policy",
        "author",
        "monkey",
        "step_id",
        "authorization_url",
    ],
)
def test_ordinary_keys_are_kept(key: str) -> None:
    assert not Redactor().is_secret_key(key)
    assert Redactor().redact({key: 42}) == {key: 42}


def test_nested_structures_are_copied_not_mutated() -> None:
    document = {
        "step": "call",
        "config": {
            "headers": {"Authorization": "Bearer abc", "Accept": "json"},
            "retries": [1, {"token": "t0k", "n": 2}],
        },
        "usage": {"input_tokens": 10, "output_tokens": 20},
        "credentials": ({"password": "pw"},),
    }
    before = repr(document)
    redacted = Redactor().redact(document)
    assert repr(document) == before
    assert redacted == {
        "step": "call",
        "config": {
            "headers": {"Authorization": REDACTED, "Accept": "json"},
            "retries": [1, {"token": REDACTED, "n": 2}],
        },
        "usage": {"input_tokens": 10, "output_tokens": 20},
        "credentials": ({"password": REDACTED},),
    }
    assert redacted["usage"] is document["usage"]  # unchanged parts are shared


def test_a_secret_key_redacts_whole_values_but_not_empty_ones() -> None:
    redacted = Redactor().redact({"secret": {"a": 1}, "token": None, "password": "", "api_key": 7})
    assert redacted == {"secret": REDACTED, "token": None, "password": "", "api_key": REDACTED}


def test_known_values_stay_the_same_tuple_until_the_values_change() -> None:
    """`known_values` is replaced whole when a value comes or goes, so identity says "same"."""
    redactor = Redactor()
    empty = redactor.known_values
    assert empty == ()
    with redactor.lease(["first-value-123"]):
        known = redactor.known_values
        assert known == ("first-value-123",)
        with redactor.lease(["first-value-123"]):
            assert redactor.known_values is known
        assert redactor.known_values is known
    assert len(redactor.known_values) == 0
    assert redactor.known_values is not known


def test_nothing_to_redact_returns_the_same_object() -> None:
    document: dict[str, Any] = {"a": [1, 2, {"b": "text"}], "c": ("x",)}
    redactor = Redactor(secret_values=[KEY])
    assert redactor.redact(document) is document
    assert redactor.redact("plain") == "plain"
    assert redactor.redact(3.5) == 3.5


def test_known_values_anywhere_in_strings_and_keys() -> None:
    redactor = Redactor(secret_values=[KEY])
    document = {"message": f"HTTP 401 with key {KEY}!", "list": [KEY, "ok"], KEY: 1}
    assert redactor.redact(document) == {
        "message": "HTTP 401 with key ***!",
        "list": [REDACTED, "ok"],
        REDACTED: 1,
    }
    assert redactor.redact((f"x{KEY}",)) == ("x***",)


def test_longer_secrets_are_replaced_whole() -> None:
    redactor = Redactor(secret_values=["abcd1234", "abcd1234-extended"])
    assert redactor.redact_text("v=abcd1234-extended") == "v=***"


def test_mappings_other_than_dict() -> None:
    assert Redactor().redact(MappingProxyType({"token": "x", "n": 1})) == {
        "token": REDACTED,
        "n": 1,
    }


def test_short_values_are_refused() -> None:
    redactor = Redactor()
    assert not redactor.add_secret("abc")
    assert not redactor.add_secret("   ")
    assert redactor.add_secret(" abcd ")
    assert redactor.redact_text("xabcdx") == "x***x"


def test_extra_keys() -> None:
    redactor = Redactor(extra_keys=["session_id", "X-Signature"])
    assert redactor.redact({"user_session_id": "s", "x_signature": "sig", "session": 1}) == {
        "user_session_id": REDACTED,
        "x_signature": REDACTED,
        "session": 1,
    }
    assert redactor.redact_text("X-Signature: abc session-id=42") == (
        "X-Signature: *** session-id=***"
    )
    assert redactor.secret_keys[-2:] == ("session_id", "X-Signature")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Authorization: Bearer abc.def", "Authorization: Bearer ***"),
        ("GET /v1?api_key=abc123&q=1", "GET /v1?api_key=***&q=1"),
        ("{'api_key': 'abc', 'model': 'x'}", "{'api_key': '***', 'model': 'x'}"),
        ('{"client_secret": "s3cr3t", "n": 1}', '{"client_secret": "***", "n": 1}'),
        ("password=hunter2 user=bob", "password=*** user=bob"),
        ("X-API-Key: k1, other", "X-API-Key: ***, other"),
        ("max_tokens=1024 input_tokens: 5", "max_tokens=1024 input_tokens: 5"),
        ("no secrets here", "no secrets here"),
        ("template /etc/passwd: the file", "template /etc/passwd: the file"),
        (r"C:\\token: the end", r"C:\\token: the end"),
    ],
)
def test_free_text(text: str, expected: str) -> None:
    assert Redactor().redact_text(text) == expected


def test_data_strings_get_values_only_not_key_patterns() -> None:
    # An agent's output that talks about "token: x" is data, not a leak: it is kept as is.
    assert Redactor().redact({"output": "the token: abc"}) == {"output": "the token: abc"}


def test_from_environment() -> None:
    environ = {
        "ANTHROPIC_API_KEY": KEY,
        "CONTEXT7_API_KEY": "ctx7-0123456789",
        "GITHUB_TOKEN": "short",
        "ORCHESTR8_API_KEY": "service-key-1234",
        "HOME": "/home/someone-long-path",
        "ORCHESTR8_REDACT_KEYS": " session_id , ,x-signature",
    }
    redactor = Redactor.from_environment(environ)
    text = f"{KEY} ctx7-0123456789 short service-key-1234 /home/someone-long-path"
    assert redactor.redact_text(text) == "*** *** short *** /home/someone-long-path"
    assert redactor.is_secret_key("session_id")
    assert redactor.is_secret_key("X-Signature")


def test_process_default(fresh_default: None) -> None:
    assert register_secret("process-secret-99")
    assert redact({"m": "a process-secret-99"}) == {"m": "a ***"}
    assert redact_text("token=process-secret-99") == "token=***"
    assert default_redactor().redact_text("process-secret-99") == REDACTED


def test_default_is_built_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MY_SERVICE_TOKEN", "env-token-abcdef")
    previous = set_default_redactor(None)
    try:
        assert redact_text("x env-token-abcdef") == "x ***"
    finally:
        set_default_redactor(previous)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(
            st.sampled_from(["a", "token", "max_tokens", "n", "Secret"]), children, max_size=4
        )
    ),
    max_leaves=20,
)


@given(json_values)
def test_redaction_is_idempotent_and_leaves_no_secret_keyed_values(value: Any) -> None:
    redactor = Redactor(secret_values=["hunter22"])
    once = redactor.redact(value)
    assert redactor.redact(once) == once

    def check(node: Any) -> None:
        if isinstance(node, dict):
            for key, item in node.items():
                if key in ("token", "Secret") and item not in (None, ""):
                    assert item == REDACTED
                check(item)
        elif isinstance(node, list):
            for item in node:
                check(item)

    check(once)


# -- reference templates -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "kept"),
    [
        ("${secrets.TOKEN}", True),
        ("Bearer ${secrets.TOKEN}", True),
        ("${inputs.key}", True),
        ("${ inputs.a }${steps.b.output.c}", True),
        ("sk-live ${secrets.TOKEN}", False),
        ("${not a reference}", False),
        ("$${secrets.TOKEN}", False),
        ("plain", False),
    ],
)
def test_reference_templates_under_secret_keys_are_kept(value: str, kept: bool) -> None:
    """A string of references names where a secret comes from; anything more is redacted."""
    assert Redactor().redact({"token": value}) == {"token": value if kept else REDACTED}


def test_secret_variables_of_the_environment_are_known() -> None:
    """`ORCHESTR8_SECRET_NAME` values (for `${secrets.NAME}`) are redacted everywhere."""
    redactor = Redactor.from_environment({"ORCHESTR8_SECRET_DB": "db-pass-1234"})
    assert redactor.redact_text("connect db-pass-1234") == "connect ***"


_PIECES = st.sampled_from(
    [
        "${inputs.token}",
        "${ inputs.a }",
        "${steps.fetch.output.body[0]}",
        "${steps.b.output['x y']}",
        '${steps.b.output["k"]}',
        "${secrets.API}",
        "${secrets.}",
        "${not a reference}",
        "${inputs",
        "${}",
        "$",
        "Bearer ",
        "token ",
        " ",
        "plain",
        "}",
    ]
)


@given(st.lists(_PIECES, max_size=4).map("".join))
def test_reference_templates_are_what_the_workflow_grammar_reads(text: str) -> None:
    """Redaction's own reference shape agrees with the expression parser on every string."""
    from orchestr8._workflow._expressions import scan_template

    located, problems = scan_template(text)
    parsed = "${" in text and not problems and bool(located)
    rest = re.sub(r"\$\{[^}]*\}", "", text).strip().lower()
    expected = parsed and rest in {"", "bearer", "basic", "token"}
    assert is_reference_template(text) == expected
