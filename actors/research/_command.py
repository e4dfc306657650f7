"""The `orchestr8 agent` command group: run ready-made agents as services.

``orchestr8 agent serve research [--host 127.0.0.1] [--port 8090]`` serves the research agent
as a microservice until SIGINT or SIGTERM. Only asyncclick is imported here; the service and
everything it needs load when the command runs, so `orchestr8 --help` stays fast.
"""

from __future__ import annotations

import sys
from typing import Any, Final

import asyncclick as click

__all__ = ["agent_group", "main", "serve_command"]

SERVABLE: Final = ("research",)
API_KEY_VARIABLE: Final = "ORCHESTR8_RESEARCH_API_KEY"


@click.group("agent", context_settings={"help_option_names": ["-h", "--help"]})
def agent_group() -> None:
    """Run ready-made agents as services."""


@agent_group.command("serve")
@click.argument("name", type=click.Choice(SERVABLE), metavar="NAME")
@click.option(
    "--host",
    default="127.0.0.1",
    show_default=True,
    help="The address to listen on; beyond loopback only with an API key.",
)
@click.option(
    "--port",
    type=click.IntRange(0, 65535),
    default=8090,
    show_default=True,
    help="The TCP port; 0 picks a free one (the printed URL tells which).",
)
@click.option(
    "--model",
    envvar="ORCHESTR8_RESEARCH_MODEL",
    show_envvar=True,
    metavar="MODEL",
    help="The Anthropic model that writes the answers (required).",
)
@click.option(
    "--max-tokens",
    type=click.IntRange(min=1),
    default=None,
    metavar="N",
    help="The most tokens an answer may have. [default: 1024]",
)
@click.option(
    "--max-chars",
    type=click.IntRange(min=1),
    default=None,
    metavar="N",
    help="The most documentation characters put in the prompt. [default: 24000]",
)
@click.option(
    "--api-key",
    envvar=API_KEY_VARIABLE,
    show_envvar=True,
    default=None,
    metavar="KEY",
    help="Require `Authorization: Bearer KEY` on POST /process. Prefer "
    "the environment variable: command lines are visible to other users.",
)
@click.option(
    "--timeout",
    "request_timeout",
    type=click.FloatRange(min=0, min_open=True),
    default=120.0,
    show_default=True,
    metavar="SECONDS",
    help="How long one research request may take (504 beyond).",
)
async def serve_command(
    name: str,
    host: str,
    port: int,
    model: str | None,
    max_tokens: int | None,
    max_chars: int | None,
    api_key: str | None,
    request_timeout: float,
) -> int:
    """Serve agent NAME (`research`) over HTTP: POST /process, GET /health.

    Prints the URL it listens on; SIGINT or SIGTERM stops it cleanly (exit 0). Context7 is
    reached at $CONTEXT7_BASE_URL (default https://context7.com/api) with $CONTEXT7_API_KEY if
    set; the model with $ANTHROPIC_API_KEY. Exit 1 for a configuration error, 4 when asked to
    listen beyond loopback without an API key.
    """
    from orchestr8 import ExitCode

    from ._server import run_service

    if not model:
        sys.stderr.write(
            "error: the research agent needs a model: pass --model or set "
            "ORCHESTR8_RESEARCH_MODEL\n"
        )
        return ExitCode.INVALID
    config: dict[str, Any] = {"model": model}
    if max_tokens is not None:
        config["max_tokens"] = max_tokens
    if max_chars is not None:
        config["max_chars"] = max_chars
    return await run_service(
        config, host=host, port=port, api_key=api_key or None, request_timeout=request_timeout
    )


def main(args: list[str] | None = None) -> None:
    """Run `serve research` alone: ``python -m actors.research [--port 0] ...``."""
    from orchestr8 import run_command

    run_command(
        serve_command,
        ["research", *(sys.argv[1:] if args is None else args)],
        prog_name="python -m actors.research",
    )
