"""The orchestr8 service: the REST API and the live event WebSocket, as a Quart-Trio app.

`create_app(runtime)` builds the app; `_serve.serve` runs it with Hypercorn. This module wires
it: the API key check before every request, the route handlers (`_routes`; `_time_travel_routes` for
the state at one event and comparisons, `_timeline_routes` for the timeline and the journal),
and how every response is finished and every error answered (`_responses`). The routes are
described by `orchestr8._web._openapi` and in `docs/rest.md`.
"""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable
from typing import Final

from quart import Response, has_websocket_context, request, websocket
from quart_trio import QuartTrio
from werkzeug.exceptions import HTTPException

from .._errors import ExecutionNotFoundError, JournalError
from .._execution._runtime import Runtime
from .._observability._redaction import register_secret
from ._dashboard import register_dashboard
from ._gate_routes import GateRoutes
from ._graph_routes import GraphRoutes
from ._login_pages import register_login_pages
from ._problems import ProblemError, problem_response
from ._replay_cache import ReplayCache
from ._responses import (
    close_if_body_unread,
    correlation_header,
    http_error,
    journal_error,
    not_found,
    problem_error,
    refused_handshake_headers,
    sendable_headers,
    unexpected_error,
)
from ._routes import ServiceRoutes, ServiceState
from ._sessions import (
    SESSION_COOKIE,
    cross_site,
    login_redirect,
    mark_signed_in,
    needs_login_page,
    public_path,
    session_token,
    unsafe_without_origin,
    valid_session,
)
from ._step_routes import StepRoutes
from ._time_travel_routes import TimeTravelRoutes
from ._timeline_routes import TimelineRoutes

DEFAULT_MAX_BODY: Final = 1024 * 1024
"""The largest request body accepted by default, in bytes (1 MiB)."""

DEFAULT_EVENTS_BUFFER: Final = 1024
"""How many bus events a WebSocket client may fall behind by default before it is closed."""


class ServiceApp(QuartTrio):
    """The Quart-Trio app of the service; `service` holds the runtime and the shutdown switches."""

    service: ServiceState

    def start_draining(self) -> None:
        """Refuse new executions (503) and report `draining` on `/health`, while reads go on."""
        self.service.draining = True

    def close_event_streams(self) -> None:
        """Close every open event WebSocket with 1001 and `reconnect with after=N`."""
        self.service.closing.set()


