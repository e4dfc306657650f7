"""The process shell every command shares: exit codes, signals, errors, listening, options.

Holds `_process` (`ExitCode`, the signal watcher, the error guard, `run_command`), `_listening`
(the loopback rule, serving an ASGI app) and `_options` (option types, the journal location).
May import: `_execution` and the stages below it; never a view.
"""
