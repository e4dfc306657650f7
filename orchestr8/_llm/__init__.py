"""The LLM layer: models of any provider behind one call model, their prices, budgets and prompts.

Holds the provider-neutral call model (`_chat`), the provider protocol (`_provider`) and its
implementations, the catalog that resolves `provider:model` names, the session an agent reaches
through its context (`_session`), the models agents declare they call (`_model_uses`), prices and
the budget ledger, prompt template files and the adherence score, and `orchestr8 eval`'s
statistics. The SDKs (`anthropic`, `openai`) are imported only by the functions that call them.
May import `_journal`, `_workflow`, `_observability`, `_json`, `_errors`; never `_agents`,
`_resilience`, `_execution` or a view (they sit above it).
"""

from __future__ import annotations

__all__: list[str] = []
