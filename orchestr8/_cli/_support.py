"""What the `orchestr8` commands share: exit codes, user errors, inputs, workflows and journals.

Imported by the commands when they run, never by `_main` at import, so `orchestr8 --help`
stays fast; heavy modules are imported inside the functions that need them.
"""

from __future__ import annotations

import math
import os
import sys
from collections.abc import Awaitable, Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import asyncclick as click

from .._shell._options import CommandError as CommandError
from .._shell._options import describe_journal as describe_journal
from .._shell._options import journal_exists as journal_exists
from .._shell._options import journal_hint as journal_hint
from .._shell._options import journal_location as journal_location
from .._shell._options import no_journal_message as no_journal_message
from .._shell._process import ExitCode, guard_errors

if TYPE_CHECKING:
    from .._agents._registry import AgentRegistry
    from .._execution._admission import AdmittedWorkflow
    from .._execution._handle import ExecutionHandle
    from .._execution._results import ExecutionResult
    from .._execution._secrets import Secrets
    from .._journal._journal import ExecutionRecord, Journal
    from .._workflow._provider_specs import ProviderSpec

EXIT_OK = ExitCode.OK
EXIT_INVALID = ExitCode.INVALID
EXIT_STEP_FAILED = ExitCode.STEP_FAILED
EXIT_TIMEOUT = ExitCode.TIMEOUT
EXIT_INTERRUPTED = ExitCode.INTERRUPTED
EXIT_WAITING = ExitCode.WAITING

_PREFIX_PAGE = 500
_PREFIX_PAGES = 20


def parse_inputs(pairs: Sequence[str], inputs_file: str | None) -> dict[str, Any]:
    """Build the inputs from `--inputs-file` then `--input KEY=VALUE` pairs (JSON, else text).

    Raises:
        CommandError: a pair has no `=` or no key, or the file is unreadable or not a JSON object.
    """
    import json

    from .._json import reject_constant
    from .._workflow._codec import MAX_DOCUMENT_BYTES

    inputs: dict[str, Any] = {}
    if inputs_file is not None:
        try:
            if inputs_file == "-":
                raw = getattr(sys.stdin, "buffer", None)  # absent on a replaced text stream
                data = (
                    raw.read(MAX_DOCUMENT_BYTES + 1)
                    if raw is not None
                    else sys.stdin.read(MAX_DOCUMENT_BYTES + 1).encode()
                )
            else:
                with open(inputs_file, "rb") as file:
                    data = file.read(MAX_DOCUMENT_BYTES + 1)
            if len(data) > MAX_DOCUMENT_BYTES:
                raise CommandError(
                    f"--inputs-file {inputs_file}: larger than "
                    f"{MAX_DOCUMENT_BYTES // (1024 * 1024)} MiB"
                )
            document = json.loads(data.decode("utf-8-sig"), parse_constant=reject_constant)
        except OSError as error:
            raise CommandError(f"--inputs-file {inputs_file}: {error.strerror or error}") from None
        except (ValueError, UnicodeDecodeError) as error:
            raise CommandError(f"--inputs-file {inputs_file}: not JSON: {error}") from None
        except RecursionError:
            raise CommandError(f"--inputs-file {inputs_file}: nested too deeply") from None
        if not isinstance(document, dict):
            raise CommandError(
                f"--inputs-file {inputs_file}: expected a JSON object of inputs, "
                f"got {type(document).__name__}"
            )
        inputs.update(document)
    for pair in pairs:
        key, equals, text = pair.partition("=")
        if not equals or not key:
            raise CommandError(f"--input {pair!r}: expected KEY=VALUE")
        try:
            inputs[key] = json.loads(text, parse_constant=reject_constant)
        except ValueError:
            inputs[key] = text
        except RecursionError:
            raise CommandError(f"--input {key}: nested too deeply") from None
    return inputs


def load_secrets(secrets_file: str | None) -> Secrets | None:
    """The secrets of `--secrets-file` over the environment (None: the environment alone).

    Raises:
        CommandError: the file is unreadable or not a JSON object of strings.
    """
    from .._errors import SecretsFileError
    from .._execution._secrets import Secrets

    if secrets_file is None:
        return None
    try:
        return Secrets.from_file(secrets_file)
    except SecretsFileError as error:
        raise CommandError(f"--secrets-file {error}") from None


def admit_file(
    file: str,
    registry: AgentRegistry | None = None,
    *,
    providers: Mapping[str, ProviderSpec] | None = None,
    max_cost_usd: float | None = None,
) -> AdmittedWorkflow:
    """Admit the workflow file: its document checked, each step's agent built from its config.

    `providers`: the provider config file's specs (`load_providers`), which the models the
    steps call are checked against. `max_cost_usd` (`run --max-cost`) lowers the workflow's
    cost cap first.

    Raises:
        WorkflowValidationError: with every problem found.
    """
    from .._agents._registry import AgentRegistry
    from .._execution._admission import admit_workflow

    return admit_workflow(
        Path(file),
        registry or AgentRegistry(),
        source=file,
        providers=providers,
        max_cost_usd=max_cost_usd,
    )


