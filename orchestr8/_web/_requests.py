"""Reading requests: bodies as strict JSON, the execute, resume and fork bodies, queries, headers.

Request bodies are read strictly, like workflow files: UTF-8 JSON only, no NaN or infinity, no
duplicate keys, no lone surrogates (which no journal can store). Problems found in a body are
reported with JSON paths into the body (`$.workflow.steps[0].id`), with the messages `orchestr8
validate` prints. The patterns of cursors, idempotency keys and correlation ids are here too,
shared with the OpenAPI document so that what it declares is what is checked.
"""

from __future__ import annotations

import difflib
import json
import math
import re
from collections.abc import Mapping
from typing import Any, Final

import attrs
from quart import g, request
from werkzeug.datastructures import MultiDict

from .._errors import Problem
from .._json import append_path, json_value_problems, parse_strict
from .._workflow._references import json_type_name
from .._workflow._schema_problems import sort_problems
from ._problems import ProblemError

__all__ = [
    "CORRELATION_ID_PATTERN",
    "CURSOR_PATTERN",
    "IDEMPOTENCY_KEY_PATTERN",
    "MAX_CORRELATION_ID",
    "MAX_SEQ",
    "ExecuteRequest",
    "ForkRequest",
    "ResumeRequest",
    "is_correlation_id",
    "parse_execute_request",
    "parse_fork_request",
    "parse_resume_request",
    "query_int",
    "read_json_body",
]

_EXECUTE_KEYS: Final = ("workflow", "inputs", "timeout", "correlation_id")
_RESUME_KEYS: Final = ("inputs", "timeout")
_FORK_KEYS: Final = ("from", "inputs", "dry_run", "timeout")
MAX_SEQ: Final = 2**62
"""The largest `after` (an event seq) taken: far beyond any journal, within SQLite's integers."""
_END: Final = r"(?![\s\S])"
# Patterns end with `_END`, "nothing follows", not `$`: Python's `$` (the one jsonschema and
# schemathesis use) also matches before a final newline, and `\Z` is not ECMA-262 (OpenAPI's).
CURSOR_PATTERN: Final = f"^[A-Za-z0-9_-]*{_END}"
"""What a `cursor` looks like: URL-safe base64 without padding (empty: the first page)."""
IDEMPOTENCY_KEY_PATTERN: Final = f'^(?:"[!-~]{{1,255}}"|(?!"[!-~]*"{_END})[!-~]{{1,255}}){_END}'
"""An `Idempotency-Key`: 1-255 visible ASCII characters, bare or as a quoted string."""
MAX_CORRELATION_ID: Final = 200
"""The longest correlation id taken, from the body or the `X-Correlation-ID` header."""
CORRELATION_ID_PATTERN: Final = f"^[!-~](?:[ -~]*[!-~])?{_END}"
"""A correlation id: printable ASCII that neither starts nor ends with a space."""
_INTEGER: Final = re.compile(r"-?[0-9]{1,19}", re.ASCII)


_REQUIRED: Final = object()
"""`read_json_body`'s default for `if_empty`: the body is required."""


async def read_json_body(*, if_empty: Any = _REQUIRED) -> Any:
    """Read the request body as strict JSON; an empty body gives `if_empty` when one is given.

    A route whose body is optional passes `if_empty`: zero bytes then mean no body, whatever
    the content type says (a client may send `Content-Type: application/json` and nothing).

    Raises:
        ProblemError: 415 not JSON by content type, 400 not valid JSON (or empty when required),
            422 duplicate keys or nesting deeper than the workflow limit. The size limit raises
            413 while reading.
    """
    if if_empty is not _REQUIRED:
        data = await request.get_data(cache=False, as_text=False, parse_form_data=False)
        g.body_read = True
        if not data:
            return if_empty
    else:
        data = None
    mimetype = request.mimetype
    charset = request.mimetype_params.get("charset", "utf-8").lower()
    if not (mimetype == "application/json" or mimetype.endswith("+json")) or charset != "utf-8":
        shown = request.headers.get("Content-Type") or "none"
        raise ProblemError(
            415, "unsupported-media-type", f"send the body as application/json (UTF-8); got {shown}"
        )
    if data is None:
        data = await request.get_data(cache=False, as_text=False, parse_form_data=False)
        g.body_read = True
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as error:
        raise ProblemError(
            400,
            "invalid-json",
            f"not UTF-8 text (byte 0x{data[error.start]:02x} at offset {error.start})",
        ) from None
    try:
        document, duplicates = parse_strict(text)
    except json.JSONDecodeError as error:
        raise ProblemError(
            400,
            "invalid-json",
            f"invalid JSON at line {error.lineno}, column {error.colno}: {error.msg}",
        ) from None
    except RecursionError:
        raise ProblemError(400, "invalid-json", "invalid JSON: nested too deeply") from None
    except ValueError as error:
        raise ProblemError(400, "invalid-json", f"invalid JSON: {error}") from None
    surrogate = _lone_surrogate(document)
    if surrogate is not None:
        raise ProblemError(
            400,
            "invalid-json",
            f"invalid JSON at {surrogate}: a string holds "
            "an unpaired surrogate escape, which is not Unicode text",
        )
    problems = _value_problems(document, duplicates)
    if problems:
        raise ProblemError.from_problems("invalid-request", sort_problems(problems))
    return document


