"""The runtime: where executions live, for the CLI, the service and programs that embed orchestr8.

`open_runtime` owns a journal, an event bus, the agent registry, the resilience state shared by all
executions (circuit breakers, bulkheads, rate limiters) and a nursery in which every execution
runs. Leaving the block cancels what still runs (cooperatively, recorded as `cancelled`) and
flushes the journal. The runtime claims every execution it runs (`_claims`: an fcntl lock on a
SQLite file journal, a fenced lease on a PostgreSQL one), so no other process can resume it
meanwhile; on PostgreSQL, `submit` queues an execution for `orchestr8 worker` processes.

The runtime is where a request is admitted (`_admission`), once: `load` checks a document in
one pass and builds each step's agent once, and keeps those agents with the loaded workflow, so
every execution of it runs them (docs/agents.md states what this asks of agents); `start` checks
the inputs once. Recording, locking and launching a new or resumed execution, and idempotency
keys, are the `Starter`'s (`_starting`); what a resume reuses is planned in `_resumption`. The
runtime keeps the executions live here: `find` tells whether one is, without raising.

Secrets never reach the journal: the workflow and inputs are recorded redacted, `${secrets.NAME}`
references are resolved from the runtime's `Secrets` at every start and resume (`_secrets`), and
each execution leases its secret values to the redactor until it ends.
"""

from __future__ import annotations

import gc
import logging
import math
import os
import random
import uuid
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import AsyncExitStack, asynccontextmanager
from functools import partial
from pathlib import Path

import trio

from .._agents._contract import Agent, AgentFactory, AgentFunction
from .._agents._registry import AgentRegistry
from .._agents._sync_calls import DEFAULT_SYNC_WORKERS, sync_worker_limiter
from .._errors import (
    ExecutionNotFoundError,
    ExecutionStateError,
    ForkSourceRunningError,
    JournalError,
    exception_leaves,
    unwrap_single_error,
)
from .._journal._events import EventFactory, EventType, ExecutionStatus
from .._journal._journal import ExecutionRecord, Journal, open_journal
from .._journal._replay import replay
from .._journal._requests import RequestKind
from .._json import JSON
from .._llm._catalog import ProviderCatalog
from .._llm._provider_config import ProviderSource, configured_providers
from .._observability._redaction import SecretLease, default_redactor
from .._resilience._shared_state import SharedResilience as SharedAcrossProcesses
from .._supervision._bus import EventBus
from .._workflow._budgets import capped_workflow
from .._workflow._document import Workflow
from .._workflow._inputs import validate_inputs
from .._workflow._provider_specs import ProviderSpec
from .._workflow._spec_hashes import step_spec_hashes
from .._workflow._sub_workflows import WorkflowCatalog, WorkflowDocumentSource
from ._admission import Admission, AdmittedWorkflows, file_directory
from ._admission import WorkflowLike as WorkflowLike
from ._cancelling import CancelOutcome, cancel_execution, cancel_unowned
from ._claims import (
    SUBMIT_NEEDS_POSTGRES,
    ExecutionClaims,
    open_claims,
    postgres_parts,
    submit_execution,
)
from ._control import DEFAULT_CANCEL_REASON, ControlLoop
from ._engine import ExecutionRun
from ._forking import PreparedFork, copied_events, prepare_fork
from ._handle import ExecutionHandle as ExecutionHandle
from ._results import ExecutionResult, replayed_result
from ._secrets import Secrets, secret_names
from ._starting import Starter
from ._step_resilience import SharedResilience, open_shared_state

_logger = logging.getLogger("orchestr8.runtime")

