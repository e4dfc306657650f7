"""The error tree of orchestr8: every error the runtime raises on purpose is an `Orchestr8Error`.

The tree, with the other base each leaf also inherits where one fits (a builtin, or for
`AgentExitError` the resilience error that keeps its step from being retried); a test checks that
every `Orchestr8Error` in orchestr8 is drawn here under one of its bases::

    Orchestr8Error
    ├── ActorError                       actors and supervisors
    │   ├── ActorStoppedError            the actor is stopped (or stopped before answering)
    │   ├── MailboxFullError             a `fail` mailbox is full
    │   ├── AskTimeoutError              (TimeoutError) no answer within the ask timeout
    │   ├── SupervisorGaveUpError        restart intensity exceeded; `__cause__` is the last crash
    │   └── ActorNameTakenError          (ValueError) a supervisor already has a child of that name
    ├── WorkflowError                    workflow documents
    │   ├── WorkflowValidationError      (ValueError) every problem, each as `JSON path: message`
    │   ├── InputValidationError         (ValueError) the execution inputs do not fit `inputs`
    │   ├── ReferenceResolutionError     (LookupError) a `${...}` reference has no value at run time
    │   ├── PlanRejectedError            a plan an agent wrote is invalid (retried, told why)
    │   └── ExpressionError              (ValueError) an expression failed while it was evaluated
    ├── AgentError                       agents
    │   ├── UnknownAgentError            (LookupError) no agent with that id
    │   ├── AgentConfigurationError      (ValueError) an agent's config is unusable
    │   │   ├── TemplateError            a prompt template file is unusable
    │   │   ├── MissingAPIKeyError       (NonRetryableError) a model provider has no API key
    │   │   ├── ModelNameError           a model name is malformed, or names no provider
    │   │   ├── UnknownProviderError     (NonRetryableError) a model's provider is in no catalog
    │   │   └── MissingPackageError      (NonRetryableError) a provider's optional package is absent
    │   └── AgentExitError               (NonRetryableError) an agent raised SystemExit or the like
    ├── ExecutionError                   executions
    │   ├── ExecutionNotFoundError       (LookupError) no execution with that id
    │   ├── EventOutOfRangeError         (LookupError) no event with that seq in the execution
    │   ├── ExecutionStateError          the execution is in the wrong state for the request
    │   ├── IdempotencyKeyReusedError    (ValueError) a key seen before came with another request
    │   ├── ExecutionTimeoutError        (TimeoutError) the execution ran past its timeout
    │   ├── ChildExecutionError          a sub-workflow step's child execution did not succeed
    │   ├── OutputNotSerialisableError   (TypeError) an agent returned a value that is not JSON
    │   ├── MapItemsError                (TypeError) a `for_each` yielded something not an array
    │   ├── MapItemFailedError           an item of a map failed for good, failing its map step
    │   ├── PlannerFailedError           a replanning planner failed for good, failing its step
    │   ├── IterationLimitError          a loop ran `max_iterations` times without `until` holding
    │   ├── BudgetExhaustedError         (NonRetryableError) a budget cannot cover a model call
    │   ├── ForkRefusedError             (ValueError) an execution cannot be forked as asked
    │   │   └── ForkSourceRunningError   the execution to fork still runs
    │   └── GateError                    approval gates
    │       ├── GateNotFoundError        (LookupError) no approval gate by that id
    │       ├── GateAlreadyAnsweredError the gate was resolved, or an answer is recorded already
    │       ├── GateAnswerInvalidError   (ValueError) an answer does not fit the gate's schema
    │       └── GateTimedOutError        (TimeoutError) a gate with `on_timeout: fail` timed out
    ├── JournalError                     the journal could not be read or written
    ├── SecretError                      `${secrets.NAME}` values
    │   ├── MissingSecretError           (LookupError) a referenced secret is not set
    │   └── SecretsFileError             (ValueError) a secrets file is unreadable or malformed
    ├── ProviderConfigError              (ValueError) a provider config file is unusable
    ├── InsecureBindError                (PermissionError) serving beyond loopback without a key
    ├── EvalError                        `orchestr8 eval` cannot compare its two arms
    │   ├── EvalSpecError                (ValueError) an eval spec (a file or flags) is unusable
    │   ├── EvalDatasetError             (ValueError) a dataset line is not an object, or too few
    │   ├── EvalCacheError               the output cache cannot be used (checked before a call)
    │   └── EvalCallsFailedError         model calls failed for good (the others are cached)
    └── ResilienceError                  the resilience pipeline
        ├── RetryableError               an agent says: this attempt may be tried again
        │   ├── ProviderResponseError    a model provider answered with something malformed
        │   ├── ProviderUnavailableError a model provider answered a retryable HTTP status
        │   └── AllProvidersFailedError  every model of a call and its fallbacks failed
        ├── NonRetryableError            an agent says: never try this again
        │   ├── TemplateInputError       a prompt template's variable has no value, or a wrong one
        │   └── ProviderRefusedError     a model provider refused the call with an HTTP status
        ├── AttemptTimeoutError          (TimeoutError) one attempt ran past its timeout
        ├── DeadlineExceededError        (TimeoutError) all attempts together ran past the deadline
        ├── CallStoppedError             the caller's stop signal ended the call before an attempt
        ├── CircuitOpenError             the circuit breaker rejected the call
        ├── BulkheadFullError            the bulkhead had no free slot in time
        └── RateLimitedError             the rate limiter had no token in time

`BreakerNeutral` is a mixin, not a branch: an error that also inherits it says nothing about the
health of what was called (a budget that cannot cover a call, a prompt or template input that is
missing, an API key that is not set), so circuit breakers count it as neither a success nor a
failure. Here: `BudgetExhaustedError`, `TemplateInputError`, `MissingAPIKeyError`,
`UnknownProviderError`.

Cancellation (`trio.Cancelled`) is never part of this tree: it is never caught as an error,
retried or wrapped.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager

import attrs


class Orchestr8Error(Exception):
    """Base of every error orchestr8 raises on purpose, so callers can catch them all at once."""


class BreakerNeutral:
    """Mixin for errors that say nothing about the called service's health: breakers ignore them.

    A circuit breaker counts an error that inherits this as neither a success nor a failure (as
    it does a cancellation): a call refused by a budget, or a prompt that cannot be built, never
    opens a breaker that other calls and executions share.
    """


class ActorError(Orchestr8Error):
    """Base of the errors raised by actors, refs and supervisors."""


class ActorStoppedError(ActorError):
    """The actor is stopped, or stopped before it answered, so the message cannot be handled."""


class MailboxFullError(ActorError):
    """The actor's mailbox is full and its overflow policy is `fail`, so the message was refused."""


