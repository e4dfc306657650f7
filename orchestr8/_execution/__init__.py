"""Execution: admitting workflows and running executions to their end, journaled event by event.

Holds `_runtime` (the public `Runtime`), `_starting` (record, lock and launch a new or resumed
execution; idempotency keys), `_resumption` (what a resume reuses and what it runs again),
`_admission` (load, check, build agents once), `_engine` (one execution's scheduler), `_wind_down`
(ending its running steps early), `_state` (its typed state and synchronous rules), `_step_run` and
`_step_resilience` (one step through the pipeline), `_map` (a map step's items, each scheduled as a
unit), `_emitter` (events to the journal and the bus), `_conclusion`, `_results`, `_handle`,
`_lock`, `_claims` and `_liveness` (who runs an execution: fcntl locks on SQLite, leases on
PostgreSQL), `_worker` (the loop of `orchestr8 worker`: claim queued executions, run them, hand
them over), `_secrets` (secret values an execution holds), `_children` (the child executions of
sub-workflow steps), `_planning` (plan steps and replanning: a planner's plan checked and run as a
child execution), `_gates` (approval gates: the gate board, answers, waiting), `_control` (acting
on the cancel requests and answers the journal holds for the executions it runs), `_cancelling`
(cancelling an execution another process runs, or none), `_fork_plans` (what a fork of an execution
keeps and runs again), `_forking` (recording and starting that fork), `_answers` (answering an
approval gate from anywhere: checked, recorded, applied), `_adoption` (a server resuming waiting
executions and leaving them waiting on shutdown), `_llm_session` (the `AgentContext.llm` of an
execution's agents) and `_spending` (its budgets at run time, and their spend rebuilt from the
journal).
May import every stage below it; never a view (`_cli`, `_web`) or `_shell`.
"""
