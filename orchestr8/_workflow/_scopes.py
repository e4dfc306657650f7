"""Where a workflow asks for `scope: "global"`, which only a PostgreSQL journal can give.

A bulkhead or rate limit with `"scope": "global"` counts across every process sharing one
PostgreSQL journal (docs/resilience.md). A runtime on SQLite or memory shares nothing with other
processes, so it refuses such a workflow when it is loaded: `global_scope_problems` names each
place, at the level of the document that set it (a step's policy or `defaults.policy`), and the
fix. Sub-workflows written inline are searched too, their paths under their step.
"""

from __future__ import annotations

from typing import Final

from .._errors import Problem
from ._document import Workflow
from ._policy_spec import INHERIT

__all__ = ["GLOBAL_SCOPE_FIX", "global_scope_problems"]

GLOBAL_SCOPE_FIX: Final = (
    'scope "global" is shared through a PostgreSQL journal, and this runtime has none: run with '
    '--journal postgresql://USER@HOST/DATABASE (or ORCHESTR8_JOURNAL), or use scope "process"'
)
"""The message of every `scope: "global"` problem: what it needs and the two ways out."""

_SECTIONS: Final = ("bulkhead", "rate_limit")


def global_scope_problems(workflow: Workflow, where: str = "$") -> list[Problem]:
    """A problem at each place that switches a step's bulkhead or rate limit to global scope.

    A scope set in `defaults.policy` is reported there once, not at every step inheriting it.
    """
    problems: list[Problem] = []
    blamed: set[str] = set()
    for index, step in enumerate(workflow.steps):
        if step.agent is not None:
            policy = workflow.policy_for(step.id)
            for name in _SECTIONS:
                section = getattr(policy, name)
                if section is None or section.scope != "global":
                    continue
                path = f"{where}.{_origin(workflow, index, name)}.scope"
                if path not in blamed:
                    blamed.add(path)
                    problems.append(Problem(path, GLOBAL_SCOPE_FIX))
        child = step.workflow.workflow if step.workflow is not None else None
        if isinstance(child, Workflow):
            problems += global_scope_problems(child, f"{where}.steps[{index}].workflow")
    return problems


def _origin(workflow: Workflow, index: int, name: str) -> str:
    """The policy section that set the scope: the step's own, else `defaults.policy`'s."""
    own = getattr(workflow.steps[index].policy, name)
    if own is not INHERIT and own is not None and own.scope is not INHERIT:
        return f"steps[{index}].policy.{name}"
    return f"defaults.policy.{name}"
