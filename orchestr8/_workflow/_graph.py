"""The static checks of a workflow's step graph, and the graph they derive.

`analyse_graph` checks step ids, `depends_on`, dependency cycles, `${...}` references and the
inputs schema, reporting every problem at once; it also derives each step's dependencies and
dependents and, when there are no problems, an execution order. It works on `StepOutline`s rather
than on `Step`s, so the codec can run it on a document that has other errors too.
"""

from __future__ import annotations

import heapq
import types
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import attrs

from .._errors import Problem
from ._inputs_schema import KnownNames, declared_names, inputs_schema_problems
from ._references import LOCAL_SOURCES, Reference
from ._schema_problems import did_you_mean

#: Where each local root is defined, for the message when a reference reads it elsewhere.
LOCAL_ROOT_HOMES: Mapping[str, str] = types.MappingProxyType(
    {
        "item": "'item' is only defined in the input of a step with for_each",
        "index": "'index' is only defined in the input of a step with for_each",
        "previous": "'previous' is only defined in the input of a step with repeat",
        "iteration": "'iteration' is only defined in the input of a step with repeat",
    }
)


@attrs.frozen(kw_only=True)
class StepOutline:
    """What the graph checks need from one step, gathered even from a document with other errors.

    `step_id` is None, and `depends_on` entries are None, where the document holds no usable id;
    `references` pair each reference with the JSON path of the string holding it;
    `local_names` are the local roots (`item`, `index`, `previous`, `iteration`) its references
    may read, which its own fields define (`for_each`, `repeat`).
    """

    index: int
    step_id: str | None
    depends_on: tuple[str | None, ...] = ()
    references: tuple[tuple[str, Reference], ...] = ()
    local_names: frozenset[str] = frozenset()


@attrs.frozen(kw_only=True)
class GraphAnalysis:
    """The outcome of the graph checks: every problem, and the graph when there are none."""

    problems: tuple[Problem, ...]
    dependencies: Mapping[str, tuple[str, ...]]
    dependents: Mapping[str, tuple[str, ...]]
    order: tuple[str, ...]


def analyse_graph(
    outlines: Sequence[StepOutline],
    *,
    strategy: str,
    inputs_schema: Any,
    output_references: Sequence[tuple[str, Reference]] = (),
) -> GraphAnalysis:
    """Check ids, dependencies, cycles, references and the inputs schema; derive the graph."""
    problems: list[Problem] = []
    first_seen: dict[str, int] = {}
    for outline in outlines:
        if outline.step_id is None:
            continue
        if outline.step_id in first_seen:
            first = first_seen[outline.step_id]
            problems.append(
                Problem(
                    f"$.steps[{outline.index}].id",
                    f"duplicate step id '{outline.step_id}' (also $.steps[{first}].id)",
                )
            )
        else:
            first_seen[outline.step_id] = outline.index
    dependencies: dict[str, tuple[str, ...]] = {}
    previous: str | None = None
    for outline in outlines:
        found = _check_depends_on(outline, first_seen, problems)
        if strategy == "sequential" and previous is not None and previous not in found:
            found.append(previous)
        step_id = outline.step_id
        if step_id is not None and first_seen[step_id] == outline.index:
            dependencies[step_id] = tuple(found)
        previous = step_id if step_id is not None else previous
    problems.extend(_cycle_problems(dependencies))
    known_input = declared_names(inputs_schema)
    order = _topological_order(dependencies)
    ancestors = _ancestor_lookup(dependencies, order)
    for outline in outlines:
        for path, reference in outline.references:
            problems.extend(
                _reference_problems(
                    path,
                    reference,
                    outline.step_id,
                    ancestors,
                    known_input,
                    dependencies,
                    outline.local_names,
                )
            )
    for path, reference in output_references:
        if reference.source == "secrets":
            problems.append(
                Problem(
                    path,
                    f"{reference.text}: the output cannot reference secrets (it is recorded in "
                    "the journal and returned to callers)",
                )
            )
            continue
        problems.extend(
            _reference_problems(path, reference, None, ancestors, known_input, dependencies)
        )
    problems.extend(inputs_schema_problems(inputs_schema))
    dependents: dict[str, list[str]] = {step_id: [] for step_id in dependencies}
    for step_id, needs in dependencies.items():
        for need in needs:
            dependents[need].append(step_id)
    order = () if problems else order
    return GraphAnalysis(
        problems=tuple(problems),
        dependencies=types.MappingProxyType(dependencies),
        dependents=types.MappingProxyType(
            {step_id: tuple(after) for step_id, after in dependents.items()}
        ),
        order=order,
    )


