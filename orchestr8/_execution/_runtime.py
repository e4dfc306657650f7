"""The runtime: where executions live, for the CLI, the service and programs that embed orchestr8.

`open_runtime` owns a journal, an event bus, the agent registry, the resilience state shared by all
executions (circuit breakers, bulkheads, rate limiters) and a nursery in which every execution
runs. Leaving the block cancels what still runs (cooperatively, recorded as `cancelled`) and
flushes the journal. With a SQLite file journal, the runtime locks every execution it runs
(`_execution_lock`), so no other process can resume it meanwhile.

The runtime is where a request is admitted (`_admission`), once: `load` checks a document in
one pass and builds each step's agent once, and keeps those agents with the loaded workflow, so
every execution of it runs them (docs/agents.md states what this asks of agents); `start` checks
the inputs once and owns idempotency keys: a key seen before returns the execution it started,
or raises `IdempotencyKeyReusedError` when the request differs. `find` tells whether an
execution is live here without raising.

Secrets never reach the journal: the workflow and inputs are recorded redacted, `${secrets.NAME}`
references are resolved from the runtime's `Secrets` at every start and resume (`_secrets`), and
each execution leases its secret values to the redactor until it ends.
"""

from __future__ import annotations

import gc
import json
import logging
import math
import os
import random
import uuid
import weakref
from collections.abc import AsyncIterator, Mapping
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path
from typing import Any

import trio

from .._agents._contract import Agent, AgentFactory, AgentFunction
from .._agents._registry import AgentRegistry
from .._agents._sync_calls import DEFAULT_SYNC_WORKERS, sync_worker_limiter
from .._errors import (
    ExecutionNotFoundError,
    ExecutionStateError,
    IdempotencyKeyReusedError,
    JournalError,
    exception_leaves,
    unwrap_single_error,
)
from .._journal._events import EventFactory, ExecutionStatus, StepStatus
from .._journal._journal import ExecutionRecord, Journal, open_journal
from .._journal._replay import ExecutionState, replay
from .._json import JSON
from .._observability._redaction import (
    SecretLease,
    default_redactor,
    redact,
    redact_workflow,
)
from .._supervision._bus import EventBus
from .._workflow._codec import journal_document, validate_inputs
from .._workflow._document import Workflow
from ._admission import Admission, admit_workflow
from ._admission import WorkflowLike as WorkflowLike
from ._emitter import Emitter
from ._engine import ExecutionRun
from ._handle import ExecutionHandle as ExecutionHandle
from ._lock import ExecutionLocks
from ._results import ExecutionResult, StepResult
from ._secrets import (
    Secrets,
    bind_secrets,
    redacted_inputs,
    redacted_literals,
    resupply_inputs,
    secret_names,
    secret_values_of,
)
from ._step_resilience import SharedResilience

_logger = logging.getLogger("orchestr8.runtime")


