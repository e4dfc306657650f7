"""The web view: the REST API and the live WebSocket as a Quart-Trio app, and `orchestr8 serve`.

Holds `_app` (the app: wiring and the API key check), `_routes` (the route handlers),
`_requests` (reading bodies, queries and headers), `_documents` (the documents answered),
`_problems` (errors as RFC 9457 problems), `_responses` (finishing every response, errors
answered), `_event_socket` (the events WebSocket), `_openapi` (the spec's operations) with
`_openapi_schemas` (its body schemas) and `_openapi_parts` (the pieces every part shares),
`_serve` (Hypercorn in a runtime's scope) and `_command` (the `serve` command). Route families
beside the core, each with its `_openapi_*` part: the approval gates (`_gate_routes`), time
travel (`_time_travel_routes`), a step's details (`_step_routes`), the graph (`_graph_routes`)
and the timeline and filtered journal (`_timeline_routes`), the last two reading through
`_replay_cache` (a run's events replayed once for every panel of a page).
The dashboard at `/ui/`: `_dashboard` (its pages, static files and security headers) on
`_dashboard_assets` (templates and files shipped in `dashboard/`); its sign-in: `_sessions`
(the session cookie, the cross-site checks), `_login_pages` (`/ui/login`, `/ui/logout`) and
`_openapi_sessions`; `_open_browser` is `serve --open`.
May import: `_shell` and every stage below it; never `_cli`.
"""