def load_providers(providers_file: str | None) -> dict[str, ProviderSpec]:
    """The specs of `--providers FILE`, else of the file `ORCHESTR8_PROVIDERS` names, else none.

    Raises:
        ProviderConfigError: the file is unreadable or invalid (each problem with its path).
    """
    from .._llm._provider_config import configured_providers

    if providers_file is not None and not providers_file.strip():
        raise CommandError("--providers: the path is empty")
    return configured_providers(providers_file)


async def resume_recorded(journal: Journal, handle: ExecutionHandle, last_seq: int) -> bool:
    """Wait until the resumed run's first event is committed; False if it never will be.

    `Runtime.resume` returns before the run writes `execution.resumed` (its first event, after
    `last_seq`), so `resume` says the execution resumed only once the journal holds it. False
    when the journal failed first: nothing was resumed, and `handle.wait()` says why.
    """
    from .._errors import JournalError

    while True:
        try:
            await journal.flush()
            if await journal.last_seq(handle.execution_id) > last_seq:
                return True
        except JournalError:
            return False
        if handle.done:
            return False


async def find_execution(journal: Journal, text: str) -> ExecutionRecord:
    """Find the execution whose id is `text` or, failing that, the one id starting with it.

    A prefix without a `.` is looked for among top-level executions only: a child's id
    (`PARENT.STEP`) starts with its parent's, so it would make every parent's prefix ambiguous.

    Raises:
        CommandError: no execution matches, or the prefix matches several.
    """
    from .._errors import ExecutionNotFoundError

    try:
        return await journal.get_execution(text)
    except ExecutionNotFoundError:
        pass
    matches: list[ExecutionRecord] = []
    cursor = None
    top_level_only = "." not in text
    if text:
        for _ in range(_PREFIX_PAGES):
            page = await journal.list_executions(limit=_PREFIX_PAGE, before=cursor)
            matches += [
                item
                for item in page.items
                if item.execution_id.startswith(text)
                and not (top_level_only and item.parent_id is not None)
            ]
            cursor = page.next_cursor
            if len(matches) > 1 or cursor is None:
                break
    if not matches:
        raise CommandError(f"no execution {text!r} in the journal {journal.location}")
    if len(matches) > 1:
        shown = ", ".join(record.execution_id for record in matches[:2])
        raise CommandError(
            f"the id prefix {text!r} is ambiguous: it matches {shown} and maybe "
            "more; give more characters"
        )
    return matches[0]


async def guard(action: Callable[[], Awaitable[int]]) -> int:
    """Run a command's body, turning expected errors into a message on stderr and exit code 1."""
    return await guard_errors(action, expected=_expected, report=_report)


def _report(error: BaseException) -> None:
    """Report an expected error: workflow and input problems as they are, others as `error: `."""
    from .._errors import InputValidationError, WorkflowValidationError

    if isinstance(error, WorkflowValidationError | InputValidationError):
        report_error(str(error))
    else:
        report_error(f"error: {error}")


def report_error(message: str) -> None:
    """Tell the user what went wrong on stderr: as text, or as a JSON log line with JSON logs."""
    import logging

    from .._observability._logging import installed_handler

    installed = installed_handler()
    if installed is not None and installed[1] == "json":
        logging.getLogger("orchestr8.cli").error("%s", message)
    else:
        click.echo(message, err=True)


def _expected(error: BaseException) -> bool:
    """Whether `error` is one the CLI reports as a message (a broken pipe is left to click)."""
    import errno

    from .._errors import Orchestr8Error

    if isinstance(error, OSError):
        return error.errno != errno.EPIPE
    return isinstance(error, Orchestr8Error | CommandError)


def exit_code(result: ExecutionResult) -> int:
    """The exit code of a finished run: 0 succeeded, 2 failed, 3 timed out, 130 cancelled."""
    return status_exit_code(str(result.status), result.error)


def status_exit_code(status: str, error: object) -> int:
    """`exit_code` from a status and an error document, as the journal and REST give them."""
    if status == "succeeded":
        return EXIT_OK
    if status == "cancelled":
        return EXIT_INTERRUPTED
    if status == "waiting":
        return EXIT_WAITING
    if isinstance(error, dict) and error.get("type") == "ExecutionTimeoutError":
        return EXIT_TIMEOUT
    return EXIT_STEP_FAILED


def check_timeout(timeout: float | None) -> float | None:
    if timeout is not None and not (math.isfinite(timeout) and timeout > 0):
        raise CommandError(f"--timeout must be a number of seconds above 0, got {timeout}")
    return timeout


def check_max_cost(max_cost: float | None) -> float | None:
    """`run --max-cost`, checked: a finite number of US dollars >= 0 (or None: not given)."""
    if max_cost is not None and not (math.isfinite(max_cost) and max_cost >= 0):
        raise CommandError(f"--max-cost must be a number of US dollars >= 0, got {max_cost}")
    return max_cost


def declared_steps(record: ExecutionRecord) -> list[str]:
    steps = record.workflow.get("steps", ())
    return [step["id"] for step in steps if isinstance(step, dict) and "id" in step]


def allow_local_imports() -> None:
    """Let `module:attribute` agents and callables come from the current directory.

    Appended, not prepended, so that files there never shadow installed modules.
    """
    cwd = os.getcwd()
    if cwd not in sys.path and "" not in sys.path:
        sys.path.append(cwd)
