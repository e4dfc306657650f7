"""Starting and resuming executions: from an admitted or a journaled workflow to a launched run.

The runtime admits a request (`_admission`) and keeps the executions that run (`_runtime`); the
`Starter` does what lies between. A start binds the workflow's secrets and leases their values to
the redactor, records the execution (the redacted workflow and inputs, with its
`execution.started`, in one transaction), takes its lock and launches its `ExecutionRun`. It owns
idempotency keys: a key seen before gives the execution it started, or raises
`IdempotencyKeyReusedError` when the request differs. A resume is planned from the journal
(`_resumption`) and built the same way, numbering its events on from the last recorded one.
"""

from __future__ import annotations

import json
import random
import uuid
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import Any

import attrs
import trio

from .._agents._contract import Agent
from .._agents._registry import AgentRegistry
from .._errors import (
    ExecutionStateError,
    IdempotencyKeyReusedError,
    InputValidationError,
    Problem,
)
from .._journal._events import EventFactory
from .._journal._journal import ExecutionRecord, Journal
from .._journal._replay import ExecutionState
from .._journal._rules import remember_unchanging_workflow
from .._llm._catalog import ProviderCatalog
from .._observability._redaction import (
    Redactor,
    SecretLease,
    default_redactor,
    redact,
    redact_workflow,
)
from .._supervision._bus import EventBus
from .._workflow._codec import journal_document
from .._workflow._document import Workflow
from .._workflow._inputs import validate_inputs
from .._workflow._spec_hashes import step_spec_hashes
from ._admission import Admitter, WorkflowLike, recorded_directory
from ._children import ChildRunner
from ._claims import ExecutionClaims
from ._emitter import Emitter
from ._engine import ExecutionRun
from ._handle import ExecutionHandle
from ._resumption import plan_resume
from ._secrets import (
    Secrets,
    bind_secrets,
    redacted_inputs,
    secret_names,
    secret_values_of,
)
from ._spending import JournalSpend, ParentBudget, journal_spend
from ._state import RunState
from ._step_resilience import SharedResilience


