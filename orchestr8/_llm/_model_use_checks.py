"""Load-time checks of the models a workflow's agents will call, against the provider catalog.

Admission builds each step's agent, then asks it which models it calls (`model_uses()`, see
`_model_uses`) and checks every use here, so a workflow that could not run is refused before
anything runs, each problem at the config path that names the model
(`$.steps[2].agent.config.fallback[1]`):

- the model name is malformed;
- its provider is in no catalog (the known ones are listed);
- the provider lacks a capability the use needs (`tools` on a provider whose spec left it out);
- the provider is of kind `openai` and the `openai` package is not installed;
- a cost cap applies to the step and the model has no price (a cap on an unpriced model could
  not be kept).

The catalog is the runtime's (built-ins and the provider config file) with the workflow's own
`providers` over it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from .._errors import Problem
from .._workflow._document import Workflow
from ._catalog import ProviderCatalog
from ._model_names import model_name_problem, parse_model_name
from ._model_uses import model_uses_of

__all__ = ["model_use_problems"]


def _never(step_id: str) -> bool:
    return False


def model_use_problems(
    workflow: Workflow,
    agents: Mapping[str, Any],
    catalog: ProviderCatalog,
    *,
    cost_capped: Callable[[str], bool] = _never,
) -> list[Problem]:
    """Every problem of the models the steps' agents declare, each at its JSON path.

    Args:
        workflow: the loaded workflow; its `providers` are laid over `catalog`.
        agents: each step's built agent, by step id.
        catalog: the runtime's providers.
        cost_capped: whether a cost cap applies to a step (by id): its models need a price.
    """
    catalog = catalog.overlay(workflow.providers)
    problems: list[Problem] = []
    for index, step in enumerate(workflow.steps):
        agent = agents.get(step.id)
        if agent is None:
            continue
        for use in model_uses_of(agent):
            where = f"$.steps[{index}].agent.{use.where}"
            problem = model_name_problem(use.model, bare_allowed=True)
            if problem is not None:
                problems.append(Problem(where, problem))
                continue
            name = parse_model_name(use.model, field=use.where, bare_allowed=True)
            if catalog.spec(name.provider) is None:
                problems.append(Problem(where, catalog.unknown_message(name.provider)))
                continue
            missing_package = catalog.missing_package(name.provider)
            if missing_package is not None:
                problems.append(Problem(where, missing_package))
            offered = catalog.capabilities(name.provider)
            lacking = sorted(use.capabilities - offered)
            if lacking:
                problems.append(
                    Problem(
                        where,
                        f"provider {name.provider!r} does not offer {', '.join(lacking)}, which"
                        f" this step needs (it offers: {', '.join(sorted(offered)) or 'nothing'})",
                    )
                )
            if cost_capped(step.id) and catalog.price(name.provider, name.model) is None:
                problems.append(
                    Problem(
                        where,
                        f"{name} has no price and a cost cap applies to this step: add its price"
                        f' to the "prices" of provider {name.provider!r} (or a "*" entry)',
                    )
                )
    return problems