class Runtime:
    """Starts, resumes, cancels and reads executions; get one from `open_runtime`."""

    def __init__(
        self,
        nursery: trio.Nursery,
        journal: Journal,
        *,
        registry: AgentRegistry,
        bus: EventBus,
        cancel_grace: float,
        random_source: random.Random | None,
        locks: ExecutionLocks,
        sync_limiter: trio.CapacityLimiter | None = None,
        secrets: Secrets | None = None,
    ) -> None:
        """Wire the parts together; `open_runtime` builds it and owns their lifetimes."""
        self.journal = journal
        self.secrets = secrets if secrets is not None else Secrets()
        for value in self.secrets.values.values():
            # Like secret environment variables: known for the life of the process.
            default_redactor().add_secret(value)
        self.bus = bus
        self.registry = registry
        self.resilience = SharedResilience()
        self.cancel_grace = cancel_grace
        if sync_limiter is None:
            sync_limiter = sync_worker_limiter(DEFAULT_SYNC_WORKERS)
        self.sync_limiter = sync_limiter
        """The threads blocking agent code may use (`open_runtime(sync_workers=...)`)."""
        self._nursery = nursery
        self._random = random_source
        self._locks = locks
        self._live: dict[str, ExecutionHandle] = {}
        self._resuming: set[str] = set()
        self._key_locks: dict[str, trio.Lock] = {}
        # Workflows this runtime admitted, by id(): a weak reference to each and the agents built
        # for its steps. Starting one again builds nothing (the registry does not change); an
        # entry goes when its workflow is dropped.
        self._admitted: dict[int, tuple[weakref.ref[Workflow], Mapping[str, Agent]]] = {}

    def load(self, workflow: WorkflowLike) -> Workflow:
        """Load a workflow and check its agents exist and accept their config.

        Each step's agent is built here, once per loaded workflow, and that instance runs the
        step in every execution of it (`start` reuses it).

        Raises:
            WorkflowValidationError: with every problem found.
        """
        return self._admit(workflow)[0]

    def _admit(self, workflow: WorkflowLike) -> tuple[Workflow, Mapping[str, Agent]]:
        """The loaded workflow and its agents by step id, built on its first admission only."""
        if isinstance(workflow, Workflow):
            entry = self._admitted.get(id(workflow))
            if entry is not None and entry[0]() is workflow:
                return workflow, entry[1]
        admitted = admit_workflow(workflow, self.registry)
        loaded, key = admitted.workflow, id(admitted.workflow)
        self._admitted[key] = (weakref.ref(loaded), admitted.agents)
        weakref.finalize(loaded, self._admitted.pop, key, None)
        return loaded, admitted.agents

    async def start(
        self,
        workflow: WorkflowLike | Admission,
        inputs: Mapping[str, JSON] | None = None,
        *,
        execution_id: str | None = None,
        execution_timeout: float | None = None,
        correlation_id: str | None = None,
        idempotency_key: str | None = None,
    ) -> ExecutionHandle:
        """Validate, record and start an execution; returns once it is running.

        `execution_timeout` (seconds) overrides the workflow's own `timeout`. With an
        `idempotency_key` seen before, returns the execution started then instead of another,
        provided the workflow and inputs are those it started with. An `Admission` (the CLI
        admits before it opens the journal) comes with its inputs checked: `inputs` must be None.

        Raises:
            WorkflowValidationError: the workflow is invalid.
            InputValidationError: the inputs do not fit the workflow's `inputs` schema.
            IdempotencyKeyReusedError: the key started an execution of another workflow or
                other inputs.
            ExecutionStateError: another run holds the new execution's lock (never expected).
        """
        if isinstance(workflow, Admission):
            if inputs is not None:
                raise TypeError("an Admission comes with its inputs; pass no inputs with it")
            loaded, agents = workflow.workflow, workflow.admitted.agents
            checked_inputs = workflow.inputs
        else:
            loaded, agents = self._admit(workflow)
            checked_inputs = validate_inputs(loaded, inputs)
        if idempotency_key is None:
            return await self._start(
                loaded,
                agents,
                checked_inputs,
                execution_id,
                execution_timeout,
                correlation_id,
                None,
            )
        # One start per key at a time here: a second one waits and gets the first's handle.
        lock = self._key_locks.setdefault(idempotency_key, trio.Lock())
        try:
            async with lock:
                existing = await self.journal.find_by_idempotency_key(idempotency_key)
                if existing is not None:
                    _check_same_request(existing, loaded, checked_inputs)
                    return await self._handle_for(existing)
                return await self._start(
                    loaded,
                    agents,
                    checked_inputs,
                    execution_id,
                    execution_timeout,
                    correlation_id,
                    idempotency_key,
                )
        finally:
            if not lock.locked() and lock.statistics().tasks_waiting == 0:
                self._key_locks.pop(idempotency_key, None)

    async def _start(
        self,
        loaded: Workflow,
        agents: Mapping[str, Agent],
        checked_inputs: dict[str, Any],
        execution_id: str | None,
        execution_timeout: float | None,
        correlation_id: str | None,
        idempotency_key: str | None,
    ) -> ExecutionHandle:
        """Record and launch a new execution of an admitted workflow (the body of `start`)."""
        secrets = self.secrets.resolve(secret_names(loaded))
        lease = default_redactor().lease(secret_values_of(loaded, checked_inputs, secrets))
        try:
            bound = bind_secrets(loaded, secrets)
            return await self._record_and_launch(
                loaded,
                bound,
                _reusable_agents(loaded, bound, agents),
                checked_inputs,
                lease,
                execution_id,
                execution_timeout,
                correlation_id,
                idempotency_key,
            )
        except BaseException:
            lease.release()
            raise

    async def _record_and_launch(
        self,
        loaded: Workflow,
        bound: Workflow,
        agents: Mapping[str, Agent],
        checked_inputs: dict[str, Any],
        lease: SecretLease,
        execution_id: str | None,
        execution_timeout: float | None,
        correlation_id: str | None,
        idempotency_key: str | None,
    ) -> ExecutionHandle:
        """Record `loaded` and run `bound` (its secrets resolved); the run takes over `lease`."""
        record = ExecutionRecord(
            execution_id=execution_id or uuid.uuid4().hex,
            workflow_name=loaded.name,
            # Secret-looking values never reach the journal, and what is recorded stays a valid
            # workflow: resume reloads it and takes the secrets again (`_secrets`).
            workflow=redact_workflow(journal_document(loaded)),
            inputs=redact(checked_inputs),
            correlation_id=correlation_id,
            idempotency_key=idempotency_key,
        )
        emitter = Emitter(EventFactory(record.execution_id), self.journal, self.bus)
        run = self._execution(
            record.execution_id,
            bound,
            agents,
            checked_inputs,
            emitter,
            execution_timeout,
            correlation_id=record.correlation_id,
        )
        # The record and its `execution.started` commit together: none exists without the other.
        stored, created = await self.journal.create_or_find(record, first_event=run.start_event())
        if not created:
            # Another runtime or process recorded this idempotency key first: that is the one.
            lease.release()
            return await self._handle_for(stored)
        # The id is new, so no other process can hold its lock unless something is badly wrong.
        if not self._locks.acquire(record.execution_id):
            raise ExecutionStateError(
                f"execution {record.execution_id} is running in another process or runtime; "
                "it cannot be started"
            )
        return await self._launch(run, lease)

    async def resume(
        self,
        execution_id: str,
        *,
        execution_timeout: float | None = None,
        inputs: Mapping[str, JSON] | None = None,
    ) -> ExecutionHandle:
        """Continue an execution that died, failed or was cancelled, reusing succeeded steps.

        The journal keeps inputs under secret-looking keys redacted: `inputs` supplies them again
        (and only them). Its `${secrets.NAME}` references are resolved again, from `secrets`.

        Raises:
            ExecutionNotFoundError: no such execution.
            ExecutionStateError: it succeeded already, or it is running in this runtime, another
                runtime or another process.
            InputValidationError: a redacted input is not supplied again (each one is named), or
                a supplied one was not redacted, or does not fit the workflow's `inputs` schema.
            MissingSecretError: a secret it references is not set.
        """
        record = await self.journal.get_execution(execution_id)
        if execution_id in self._live or execution_id in self._resuming:
            raise ExecutionStateError(f"execution {execution_id} is running; it cannot be resumed")
        # Claimed here until it is live: a second resume racing this one is refused.
        self._resuming.add(execution_id)
        try:
            # Locked before the journal is replayed: what another process still runs is not read.
            if not self._locks.acquire(execution_id):
                raise ExecutionStateError(
                    f"execution {execution_id} is running in another process or runtime; "
                    "it cannot be resumed until that run ends"
                )
            try:
                run, lease = await self._resumed_run(record, execution_timeout, inputs)
            except BaseException:
                self._locks.release(execution_id)
                raise
            return await self._launch(run, lease)
        finally:
            self._resuming.discard(execution_id)

    async def _resumed_run(
        self,
        record: ExecutionRecord,
        execution_timeout: float | None,
        supplied: Mapping[str, Any] | None,
    ) -> tuple[ExecutionRun, SecretLease]:
        """Replay the execution's events and build the run that continues it (and its lease)."""
        execution_id = record.execution_id
        events = await self.journal.events(execution_id)
        state = replay(events)
        if state.status is ExecutionStatus.SUCCEEDED:
            raise ExecutionStateError(
                f"execution {execution_id} already succeeded; there is nothing to resume"
            )
        loaded, agents = self._admit(record.workflow)
        inputs = record.inputs
        if supplied or redacted_inputs(inputs):
            # Supplied again only in place of what the journal redacted, then checked as new.
            inputs = validate_inputs(loaded, resupply_inputs(inputs, supplied))
        secrets = self.secrets.resolve(secret_names(loaded))
        completed = {
            step_id: step.output
            for step_id, step in state.steps.items()
            if step.reusable and step_id in loaded.steps_by_id
        }
        if redacted_outputs := [
            step_id
            for step_id, step in state.steps.items()
            if step.output_redacted and step.status is StepStatus.SUCCEEDED
        ]:
            # The CLI shows warnings on stderr: `orchestr8 resume` says this too.
            _logger.warning(
                "execution %s runs %s again: the journal holds %s redacted (it held a secret), "
                "and a resume reuses only outputs recorded as they were",
                execution_id,
                ", ".join(redacted_outputs),
                "its output" if len(redacted_outputs) == 1 else "their outputs",
            )
        rerun = [step.id for step in loaded.steps if step.id not in completed]
        if literals := redacted_literals(loaded, rerun):
            _logger.warning(
                "execution %s resumes with '***' at %s: the journal keeps literal secrets "
                "redacted; write ${secrets.NAME} for the values a resume needs",
                execution_id,
                ", ".join(literals),
            )
        factory = EventFactory(
            execution_id, next_seq=state.last_seq + 1, elapsed_offset=state.elapsed
        )
        emitter = Emitter(factory, self.journal, self.bus)
        bound = bind_secrets(loaded, secrets)
        run = self._execution(
            execution_id,
            bound,
            _reusable_agents(loaded, bound, agents),
            inputs,
            emitter,
            execution_timeout,
            completed=completed,
            state=state,
            correlation_id=record.correlation_id,
        )
        return run, default_redactor().lease(secret_values_of(loaded, inputs, secrets))

    def find(self, execution_id: str) -> ExecutionHandle | None:
        """The handle of an execution running (or just finished) in this runtime, else None.

        None says only that it is not live here: the journal may still hold it (`result`).
        """
        return self._live.get(execution_id)

    def get(self, execution_id: str) -> ExecutionHandle:
        """The handle of an execution running (or just finished) in this runtime.

        Raises:
            ExecutionNotFoundError: it is not live here; read finished ones with `result`.
        """
        handle = self._live.get(execution_id)
        if handle is None:
            raise ExecutionNotFoundError(f"no live execution {execution_id!r}")
        return handle

    async def result(self, execution_id: str) -> ExecutionResult:
        """Read an execution's result (or its state so far) back from the journal.

        Raises:
            ExecutionNotFoundError: no such execution.
        """
        record = await self.journal.get_execution(execution_id)
        state = replay(await self.journal.events(execution_id))
        steps = {
            step_id: StepResult(
                step.status,
                attempts=step.attempts,
                output=step.output,
                error=step.error,
                usage=step.usage,
            )
            for step_id, step in state.steps.items()
        }
        return ExecutionResult(
            record.execution_id,
            state.status,
            state.output,
            state.error,
            steps,
            usage=state.usage,
        )

    def cancel_all(self, reason: str) -> None:
        """Ask every live execution to stop (cooperatively, then by force after the grace)."""
        for handle in list(self._live.values()):
            handle.cancel(reason)

    async def wait_all(self) -> None:
        """Wait until every execution of this runtime has ended (however it ended; never raises).

        A step whose agent ignored cancellation may still be running after its execution ended
        (see `docs/execution.md`); leaving `open_runtime` waits for those too.
        """
        waited: set[str] = set()
        while pending := [handle for key, handle in self._live.items() if key not in waited]:
            for handle in pending:
                await handle.finished()
                waited.add(handle.execution_id)

    async def _handle_for(self, record: ExecutionRecord) -> ExecutionHandle:
        live = self._live.get(record.execution_id)
        if live is not None:
            return live
        result = await self.result(record.execution_id)
        finished = result if result.status.is_terminal else None
        return ExecutionHandle(record.execution_id, None, finished)

    def _execution(
        self,
        execution_id: str,
        workflow: Workflow,
        agents: Mapping[str, Agent],
        inputs: Mapping[str, Any],
        emitter: Emitter,
        timeout: float | None,
        *,
        completed: Mapping[str, Any] | None = None,
        state: ExecutionState | None = None,
        correlation_id: str | None = None,
    ) -> ExecutionRun:
        return ExecutionRun(
            execution_id=execution_id,
            workflow=workflow,
            inputs=inputs,
            emitter=emitter,
            registry=self.registry,
            agents=agents,
            resilience=self.resilience,
            bus=self.bus,
            cancel_grace=self.cancel_grace,
            timeout=timeout if timeout is not None else workflow.timeout,
            completed=completed,
            resumed=completed is not None,
            correlation_id=correlation_id,
            random_source=self._random,
            sync_limiter=self.sync_limiter,
            usage=state.usage if state is not None else None,
            step_usage={step_id: step.usage for step_id, step in state.steps.items()}
            if state is not None
            else None,
        )

    async def _launch(self, run: ExecutionRun, lease: SecretLease) -> ExecutionHandle:
        handle = ExecutionHandle(run.execution_id, run)
        self._live[run.execution_id] = handle
        await self._nursery.start(self._supervise, run, lease)
        return handle

    async def _supervise(
        self,
        run: ExecutionRun,
        lease: SecretLease,
        *,
        task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        task_status.started()
        try:
            # Shielded: a cancellation from outside the runtime must not cut the run short
            # unrecorded; leaving `open_runtime` cancels it through `cancel_all`, within the grace.
            with trio.CancelScope(shield=True):
                await run.run()
        finally:
            self._live.pop(run.execution_id, None)
            # Its events are all emitted (redacted): its secrets need not be known any more.
            lease.release()
            # `run.run()` flushed the journal: another process may resume what it left.
            self._locks.release(run.execution_id)


@asynccontextmanager
async def open_runtime(
    *,
    journal: Journal | str | os.PathLike[str] | None = None,
    agents: Mapping[str, AgentFactory | AgentFunction] | None = None,
    bus: EventBus | None = None,
    cancel_grace: float = 5.0,
    random_source: random.Random | None = None,
    sync_workers: int = DEFAULT_SYNC_WORKERS,
    secrets: Secrets | None = None,
) -> AsyncIterator[Runtime]:
    """Open a runtime whose executions live exactly as long as the block.

    Args:
        journal: an open `Journal`, a SQLite file path, or None for an in-memory journal.
        agents: agents of the embedding program by id; they shadow the built-ins.
        bus: the event bus to publish on (views subscribe to it); a new one by default.
        cancel_grace: seconds a cancelled execution's agents get to finish before being forced.
        random_source: the source of retry jitter; seed one for repeatable runs.
        sync_workers: how many worker threads blocking agent code (sync `python` callables,
            `AgentContext.run_sync`) may use at once; further calls wait for a free one.
        secrets: where `${secrets.NAME}` values come from; default `ORCHESTR8_SECRET_NAME`
            environment variables.

    Raises:
        ValueError: `cancel_grace` is negative, infinite or NaN, or `sync_workers` is below 1.
    """
    if not (cancel_grace >= 0 and math.isfinite(cancel_grace)):
        raise ValueError(f"cancel_grace must be a finite number of seconds >= 0: {cancel_grace}")
    sync_limiter = sync_worker_limiter(sync_workers)
    async with unwrap_single_error(), AsyncExitStack() as stack:
        if not isinstance(journal, Journal):
            journal = await stack.enter_async_context(
                open_journal(None if journal is None else Path(journal))
            )
        locks = ExecutionLocks(journal.path, journal=journal)
        stack.callback(locks.close)
        async with trio.open_nursery() as nursery:
            runtime = Runtime(
                nursery,
                journal,
                registry=AgentRegistry(agents),
                bus=bus if bus is not None else EventBus(),
                cancel_grace=cancel_grace,
                random_source=random_source,
                locks=locks,
                sync_limiter=sync_limiter,
                secrets=secrets,
            )
            body_failed = False
            try:
                yield runtime
            except BaseException as error:
                # Being cancelled is no error of the block's: a journal failure must still show.
                body_failed = not _only_cancelled(error)
                raise
            finally:
                with trio.CancelScope(shield=True):
                    runtime.cancel_all("the runtime is shutting down")
                    await runtime.wait_all()
                    if runtime._live:
                        _logger.warning(
                            "the runtime waits for steps that ignored cancellation, of "
                            "execution(s) %s",
                            ", ".join(sorted(runtime._live)),
                        )
                    try:
                        await journal.flush()
                    except JournalError:
                        # The block's own error (often this failure, met by `wait`) says more.
                        if not body_failed:
                            raise


def _reusable_agents(
    loaded: Workflow, bound: Workflow, agents: Mapping[str, Agent]
) -> Mapping[str, Agent]:
    """The admitted agents whose step still has the config they were built from.

    An agent config with `${secrets.NAME}` values is bound anew for each execution; that step's
    agent is built from the bound config when it runs, as admission could not know the values.
    """
    if bound is loaded:
        return agents
    return {
        step.id: agents[step.id]
        for step, bound_step in zip(loaded.steps, bound.steps, strict=True)
        if bound_step.agent is step.agent and step.id in agents
    }


def _check_same_request(
    existing: ExecutionRecord, workflow: Workflow, inputs: Mapping[str, Any]
) -> None:
    """Refuse an idempotency key already used for another workflow or other inputs.

    Raises:
        IdempotencyKeyReusedError: the recorded request differs from this one.
    """
    # The journal keeps redacted copies: compare like with like, after a JSON round trip so
    # tuples and lists (and ints and floats) compare as the journal does.
    recorded = json.loads(json.dumps([existing.workflow, existing.inputs]))
    requested = json.loads(
        json.dumps([redact_workflow(journal_document(workflow)), redact(dict(inputs))])
    )
    if recorded != requested:
        raise IdempotencyKeyReusedError(
            f"the idempotency key was used for execution {existing.execution_id} with a "
            "different workflow or inputs; use a new key for a new request",
            execution_id=existing.execution_id,
        )


def _only_cancelled(error: BaseException) -> bool:
    """Whether `error` is `trio.Cancelled`, or a group of nothing else (as nurseries raise it)."""
    leaves = exception_leaves(error) if isinstance(error, BaseExceptionGroup) else [error]
    return all(isinstance(leaf, trio.Cancelled) for leaf in leaves)


def tune_garbage_collection() -> None:
    """Tune the process's garbage collector for running many steps; the CLI and server call it.

    Every step allocates trio cancel scopes, tasks and events; with thousands of steps in flight
    Python's default thresholds run full collections over all of them again and again (the 10,000
    step fan-out spends half its time there). This freezes what exists at start-up (imports,
    the loaded workflow) out of collection and raises the young-generation threshold. It changes
    process-wide settings, so an embedding program decides for itself whether to call it.
    """
    gc.freeze()
    gc.set_threshold(10_000, 50, 100)


async def run_workflow(
    workflow: WorkflowLike,
    inputs: Mapping[str, JSON] | None = None,
    *,
    journal: Journal | str | os.PathLike[str] | None = None,
    agents: Mapping[str, AgentFactory | AgentFunction] | None = None,
    execution_timeout: float | None = None,
    sync_workers: int = DEFAULT_SYNC_WORKERS,
) -> ExecutionResult:
    """Run one workflow to its end in a runtime of its own and return the result.

    `sync_workers` bounds the worker threads of blocking agent code, as in `open_runtime`.

    Raises:
        WorkflowValidationError: the workflow is invalid.
        InputValidationError: the inputs do not fit the workflow's `inputs` schema.
    """
    async with open_runtime(journal=journal, agents=agents, sync_workers=sync_workers) as runtime:
        handle = await runtime.start(workflow, inputs, execution_timeout=execution_timeout)
        return await handle.wait()