class AskTimeoutError(ActorError, TimeoutError):
    """The actor did not answer an `ask` within its timeout; the handler was cancelled."""


class SupervisorGaveUpError(ActorError):
    """Children crashed more often than the restart intensity allows; caused by the last crash."""


class ActorNameTakenError(ActorError, ValueError):
    """A supervisor already has a child of that name; names address children, so they are unique."""


class WorkflowError(Orchestr8Error):
    """Base of the errors about workflow documents."""


@attrs.frozen
class Problem:
    """One problem found in a document, located by its JSON path (e.g. `$.steps[1].id`)."""

    path: str
    message: str

    def __str__(self) -> str:
        """Render as `path: message`, the form every view prints."""
        return f"{self.path}: {self.message}"


class WorkflowValidationError(WorkflowError, ValueError):
    """A workflow document is invalid; `problems` lists every problem found, not just the first."""

    def __init__(self, problems: Sequence[Problem], source: str | None = None) -> None:
        self.problems: tuple[Problem, ...] = tuple(problems)
        self.source = source
        head = f"{source}: " if source else ""
        count = len(self.problems)
        lines = "\n".join(f"  {problem}" for problem in self.problems)
        noun = "problem" if count == 1 else "problems"
        super().__init__(f"{head}invalid workflow ({count} {noun}):\n{lines}")


class PlanRejectedError(WorkflowError):
    """A plan an agent wrote is invalid; `problems` says why, and the planner's next try sees it.

    Retryable: another attempt of the planner, told what was wrong, may write a valid plan.
    """

    def __init__(self, problems: Sequence[Problem]) -> None:
        self.problems: tuple[Problem, ...] = tuple(problems)
        count = len(self.problems)
        lines = "\n".join(f"  {problem}" for problem in self.problems)
        noun = "problem" if count == 1 else "problems"
        super().__init__(f"the plan was refused ({count} {noun}):\n{lines}")


