"""The web dashboard at `/ui/`: server-rendered pages, their static assets and security headers.

Every page is rendered by the server from a template (`_dashboard_assets.render_page`) and then
brought to life by one plain ES module (`static/js/<page>.js`) that reads the same REST API and
WebSocket every other client uses; the dashboard has no API of its own. Pages: the executions
list (`/ui/`), one execution (`/ui/executions/{id}`), a comparison of two
(`/ui/compare?a=ID&b=ID`), and a 404 page for anything else under `/ui/` or an unknown execution.
`/` redirects to `/ui/`. Every response carries a strict Content-Security-Policy: scripts,
styles and connections only from this origin, no inline script or style, no framing.
"""

from __future__ import annotations

from typing import Final

from quart import Quart, Response, request

from .._errors import ExecutionNotFoundError
from .._execution._liveness import SHOWN_STATUSES, shown_status
from .._execution._runtime import Runtime
from .._version import __version__
from ._dashboard_assets import render_page, static_asset
from ._sessions import is_signed_in

__all__ = ["CONTENT_SECURITY_POLICY", "register_dashboard", "security_headers"]

CONTENT_SECURITY_POLICY: Final = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "font-src 'self'; connect-src 'self'; base-uri 'none'; form-action 'self'; "
    "frame-ancestors 'none'"
)
"""The policy of every response: the dashboard's own files only, nothing inline."""

_HTML: Final = "text/html; charset=utf-8"


async def security_headers(response: Response) -> Response:
    """Add the Content-Security-Policy and its companions to every response."""
    response.headers.setdefault("Content-Security-Policy", CONTENT_SECURITY_POLICY)
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    response.headers.setdefault("Referrer-Policy", "no-referrer")
    response.headers.setdefault("X-Frame-Options", "DENY")
    return response


def page_response(template: str, http_status: int = 200, **context: object) -> Response:
    """A rendered page; every page knows the server's version and whether it needs a login."""
    body = render_page(template, version=__version__, signed_in=is_signed_in(), **context)
    response = Response(body, http_status, content_type=_HTML)
    response.headers["Cache-Control"] = "no-store"
    return response


def not_found_page(detail: str) -> Response:
    """The 404 page: what was not found, and a way back to the executions list."""
    return page_response("not_found.html", 404, page="not_found", title="Not found", detail=detail)


class DashboardPages:
    """The dashboard's route handlers, bound to one runtime (`register_dashboard` wires them)."""

    def __init__(self, runtime: Runtime) -> None:
        """Serve the pages of `runtime`'s journal."""
        self.runtime = runtime

    async def root(self) -> Response:
        """`GET /`: redirect to the dashboard."""
        return Response("", 302, headers={"Location": "/ui/"})

    async def executions(self) -> Response:
        """`GET /ui/`: the executions list (filled and kept live by `list.js`)."""
        return page_response(
            "executions.html",
            page="list",
            title="Executions",
            statuses=SHOWN_STATUSES,
            styles=["list"],
        )

    async def execution(self, execution_id: str) -> Response:
        """`GET /ui/executions/{id}`: one execution (its graph, timeline, journal, actions)."""
        try:
            record = await self.runtime.journal.get_execution(execution_id)
        except ExecutionNotFoundError:
            return not_found_page(f"There is no execution {execution_id!r} in this journal.")
        status = await shown_status(self.runtime.journal, execution_id, record.status)
        return page_response(
            "execution.html",
            page="execution",
            title=f"{record.workflow_name} · {execution_id[:8]}",
            record=record,
            status=status,
            styles=["graph", "timeline", "journal", "step_panel", "actions", "json_view"],
        )

    async def compare(self) -> Response:
        """`GET /ui/compare?a=ID&b=ID`: two executions side by side (filled by `compare.js`)."""
        first = request.args.get("a", "")
        second = request.args.get("b", "")
        return page_response(
            "compare.html", page="compare", title="Compare", a=first, b=second, styles=["compare"]
        )

    async def static(self, path: str) -> Response:
        """`GET /ui/static/{path}`: one of the dashboard's files, revalidated by ETag."""
        asset = static_asset(path)
        if asset is None:
            return not_found_page(f"The dashboard has no file {path!r}.")
        if request.headers.get("If-None-Match") == asset.etag:
            response = Response(b"", 304)
        else:
            response = Response(asset.body, 200, content_type=asset.content_type)
        response.headers["ETag"] = asset.etag
        response.headers["Cache-Control"] = "no-cache"
        return response

    async def unknown(self, rest: str) -> Response:
        """Any other path under `/ui/`: the 404 page."""
        return not_found_page(f"The dashboard has no page /ui/{rest}.")


def register_dashboard(app: Quart, runtime: Runtime) -> None:
    """Add the dashboard's routes and the security headers to the service app."""
    pages = DashboardPages(runtime)
    app.after_request(security_headers)
    app.add_url_rule("/", "dashboard_root", pages.root, methods=["GET"])
    app.add_url_rule("/ui", "dashboard_ui", pages.root, methods=["GET"])
    app.add_url_rule("/ui/", "dashboard_executions", pages.executions, methods=["GET"])
    app.add_url_rule(
        "/ui/executions/<execution_id>",
        "dashboard_execution",
        pages.execution,
        methods=["GET"],
    )
    app.add_url_rule("/ui/compare", "dashboard_compare", pages.compare, methods=["GET"])
    app.add_url_rule("/ui/static/<path:path>", "dashboard_static", pages.static, methods=["GET"])
    app.add_url_rule("/ui/<path:rest>", "dashboard_unknown", pages.unknown, methods=["GET"])
