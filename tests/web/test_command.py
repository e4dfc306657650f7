"""The `orchestr8 serve` command: its options, registered on a click group."""

from __future__ import annotations

import asyncclick as click

from orchestr8._web._command import register_serve


def test_register_serve_adds_the_serve_command_with_its_options() -> None:
    """`register_serve` adds `serve` with --host, --port, --journal, --api-key, --max-body."""
    group = click.Group("cli")
    register_serve(group)
    command = group.commands["serve"]
    names = {option for parameter in command.params for option in parameter.opts}
    assert {"--host", "--port", "--journal", "--api-key", "--max-body", "--cancel-grace"} <= names