class InputValidationError(WorkflowError, ValueError):
    """The inputs of an execution do not fit the workflow's `inputs` schema."""

    def __init__(self, problems: Sequence[Problem]) -> None:
        self.problems: tuple[Problem, ...] = tuple(problems)
        lines = "\n".join(f"  {problem}" for problem in self.problems)
        super().__init__(f"invalid inputs:\n{lines}")


class ReferenceResolutionError(WorkflowError, LookupError):
    """A `${...}` reference found no value at run time (missing key, bad index, not a container)."""

    def __init__(self, message: str, *, reference: str = "") -> None:
        super().__init__(message)
        self.reference = reference


class ExpressionError(WorkflowError, ValueError):
    """An expression (`when`, `for_each`, `until`) failed at run time; its step fails with this."""


class AgentError(Orchestr8Error):
    """Base of the errors about finding and configuring agents."""


class UnknownAgentError(AgentError, LookupError):
    """No agent is registered under the requested id."""


class AgentConfigurationError(AgentError, ValueError):
    """An agent's configuration (or its environment, such as a missing API key) is unusable.

    `problems` (optional) lists each problem found as `(where, message)`, `where` being the
    path inside the agent's spec (`config.fallback[0]`): admission then reports each at its own
    JSON path (`$.steps[0].agent.config.fallback[0]`) instead of one at the agent.
    """

    def __init__(self, *args: object, problems: Sequence[tuple[str, str]] = ()) -> None:
        """Take the message; `problems` are the `(where, message)` pairs it sums up."""
        super().__init__(*args)
        self.problems: tuple[tuple[str, str], ...] = tuple(problems)
        """Each problem found, `(where inside the agent's spec, message)`; may be empty."""


class TemplateError(AgentConfigurationError):
    """A prompt template file is unusable: unreadable, malformed, or using an unknown variable."""


class ExecutionError(Orchestr8Error):
    """Base of the errors about executions as a whole."""


class ExecutionNotFoundError(ExecutionError, LookupError):
    """No execution with the requested id exists in the journal."""


class EventOutOfRangeError(ExecutionError, LookupError):
    """No event of the execution has the requested seq (or time): `message` names its range."""

    def __init__(self, message: str, *, execution_id: str, last_seq: int) -> None:
        """Say which seq was asked for; keep the execution and its last seq for views."""
        super().__init__(message)
        self.execution_id = execution_id
        self.last_seq = last_seq


class ExecutionStateError(ExecutionError):
    """The execution is in the wrong state for the request (e.g. resuming a succeeded run)."""


class IdempotencyKeyReusedError(ExecutionError, ValueError):
    """An idempotency key already started an execution of a different workflow or inputs.

    Reusing a key must mean repeating a request; a different request under it is refused rather
    than answered with an unrelated execution. `execution_id` names the execution the key started.
    """

    def __init__(self, message: str, *, execution_id: str) -> None:
        super().__init__(message)
        self.execution_id = execution_id


class ExecutionTimeoutError(ExecutionError, TimeoutError):
    """The execution ran past its `timeout`; the running steps were cancelled."""


class ChildExecutionError(ExecutionError):
    """A sub-workflow step's child execution failed or was cancelled; its step fails with this."""


class OutputNotSerialisableError(ExecutionError, TypeError):
    """An agent returned a value that is not JSON, so it cannot be journaled or passed on."""


class MapItemsError(ExecutionError, TypeError):
    """A map step's `for_each` yielded a value that is not an array, so there are no items."""


class MapItemFailedError(ExecutionError):
    """An item of a map step failed for good (`on_item_error` `fail`), so the map step fails."""


class PlannerFailedError(ExecutionError):
    """The planner asked for a replacement plan failed for good: the step fails, not replanned."""


class IterationLimitError(ExecutionError):
    """A repeat step ran `max_iterations` iterations and its `until` never held: the loop failed."""


class ForkRefusedError(ExecutionError, ValueError):
    """An execution cannot be forked as asked: it still runs, or a kept step's spec changed."""