def create_app(
    runtime: Runtime,
    *,
    api_key: str | None = None,
    max_body: int = DEFAULT_MAX_BODY,
    events_buffer: int = DEFAULT_EVENTS_BUFFER,
) -> ServiceApp:
    """Build the service app over a runtime; serve it with `orchestr8._web._serve.serve`.

    Args:
        runtime: the runtime from `open_runtime` in which executions run.
        api_key: when set, every route but `GET /health`, the dashboard's login page and its
            static files requires `Authorization: Bearer <key>` or the dashboard's session cookie.
        max_body: the largest request body accepted, in bytes (413 beyond).
        events_buffer: how many bus events a WebSocket client may fall behind before it is closed.

    Raises:
        ValueError: the key is empty or not printable ASCII, or a limit is below 1.
    """
    if api_key is not None and not (api_key.isascii() and api_key.isprintable() and api_key):
        raise ValueError("the API key must be non-empty printable ASCII")
    if max_body < 1 or events_buffer < 1:
        raise ValueError("max_body and events_buffer must be at least 1")
    if api_key is not None:
        # Redacted wherever it would show: a problem body quoting a request, a log line.
        register_secret(api_key)
        register_secret(session_token(api_key.encode()))
    app = ServiceApp(__name__)
    app.config["MAX_CONTENT_LENGTH"] = max_body
    app.service = ServiceState(
        runtime, None if api_key is None else api_key.encode(), events_buffer
    )
    routes = ServiceRoutes(app.service)
    authenticate = _authenticator(app.service)
    app.before_request(authenticate)
    app.before_websocket(authenticate)
    # After-request functions run last-registered first: the header check sees the final headers.
    app.after_request(sendable_headers)
    app.after_request(close_if_body_unread)
    app.after_request(correlation_header)
    app.after_websocket(refused_handshake_headers)
    app.register_error_handler(ProblemError, problem_error)
    app.register_error_handler(HTTPException, http_error)
    app.register_error_handler(ExecutionNotFoundError, not_found)
    app.register_error_handler(JournalError, journal_error)
    app.register_error_handler(Exception, unexpected_error)
    app.add_url_rule("/health", "health", routes.health, methods=["GET"])
    app.add_url_rule("/openapi.json", "openapi", routes.openapi, methods=["GET"])
    app.add_url_rule("/metrics", "metrics", routes.metrics, methods=["GET"])
    app.add_url_rule("/workflows/execute", "execute", routes.execute, methods=["POST"])
    app.add_url_rule("/executions", "list_executions", routes.list_executions, methods=["GET"])
    time_travel = TimeTravelRoutes(runtime)
    app.add_url_rule(
        "/executions/compare", "compare_executions", time_travel.compare, methods=["GET"]
    )
    app.add_url_rule(
        "/executions/<execution_id>/state", "get_state", time_travel.state, methods=["GET"]
    )
    app.add_url_rule(
        "/executions/<execution_id>", "get_execution", routes.get_execution, methods=["GET"]
    )
    replays = ReplayCache(lambda: runtime.journal)
    timeline = TimelineRoutes(runtime, replays)
    app.add_url_rule(
        "/executions/<execution_id>/journal", "get_journal", timeline.journal, methods=["GET"]
    )
    app.add_url_rule(
        "/executions/<execution_id>/timeline", "get_timeline", timeline.timeline, methods=["GET"]
    )
    app.add_url_rule(
        "/executions/<execution_id>/cancel", "cancel_execution", routes.cancel, methods=["POST"]
    )
    app.add_url_rule(
        "/executions/<execution_id>/resume", "resume_execution", routes.resume, methods=["POST"]
    )
    app.add_url_rule(
        "/executions/<execution_id>/fork", "fork_execution", routes.fork, methods=["POST"]
    )
    app.add_websocket("/executions/<execution_id>/events", "follow_events", routes.follow_events)
    app.add_url_rule(
        "/executions/<execution_id>/events",
        "events_without_upgrade",
        routes.events_without_upgrade,
        methods=["GET"],
    )
    gates = GateRoutes(app.service)
    app.add_url_rule(
        "/executions/<execution_id>/gates", "list_gates", gates.list_gates, methods=["GET"]
    )
    app.add_url_rule(
        "/executions/<execution_id>/gates/<gate_id>", "answer_gate", gates.answer, methods=["POST"]
    )
    steps = StepRoutes(runtime)
    app.add_url_rule(
        "/executions/<execution_id>/steps/<path:step_id>", "get_step", steps.step, methods=["GET"]
    )
    graph = GraphRoutes(runtime, replays)
    app.add_url_rule("/executions/<execution_id>/graph", "get_graph", graph.graph, methods=["GET"])
    app.add_url_rule(
        "/executions/<execution_id>/graph/<step_id>/members",
        "list_group_members",
        graph.members,
        methods=["GET"],
    )
    register_login_pages(app, app.service.api_key)
    register_dashboard(app, runtime)
    return app


def _authenticator(service: ServiceState) -> Callable[[], Awaitable[Response | None]]:
    """The check run before every request and handshake: the API key, or the session cookie.

    The cookie is the dashboard's (`_sessions`); no unsafe request or handshake may come from
    another site's page, with or without a key.
    """

    async def authenticate() -> Response | None:
        """Refuse a request without the API key (before routing, so unknown routes say 401 too)."""
        socket = has_websocket_context()
        connection = websocket if socket else request
        method = "GET" if socket else request.method
        path = connection.path
        if cross_site(method, path, connection.headers, connection.host, websocket=socket):
            return _cross_site_problem("its Origin header names another site")
        if service.api_key is None or public_path(path):
            return None
        scheme, _, token = connection.headers.get("Authorization", "").partition(" ")
        if scheme.lower() == "bearer" and hmac.compare_digest(
            token.strip().encode("latin-1", "replace"), service.api_key
        ):
            return None
        if valid_session(connection.cookies.get(SESSION_COOKIE), service.api_key):
            if unsafe_without_origin(method, connection.headers, connection.host, websocket=socket):
                return _cross_site_problem("it carries no Origin header naming this server")
            mark_signed_in()
            return None
        if not socket and needs_login_page(method, path):
            return login_redirect(path, request.query_string.decode("latin-1"))
        # Worded so that no `key: value` secret pattern matches: problems are redacted whole.
        detail = "send the API key in the Authorization header, as `Bearer <key>`"
        return problem_response(
            401, "unauthorized", detail, headers={"WWW-Authenticate": 'Bearer realm="orchestr8"'}
        )

    return authenticate


def _cross_site_problem(reason: str) -> Response:
    """The 403 for a request that may come from another site's page, saying why."""
    detail = (
        f"refused as a possible cross-site request: {reason}; the dashboard's own pages, "
        "or a client sending the API key as a Bearer header, are accepted"
    )
    return problem_response(403, "cross-site-request", detail)
