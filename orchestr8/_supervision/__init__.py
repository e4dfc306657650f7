"""Supervision: actors with bounded mailboxes, OTP-style supervisors and restarts, the event bus.

Holds `_actor` (actor, mailbox, ref), `_supervisor` (strategies, shutdown order), `_restarts` and
`_incarnation` (the restart machinery the supervisor drives, through the small interface the
supervisor offers it, never its private attributes) and `_bus` (the lossy event bus).
May import: `_journal` (event records only), `_observability`, `_json`, `_errors`.
"""
