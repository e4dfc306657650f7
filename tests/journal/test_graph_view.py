"""`_graph_view`: an execution's steps as graph nodes with their state, and a group's members."""

from __future__ import annotations

import json
from typing import Any

from event_scripts import Script
from hypothesis import given
from hypothesis import strategies as st

from orchestr8._journal._graph_view import graph_document, group_members, step_kind
from orchestr8._journal._replay import replay

ERROR = {"type": "ValueError", "message": "bad"}
WORKFLOW: dict[str, Any] = {
    "name": "shapes",
    "steps": [
        {"id": "fetch", "agent": "echo"},
        {"id": "each", "agent": {"id": "echo"}, "for_each": "inputs.xs", "depends_on": ["fetch"]},
        {"id": "draft", "agent": "echo", "repeat": {"until": "true", "max_iterations": 3}},
        {"id": "child", "workflow": "sub.json", "depends_on": ["each", "draft"]},
        {"id": "gate", "approval": {"prompt": "ok?"}, "depends_on": ["child"]},
        {"id": "planned", "plan": {"agent": "planner"}},
        {"agent": "echo"},
    ],
}


def script_of_shapes() -> Script:
    """fetch succeeded after a retry; a map of 3 (1 ok, 1 failed); 2 loop iterations; a child."""
    script = Script().add("execution.started")
    script.add("step.started", "fetch").add("attempt.started", "fetch", 1, elapsed=2.0)
    script.add("attempt.failed", "fetch", 1, error=ERROR)
    script.add("attempt.started", "fetch", 2).add("step.succeeded", "fetch", 2, output="x" * 500)
    script.add("step.started", "each").add("map.started", "each", count=3)
    script.add("step.started", "each[0]").add("step.succeeded", "each[0]", 1, output=1)
    script.add("step.started", "each[1]").add("step.failed", "each[1]", 1, error=ERROR)
    script.add("step.started", "draft", max_iterations=3)
    script.add("step.started", "draft#1").add("step.succeeded", "draft#1", 1, output=1)
    script.add("step.started", "draft#2")
    script.add("step.started", "child").add("child.started", "child", child_id="run-2")
    return script


def test_every_declared_step_is_a_node_with_its_kind_agent_and_dependencies() -> None:
    """Nodes follow declaration order; a step without a string id is left out."""
    document = graph_document(
        "run-1", WORKFLOW, replay(script_of_shapes().events), status="running"
    )
    assert document["execution_id"] == "run-1"
    assert document["workflow"] == "shapes"
    assert document["status"] == "running"
    assert document["last_seq"] == len(script_of_shapes().events)
    nodes = {node["id"]: node for node in document["nodes"]}
    assert list(nodes) == ["fetch", "each", "draft", "child", "gate", "planned"]
    assert [node["kind"] for node in nodes.values()] == [
        "agent",
        "map",
        "loop",
        "workflow",
        "approval",
        "plan",
    ]
    assert nodes["each"]["agent"] == "echo"
    assert nodes["child"]["agent"] is None
    assert nodes["child"]["depends_on"] == ["each", "draft"]


def test_a_node_carries_status_attempts_and_times_but_no_output() -> None:
    """fetch: succeeded, 2 attempts, started at 2 s, ran 4 s, never-started pending."""
    document = graph_document(
        "run-1", WORKFLOW, replay(script_of_shapes().events), status="running"
    )
    fetch = document["nodes"][0]
    assert fetch == {
        "id": "fetch",
        "kind": "agent",
        "agent": "echo",
        "depends_on": [],
        "status": "succeeded",
        "attempts": 2,
        "started": 2.0,
        "duration": 4.0,
    }
    assert "x" * 500 not in json.dumps(document)
    gate = document["nodes"][4]
    assert (gate["status"], gate["attempts"], gate["started"]) == ("pending", 0, None)


def test_groups_count_their_members_by_status() -> None:
    """A map counts its items, a loop its iterations, a sub-workflow names its child."""
    document = graph_document(
        "run-1", WORKFLOW, replay(script_of_shapes().events), status="running"
    )
    groups = {node["id"]: node.get("group") for node in document["nodes"]}
    assert groups["each"] == {
        "kind": "map",
        "total": 3,
        "counts": {"succeeded": 1, "failed": 1, "pending": 1},
    }
    assert groups["draft"] == {
        "kind": "loop",
        "total": 3,
        "counts": {"succeeded": 1, "running": 1},
    }
    assert groups["child"] == {
        "kind": "workflow",
        "total": 1,
        "counts": {"running": 1},
        "child_execution_id": "run-2",
    }
    assert groups["planned"] == {"kind": "plan", "total": 1, "counts": {"pending": 1}}
    assert groups["fetch"] is None
    assert groups["gate"] is None


def test_a_map_that_has_not_started_has_no_total_yet() -> None:
    """Before `map.started` the item count is unknown."""
    document = graph_document("run-1", WORKFLOW, replay([]), status="pending")
    each = document["nodes"][1]
    assert each["group"] == {"kind": "map", "total": None, "counts": {}}


def test_a_document_without_steps_has_no_nodes() -> None:
    """A recorded document that is not a workflow gives an empty graph, not an error."""
    document = graph_document("run-1", {"steps": "nope"}, replay([]), status="failed")
    assert document["nodes"] == []
    assert document["workflow"] == ""


def test_a_non_group_step_with_a_child_names_it() -> None:
    """A replanned agent step runs a child execution: its node names the child."""
    script = Script().add("execution.started").add("step.started", "fetch")
    script.add("child.started", "fetch", child_id="run-9")
    document = graph_document("run-1", WORKFLOW, replay(script.events), status="running")
    assert document["nodes"][0]["child_execution_id"] == "run-9"