def _lone_surrogate(document: Any) -> str | None:
    """The JSON path of the first key or string holding a lone surrogate, or None."""
    pending: list[tuple[Any, str]] = [(document, "$")]
    while pending:
        value, path = pending.pop()
        if isinstance(value, str):
            if not _is_text(value):
                return path
        elif isinstance(value, dict):
            for key, child in value.items():
                if not _is_text(key):
                    return path
                pending.append((child, append_path(path, key)))
        elif isinstance(value, list):
            pending.extend((child, f"{path}[{index}]") for index, child in enumerate(value))
    return None


def _is_text(value: str) -> bool:
    if value.isascii():
        return True
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _value_problems(document: Any, duplicates: Mapping[int, list[str]]) -> list[Problem]:
    """Duplicate keys and too deep nesting, each part measured the way `validate` measures it."""
    if not isinstance(document, dict):
        return []
    problems = [Problem("$", f"duplicate key '{key}'") for key in duplicates.get(id(document), ())]
    for key, value in document.items():
        problems += json_value_problems(value, append_path("$", key), duplicates=duplicates)
    return problems


@attrs.frozen
class ExecuteRequest:
    """The body of `POST /workflows/execute`, its shape checked (not yet the workflow itself)."""

    workflow: dict[str, Any]
    inputs: dict[str, Any] | None = None
    timeout: float | None = None
    correlation_id: str | None = None


def parse_execute_request(document: Any) -> ExecuteRequest:
    """Check the shape of an execute request body.

    Raises:
        ProblemError: 422 with every problem found.
    """
    problems = _body_problems(document, _EXECUTE_KEYS)
    workflow = document.get("workflow")
    if "workflow" not in document:
        problems.append(Problem("$", "missing required key 'workflow'"))
    elif not isinstance(workflow, dict):
        got = json_type_name(workflow)
        problems.append(Problem("$.workflow", f"expected an object, got {got}"))
    inputs, timeout = _inputs_and_timeout(document, problems)
    correlation_id = document.get("correlation_id")
    if correlation_id is not None and not (
        isinstance(correlation_id, str) and is_correlation_id(correlation_id)
    ):
        problems.append(
            Problem(
                "$.correlation_id",
                f"expected 1 to {MAX_CORRELATION_ID} printable ASCII characters, not starting or "
                "ending with a space (it is sent back in the X-Correlation-ID header), got "
                f"{json.dumps(correlation_id)[:60]}",
            )
        )
    if problems:
        raise ProblemError.from_problems("invalid-request", sort_problems(problems))
    assert isinstance(workflow, dict)
    return ExecuteRequest(workflow, inputs, timeout, correlation_id)


@attrs.frozen
class ResumeRequest:
    """The body of `POST /executions/{id}/resume` (optional): inputs supplied again, a timeout."""

    inputs: dict[str, Any] | None = None
    timeout: float | None = None


def parse_resume_request(document: Any) -> ResumeRequest:
    """Check the shape of a resume request body.

    Raises:
        ProblemError: 422 with every problem found.
    """
    problems = _body_problems(document, _RESUME_KEYS)
    inputs, timeout = _inputs_and_timeout(document, problems)
    if problems:
        raise ProblemError.from_problems("invalid-request", sort_problems(problems))
    return ResumeRequest(inputs, timeout)


