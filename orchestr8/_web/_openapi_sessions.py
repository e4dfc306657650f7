"""The OpenAPI description of the dashboard's session cookie, the API's second credential.

The login page (`/ui/login`, not an API operation) sets the `orchestr8_session` cookie; the API
and the WebSocket accept it beside `Authorization: Bearer <key>`. `add_session_security` adds the
`cookieAuth` scheme, the 403 `cross-site-request` response, and that 403 to every operation a
browser could be tricked into sending: each POST and the WebSocket handshake.
"""

from __future__ import annotations

from typing import Any, Final

from ._sessions import SESSION_COOKIE

__all__ = ["COOKIE_SCHEME", "add_session_security"]

COOKIE_SCHEME: Final = "cookieAuth"
"""The name of the session cookie's security scheme in the document."""

_FORBIDDEN: Final = (
    "Refused as a possible cross-site request: a POST or WebSocket handshake whose `Origin` "
    "names another site, or one authenticated by the session cookie without an `Origin` (or "
    "`Referer`) naming this server (problem `cross-site-request`)."
)


def add_session_security(document: dict[str, Any], *, auth: bool) -> dict[str, Any]:
    """Describe the session cookie and the cross-site 403 in `document` (changed and returned)."""
    components = document["components"]
    components["securitySchemes"][COOKIE_SCHEME] = {
        "type": "apiKey",
        "in": "cookie",
        "name": SESSION_COOKIE,
        "description": "The dashboard's session, set by signing in at `/ui/login`: an HMAC of "
        "the API key, never the key. A POST or WebSocket handshake with it needs an `Origin` "
        "of this server. See docs/dashboard.md.",
    }
    forbidden = dict(components["responses"]["401"])
    forbidden["description"] = _FORBIDDEN
    forbidden["headers"] = {"X-Correlation-ID": {"$ref": "#/components/headers/X-Correlation-ID"}}
    components["responses"]["403"] = forbidden
    reference = {"$ref": "#/components/responses/403"}
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            responses = operation["responses"]
            if method == "post" or path.endswith("/events"):
                responses["403"] = reference
            # Every operation lists its responses in code order, whichever module described it.
            operation["responses"] = dict(sorted(responses.items()))
    if auth:
        document["security"].append({COOKIE_SCHEME: []})
    return document