def test_map_members_list_every_item_in_pages() -> None:
    """Items by index, those not started pending; `next_offset` leads to the next page."""
    state = replay(script_of_shapes().events)
    first = group_members("run-1", WORKFLOW, state, "each", offset=0, limit=2)
    assert first is not None
    assert first["total"] == 3
    assert first["next_offset"] == 2
    assert first["kind"] == "map"
    assert [(m["id"], m["status"], m["attempts"]) for m in first["members"]] == [
        ("each[0]", "succeeded", 0),
        ("each[1]", "failed", 0),
    ]
    last = group_members("run-1", WORKFLOW, state, "each", offset=2, limit=2)
    assert last is not None
    assert last["next_offset"] is None
    assert last["members"] == [
        {"id": "each[2]", "status": "pending", "attempts": 0, "duration": None}
    ]


def test_items_never_started_are_not_started_once_the_execution_ended() -> None:
    """After the execution failed, an item that never ran is `not_started`, not pending."""
    script = script_of_shapes().add("execution.failed", error=ERROR)
    members = group_members("run-1", WORKFLOW, replay(script.events), "each", offset=2, limit=5)
    assert members is not None
    assert members["members"][0]["status"] == "not_started"


def test_loop_members_are_its_iterations_so_far() -> None:
    """Iterations in order, with their status."""
    members = group_members(
        "run-1", WORKFLOW, replay(script_of_shapes().events), "draft", offset=0, limit=10
    )
    assert members is not None
    assert [(m["id"], m["status"]) for m in members["members"]] == [
        ("draft#1", "succeeded"),
        ("draft#2", "running"),
    ]


def test_a_sub_workflow_has_no_members_but_its_child() -> None:
    """Expanding a sub-workflow gives its child execution to open."""
    members = group_members(
        "run-1", WORKFLOW, replay(script_of_shapes().events), "child", offset=0, limit=10
    )
    assert members is not None
    assert members["members"] == []
    assert members["child_execution_id"] == "run-2"


def test_a_map_without_map_started_lists_the_items_seen() -> None:
    """Without a recorded count the items that started are the members."""
    script = Script().add("execution.started").add("step.started", "each[4]")
    members = group_members("run-1", WORKFLOW, replay(script.events), "each", offset=0, limit=9)
    assert members is not None
    assert [m["id"] for m in members["members"]] == ["each[4]"]


def test_only_groups_have_members() -> None:
    """An agent step, an approval or an unknown step has no members: None."""
    state = replay(script_of_shapes().events)
    for step_id in ("fetch", "gate", "nope"):
        assert group_members("run-1", WORKFLOW, state, step_id, offset=0, limit=5) is None


@given(
    st.dictionaries(
        st.sampled_from(["for_each", "repeat", "workflow", "plan", "approval", "agent"]),
        st.just("x"),
    )
)
def test_every_step_has_exactly_one_kind(step: dict[str, str]) -> None:
    """Whatever keys a step holds, it is of one known kind; map and loop take precedence."""
    kind = step_kind(step)
    assert kind in ("agent", "map", "loop", "workflow", "plan", "approval")
    if "for_each" in step:
        assert kind == "map"
    elif "repeat" in step:
        assert kind == "loop"


def test_ten_thousand_steps_stay_well_under_two_megabytes() -> None:
    """The compact document of a 10,000-step finished run is under 1.5 MB of JSON."""
    steps = [
        {"id": f"step_{n}", "agent": "echo", "depends_on": [f"step_{n - 1}"] if n % 10 else []}
        for n in range(10_000)
    ]
    script = Script().add("execution.started")
    for n in range(10_000):
        script.add("step.started", f"step_{n}").add("attempt.started", f"step_{n}", 1)
        script.add("step.succeeded", f"step_{n}", 1, output="hello " * 20)
    document = graph_document("run-1", {"steps": steps}, replay(script.events), status="succeeded")
    size = len(json.dumps(document, separators=(",", ":")))
    assert size < 1_500_000


def test_a_sequential_workflow_chains_each_step_to_the_one_before() -> None:
    """`strategy: sequential` adds the implicit edge from the previous step, once."""
    workflow = {
        "strategy": "sequential",
        "steps": [
            {"id": "a", "agent": "echo"},
            {"id": "b", "agent": "echo"},
            {"id": "c", "agent": "echo", "depends_on": ["b"]},
        ],
    }
    document = graph_document("run-1", workflow, replay([]), status="pending")
    assert [node["depends_on"] for node in document["nodes"]] == [[], ["a"], ["b"]]


def test_an_approval_node_carries_its_gate_and_an_interrupted_runs_running_steps_read_so() -> None:
    """A rejected gate shows on its node; when the run is interrupted, so are its running units."""
    script = script_of_shapes()
    script.add("step.started", "gate").add("gate.opened", "gate", prompt="ok?")
    script.add("gate.resolved", "gate", approved=False, by="ann", reason="no")
    document = graph_document("run-1", WORKFLOW, replay(script.events), status="interrupted")
    nodes = {node["id"]: node for node in document["nodes"]}
    assert nodes["gate"]["gate"] == "rejected"
    assert "gate" not in nodes["fetch"]
    assert nodes["draft"]["group"]["counts"] == {"interrupted": 1, "succeeded": 1}
    members = group_members(
        "run-1", WORKFLOW, replay(script.events), "draft", offset=0, limit=5, status="interrupted"
    )
    assert members is not None
    assert [member["status"] for member in members["members"]] == ["succeeded", "interrupted"]
