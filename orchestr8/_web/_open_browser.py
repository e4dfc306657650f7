"""`orchestr8 serve --open`: show the dashboard in the user's web browser once the server listens.

The browser is whatever `webbrowser` finds (the `BROWSER` environment variable first). It is
opened in a daemon thread: some browsers' launchers wait until the window closes, and the server
must neither wait for them nor be kept from stopping. Failing to open one is a warning line on
stderr naming the URL to open by hand, never an error: the server serves all the same.
"""

from __future__ import annotations

import threading
import webbrowser
from typing import Final, TextIO
from urllib.parse import urlsplit, urlunsplit

__all__ = ["dashboard_url", "open_in_browser"]

_ANY_ADDRESS: Final = {"0.0.0.0": "127.0.0.1", "[::]": "[::1]"}


def dashboard_url(url: str) -> str:
    """The dashboard's address on a server listening at `url` (a wildcard host as loopback)."""
    parts = urlsplit(url)
    host, colon, port = parts.netloc.rpartition(":")
    if not colon:
        host, port = parts.netloc, ""
    netloc = _ANY_ADDRESS.get(host, host) + (f":{port}" if colon else "")
    return urlunsplit((parts.scheme, netloc, "/ui/", "", ""))


def open_in_browser(url: str, err: TextIO) -> threading.Thread:
    """Open `url` in a web browser from a daemon thread; warn on `err` if that fails."""

    def show() -> None:
        try:
            opened = webbrowser.open(url)
        except Exception as error:
            reason = f": {error}"
            opened = False
        else:
            reason = ""
        if not opened:
            err.write(f"warning: could not open a web browser{reason}; open {url} yourself\n")
            err.flush()

    thread = threading.Thread(target=show, name="orchestr8-open-browser", daemon=True)
    thread.start()
    return thread