@attrs.frozen
class ForkRequest:
    """The body of `POST /executions/{id}/fork`: the fork point, changed inputs, a dry run."""

    from_step: str
    inputs: dict[str, Any] | None = None
    """Inputs that change (a dotted key sets a nested value, as `orchestr8 fork --input`)."""
    dry_run: bool = False
    timeout: float | None = None


def parse_fork_request(document: Any) -> ForkRequest:
    """Check the shape of a fork request body.

    Raises:
        ProblemError: 422 with every problem found.
    """
    problems = _body_problems(document, _FORK_KEYS)
    inputs, timeout = _inputs_and_timeout(document, problems)
    from_step = document.get("from")
    if from_step is None:
        problems.append(Problem("$", "missing required key 'from' (the step to fork from)"))
    elif not isinstance(from_step, str) or not from_step:
        problems.append(
            Problem(
                "$.from",
                f"expected a step id (STEP, STEP[i] or STEP#k), got {json.dumps(from_step)[:40]}",
            )
        )
    dry_run = document.get("dry_run", False)
    if not isinstance(dry_run, bool):
        problems.append(
            Problem("$.dry_run", f"expected true or false, got {json.dumps(dry_run)[:40]}")
        )
    if problems:
        raise ProblemError.from_problems("invalid-request", sort_problems(problems))
    assert isinstance(from_step, str)
    return ForkRequest(from_step, inputs, dry_run, timeout)


def _body_problems(document: Any, keys: tuple[str, ...]) -> list[Problem]:
    """The problems of a request body's outline: keys it may not hold (raises unless an object).

    Raises:
        ProblemError: 422 when the body is not a JSON object at all.
    """
    if not isinstance(document, dict):
        problem = Problem("$", f"expected an object, got {json_type_name(document)}")
        raise ProblemError.from_problems("invalid-request", [problem])
    problems: list[Problem] = []
    for key in document:
        if key not in keys:
            close = difflib.get_close_matches(key, keys, n=1)
            hint = f" (did you mean '{close[0]}'?)" if close else ""
            problems.append(Problem("$", f"unknown key '{key}'{hint}"))
    return problems


def _inputs_and_timeout(
    document: dict[str, Any], problems: list[Problem]
) -> tuple[dict[str, Any] | None, float | None]:
    """The body's `inputs` (an object) and `timeout` (seconds); a problem for each bad one."""
    inputs = document.get("inputs")
    if inputs is not None and not isinstance(inputs, dict):
        problems.append(Problem("$.inputs", f"expected an object, got {json_type_name(inputs)}"))
        inputs = None
    return inputs, _timeout_problem(document.get("timeout"), problems)


def _timeout_problem(timeout: Any, problems: list[Problem]) -> float | None:
    """The `timeout` of a request body as seconds; a problem when it is no number above 0."""
    if timeout is None:
        return None
    if not _is_positive_seconds(timeout):
        problems.append(
            Problem(
                "$.timeout", f"expected a number of seconds above 0, got {json.dumps(timeout)[:40]}"
            )
        )
        return None
    return float(timeout)


def is_correlation_id(value: str) -> bool:
    """Whether `value` can be a correlation id: 1-200 printable ASCII, no surrounding spaces.

    The id is sent back in the `X-Correlation-ID` response header, and copied into logs and
    events; control characters, non-ASCII text and surrounding spaces cannot travel there intact.
    """
    if len(value) > MAX_CORRELATION_ID:
        return False
    return re.fullmatch(CORRELATION_ID_PATTERN, value) is not None


def _is_positive_seconds(value: Any) -> bool:
    """Whether `value` is a JSON number of seconds above 0 that a float holds."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return False
    try:
        seconds = float(value)
    except OverflowError:
        return False
    return math.isfinite(seconds) and seconds > 0


def query_int(
    name: str, *, default: int, low: int, high: int, args: MultiDict[str, str] | None = None
) -> int:
    """Read an integer query parameter between `low` and `high`.

    Raises:
        ProblemError: 400 when it is not such an integer.
    """
    raw = (request.args if args is None else args).get(name)
    if raw is None:
        return default
    if _INTEGER.fullmatch(raw.strip()) is None:
        raise ProblemError.parameter(name, f"expected an integer, got {raw[:40]!r}")
    value = int(raw)
    if not low <= value <= high:
        raise ProblemError.parameter(name, f"expected an integer from {low} to {high}, got {value}")
    return value
