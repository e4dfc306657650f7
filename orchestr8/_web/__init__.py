"""The web view: the REST API and the live WebSocket as a Quart-Trio app, and `orchestr8 serve`.

Holds `_app` (the app: wiring and the API key check), `_routes` (the route handlers),
`_requests` (reading bodies, queries and headers), `_documents` (the documents answered),
`_problems` (errors as RFC 9457 problems), `_responses` (finishing every response, errors
answered), `_event_socket` (the events WebSocket), `_openapi` (the spec's operations) with
`_openapi_schemas` (its body schemas), `_serve` (Hypercorn in a runtime's scope) and `_command`
(the `serve` command), and the approval gates' routes, `_gate_routes` with `_openapi_gates`.
The dashboard's sign-in: `_sessions` (the session cookie, the cross-site checks), `_login_pages`
(`/ui/login`, `/ui/logout`) and `_openapi_sessions`; `_open_browser` is `serve --open`.
May import: `_shell` and every stage below it; never `_cli`.
"""
