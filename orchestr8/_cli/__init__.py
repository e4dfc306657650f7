"""The terminal view: the `orchestr8` commands that run, resume, inspect and scaffold.

Holds `_main` (assembles the command line), `_group` (the command group and its plumbing),
`_run_commands` (run, resume) with `_run` (the driver of a run), `_inspect_commands` (validate,
schema, inspect), `_retention_commands` (prune), `_support`, `_views` and `_progress` (what a
person reads), `_project_commands` (init, create agent, test) with `_scaffold` and its
templates, and `_gate_commands` (approve, reject) with `_gate_prompt` (run's questions when a
gate opens).
May import: `_shell` and every stage below it; never `_web` (the console script joins the two).
"""
