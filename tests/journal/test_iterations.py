"""`loop_progress`: what the journal says about each loop step's iterations and its until."""

from __future__ import annotations

from event_scripts import Script

from orchestr8._journal._iterations import LoopProgress, is_iteration_of, loop_progress


def loop_events(*holds: bool, bound: int = 3) -> Script:
    """A loop step `draft` that started with this bound and finished one iteration per hold."""
    script = Script().add("execution.started")
    script.add("step.started", "draft", agent="echo", max_iterations=bound)
    for number, held in enumerate(holds, start=1):
        script.add("step.started", f"draft#{number}", agent="echo")
        script.add("step.succeeded", f"draft#{number}", output=number)
        script.add("iteration.finished", "draft", iteration=number, until=held)
    return script


def test_a_loop_step_counts_its_iterations_and_whether_until_held() -> None:
    """Each iteration.finished moves the count; the last says whether until held."""
    assert loop_progress(loop_events(False, True).events) == {
        "draft": LoopProgress(max_iterations=3, iterations=2, until_held=True)
    }


def test_steps_that_do_not_loop_have_no_progress() -> None:
    """A step whose start carries no max_iterations is no loop; its iterations are ignored."""
    script = Script().add("step.started", "plain", agent="echo")
    script.add("iteration.finished", "plain", iteration=1, until=True)
    script.add("step.started", "odd", max_iterations=True)
    assert loop_progress(script.events) == {}


def test_a_resumed_loop_keeps_the_count_its_earlier_run_reached() -> None:
    """The reused iterations are not announced again: the step's new start keeps their count."""
    script = loop_events(False, False, bound=5)
    script.add("execution.resumed")
    script.add("step.started", "draft", agent="echo", max_iterations=5)
    assert loop_progress(script.events)["draft"].iterations == 2
    script.add("iteration.finished", "draft", iteration=3, until=True)
    assert loop_progress(script.events)["draft"] == LoopProgress(5, 3, True)


def test_progress_reads_as_one_line_and_as_json() -> None:
    """Held, ran out, or still going; the JSON form holds the same three facts."""
    assert LoopProgress(5, 3, True).describe() == "loop 3/5 iterations: until held"
    assert LoopProgress(3, 3, False).describe() == "loop 3/3 iterations: until never held"
    assert LoopProgress(3, 1, False).describe() == "loop 1/3 iterations"
    assert LoopProgress(3, 1, False).to_json() == {
        "iterations": 1,
        "max_iterations": 3,
        "until_held": False,
    }


def test_iteration_ids_name_their_loop_step() -> None:
    """`ID#k` is an iteration of ID; other ids are not."""
    assert is_iteration_of("draft#2", "draft")
    assert not is_iteration_of("draft#x", "draft")
    assert not is_iteration_of("drafts#2", "draft")
    assert not is_iteration_of("draft", "draft")