class Starter:
    """Records, locks and launches the new and resumed executions of one runtime."""

    def __init__(
        self,
        *,
        journal: Journal,
        secrets: Secrets,
        registry: AgentRegistry,
        resilience: SharedResilience,
        bus: EventBus,
        cancel_grace: float,
        random_source: random.Random | None,
        sync_limiter: trio.CapacityLimiter,
        locks: ExecutionClaims,
        admit: Admitter,
        providers: ProviderCatalog | None = None,
        launch: Callable[[ExecutionRun, SecretLease], Awaitable[ExecutionHandle]],
        handle_for: Callable[[ExecutionRecord], Awaitable[ExecutionHandle]],
        adopt: Callable[[ExecutionRun], Callable[[], object]],
    ) -> None:
        """Take the runtime's parts; `admit`, `launch`, `handle_for`, `adopt` are the runtime's."""
        self._journal = journal
        self._secrets = secrets
        self._registry = registry
        self._resilience = resilience
        self._bus = bus
        self._cancel_grace = cancel_grace
        self._random = random_source
        self._sync_limiter = sync_limiter
        self._locks = locks
        self._admit = admit
        self._providers = providers
        self._launch = launch
        self._handle_for = handle_for
        self._adopt = adopt
        self._key_locks: dict[str, trio.Lock] = {}
        # The last workflow recorded, as the journal keeps it (see `_journal_workflow`).
        self._recorded_workflow: tuple[Workflow, Redactor, tuple[str, ...], Any] | None = None
        self.children = ChildRunner(self, journal)
        """Runs the child executions of sub-workflow steps (`_children`)."""

    async def start(
        self,
        loaded: Workflow,
        agents: Mapping[str, Agent],
        checked_inputs: dict[str, Any],
        *,
        execution_id: str | None,
        execution_timeout: float | None,
        correlation_id: str | None,
        idempotency_key: str | None,
        directory: Path | None = None,
    ) -> ExecutionHandle:
        """Record and launch an execution of an admitted workflow (see `Runtime.start`).

        `directory` is the workflow file's, recorded in `execution.started` for resume and fork.

        Raises:
            IdempotencyKeyReusedError: the key started an execution of another workflow or
                other inputs.
            ExecutionStateError: another run holds the new execution's lock (never expected).
        """
        if idempotency_key is None:
            return await self._start(
                loaded,
                agents,
                checked_inputs,
                execution_id,
                execution_timeout,
                correlation_id,
                None,
                directory,
            )
        # One start per key at a time here: a second one waits and gets the first's handle.
        lock = self._key_locks.setdefault(idempotency_key, trio.Lock())
        try:
            async with lock:
                existing = await self._journal.find_by_idempotency_key(idempotency_key)
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
                    directory,
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
        directory: Path | None,
    ) -> ExecutionHandle:
        """Record and launch a new execution of an admitted workflow (the body of `start`)."""
        secrets = self._secrets.resolve(secret_names(loaded))
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
                directory,
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
        directory: Path | None,
    ) -> ExecutionHandle:
        """Record `loaded` and run `bound` (its secrets resolved); the run takes over `lease`."""
        record = _new_record(
            loaded,
            self._journal_workflow(loaded),
            checked_inputs,
            execution_id or uuid.uuid4().hex,
            correlation_id,
        )
        record = attrs.evolve(record, idempotency_key=idempotency_key)
        emitter = Emitter(EventFactory(record.execution_id), self._journal, self._bus)
        run = self._execution(
            record.execution_id,
            bound,
            agents,
            checked_inputs,
            emitter,
            execution_timeout,
            correlation_id=record.correlation_id,
            directory=directory,
        )
        # The record and its `execution.started` commit together: none exists without the other.
        stored, created = await self._journal.create_or_find(
            record, first_event=run.start_event(), step_hashes=step_spec_hashes
        )
        if not created:
            # Another runtime or process recorded this idempotency key first: that is the one.
            lease.release()
            return await self._handle_for(stored)
        # The id is new, so no other process can hold its lock unless something is badly wrong.
        if not await self._locks.acquire(record.execution_id):
            raise ExecutionStateError(
                f"execution {record.execution_id} is running in another process or runtime; "
                "it cannot be started"
            )
        return await self._launch(run, lease)

    async def record_submitted(
        self,
        loaded: Workflow,
        checked_inputs: dict[str, Any],
        *,
        execution_id: str | None,
        correlation_id: str | None,
        idempotency_key: str | None,
    ) -> tuple[ExecutionRecord, bool]:
        """Record an execution for a worker to run (`Runtime.submit`); whether this recorded it.

        Only the record, queued for the workers in the same transaction: the worker's run writes
        its events. A worker sees the inputs as the journal keeps them, so an input redacted
        there (a secret-looking key) is refused.

        Raises:
            InputValidationError: an input would reach the worker redacted (each one named).
            IdempotencyKeyReusedError: the key was used with another workflow or other inputs.
        """
        record = _new_record(
            loaded,
            self._journal_workflow(loaded),
            checked_inputs,
            execution_id or uuid.uuid4().hex,
            correlation_id,
        )
        hidden = redacted_inputs(record.inputs)
        if hidden:
            raise InputValidationError(
                [
                    Problem(
                        f"$.{name}",
                        "the journal keeps this input redacted, so a worker would never see "
                        "it: pass secrets to workers as ${secrets.NAME} instead",
                    )
                    for name in hidden
                ]
            )
        if idempotency_key is not None:
            existing = await self._journal.find_by_idempotency_key(idempotency_key)
            if existing is not None:
                _check_same_request(existing, loaded, checked_inputs)
                return existing, False
            record = attrs.evolve(record, idempotency_key=idempotency_key)
        stored, created = await self._journal.create_or_find(
            record, step_hashes=step_spec_hashes, queue=True
        )
        if not created:
            _check_same_request(stored, loaded, checked_inputs)
        return stored, created

    async def start_recorded(
        self, record: ExecutionRecord, execution_timeout: float | None
    ) -> ExecutionHandle:
        """Start an execution recorded but never started (a submitted one); launch its run.

        The caller holds the execution's claim. Its workflow and inputs are the journal's; its
        `execution.started` is the first event written (seq 1).
        """
        loaded, agents = self._admit(record.workflow)
        checked_inputs = validate_inputs(loaded, record.inputs)
        secrets = self._secrets.resolve(secret_names(loaded))
        lease = default_redactor().lease(secret_values_of(loaded, checked_inputs, secrets))
        try:
            bound = bind_secrets(loaded, secrets)
            emitter = Emitter(EventFactory(record.execution_id), self._journal, self._bus)
            run = self._execution(
                record.execution_id,
                bound,
                _reusable_agents(loaded, bound, agents),
                checked_inputs,
                emitter,
                execution_timeout,
                correlation_id=record.correlation_id,
            )
            await self._journal.append(run.start_event())
            await self._journal.flush()
        except BaseException:
            lease.release()
            raise
        return await self._launch(run, lease)

    async def child_run(
        self,
        loaded: Workflow,
        checked_inputs: dict[str, Any],
        *,
        execution_id: str,
        parent_id: str,
        parent_step: str,
        correlation_id: str,
        child_timeout: float | None,
        parent_budget: ParentBudget | None = None,
    ) -> tuple[ExecutionRun, SecretLease]:
        """Record a sub-workflow step's child execution and build its run (and its lease).

        The run is not launched: the parent's step runs it in its own task (`_children`). Its
        calls count against `parent_budget` too (the parent step's budgets).
        """
        loaded, agents = self._admit(loaded)
        secrets = self._secrets.resolve(secret_names(loaded))
        lease = default_redactor().lease(secret_values_of(loaded, checked_inputs, secrets))
        try:
            bound = bind_secrets(loaded, secrets)
            record = attrs.evolve(
                _new_record(
                    loaded,
                    self._journal_workflow(loaded),
                    checked_inputs,
                    execution_id,
                    correlation_id,
                ),
                parent_id=parent_id,
                parent_step=parent_step,
            )
            emitter = Emitter(EventFactory(execution_id), self._journal, self._bus)
            run = self._execution(
                execution_id,
                bound,
                _reusable_agents(loaded, bound, agents),
                checked_inputs,
                emitter,
                child_timeout,
                correlation_id=correlation_id,
                parent_budget=parent_budget,
            )
            await self._journal.create_or_find(
                record, first_event=run.start_event(), step_hashes=step_spec_hashes
            )
        except BaseException:
            lease.release()
            raise
        return run, lease

    async def hold_child(self, run: ExecutionRun) -> Callable[[], Awaitable[None]]:
        """Lock a child execution and keep it live in the runtime while it runs; returns the undo.

        Its parent's lock already keeps every other run away: this one makes the child show as
        running (not `interrupted`) to other processes, and live to this runtime's views.

        Raises:
            ExecutionStateError: another run holds the child's lock (never expected).
        """
        execution_id = run.execution_id
        if not await self._locks.acquire(execution_id):
            raise ExecutionStateError(
                f"execution {execution_id} is running in another process or runtime; "
                "its parent's step cannot run it"
            )
        forget = self._adopt(run)

        async def release() -> None:
            forget()
            await self._locks.release(execution_id)

        return release

    async def resumed_run(
        self,
        record: ExecutionRecord,
        execution_timeout: float | None,
        supplied: Mapping[str, Any] | None,
        *,
        workflow: Workflow | None = None,
        parent_budget: ParentBudget | None = None,
    ) -> tuple[ExecutionRun, SecretLease]:
        """Replay the execution's events and build the run that continues it (and its lease).

        The caller holds the execution's lock, and launches the run. `workflow` (a child's, as
        its parent loaded it) stands in for the journaled document; `parent_budget` is a
        child's parent step's budgets.
        """
        execution_id = record.execution_id
        events = await self._journal.events(execution_id)
        # Built where the workflow file was, as at the start (a template's relative path).
        directory = recorded_directory(events)

        def admit(document: WorkflowLike) -> tuple[Workflow, Mapping[str, Agent]]:
            return self._admit(document if workflow is None else workflow, directory=directory)

        plan = plan_resume(record, events, admit, supplied)
        loaded, inputs, state = plan.workflow, plan.inputs, plan.state
        secrets = self._secrets.resolve(secret_names(loaded))
        plan.warn()
        factory = EventFactory(
            execution_id, next_seq=state.last_seq + 1, elapsed_offset=state.elapsed
        )
        emitter = Emitter(factory, self._journal, self._bus)
        bound = bind_secrets(loaded, secrets)
        run = self._execution(
            execution_id,
            bound,
            _reusable_agents(loaded, bound, plan.agents),
            inputs,
            emitter,
            execution_timeout,
            completed=plan.completed,
            completed_items=plan.completed_items,
            units=plan.units,
            state=state,
            correlation_id=record.correlation_id,
            budget_spent=journal_spend(events),
            parent_budget=parent_budget,
            directory=directory,
        )
        return run, default_redactor().lease(secret_values_of(loaded, inputs, secrets))

    def _journal_workflow(self, loaded: Workflow) -> Any:
        """`loaded`'s journal document redacted, kept while the workflow and known values stay.

        A service starts one workflow again and again. The document is made once per workflow
        and never changed (`journal_document`), and its redaction depends only on it, the
        redactor and the values that redactor knows: the same three give the same result, and
        walking a 1,000-step document again cost about 2 µs per step on every start.
        """
        redactor = default_redactor()
        values = redactor.known_values
        kept = self._recorded_workflow
        if kept is not None and kept[0] is loaded and kept[1] is redactor and kept[2] is values:
            redacted = kept[3]
        else:
            redacted = redactor.redact_workflow(journal_document(loaded))
            self._recorded_workflow = (loaded, redactor, values, redacted)
        # Never changed (see above): the journal may encode it once for all its starts.
        remember_unchanging_workflow(redacted)
        return redacted

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
        completed_items: Mapping[str, Mapping[int, Any]] | None = None,
        units: Mapping[str, Any] | None = None,
        state: ExecutionState | None = None,
        correlation_id: str | None = None,
        budget_spent: JournalSpend | None = None,
        parent_budget: ParentBudget | None = None,
        directory: Path | None = None,
    ) -> ExecutionRun:
        """The run of an execution, wired to the runtime's shared parts."""
        return ExecutionRun(
            execution_id=execution_id,
            state=RunState.begin(
                workflow,
                inputs,
                completed=completed,
                completed_items=completed_items,
                recorded_item_counts={
                    step_id: step.items
                    for step_id, step in state.steps.items()
                    if step.items is not None
                }
                if state is not None
                else None,
                usage=state.usage if state is not None else None,
                step_usage={step_id: step.usage for step_id, step in state.steps.items()}
                if state is not None
                else None,
                units=units,
            ),
            emitter=emitter,
            registry=self._registry,
            agents=agents,
            resilience=self._resilience,
            bus=self._bus,
            cancel_grace=self._cancel_grace,
            timeout=timeout if timeout is not None else workflow.timeout,
            resumed=completed is not None,
            correlation_id=correlation_id,
            random_source=self._random,
            sync_limiter=self._sync_limiter,
            children=self.children,
            gates_before=state.gates if state is not None else None,
            budget_spent=budget_spent,
            parent_budget=parent_budget,
            providers=self._providers,
            directory=directory,
        )


def _new_record(
    loaded: Workflow,
    journal_workflow: Any,
    checked_inputs: Mapping[str, Any],
    execution_id: str,
    correlation_id: str | None,
) -> ExecutionRecord:
    """The journal record of a new execution, with its inputs redacted.

    `journal_workflow` is `loaded`'s journal document, redacted (`Starter._journal_workflow`).
    """
    return ExecutionRecord(
        execution_id=execution_id,
        # A name can hold a secret value too (`/metrics` and every view show it).
        workflow_name=redact(loaded.name),
        # Secret-looking values never reach the journal, and what is recorded stays a valid
        # workflow: resume reloads it and takes the secrets again (`_secrets`).
        workflow=journal_workflow,
        inputs=redact(dict(checked_inputs)),
        correlation_id=correlation_id,
    )


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
