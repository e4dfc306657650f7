"""Agents: the contract every agent meets, how agent ids resolve, and the built-in agents.

Holds `_contract` (`Agent`, `AgentContext`), `_registry` (mapping, built-ins, entry points,
`module:attribute`), `_import_path` (importing agent code by path, reporting why it failed),
`_builtins` (echo, sleep, fail, python) and `_sync_calls` (blocking code in
the runtime's own thread pool, abandoned at a deadline).
May import: `_journal`, `_workflow`, `_observability`, `_json`, `_errors`.
"""