_STILL_RUNNING = (
    "execution {} is still running; a fork starts from a finished (or interrupted, or "
    "waiting) execution: wait for it to end, or cancel it"
)


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
        locks: ExecutionClaims,
        sync_limiter: trio.CapacityLimiter | None = None,
        secrets: Secrets | None = None,
        workflows: WorkflowCatalog | None = None,
        providers: Mapping[str, ProviderSpec] | None = None,
        max_cost_usd: float | None = None,
        shared_state: SharedAcrossProcesses | None = None,
    ) -> None:
        """Wire the parts together; `open_runtime` builds it and owns their lifetimes."""
        self.journal = journal
        self.max_cost_usd = max_cost_usd
        """The cost cap of every execution started here (`open_runtime(max_cost_usd=)`)."""
        self.secrets = secrets if secrets is not None else Secrets()
        for value in self.secrets.values.values():
            # Like secret environment variables: known for the life of the process.
            default_redactor().add_secret(value)
        self.bus = bus
        self.registry = registry
        self.resilience = SharedResilience(across_processes=shared_state)
        self.cancel_grace = cancel_grace
        if sync_limiter is None:
            sync_limiter = sync_worker_limiter(DEFAULT_SYNC_WORKERS)
        self.sync_limiter = sync_limiter
        """The threads blocking agent code may use (`open_runtime(sync_workers=...)`)."""
        self._nursery = nursery
        self._random = random_source
        self._locks = locks
        self._live: dict[str, ExecutionHandle] = {}
        self._control = ControlLoop(journal, self._live)
        """Acts on the cancel requests and answers the journal holds for the live executions."""
        self._only_stragglers = trio.Event()
        self._resuming: set[str] = set()
        self.providers = ProviderCatalog(providers, secrets=self.secrets.lookup)
        """The model providers its executions' calls may use (`open_runtime(providers=...)`)."""
        self._admitted = AdmittedWorkflows(registry, workflows, self.providers)
        self._starter = Starter(
            journal=journal,
            secrets=self.secrets,
            registry=registry,
            resilience=self.resilience,
            bus=bus,
            cancel_grace=cancel_grace,
            random_source=random_source,
            sync_limiter=sync_limiter,
            locks=locks,
            admit=self._admit,
            providers=self.providers,
            launch=self._launch,
            handle_for=self._handle_for,
            adopt=self._adopt,
        )

    @property
    def claims(self) -> ExecutionClaims:
        """How this runtime claims the executions it runs: locks on SQLite, leases on PostgreSQL."""
        return self._locks

    def load(self, workflow: WorkflowLike) -> Workflow:
        """Load a workflow and check its agents exist and accept their config.

        Each step's agent is built here, once per loaded workflow, and that instance runs the
        step in every execution of it (`start` reuses it).

        Raises:
            WorkflowValidationError: with every problem found.
        """
        return self._admit(workflow)[0]

    def _admit(
        self, workflow: WorkflowLike, *, directory: Path | None = None
    ) -> tuple[Workflow, Mapping[str, Agent]]:
        """The loaded workflow and its agents by step id, built on its first admission only.

        `directory`: where the agents of a workflow with no file are built (`Admitter`).
        """
        admitted = self._admitted.admit(workflow, directory=directory)
        self.resilience.check_scopes(admitted[0])
        return admitted

    async def start(
        self,
        workflow: WorkflowLike | Admission,
        inputs: Mapping[str, JSON] | None = None,
        *,
        execution_id: str | None = None,
        execution_timeout: float | None = None,
        correlation_id: str | None = None,
        idempotency_key: str | None = None,
        max_cost_usd: float | None = None,
    ) -> ExecutionHandle:
        """Validate, record and start an execution; returns once it is running.

        `execution_timeout` (seconds) overrides the workflow's own `timeout`. `max_cost_usd`
        caps what its model calls may cost in all (with the runtime's cap, the lower wins):
        it lowers the workflow's `budget.max_cost_usd`, or makes one. With an
        `idempotency_key` seen before, returns the execution started then instead of another,
        provided the workflow and inputs are those it started with. An `Admission` (the CLI
        admits before it opens the journal) comes with its inputs checked: `inputs` must be None.

        Raises:
            WorkflowValidationError: the workflow is invalid.
            InputValidationError: the inputs do not fit the workflow's `inputs` schema.
            IdempotencyKeyReusedError: the key started an execution of another workflow or
                other inputs.
            ExecutionStateError: another run holds the new execution's lock (never expected).
            ValueError: `max_cost_usd` is negative or not finite.
        """
        cap = _lower_cap(self.max_cost_usd, max_cost_usd)
        if isinstance(workflow, Admission):
            if inputs is not None:
                raise TypeError("an Admission comes with its inputs; pass no inputs with it")
            loaded, agents = workflow.workflow, workflow.admitted.agents
            directory = workflow.admitted.directory
            checked_inputs = workflow.inputs
            # Its children's agents were built with it: their runs reuse them.
            self._admitted.remember(workflow.admitted)
            # Admitted with its cap (the CLI's --max-cost); a lower one changes no step.
            loaded = capped_workflow(loaded, cap)
        else:
            loaded, agents = self._admitted.admit(workflow, max_cost_usd=cap)
            # A path's own directory; a workflow `load` read from a file keeps its file's.
            directory = file_directory(workflow) or self._admitted.directory_of(loaded)
            checked_inputs = validate_inputs(loaded, inputs)
        self.resilience.check_scopes(loaded)
        return await self._starter.start(
            loaded,
            agents,
            checked_inputs,
            execution_id=execution_id,
            execution_timeout=execution_timeout,
            correlation_id=correlation_id,
            idempotency_key=idempotency_key,
            directory=directory,
        )

    async def submit(
        self,
        workflow: WorkflowLike | Admission,
        inputs: Mapping[str, JSON] | None = None,
        *,
        execution_id: str | None = None,
        correlation_id: str | None = None,
        idempotency_key: str | None = None,
        max_cost_usd: float | None = None,
    ) -> ExecutionRecord:
        """Admit and record an execution for a worker to run (`orchestr8 worker`); its record.

        Admitted exactly like `start`, then recorded (status `pending`, no events yet) and
        queued on the journal's leases; the workers are woken and one of them runs it. Follow
        it through the journal (`result`, `journal.events`). With an `idempotency_key` seen
        before, returns that execution's record instead of queueing another.

        Raises:
            JournalError: the journal is not PostgreSQL (only workers run queued executions).
            WorkflowValidationError: the workflow is invalid.
            InputValidationError: the inputs do not fit, or an input would reach the worker
                redacted (a secret-looking key: pass it as `${secrets.NAME}`).
            IdempotencyKeyReusedError: the key was used with another workflow or other inputs.
        """
        if postgres_parts(self.journal) is None:
            raise JournalError(SUBMIT_NEEDS_POSTGRES)
        cap = _lower_cap(self.max_cost_usd, max_cost_usd)
        if isinstance(workflow, Admission):
            if inputs is not None:
                raise TypeError("an Admission comes with its inputs; pass no inputs with it")
            self._admitted.remember(workflow.admitted)
            loaded, checked_inputs = capped_workflow(workflow.workflow, cap), workflow.inputs
        else:
            loaded, _ = self._admitted.admit(workflow, max_cost_usd=cap)
            checked_inputs = validate_inputs(loaded, inputs)
        record, created = await self._starter.record_submitted(
            loaded,
            checked_inputs,
            execution_id=execution_id,
            correlation_id=correlation_id,
            idempotency_key=idempotency_key,
        )
        if not created and record.status is ExecutionStatus.PENDING:
            # Recorded and queued in one transaction when created; an execution recorded under
            # the key before and still pending is queued again (idempotent), in case it never was.
            await submit_execution(self.journal, record.execution_id)
        return record

    async def run_claimed(
        self, execution_id: str, *, execution_timeout: float | None = None
    ) -> ExecutionHandle | None:
        """Run an execution a worker claimed: start it if it never started, else resume it.

        Succeeded steps of a run another worker left are reused, never run again. Returns None
        (and lets the claim go) when it has ended already or another runtime holds it.

        Raises:
            InputValidationError, WorkflowValidationError, MissingSecretError: it cannot run
                here (the claim is let go).
        """
        if not await self._locks.acquire(execution_id):
            return None
        try:
            record = await self.journal.get_execution(execution_id)
            if record.status.is_terminal or record.parent_id is not None:
                await self._locks.release(execution_id)
                return None
            if await self._cancelled_meanwhile(execution_id):
                await self._locks.release(execution_id)
                return None
            if await self.journal.last_seq(execution_id) == 0:
                return await self._starter.start_recorded(record, execution_timeout)
            run, lease = await self._starter.resumed_run(record, execution_timeout, None)
        except BaseException:
            await self._locks.release(execution_id)
            raise
        return await self._launch(run, lease)

    async def _cancelled_meanwhile(self, execution_id: str) -> bool:
        """Apply a cancel asked of a claimed execution's previous holder; True if there was one.

        A cancel recorded while another worker held the execution (it froze, or died, before
        its control loop read it) is still meant for the execution: the worker that takes it
        over ends it cancelled instead of running it on. (An operator's `resume` is another
        matter: it refuses cancels made before it, see `_control`.)
        """
        pending = await self.journal.pending_requests([execution_id])
        cancels = [request for request in pending if request.kind == RequestKind.CANCEL]
        if not cancels:
            return False
        reason = cancels[0].body.get("reason")
        await cancel_unowned(
            self.journal,
            self._locks,
            execution_id,
            reason if isinstance(reason, str) and reason else DEFAULT_CANCEL_REASON,
            bus=self.bus,
        )
        return True

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
                runtime or another process, or it is a child execution (resume its parent).
            InputValidationError: a redacted input is not supplied again (each one is named), or
                a supplied one was not redacted, or does not fit the workflow's `inputs` schema.
            MissingSecretError: a secret it references is not set.
        """
        record = await self.journal.get_execution(execution_id)
        if record.parent_id is not None:
            raise ExecutionStateError(
                f"execution {execution_id} is a child of execution {record.parent_id} (its step"
                f" {record.parent_step}); resume {record.parent_id}, which resumes it"
            )
        if execution_id in self._live or execution_id in self._resuming:
            raise ExecutionStateError(f"execution {execution_id} is running; it cannot be resumed")
        # Claimed here until it is live: a second resume racing this one is refused.
        self._resuming.add(execution_id)
        try:
            # Locked before the journal is replayed: what another process still runs is not read.
            if not await self._locks.acquire(execution_id):
                raise ExecutionStateError(
                    f"execution {execution_id} is running in another process or runtime; "
                    "it cannot be resumed until that run ends"
                )
            try:
                run, lease = await self._starter.resumed_run(record, execution_timeout, inputs)
            except BaseException:
                await self._locks.release(execution_id)
                raise
            return await self._launch(run, lease)
        finally:
            self._resuming.discard(execution_id)

    async def plan_fork(
        self,
        execution_id: str,
        from_step: str,
        *,
        workflow: WorkflowLike | None = None,
        inputs: Mapping[str, JSON] | None = None,
    ) -> PreparedFork:
        """Plan a fork of an execution from a step (`_forking`), writing nothing: a dry run.

        Raises:
            ExecutionNotFoundError: no such execution.
            ForkRefusedError: it is running, or a child execution, or `from_step` is not a step
                (item, iteration) it has, or `workflow` changed a step the fork would keep.
            WorkflowValidationError: `workflow` is invalid.
            InputValidationError: a redacted input is not given again in `inputs`, or the
                inputs do not fit the workflow's `inputs` schema.
        """
        record = await self.journal.get_execution(execution_id)
        if execution_id in self._live or execution_id in self._resuming:
            raise ForkSourceRunningError(_STILL_RUNNING.format(execution_id))
        # Locked while its events are read: what another process still runs is not forked.
        if not await self._locks.acquire(execution_id):
            raise ForkSourceRunningError(_STILL_RUNNING.format(execution_id))
        try:
            events = await self.journal.events(execution_id)
        finally:
            await self._locks.release(execution_id)
        recorded_hashes = None if workflow is None else await self.journal.step_hashes(execution_id)
        return prepare_fork(
            record,
            events,
            self._admit,
            from_step,
            workflow=workflow,
            overrides=inputs,
            recorded_hashes=recorded_hashes,
        )

    async def fork(
        self,
        execution_id: str,
        from_step: str,
        *,
        workflow: WorkflowLike | None = None,
        inputs: Mapping[str, JSON] | None = None,
        execution_timeout: float | None = None,
    ) -> ExecutionHandle:
        """Start a new execution reusing an execution's outputs up to a step (`_forking`).

        The steps not downstream of `from_step` keep their recorded outputs; `from_step` and
        its dependents run again, with `inputs` changing the source's (dotted keys set nested
        values). Raises as `plan_fork` does.
        """
        prepared = await self.plan_fork(execution_id, from_step, workflow=workflow, inputs=inputs)
        return await self.start_fork(prepared, execution_timeout=execution_timeout)

    async def start_fork(
        self, prepared: PreparedFork, *, execution_timeout: float | None = None
    ) -> ExecutionHandle:
        """Record and start a fork `plan_fork` planned: the source as it was at its `fork_seq`.

        The fork's record, its `execution.started` and the kept units' copied events are
        committed before it runs; then it runs like a resume, reusing what was copied.
        """
        # A secret not set refuses the fork before anything is recorded.
        self.secrets.resolve(secret_names(prepared.workflow))
        fork_id = uuid.uuid4().hex
        record = prepared.record(fork_id)
        factory = EventFactory(fork_id)
        started = factory.create(EventType.EXECUTION_STARTED, data=prepared.start_data(fork_id))
        await self.journal.create_or_find(record, first_event=started, step_hashes=step_spec_hashes)
        # Claimed once recorded (a lease refers to its execution's record); the id is new, so
        # no other run can hold it.
        if not await self._locks.acquire(fork_id):
            raise ExecutionStateError(f"execution {fork_id} is running in another process")
        try:
            for event in copied_events(prepared.plan, factory):
                await self.journal.append(event)
            await self.journal.flush()
            run, lease = await self._starter.resumed_run(
                record, execution_timeout, prepared.supplied(), workflow=prepared.workflow
            )
        except BaseException:
            await self._locks.release(fork_id)
            raise
        return await self._launch(run, lease)

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
        return replayed_result(record.execution_id, replay(await self.journal.events(execution_id)))

    def handles(self) -> list[ExecutionHandle]:
        """The handles of every execution live in this runtime, children included."""
        return list(self._live.values())

    async def cancel(
        self,
        execution_id: str,
        *,
        reason: str = "cancelled by request",
        force: bool = False,
        by: str = "api",
    ) -> CancelOutcome:
        """Cancel an execution wherever it runs: here, in another process, or in none.

        Here, it is cancelled at once; in another process (which holds its lock), a cancel
        request is recorded in the journal for that process to act on; when no process runs it
        (interrupted, or waiting for answers), it is cancelled durably here (`_cancelling`).
        `reason` is recorded on `execution.cancelled` (the default is `handle.cancel`'s);
        `force` skips the grace; `by` says who asked, recorded with a request (default "api",
        as over REST; the CLI sends `user@host`).

        Raises:
            ExecutionNotFoundError: no such execution.
            ExecutionStateError: it has already finished.
        """
        return await cancel_execution(
            self.journal,
            self._locks,
            execution_id,
            reason=reason,
            force=force,
            by=by,
            find=self.find,
            bus=self.bus,
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

    async def wait_only_stragglers(self) -> None:
        """Wait until leaving `open_runtime` waits for nothing but agents that ignored cancellation.

        Every execution has then ended and the journal is flushed (or failed): what remains
        journals nothing. A process that must end (a CLI command, a server told to stop) may exit
        then rather than wait for such an agent, however long it runs. Never returns otherwise.
        """
        await self._only_stragglers.wait()

    async def _handle_for(self, record: ExecutionRecord) -> ExecutionHandle:
        live = self._live.get(record.execution_id)
        if live is not None:
            return live
        result = await self.result(record.execution_id)
        finished = result if result.status.is_terminal else None
        return ExecutionHandle(record.execution_id, None, finished)

    def _adopt(self, run: ExecutionRun) -> Callable[[], object]:
        """Keep a child execution live here while its parent's step runs it; returns the undo.

        The child is not launched (its parent's step runs it), but `find`, `cancel` and the
        event socket see it like any execution this runtime runs.
        """
        execution_id = run.execution_id
        self._live[execution_id] = ExecutionHandle(execution_id, run)
        self._control.launched(execution_id)
        return partial(self._live.pop, execution_id, None)

    async def _launch(self, run: ExecutionRun, lease: SecretLease) -> ExecutionHandle:
        handle = ExecutionHandle(run.execution_id, run)
        self._live[run.execution_id] = handle
        self._control.launched(run.execution_id)
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
            with trio.CancelScope(shield=True):
                await self._locks.release(run.execution_id)


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
    workflows: Mapping[str, WorkflowDocumentSource] | None = None,
    providers: ProviderSource | None = None,
    max_cost_usd: float | None = None,
    claims: ExecutionClaims | None = None,
) -> AsyncIterator[Runtime]:
    """Open a runtime whose executions live exactly as long as the block.

    Args:
        journal: an open `Journal`, a SQLite file path, a PostgreSQL URL
            (`postgresql://...`, docs/scale-out.md), or None for an in-memory journal.
        agents: agents of the embedding program by id; they shadow the built-ins.
        bus: the event bus to publish on (views subscribe to it); a new one by default.
        cancel_grace: seconds a cancelled execution's agents get to finish before being forced.
        random_source: the source of retry jitter; seed one for repeatable runs.
        sync_workers: how many worker threads blocking agent code (sync `python` callables,
            `AgentContext.run_sync`) may use at once; further calls wait for a free one.
        secrets: where `${secrets.NAME}` values come from; default `ORCHESTR8_SECRET_NAME`
            environment variables.
        workflows: workflows by name, for sub-workflow steps that name one (`"workflow":
            "NAME"`): a path, JSON text or a parsed document each; they shadow the
            `orchestr8.workflows` entry points.
        providers: the model providers over the built-in ones: a provider config file's path,
            or its document (`{"providers": {...}}`) or `providers` mapping; None: the file
            `ORCHESTR8_PROVIDERS` names, if any. Their clients are closed with the runtime.
        max_cost_usd: the most the model calls of each execution it starts may cost, in US
            dollars (see `Runtime.start`); None: only the workflows' own budgets.
        claims: how the runtime claims the executions it runs (a worker passes its leases,
            `_claims.LeaseClaims`); None: `open_claims(journal)`, closed with the runtime.

    Raises:
        ValueError: `cancel_grace` is negative, infinite or NaN, `sync_workers` is below 1, or
            `max_cost_usd` is negative, infinite or NaN.
        ProviderConfigError: `providers` is unreadable or invalid.
    """
    if not (cancel_grace >= 0 and math.isfinite(cancel_grace)):
        raise ValueError(f"cancel_grace must be a finite number of seconds >= 0: {cancel_grace}")
    _lower_cap(max_cost_usd, None)
    sync_limiter = sync_worker_limiter(sync_workers)
    configured = configured_providers(providers)
    async with unwrap_single_error(), AsyncExitStack() as stack:
        if not isinstance(journal, Journal):
            journal = await stack.enter_async_context(open_journal(journal))
        locks = (
            claims if claims is not None else await stack.enter_async_context(open_claims(journal))
        )
        async with trio.open_nursery() as nursery:
            shared_state = await open_shared_state(journal, stack, nursery)
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
                workflows=WorkflowCatalog(workflows),
                providers=configured,
                max_cost_usd=max_cost_usd,
                shared_state=shared_state,
            )
            stack.push_async_callback(runtime.providers.aclose)
            nursery.start_soon(runtime._control.run)
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
                    runtime._control.stop()
                    if shared_state is not None:
                        await shared_state.stop()
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
                    finally:
                        if runtime._live:
                            runtime._only_stragglers.set()


def _lower_cap(first: float | None, second: float | None) -> float | None:
    """The lower of two cost caps (None: no cap), each checked.

    Raises:
        ValueError: a cap is negative, infinite or NaN.
    """
    for cap in (first, second):
        if cap is not None and not (math.isfinite(cap) and cap >= 0):
            raise ValueError(f"max_cost_usd must be a finite number of US dollars >= 0: {cap}")
    caps = [cap for cap in (first, second) if cap is not None]
    return min(caps) if caps else None


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
