"""The OpenAPI document describes the session cookie and the cross-site 403 where it can happen."""

from __future__ import annotations

from orchestr8._web._openapi import openapi_document
from orchestr8._web._problems import PROBLEM_TYPES


def test_the_session_cookie_is_a_second_security_scheme() -> None:
    """`cookieAuth` (apiKey in the `orchestr8_session` cookie) stands beside bearer."""
    secured = openapi_document(auth=True)
    schemes = secured["components"]["securitySchemes"]
    assert schemes["cookieAuth"]["type"] == "apiKey"
    assert schemes["cookieAuth"]["in"] == "cookie"
    assert schemes["cookieAuth"]["name"] == "orchestr8_session"
    assert {"bearer": []} in secured["security"]
    assert {"cookieAuth": []} in secured["security"]
    assert "security" not in openapi_document(auth=False)


def test_every_post_and_the_websocket_may_answer_the_cross_site_403() -> None:
    """A 403 is documented on each POST and the event socket's handshake, and on no read."""
    document = openapi_document(auth=True)
    assert "403" in document["components"]["responses"]
    assert "cross-site-request" in PROBLEM_TYPES
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            may_refuse = method == "post" or path == "/executions/{execution_id}/events"
            responses = operation["responses"]
            assert ("403" in responses) is may_refuse, (method, path)
            assert list(responses) == sorted(responses)