def _check_depends_on(
    outline: StepOutline, first_seen: Mapping[str, int], problems: list[Problem]
) -> list[str]:
    found: list[str] = []
    for position, need in enumerate(outline.depends_on):
        path = f"$.steps[{outline.index}].depends_on[{position}]"
        if need is None:
            continue
        if need == outline.step_id:
            problems.append(Problem(path, f"step '{need}' cannot depend on itself"))
        elif need not in first_seen:
            hint = did_you_mean(need, first_seen)
            problems.append(Problem(path, f"unknown step '{need}'{hint}"))
        elif need in found:
            problems.append(Problem(path, f"'{need}' is listed twice"))
        else:
            found.append(need)
    return found


def _cycle_problems(dependencies: Mapping[str, tuple[str, ...]]) -> list[Problem]:
    """Name each dependency cycle once, starting from its first step in document order."""
    position = {step_id: index for index, step_id in enumerate(dependencies)}
    state: dict[str, int] = {}
    cycles: dict[tuple[str, ...], None] = {}
    for root in dependencies:
        if root in state:
            continue
        state[root] = 1
        path = [root]
        stack = [iter(dependencies[root])]
        while stack:
            for need in stack[-1]:
                if need not in state:
                    state[need] = 1
                    path.append(need)
                    stack.append(iter(dependencies[need]))
                    break
                if state[need] == 1:
                    cycle = path[path.index(need) :]
                    start = min(range(len(cycle)), key=lambda index: position[cycle[index]])
                    cycles[tuple(cycle[start:] + cycle[:start])] = None
            else:
                state[path.pop()] = 2
                stack.pop()
    return [
        Problem("$.steps", "dependency cycle " + " -> ".join((*cycle, cycle[0])))
        for cycle in cycles
    ]


def _topological_order(dependencies: Mapping[str, tuple[str, ...]]) -> tuple[str, ...]:
    position = {step_id: index for index, step_id in enumerate(dependencies)}
    waiting = {step_id: len(needs) for step_id, needs in dependencies.items()}
    dependents: dict[str, list[str]] = {step_id: [] for step_id in dependencies}
    for step_id, needs in dependencies.items():
        for need in needs:
            dependents[need].append(step_id)
    ready = [(position[step_id], step_id) for step_id, count in waiting.items() if count == 0]
    heapq.heapify(ready)
    order: list[str] = []
    while ready:
        _, step_id = heapq.heappop(ready)
        order.append(step_id)
        for after in dependents[step_id]:
            waiting[after] -= 1
            if waiting[after] == 0:
                heapq.heappush(ready, (position[after], after))
    return tuple(order)


def _reference_problems(
    path: str,
    reference: Reference,
    step_id: str | None,
    ancestors: Callable[[str], frozenset[str] | None],
    known_input: KnownNames | None,
    step_ids: Iterable[str],
    local_names: frozenset[str] = frozenset(),
) -> list[Problem]:
    """Check one reference: a declared input, a known step that `step_id` depends on, or a local."""
    text = reference.text
    if reference.source == "secrets":
        return []
    if reference.source in LOCAL_SOURCES:
        if reference.source in local_names:
            return []
        return [Problem(path, f"{text}: {LOCAL_ROOT_HOMES[reference.source]}")]
    if reference.step_id is None:
        name = reference.input_name
        if name is None or known_input is None or known_input(name):
            return []
        hint = did_you_mean(name, known_input.names)
        return [Problem(path, f"{text} refers to unknown input '{name}'{hint}")]
    target = reference.step_id
    if ancestors(target) is None:
        hint = did_you_mean(target, step_ids)
        return [Problem(path, f"{text} refers to unknown step '{target}'{hint}")]
    if step_id is None:
        return []
    if target == step_id:
        return [Problem(path, f"{text} refers to the output of its own step")]
    if target in (ancestors(step_id) or ()):
        return []
    return [
        Problem(
            path,
            f"{text} refers to step '{target}', which step '{step_id}' does not depend on"
            f" (add '{target}' to depends_on)",
        )
    ]


def _ancestor_lookup(
    dependencies: Mapping[str, tuple[str, ...]], order: Sequence[str]
) -> Callable[[str], frozenset[str] | None]:
    """Every step each step depends on, directly or not (None for an unknown step).

    Steps in `order` (all of them unless there is a cycle) are computed once each from their
    dependencies' sets; the rest are found by a search on demand.
    """
    known: dict[str, frozenset[str]] = {}
    for step_id in order:
        needs = dependencies[step_id]
        known[step_id] = frozenset(needs).union(*(known[need] for need in needs))

    def lookup(step_id: str) -> frozenset[str] | None:
        if step_id in known:
            return known[step_id]
        if step_id not in dependencies:
            return None
        seen: set[str] = set()
        frontier = list(dependencies[step_id])
        while frontier:
            need = frontier.pop()
            if need not in seen:
                seen.add(need)
                frontier.extend(dependencies.get(need, ()))
        known[step_id] = frozenset(seen)
        return known[step_id]

    return lookup