class ForkSourceRunningError(ForkRefusedError):
    """The execution to fork still runs (here or in another process): a fork starts from an end."""


class GateError(ExecutionError):
    """Base of the errors about approval gates and their answers."""


class GateNotFoundError(GateError, LookupError):
    """No approval gate with the requested id exists in the execution (or its workflow)."""


class GateAlreadyAnsweredError(GateError):
    """The gate was resolved already, or an answer for it is recorded: the first answer wins.

    `existing` is the recorded answer request (a `ControlRequest`) when there is one, else None.
    """

    def __init__(self, message: str, *, existing: object = None) -> None:
        super().__init__(message)
        self.existing = existing


class GateAnswerInvalidError(GateError, ValueError):
    """An answer does not fit its gate's schema; `problems` names each misfit by JSON path."""

    def __init__(self, problems: Sequence[Problem]) -> None:
        self.problems = list(problems)
        super().__init__("; ".join(str(problem) for problem in self.problems))


class GateTimedOutError(GateError, TimeoutError):
    """A gate with `on_timeout: "fail"` got no answer before its deadline: its step fails."""


class JournalError(Orchestr8Error):
    """The journal could not be opened, read or written."""


class SecretError(Orchestr8Error):
    """Base of the errors about the values of `${secrets.NAME}` references."""


class MissingSecretError(SecretError, LookupError):
    """Secrets a workflow references are not set; `names` lists every one, sorted."""

    def __init__(self, names: Sequence[str], *, where: str) -> None:
        self.names: tuple[str, ...] = tuple(sorted(names))
        listed = ", ".join(self.names)
        noun = "secret" if len(self.names) == 1 else "secrets"
        super().__init__(f"missing {noun} {listed}: {where}")


class SecretsFileError(SecretError, ValueError):
    """A secrets file cannot be read, or is not a JSON object of strings."""


class InsecureBindError(Orchestr8Error, PermissionError):
    """Asked to listen on an address beyond loopback without an API key."""


class EvalError(Orchestr8Error):
    """Base of the errors that keep `orchestr8 eval` from comparing its arms."""


class EvalSpecError(EvalError, ValueError):
    """An eval spec (a file or the command's flags) is unusable; `problems` lists every one."""

    def __init__(self, problems: Sequence[Problem], source: str) -> None:
        self.problems: tuple[Problem, ...] = tuple(problems)
        self.source = source
        lines = "\n".join(f"  {problem}" for problem in self.problems)
        noun = "problem" if len(self.problems) == 1 else "problems"
        super().__init__(f"{source}: invalid eval spec ({len(self.problems)} {noun}):\n{lines}")


class EvalDatasetError(EvalError, ValueError):
    """A dataset is unusable: unreadable, a line that is not a JSON object, or too few lines."""


class EvalCacheError(EvalError):
    """The eval's output cache cannot be used: not a directory, not writable, an entry blocked."""


class EvalCallsFailedError(EvalError):
    """Some of an eval's model calls failed for good; the outputs of the others are cached."""


class ResilienceError(Orchestr8Error):
    """Base of the errors raised by, or meant for, the resilience pipeline."""


