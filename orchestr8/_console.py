"""The `orchestr8` console script: the command line of every view, assembled in one place.

The views never import each other (`docs/architecture.md`), yet one program offers the terminal
commands of `_cli` and the `serve` command of `_web`: this module, above both, puts them
together. Only asyncclick is imported until a command runs, so `orchestr8 --help` stays fast.
"""

from __future__ import annotations


def main() -> None:
    """Run the command line on trio (asyncclick would pick asyncio unless told)."""
    from ._cli._main import run_command_line
    from ._web._command import serve_command

    run_command_line([serve_command])
