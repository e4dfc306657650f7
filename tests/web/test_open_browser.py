"""`orchestr8 serve --open`: the dashboard opens in the user's browser once the server listens."""

from __future__ import annotations

import io
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
from cli_processes import environment

from orchestr8._web._open_browser import dashboard_url, open_in_browser


@pytest.mark.parametrize(
    ("url", "dashboard"),
    [
        ("http://127.0.0.1:8080", "http://127.0.0.1:8080/ui/"),
        ("http://0.0.0.0:8080", "http://127.0.0.1:8080/ui/"),
        ("http://[::]:8080", "http://[::1]:8080/ui/"),
        ("http://[::1]:9000", "http://[::1]:9000/ui/"),
        ("http://localhost", "http://localhost/ui/"),
    ],
)
def test_the_dashboard_url_is_ui_on_a_reachable_host(url: str, dashboard: str) -> None:
    """The browser gets URL/ui/; a wildcard listening address becomes loopback."""
    assert dashboard_url(url) == dashboard


def fake_browser(directory: Path, *, works: bool) -> Path:
    """A browser that says which URL it was given on its stdout (serve's), or fails."""
    script = directory / "fake-browser"
    body = 'echo "browser opened $1"\n' if works else "exit 3\n"
    script.write_text("#!/bin/sh\n" + body)
    script.chmod(0o755)
    return script


@contextmanager
def serving_with_open(directory: Path, **env: str) -> Iterator[subprocess.Popen[str]]:
    """`orchestr8 serve --port 0 --open` as a real process, stopped with SIGTERM after."""
    command = [sys.executable, "-m", "orchestr8", "serve", "--port", "0", "--open"]
    with subprocess.Popen(
        [*command, "--journal", "j.db"],
        cwd=directory,
        env=environment(directory, **env),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    ) as process:
        try:
            yield process
        finally:
            process.send_signal(signal.SIGTERM)
            try:
                process.communicate(timeout=20)
            finally:
                if process.poll() is None:
                    process.kill()


def test_open_shows_the_dashboard_in_the_browser_named_by_browser(tmp_path: Path) -> None:
    """After printing its URL, `serve --open` runs $BROWSER with URL/ui/."""
    browser = fake_browser(tmp_path, works=True)
    with serving_with_open(tmp_path, BROWSER=str(browser)) as process:
        assert process.stdout is not None
        served = process.stdout.readline()
        assert served.startswith("orchestr8 serving on http://127.0.0.1:"), served
        url = served.split()[-1]
        assert process.stdout.readline() == f"browser opened {url}/ui/\n"


def test_a_browser_that_fails_is_a_warning_and_the_server_serves_on(tmp_path: Path) -> None:
    """No browser could open the page: one warning line naming the URL; the server keeps going."""
    browser = fake_browser(tmp_path, works=False)
    # An empty PATH: no other browser on this machine is tried after the failing one.
    empty = tmp_path / "bin"
    empty.mkdir()
    with serving_with_open(tmp_path, BROWSER=str(browser), PATH=str(empty)) as process:
        assert process.stdout is not None
        assert process.stderr is not None
        url = process.stdout.readline().split()[-1]
        while "warning" not in (line := process.stderr.readline()):
            assert line, "the server ended without a warning"
        assert line == f"warning: could not open a web browser; open {url}/ui/ yourself\n"
        assert httpx.get(f"{url}/health").status_code == 200


def test_a_launcher_that_raises_is_only_a_warning(monkeypatch: pytest.MonkeyPatch) -> None:
    """A webbrowser error (no usable browser, say) is reported as a warning with its reason."""

    def refuse(url: str) -> bool:
        raise OSError("no display")

    monkeypatch.setattr("webbrowser.open", refuse)
    err = io.StringIO()
    open_in_browser("http://127.0.0.1:1/ui/", err).join()
    assert err.getvalue() == (
        "warning: could not open a web browser: no display; open http://127.0.0.1:1/ui/ yourself\n"
    )