class RetryableError(ResilienceError):
    """Raised by an agent for a failure worth retrying; `retry_after` is the least next delay."""

    def __init__(self, message: str = "", *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class NonRetryableError(ResilienceError):
    """Raised by an agent (or a subclass of it) for a failure that no retry can fix."""


class TemplateInputError(NonRetryableError, BreakerNeutral):
    """A prompt template's variable has no value (and no default), or a value of the wrong type."""


class MissingAPIKeyError(AgentConfigurationError, NonRetryableError, BreakerNeutral):
    """A model provider needs an API key and none is configured; no retry can find one."""


class ProviderResponseError(RetryableError):
    """A model provider answered with something malformed; the message says which and how."""


class ProviderUnavailableError(RetryableError):
    """A model provider answered a retryable HTTP error (429, 5xx...); `status` says which."""

    def __init__(
        self, message: str = "", *, status: int | None, retry_after: float | None = None
    ) -> None:
        super().__init__(message, retry_after=retry_after)
        self.status = status


class ProviderRefusedError(NonRetryableError):
    """A model provider refused the call for good (401, 403, 404, 400...); `status` says which.

    `status` is None for an error event in the middle of a stream (the HTTP status was 200).
    """

    def __init__(self, message: str = "", *, status: int | None) -> None:
        super().__init__(message)
        self.status = status


class AllProvidersFailedError(RetryableError):
    """Every candidate of a call failed, one of them retryably; the message names each failure."""


class ModelNameError(AgentConfigurationError):
    """A model name is malformed or lacks a provider; the message names the field."""


class UnknownProviderError(AgentConfigurationError, NonRetryableError, BreakerNeutral):
    """A model name's provider is in no catalog; the message lists the known ones."""


class MissingPackageError(AgentConfigurationError, NonRetryableError):
    """A provider needs an optional package that is not installed (the message says which extra)."""


class ProviderConfigError(Orchestr8Error, ValueError):
    """A provider config file is unreadable or invalid; every problem with its JSON path."""

    def __init__(self, problems: Sequence[Problem], source: str | None = None) -> None:
        """Keep the problems and the file they were found in (None: a mapping)."""
        self.problems = tuple(problems)
        self.source = source
        where = f"{source}: " if source else ""
        count = len(self.problems)
        lines = "\n".join(f"  {problem}" for problem in self.problems)
        plural = "s" if count != 1 else ""
        super().__init__(f"{where}invalid provider config ({count} problem{plural}):\n{lines}")


class BudgetExhaustedError(ExecutionError, NonRetryableError, BreakerNeutral):
    """A budget cannot cover a model call; the message names the limit, its scope, what is left."""


class AgentExitError(AgentError, NonRetryableError):
    """An agent raised `SystemExit` or another BaseException that is no error: its step fails.

    Such an exception would end the whole process (or `orchestr8 serve`); a step's agent cannot,
    so the step fails, without retries. `__cause__` is what the agent raised.
    """


class AttemptTimeoutError(ResilienceError, TimeoutError):
    """One attempt ran past the policy's `timeout`; a failure for both retry and breaker."""


class DeadlineExceededError(ResilienceError, TimeoutError):
    """All attempts of a call together ran past the policy's total `deadline`."""


class CallStoppedError(ResilienceError):
    """The caller's stop signal (an execution being cancelled) ended a call before its next attempt.

    No attempt started, and no backoff went on, once the signal was set. `__cause__` is the last
    attempt's error, or None when no attempt ran. Never retried.
    """


class CircuitOpenError(ResilienceError):
    """The circuit breaker rejected the call; `retry_after` is the wait until it admits a probe."""

    def __init__(self, message: str = "", *, retry_after: float = 0.0) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class BulkheadFullError(ResilienceError):
    """The bulkhead had no free slot within `max_wait`, so the call was not made."""


class RateLimitedError(ResilienceError):
    """The rate limiter had no token within `max_wait`; `retry_after` is the wait for one."""

    def __init__(self, message: str = "", *, retry_after: float = 0.0) -> None:
        super().__init__(message)
        self.retry_after = retry_after


@asynccontextmanager
async def unwrap_single_error() -> AsyncIterator[None]:
    """Re-raise a lone error escaping a nursery as itself rather than inside an ExceptionGroup.

    orchestr8's context managers (`open_supervisor`, `open_runtime`) own nurseries; a caller whose
    block raises `ValueError` should get a `ValueError`, not a group. Several errors stay a group.
    """
    try:
        yield
    except BaseExceptionGroup as group:
        leaves = exception_leaves(group)
        if len(leaves) == 1:
            raise leaves[0] from leaves[0].__cause__
        raise


def exception_leaves(group: BaseExceptionGroup[BaseException]) -> list[BaseException]:
    """The exceptions in `group` that are not groups themselves, nested ones too, in order."""
    found: list[BaseException] = []
    for error in group.exceptions:
        if isinstance(error, BaseExceptionGroup):
            found.extend(exception_leaves(error))
        else:
            found.append(error)
    return found


def message_of(error: BaseException) -> str:
    """`str(error)`, or a note saying it could not be read (an error message must never raise)."""
    try:
        return str(error)
    except Exception as broken:
        # An exception whose message itself fails must still be recorded as what it is.
        return f"(its message could not be read: {type(broken).__name__})"
