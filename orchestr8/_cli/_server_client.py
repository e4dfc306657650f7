"""The REST calls `follow --url` and `cancel --url` make to an orchestr8 server.

A server's problem documents become one-line `CommandError`s (`404: no execution 'x'`), and a
server that cannot be reached says so with its URL; never a traceback.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Final

import trio

from ._support import CommandError

__all__ = ["auth_headers", "cancel_through_server", "get_execution"]

TIMEOUT: Final = 30.0
"""Seconds one request to the server may take."""


def auth_headers(api_key: str | None) -> list[tuple[str, str]]:
    """The `Authorization: Bearer KEY` header, when there is a key."""
    return [] if api_key is None else [("Authorization", f"Bearer {api_key}")]


async def _request(
    method: str,
    url: str,
    headers: Sequence[tuple[str, str]],
    body: dict[str, Any] | None = None,
) -> tuple[int, dict[str, Any]]:
    """One request: the status code and the JSON object answered (empty when none)."""
    import httpx

    async with httpx.AsyncClient(headers=dict(headers), timeout=TIMEOUT) as client:
        try:
            response = await client.request(method, url, json=body)
        except httpx.HTTPError as error:
            raise CommandError(f"cannot reach {url}: {error or type(error).__name__}") from None
    try:
        document = response.json()
    except ValueError:
        document = {}
    return response.status_code, document if isinstance(document, dict) else {}


def _problem(url: str, status: int, document: dict[str, Any]) -> CommandError:
    detail = document.get("detail") or document.get("title") or "no details"
    return CommandError(f"{url}: {status} {detail}")


async def get_execution(
    base: str, headers: Sequence[tuple[str, str]], execution_id: str
) -> dict[str, Any]:
    """`GET /executions/{id}`: the execution's document.

    Raises:
        CommandError: the server is unreachable or answers with a problem (404: unknown id).
    """
    url = f"{base}/executions/{execution_id}"
    status, document = await _request("GET", url, headers)
    if status != 200:
        raise _problem(url, status, document)
    return document


def _recorded_reason(document: dict[str, Any]) -> str | None:
    """The reason a cancelled execution's document records (its error's message), if any."""
    error = document.get("error")
    if str(document.get("status")) != "cancelled" or not isinstance(error, dict):
        return None
    message = error.get("message")
    return message if isinstance(message, str) else None


async def cancel_through_server(
    url: str,
    api_key: str | None,
    execution_id: str,
    *,
    reason: str,
    force: bool,
    by: str,
    wait: bool,
    wait_seconds: float = 10.0,
    poll_interval: float = 0.25,
) -> int:
    """`POST /executions/{id}/cancel`, then (with `wait`) poll it until it has ended.

    Returns the exit code of `cancel`: 0 cancelled (or, without `wait`, requested), 1 otherwise.

    Raises:
        CommandError: the server is unreachable, or refuses (404 unknown, 409 finished).
    """
    import asyncclick as click

    from ._control_commands import report_cancelled, report_not_cancelled
    from ._support import EXIT_INVALID, EXIT_OK

    base = url.rstrip("/")
    headers = auth_headers(api_key)
    endpoint = f"{base}/executions/{execution_id}/cancel"
    status, document = await _request(
        "POST", endpoint, headers, {"reason": reason, "force": force, "by": by}
    )
    if status == 200:
        report_cancelled(execution_id, reason, _recorded_reason(document))
        return EXIT_OK
    if status != 202:
        raise _problem(endpoint, status, document)
    click.echo(f"cancel requested: execution {execution_id} is being cancelled")
    if not wait:
        return EXIT_OK
    shown = ""
    with trio.move_on_after(wait_seconds):
        while True:
            document = await get_execution(base, headers, execution_id)
            shown = str(document.get("status"))
            if shown in ("succeeded", "failed", "cancelled"):
                break
            await trio.sleep(poll_interval)
    if shown == "cancelled":
        report_cancelled(execution_id, reason, _recorded_reason(document))
        return EXIT_OK
    report_not_cancelled(execution_id, shown)
    return EXIT_INVALID
