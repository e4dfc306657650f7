"""`orchestr8 approve` and `orchestr8 reject`: answer an approval gate from any terminal.

Both record an answer through `submit_answer` (`_execution/_answers.py`) in the journal, where the
process running the execution picks it up within a second (or the next `orchestr8 resume` does),
or, with `--url`, through a server's `POST /executions/{id}/gates/{gate}`. `--input KEY=VALUE`
builds the answer's input: VALUE is JSON when it parses, else text, and KEY may be dotted
(`limits.max=3` is `{"limits": {"max": 3}}`). Exit 0 when the answer was applied or recorded, 1
with the reason when it was refused (no such gate, already answered, the input does not fit the
gate's schema: every problem listed). Heavy imports wait until a command runs.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Final

import asyncclick as click

from ._group import journal_option

if TYPE_CHECKING:
    from .._errors import Problem

__all__ = ["approve", "default_answerer", "parse_answer_input", "reject"]

_API_KEY_VARIABLE = "ORCHESTR8_API_KEY"


def parse_answer_input(
    pairs: Sequence[str], schema: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """The answer's input from `--input KEY=VALUE` pairs: VALUE as JSON, else text; dotted KEYs.

    When `schema` (the gate's) says a field is a string and VALUE parses as JSON of a type the
    field does not take (`note=12`), the text is kept, as the interactive prompt keeps it.

    Raises:
        CommandError: a pair has no `=`, an empty key part, or sets a key inside a value that
            is not an object (`a=1` then `a.b=2`); the message names the argument.
    """
    import json

    from .._json import reject_constant
    from ._support import CommandError

    answer: dict[str, Any] = {}
    for pair in pairs:
        key, equals, text = pair.partition("=")
        parts = key.split(".")
        if not equals or not all(parts):
            raise CommandError(f"--input {pair!r}: expected KEY=VALUE (KEY may be dotted: a.b=1)")
        try:
            value: Any = json.loads(text, parse_constant=reject_constant)
        except ValueError:
            value = text
        except RecursionError:
            raise CommandError(f"--input {key}: nested too deeply") from None
        if not isinstance(value, str) and _takes_text_only(schema, parts, value):
            value = text
        target = answer
        for depth, part in enumerate(parts[:-1]):
            inner = target.setdefault(part, {})
            if not isinstance(inner, dict):
                shown = ".".join(parts[: depth + 1])
                raise CommandError(
                    f"--input {pair!r}: {shown} is set to a value that is not an object"
                )
            target = inner
        target[parts[-1]] = value
    return answer


_JSON_TYPES: Final = ((bool, "boolean"), (int, "integer"), (float, "number"), (list, "array"))


def _takes_text_only(schema: Mapping[str, Any] | None, parts: Sequence[str], value: Any) -> bool:
    """Whether the schema's field at `parts` takes a string but not `value`'s JSON type."""
    field: Any = schema
    for part in parts:
        properties = field.get("properties") if isinstance(field, Mapping) else None
        field = properties.get(part) if isinstance(properties, Mapping) else None
    kind = field.get("type") if isinstance(field, Mapping) else None
    kinds = kind if isinstance(kind, list) else [kind]
    if "string" not in kinds:
        return False
    name = next((name for type_, name in _JSON_TYPES if isinstance(value, type_)), "other")
    taken = name in kinds or (name == "integer" and "number" in kinds)
    return not taken


def default_answerer() -> str:
    """Who answers from this terminal when `--by` is not given: `user@host`."""
    import getpass
    import socket

    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = "unknown"
    return f"{user}@{socket.gethostname()}"


def _answer_options(function: Callable[..., Any]) -> Callable[..., Any]:
    """The arguments and options `approve` and `reject` share."""
    decorators: list[Callable[[Callable[..., Any]], Callable[..., Any]]] = [
        click.argument("execution_id", metavar="ID"),
        click.argument("gate", metavar="GATE"),
        click.option(
            "--input",
            "-i",
            "input_pairs",
            multiple=True,
            metavar="KEY=VALUE",
            help="A field of the answer's input; VALUE is JSON when it parses, else text; "
            "KEY may be dotted (a.b=1).",
        ),
        click.option("--by", metavar="NAME", help="Who answers. [default: user@host]"),
        journal_option,
        click.option(
            "--url",
            metavar="URL",
            help="Answer through the server at URL (POST /executions/{id}/gates/{gate}); "
            "give the whole id.",
        ),
        click.option(
            "--api-key",
            envvar=_API_KEY_VARIABLE,
            show_envvar=True,
            metavar="KEY",
            help="The server's API key, with --url.",
        ),
        click.option("--json", "as_json", is_flag=True, help="Print the outcome as JSON."),
    ]
    for decorator in reversed(decorators):
        function = decorator(function)
    return function


@click.command()
@_answer_options
@click.option("--reason", metavar="TEXT", help="Why (kept with the answer).")
async def approve(
    execution_id: str,
    gate: str,
    input_pairs: Sequence[str],
    by: str | None,
    journal: str | None,
    url: str | None,
    api_key: str | None,
    as_json: bool,
    reason: str | None,
) -> int:
    """Approve the gate GATE of execution ID (a unique prefix will do).

    GATE is the approval step's id, a map item's `STEP[i]` or a loop iteration's `STEP#k`. The
    answer's input (--input) must fit the gate's schema. Exit 0 when the answer was applied or
    recorded (the process running the execution applies it within a second; with none, `orchestr8
    resume ID` does), 1 when it was refused.
    """
    return await _answer(
        execution_id, gate, True, input_pairs, reason, by, journal, url, api_key, as_json
    )


@click.command()
@_answer_options
@click.option("--reason", metavar="TEXT", required=True, help="Why not (required).")
async def reject(
    execution_id: str,
    gate: str,
    input_pairs: Sequence[str],
    by: str | None,
    journal: str | None,
    url: str | None,
    api_key: str | None,
    as_json: bool,
    reason: str,
) -> int:
    """Reject the gate GATE of execution ID, saying why (--reason).

    A rejected gate succeeds with `approved: false`: what follows it decides what a rejection
    means (`when`). Exit codes as for `approve`.
    """
    return await _answer(
        execution_id, gate, False, input_pairs, reason, by, journal, url, api_key, as_json
    )


async def _answer(
    execution_id: str,
    gate: str,
    approved: bool,
    input_pairs: Sequence[str],
    reason: str | None,
    by: str | None,
    journal: str | None,
    url: str | None,
    api_key: str | None,
    as_json: bool,
) -> int:
    """Build the answer, send it (journal or server), print the outcome; the exit code."""
    from ._support import EXIT_OK, guard

    async def action() -> int:
        body: dict[str, Any] = {
            "approve": approved,
            "input": parse_answer_input(input_pairs),
            "reason": reason,
            "by": by or default_answerer(),
        }
        from .._errors import Orchestr8Error
        from ._support import CommandError
        from ._views import dump_json

        try:
            if url is not None:
                document = await _answer_through_server(url, api_key, execution_id, gate, body)
            else:
                document = await _answer_in_journal(journal, execution_id, gate, body, input_pairs)
        except (Orchestr8Error, CommandError) as error:
            if as_json:
                # Refused: the JSON says so on stdout too; the reason goes to stderr, exit 1.
                refused = {"status": "refused", "execution_id": execution_id, "gate_id": gate}
                click.echo(dump_json({**refused, "message": str(error)}))
            raise
        if as_json:
            click.echo(dump_json(document))
        else:
            click.echo(str(document.get("message") or document.get("status")))
        return EXIT_OK

    return await guard(action)


async def _answer_in_journal(
    journal: str | None,
    execution_id: str,
    gate: str,
    body: dict[str, Any],
    input_pairs: Sequence[str] = (),
) -> dict[str, Any]:
    """Record the answer in the journal, its input read by the gate's schema; the outcome."""
    from .._errors import GateAnswerInvalidError
    from .._execution._answers import find_gate, submit_answer
    from .._journal._journal import open_journal
    from ._support import CommandError, find_execution, journal_location

    location = journal_location(journal, must_exist=True)
    async with open_journal(location) as store:
        record = await find_execution(store, execution_id)
        if input_pairs:
            spec = await find_gate(store, record.execution_id, gate)
            body = {**body, "input": parse_answer_input(input_pairs, spec.schema)}
        try:
            outcome = await submit_answer(store, record.execution_id, gate, body)
        except GateAnswerInvalidError as error:
            raise CommandError(_invalid_message(gate, error.problems)) from None
    return outcome.to_json()


def _invalid_message(gate: str, problems: Sequence[Problem]) -> str:
    """The message for an answer that does not fit: every problem, one per line."""
    count = len(problems)
    lines = [f"the answer to gate {gate} was refused: {count} problem{'s' if count != 1 else ''}"]
    lines += [f"  {problem}" for problem in problems]
    return "\n".join(lines)


async def _answer_through_server(
    url: str, api_key: str | None, execution_id: str, gate: str, body: dict[str, Any]
) -> dict[str, Any]:
    """POST the answer to the server's gate route; its document, or a CommandError."""
    from urllib.parse import quote

    import httpx

    from .._errors import Problem
    from ._support import CommandError

    target = (
        f"{url.rstrip('/')}/executions/{quote(execution_id, safe='')}/gates/{quote(gate, safe='')}"
    )
    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    try:
        async with httpx.AsyncClient(timeout=30.0) as client:
            response = await client.post(target, json=body, headers=headers)
    except httpx.HTTPError as error:
        raise CommandError(f"--url {url}: {error or type(error).__name__}") from None
    try:
        document = response.json()
    except ValueError:
        document = None
    if not isinstance(document, dict):
        raise CommandError(f"--url {url}: HTTP {response.status_code}, not an orchestr8 answer")
    if response.status_code < 400:
        return document
    errors = document.get("errors")
    if response.status_code == 422 and isinstance(errors, list) and errors:
        problems = [
            Problem(str(error.get("path")), str(error.get("message")))
            for error in errors
            if isinstance(error, dict)
        ]
        raise CommandError(_invalid_message(gate, problems))
    detail = str(document.get("detail") or f"HTTP {response.status_code}")
    if str(document.get("type")).endswith(":execution-not-found"):
        detail += "; with --url give the whole execution id (a server takes no prefix)"
    raise CommandError(detail)
