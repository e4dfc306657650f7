"""The dashboard's files: its page templates and its static assets, read from the package.

The dashboard needs no build step: its pages are Jinja templates rendered by the server, its
scripts plain ES modules and its styles one CSS file, all shipped as package data in
`orchestr8/_web/dashboard/` (`templates/`, `static/`). Third-party files live in
`static/vendor/` with their licences and `manifest.json` (name, version, sha256), refreshed by
`scripts/vendor_dashboard.py`. Assets are read once, on first use, and served from
memory with an ETag, so a page load never touches the disk and never serves a path outside the
folder.
"""

from __future__ import annotations

import hashlib
import mimetypes
from collections.abc import Mapping
from functools import cache
from importlib import resources
from importlib.resources.abc import Traversable
from typing import Any, Final

import attrs
import jinja2

__all__ = ["StaticAsset", "render_page", "static_asset", "static_assets"]

_PACKAGE: Final = "orchestr8._web"
_FOLDER: Final = "dashboard"

_CONTENT_TYPES: Final[Mapping[str, str]] = {
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
    ".json": "application/json",
    ".txt": "text/plain; charset=utf-8",
    ".png": "image/png",
}


@attrs.frozen
class StaticAsset:
    """One static file of the dashboard: its bytes, content type and ETag."""

    body: bytes
    content_type: str
    etag: str


def _folder() -> Traversable:
    return resources.files(_PACKAGE).joinpath(_FOLDER)


def _walk(folder: Traversable, prefix: str) -> dict[str, StaticAsset]:
    found: dict[str, StaticAsset] = {}
    for entry in folder.iterdir():
        name = f"{prefix}{entry.name}"
        if entry.is_dir():
            found |= _walk(entry, f"{name}/")
            continue
        suffix = "." + entry.name.rpartition(".")[2]
        content_type = _CONTENT_TYPES.get(suffix) or (
            mimetypes.guess_type(entry.name)[0] or "application/octet-stream"
        )
        body = entry.read_bytes()
        etag = '"' + hashlib.sha256(body).hexdigest()[:32] + '"'
        found[name] = StaticAsset(body, content_type, etag)
    return found


@cache
def static_assets() -> Mapping[str, StaticAsset]:
    """Every static file of the dashboard by its path under `static/` (read once)."""
    return _walk(_folder().joinpath("static"), "")


def static_asset(path: str) -> StaticAsset | None:
    """The static file at `path` under `static/`, or None when there is none."""
    return static_assets().get(path)


@cache
def _environment() -> jinja2.Environment:
    loader = jinja2.FunctionLoader(_template_source)
    environment = jinja2.Environment(
        loader=loader, autoescape=True, undefined=jinja2.StrictUndefined
    )
    environment.globals["static"] = _static_url
    return environment


def _template_source(name: str) -> str | None:
    entry = _folder().joinpath("templates", name)
    return entry.read_text(encoding="utf-8") if entry.is_file() else None


def _static_url(path: str) -> str:
    if path not in static_assets():
        raise LookupError(f"the dashboard has no static file {path!r}")
    return f"/ui/static/{path}"


def render_page(template: str, **context: Any) -> str:
    """Render one of the dashboard's page templates (autoescaped) with `context`."""
    return _environment().get_template(template).render(**context)
