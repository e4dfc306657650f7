"""The workflow stage: a JSON document becomes a checked, immutable workflow AST.

Holds the codec (`_codec`: reading and checking documents, writing them back), the strict cattrs
converter (`_converter`), execution inputs checks (`_inputs`), the generated schema (`_schema`),
readable problems from JSON Schema errors (`_schema_problems`), the workflow's own `inputs` schema
(`_inputs_schema`), templates holding `${...}` references (`_expressions`), one reference's syntax
and resolution (`_references`), the AST (`_document`), graph checks (`_graph`), policies
(`_policy`, `_policy_spec`), secret references in agent configs (`_config_secrets`),
sub-workflows (`_sub_workflows`), plans written by an agent (`_plans`: the plan fields at
load; `_plan_fragments`: a planner's fragment checked before it runs), the map fields of a
step (`_map_fields`), approval steps with their answers' checks (`_approvals`), budgets on a
workflow and a step (`_budgets`), per-step spec hashes (`_spec_hashes`), and where a workflow
asks for `scope: "global"` (`_scopes`).
May import: `_observability`, `_json`, `_errors`. Never the journal, the engine or a view.
"""
