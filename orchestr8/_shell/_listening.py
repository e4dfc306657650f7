"""Listening on an address: the loopback rule, a bound socket, serving an ASGI app (Hypercorn).

Both servers of the project use it: `orchestr8 serve` (`_serve`) and the research microservice
of the bundled actors (`orchestr8 agent serve research`). A server beyond loopback needs an API
key (`check_bind` raises `InsecureBindError`, exit code 4); the socket is bound before Hypercorn
starts, so a refused address fails early, with one message naming it, and leaks nothing.
Hypercorn is imported when an app is served, so importing this module stays cheap.
"""

from __future__ import annotations

import ipaddress
import logging
import socket
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

import trio

from .._errors import InsecureBindError

if TYPE_CHECKING:
    from hypercorn.typing import Framework

__all__ = ["InsecureBindError", "bound_socket", "check_bind", "is_loopback", "serve_app"]


def is_loopback(host: str) -> bool:
    """Whether `host` is `localhost` or a loopback IP address (`127.0.0.0/8`, `::1`)."""
    bare = _bare(host)
    if bare.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(bare).is_loopback
    except ValueError:
        return False


def check_bind(host: str, api_key: str | None, refusal: str) -> None:
    """Refuse to listen beyond loopback without an API key; `refusal` says what is at stake.

    Raises:
        InsecureBindError: `host` is not loopback and there is no key.
    """
    if api_key is None and not is_loopback(host):
        raise InsecureBindError(refusal)


def bound_socket(host: str, port: int) -> socket.socket:
    """A TCP socket bound to `host:port` (IPv6 when the host has a colon), closed on failure.

    Raises:
        OSError: the address cannot be bound; its `strerror` says `cannot listen on HOST:PORT`.
    """
    bare = _bare(host)
    bound = socket.socket(socket.AF_INET6 if ":" in bare else socket.AF_INET, socket.SOCK_STREAM)
    try:
        bound.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        bound.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        bound.bind((bare, port))
    except OSError as error:
        bound.close()
        reason = error.strerror or str(error)
        raise OSError(error.errno, f"cannot listen on {host}:{port}: {reason}") from None
    return bound


async def serve_app(
    app: Framework,
    *,
    host: str,
    port: int,
    error_log: logging.Logger,
    graceful_timeout: float,
    shutdown_trigger: Callable[[], Awaitable[object]] | None = None,
    websocket_max_message_size: int | None = None,
    task_status: trio.TaskStatus[list[str]] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve an ASGI app with Hypercorn on `host:port` until `shutdown_trigger` returns.

    No access log and no `Server` header: nothing about requests is written anywhere.
    `task_status` gets the URLs listened on (port 0 picks a free port).

    Raises:
        OSError: the address cannot be listened on.
    """
    import hypercorn.trio
    from hypercorn.config import Config

    config = Config()
    # Bound here, so a refused address leaks no socket and fails before anything else starts;
    # Hypercorn takes the descriptor over.
    config.bind = [f"fd://{bound_socket(host, port).detach()}"]
    config.accesslog = None
    config.errorlog = error_log
    config.include_server_header = False
    config.graceful_timeout = graceful_timeout
    if websocket_max_message_size is not None:
        config.websocket_max_message_size = websocket_max_message_size
    await hypercorn.trio.serve(
        app,
        config,
        shutdown_trigger=shutdown_trigger,  # type: ignore[arg-type]
        task_status=task_status,
    )


def _bare(host: str) -> str:
    """The host without blanks or IPv6 brackets."""
    return host.strip().removeprefix("[").removesuffix("]")
