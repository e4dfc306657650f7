"""The terminal view: the `orchestr8` commands that run, resume, inspect and scaffold.

Holds `_main` (the command group, run/resume/validate/inspect/schema), `_run` (the driver of a
run), `_support`, `_views` and `_progress` (what a person reads) and `_scaffold` with its
templates (`init`, `create agent`, `test`).
May import: `_shell` and every stage below it; never `_web` (the console script joins the two).
"""
