"""The journal: events and executions, durable in SQLite or kept in memory, and their read models.

Holds `_events` (the envelope and vocabulary), `_journal` (the interface and its read side),
`_writer` (the write side: writer task, group commit, lag cap, failure and reopening), `_records`,
`_rules`, `_sqlite` (the SQLite store) on `_sqlite_schema` (its file format), `_memory`,
`_postgres` (the PostgreSQL journal: `_postgres_store` its SQL and batch rules,
`_postgres_requests` its control requests, `_postgres_schema` its schema and URL;
`_postgres_resilience` the SQL of the breakers, slots and buckets processes share),
`_recovery`, `_retention` (pruning old finished executions from a file, and compacting it) and
`_postgres_retention` (the same on PostgreSQL), `_journal_copy` (a journal copied to another,
on `_copy_stores`),
`_page_filter` (which executions a list page keeps), `_event_query` (the journal's filtered,
newest-first reads), and the read models built from events: `_replay` (execution and step
state), `_timeline` and its row model `_timeline_rows` (attempts over time), `_map_items` (a
map's items counted by status), `_costs` (what model calls cost, from `llm.called`) and
`_graph_view` (the steps as a graph, for the dashboard); time
travel: `_state_at` (the state after one event), `_state_diff` (what changed between two) and
`_comparison` (two executions side by side).
May import: `_observability`, `_json`, `_errors`. Never the engine or a view.
"""
