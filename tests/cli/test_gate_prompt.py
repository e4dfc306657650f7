"""The prompt of `run`: asks about each gate as it opens, asks again on bad input, never fails."""

from __future__ import annotations

import io
import os
from typing import Any

import trio
import trio.testing
from gate_scripts import AMOUNT_SCHEMA, STAMP, gate_opened, opened, record_gated

from orchestr8 import open_runtime
from orchestr8._cli._gate_prompt import (
    GatePrompter,
    ThreadedLines,
    answer_commands,
    prompter_for_run,
    schema_summary,
)
from orchestr8._cli._progress import ProgressView
from orchestr8._execution._answers import submit_answer
from orchestr8._journal._events import Event, EventType
from orchestr8._journal._journal import Journal, open_journal


class Typed:
    """A person at the keyboard: lines sent by the test, None once they press Ctrl-D."""

    def __init__(self) -> None:
        self.send, self.receive = trio.open_memory_channel[str](16)

    async def readline(self) -> str | None:
        try:
            return await self.receive.receive()
        except trio.EndOfChannel:
            return None


def event(kind: str, step_id: str, data: dict[str, Any], execution_id: str = "e1") -> Event:
    return Event(execution_id, 9, STAMP, 0.0, kind, step_id=step_id, data=data)


def resolved(gate_id: str, by: str = "bob@desk") -> Event:
    data = {"approved": True, "input": {}, "by": by, "reason": None, "how": "answer"}
    return event(EventType.GATE_RESOLVED, gate_id, data)


class Screen:
    """What the prompt writes: lines, and questions left open for the answer."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    def say(self, text: str) -> None:
        self.lines.extend(text.split("\n"))

    def ask(self, text: str) -> None:
        self.lines.append(text)


async def type_lines(typed: Typed, *lines: str) -> None:
    for line in lines:
        await trio.testing.wait_all_tasks_blocked()
        await typed.send.send(line)
    await trio.testing.wait_all_tasks_blocked()


def prompter(journal: Journal, screen: Screen, typed: Typed | None) -> GatePrompter:
    return GatePrompter(
        "e1", journal, screen.say, lines=typed, ask=screen.ask, by="ada@lab", journal_given="j.db"
    )


def test_a_schema_is_summarised_one_field_a_line() -> None:
    """Each property with its type, default and whether it is required."""
    schema = {
        **AMOUNT_SCHEMA,
        "properties": {
            **AMOUNT_SCHEMA["properties"],
            "mode": {"enum": ["a", "b"], "type": ["string", "null"], "description": "how"},
        },
    }
    assert schema_summary(schema) == [
        "amount: integer, required",
        'note: string, default "ok"',
        'mode: string or null, one of "a", "b", how',
    ]
    assert schema_summary(None) == []
    assert schema_summary({"type": "array"}) == ['input: {"type": "array"}']


async def test_not_on_a_terminal_each_gate_says_once_how_to_answer_it() -> None:
    """No questions: one line per gate with the approve and reject commands."""
    async with open_journal() as journal:
        screen = Screen()
        send, receive = trio.open_memory_channel[object](16)
        for _ in range(2):  # a re-opened gate (after resume) is told once
            await send.send(event(EventType.GATE_OPENED, "sign", opened("sign")))
        await send.send(event(EventType.GATE_OPENED, "x", opened("x"), execution_id="other"))
        await send.send("not an event")
        await send.aclose()
        await prompter(journal, screen, None).follow(receive)
    assert screen.lines == [
        "gate sign waits for an answer: Sign the draft?",
        "  answer it: " + answer_commands("e1", "sign", "j.db"),
    ]
    assert "orchestr8 reject --journal j.db e1 sign --reason TEXT" in screen.lines[1]


async def test_not_on_a_terminal_a_gate_answered_already_is_not_told() -> None:
    """A held answer resolves its gate as it opens: no line tells the user to answer it."""
    async with open_journal() as journal:
        await record_gated(journal, "e1")
        await submit_answer(journal, "e1", "sign", {"approve": True, "input": {"amount": 12}})
        screen = Screen()
        send, receive = trio.open_memory_channel[object](16)
        await send.send(event(EventType.GATE_OPENED, "sign", opened("sign")))
        await send.aclose()
        await prompter(journal, screen, None).follow(receive)
    assert screen.lines == []


async def test_an_approval_asks_each_field_again_until_the_input_fits() -> None:
    """A wrong answer to y/n and an input out of range are asked again; defaults fill blanks."""
    async with open_journal() as journal, trio.open_nursery() as nursery:
        await record_gated(journal, "e1", gate_opened("sign", AMOUNT_SCHEMA))
        screen, typed = Screen(), Typed()
        send, receive = trio.open_memory_channel[object](16)
        nursery.start_soon(prompter(journal, screen, typed).follow, receive)
        await send.send(event(EventType.GATE_OPENED, "sign", opened("sign", schema=AMOUNT_SCHEMA)))
        await type_lines(typed, "maybe", "y", "", "5", "x", "12", "")
        [request] = await journal.requests("e1")
        assert request.body == {
            "approve": True,
            "input": {"amount": 12, "note": "ok"},
            "reason": None,
            "by": "ada@lab",
        }
        await send.aclose()
    assert screen.lines == [
        "gate sign of execution e1 asks: Sign the draft?",
        "  amount: integer, required",
        '  note: string, default "ok"',
        "approve sign? [y/n] ",
        "answer y or n",
        "approve sign? [y/n] ",
        "  amount (integer, required): ",
        "  amount is required",
        "  amount (integer, required): ",
        '  note (string, default "ok"): ',
        "that input does not fit:",
        "  $.input.amount: 5 is less than the minimum of 10",
        "  amount (integer, required): ",
        '  note (string, default "ok"): ',
        "gate sign of execution e1: approval recorded; no process runs the execution: "
        "`orchestr8 resume e1` continues it",
    ]


async def test_a_rejection_asks_for_a_reason_and_gates_are_asked_one_at_a_time() -> None:
    """Two gates open: the first is rejected (a reason is required), then the second is asked."""
    async with open_journal() as journal, trio.open_nursery() as nursery:
        await record_gated(journal, "e1", gate_opened("sign"), gate_opened("review[0]"))
        screen, typed = Screen(), Typed()
        send, receive = trio.open_memory_channel[object](16)
        nursery.start_soon(prompter(journal, screen, typed).follow, receive)
        await send.send(event(EventType.GATE_OPENED, "sign", opened("sign")))
        await send.send(event(EventType.GATE_OPENED, "review[0]", opened("review[0]", "Item a?")))
        await type_lines(typed, "n", " ", "too costly", "yes")
        requests = await journal.requests("e1")
        assert [(r.target, r.body["approve"], r.body["reason"]) for r in requests] == [
            ("sign", False, "too costly"),
            ("review[0]", True, None),
        ]
        await send.aclose()
    assert "a rejection needs a reason" in screen.lines
    assert screen.lines.index("gate review[0] of execution e1 asks: Item a?") > screen.lines.index(
        "reason: "
    )


async def test_a_gate_answered_elsewhere_withdraws_its_question() -> None:
    """Resolved by someone else while asked: a line says who, the next gate is asked."""
    async with open_journal() as journal, trio.open_nursery() as nursery:
        await record_gated(journal, "e1", gate_opened("sign"), gate_opened("review[0]"))
        screen, typed = Screen(), Typed()
        send, receive = trio.open_memory_channel[object](16)
        nursery.start_soon(prompter(journal, screen, typed).follow, receive)
        await send.send(event(EventType.GATE_OPENED, "sign", opened("sign")))
        await send.send(event(EventType.GATE_OPENED, "review[0]", opened("review[0]", "Item?")))
        await trio.testing.wait_all_tasks_blocked()
        await send.send(resolved("sign"))
        await trio.testing.wait_all_tasks_blocked()
        assert "gate sign: approved by bob@desk elsewhere; question withdrawn" in screen.lines
        assert screen.lines[-1] == "approve review[0]? [y/n] "
        await send.send(resolved("review[0]", by="carol"))
        await type_lines(typed)
        assert screen.lines[-1] == "gate review[0]: approved by carol elsewhere; question withdrawn"
        assert await journal.requests("e1") == []
        await send.aclose()


async def test_an_answer_refused_on_submit_is_told_and_the_prompt_goes_on() -> None:
    """Someone answered through the journal first: the 409's message, then the next gate."""
    async with open_journal() as journal, trio.open_nursery() as nursery:
        await record_gated(journal, "e1", gate_opened("sign"))
        screen, typed = Screen(), Typed()
        send, receive = trio.open_memory_channel[object](16)
        nursery.start_soon(prompter(journal, screen, typed).follow, receive)
        await send.send(event(EventType.GATE_OPENED, "sign", opened("sign")))
        await trio.testing.wait_all_tasks_blocked()

        await submit_answer(journal, "e1", "sign", {"approve": True}, by="dan")
        await type_lines(typed, "y")
        assert screen.lines[-1].startswith("gate sign of execution e1 was answered already")
        await send.aclose()


async def test_at_the_end_of_input_the_prompt_stops_and_says_how_to_answer() -> None:
    """Ctrl-D: no more questions; each gate still open gets its commands."""
    async with open_journal() as journal, trio.open_nursery() as nursery:
        await record_gated(journal, "e1", gate_opened("sign"), gate_opened("review[0]"))
        screen, typed = Screen(), Typed()
        send, receive = trio.open_memory_channel[object](16)
        nursery.start_soon(prompter(journal, screen, typed).follow, receive)
        await send.send(event(EventType.GATE_OPENED, "sign", opened("sign")))
        await send.send(event(EventType.GATE_OPENED, "review[0]", opened("review[0]")))
        await type_lines(typed)
        await typed.send.aclose()
        await trio.testing.wait_all_tasks_blocked()
        await send.send(event(EventType.GATE_OPENED, "review[1]", opened("review[1]")))
        await trio.testing.wait_all_tasks_blocked()
        await send.aclose()
    told = [line for line in screen.lines if line.startswith("gate ")]
    assert told[-2:] == [
        "gate review[0] waits for an answer: Sign the draft?",
        "gate review[1] waits for an answer: Sign the draft?",
    ]


async def test_lines_are_read_in_a_thread_and_a_withdrawn_read_is_not_lost() -> None:
    """A read cancelled mid-way keeps its line for the next question; end of input is None."""
    reading, writing = os.pipe()
    with os.fdopen(reading, "r") as stream, os.fdopen(writing, "w") as writer:
        lines = ThreadedLines(stream)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(lines.readline)
            await trio.testing.wait_all_tasks_blocked()
            nursery.cancel_scope.cancel()
        writer.write("yes\r\nno\npart")
        writer.flush()
        with trio.fail_after(5):
            assert await lines.readline() == "yes"
            assert await lines.readline() == "no"
        writer.write("ial\nlast")
        writer.close()
        with trio.fail_after(5):
            assert await lines.readline() == "partial"
            assert await lines.readline() == "last"
            assert await lines.readline() is None
            assert await lines.readline() is None


async def test_a_withdrawn_question_is_not_drawn_again_below_the_line_saying_so() -> None:
    """On the progress view, the withdrawn question's line is gone once the withdrawal is said."""
    async with open_journal() as journal, trio.open_nursery() as nursery:
        await record_gated(journal, "e1", gate_opened("sign"))
        stream, typed = io.StringIO(), Typed()
        view = ProgressView(stream, ["sign"], live=False)
        gates = GatePrompter(
            "e1", journal, view.note, lines=typed, ask=view.ask, hold=view.holding_status
        )
        send, receive = trio.open_memory_channel[object](16)
        nursery.start_soon(gates.follow, receive)
        await send.send(event(EventType.GATE_OPENED, "sign", opened("sign")))
        await trio.testing.wait_all_tasks_blocked()
        await send.send(resolved("sign"))
        await trio.testing.wait_all_tasks_blocked()
        await send.aclose()
    shown = stream.getvalue()
    assert shown.endswith("gate sign: approved by bob@desk elsewhere; question withdrawn\n")
    assert shown.count("approve sign? [y/n] ") == 1


async def test_a_run_prompts_only_on_a_terminal() -> None:
    """Not a terminal (or told so): only the commands; told interactive: questions on stderr."""
    async with open_runtime() as runtime:
        stream = io.StringIO()
        view = ProgressView(stream, ["sign"], live=True)
        quiet = prompter_for_run(view, runtime, "e1", None, stdin=io.StringIO())
        send, receive = trio.open_memory_channel[object](1)
        await send.send(event(EventType.GATE_OPENED, "sign", opened("sign")))
        await send.aclose()
        await quiet.follow(receive)
        assert "answer it: orchestr8 approve e1 sign" in stream.getvalue()
        asking = prompter_for_run(view, runtime, "e1", None, interactive=True, stdin=io.StringIO())
        with view.holding_status():
            view.ask("approve sign? [y/n] ")
            view._draw_status()
        assert stream.getvalue().endswith("approve sign? [y/n] ")
        assert asking is not quiet


async def test_a_schema_without_fields_takes_a_json_object() -> None:
    """An object schema without properties: one JSON object, asked again until it is one."""
    free = {"type": "object", "required": ["a"]}
    async with open_journal() as journal, trio.open_nursery() as nursery:
        await record_gated(journal, "e1", gate_opened("sign", free))
        screen, typed = Screen(), Typed()
        send, receive = trio.open_memory_channel[object](16)
        nursery.start_soon(prompter(journal, screen, typed).follow, receive)
        await send.send(event(EventType.GATE_OPENED, "sign", opened("sign", schema=free)))
        await type_lines(typed, "y", "[1]", "{}", '{"a": 1}')
        [request] = await journal.requests("e1")
        assert request.body["input"] == {"a": 1}
        await send.aclose()
    assert "the input must be a JSON object" in screen.lines
    assert "  $.input: 'a' is a required property" in screen.lines


async def test_text_that_is_not_json_stays_text_and_the_schema_says_so() -> None:
    """`abc` for an integer field is kept as text, then refused by the schema and asked again."""
    async with open_journal() as journal, trio.open_nursery() as nursery:
        await record_gated(journal, "e1", gate_opened("sign", AMOUNT_SCHEMA))
        screen, typed = Screen(), Typed()
        send, receive = trio.open_memory_channel[object](16)
        nursery.start_soon(prompter(journal, screen, typed).follow, receive)
        await send.send(event(EventType.GATE_OPENED, "sign", opened("sign", schema=AMOUNT_SCHEMA)))
        await type_lines(typed, "y", "abc", "12", "11", "12")
        [request] = await journal.requests("e1")
        assert request.body["input"] == {"amount": 11, "note": "12"}
        await send.aclose()
    assert "  $.input.amount: 'abc' is not of type 'integer'" in screen.lines


async def test_the_input_may_end_at_any_question() -> None:
    """Ctrl-D at a field, a JSON input or a reason: questions stop, the gate says how to answer."""
    free = {"type": "array"}
    for schema, lines in ((AMOUNT_SCHEMA, ["y"]), (free, ["y"]), (None, ["n"])):
        async with open_journal() as journal, trio.open_nursery() as nursery:
            await record_gated(journal, "e1", gate_opened("sign", schema))
            screen, typed = Screen(), Typed()
            send, receive = trio.open_memory_channel[object](16)
            nursery.start_soon(prompter(journal, screen, typed).follow, receive)
            await send.send(event(EventType.GATE_OPENED, "sign", opened("sign", schema=schema)))
            await type_lines(typed, *lines)
            await typed.send.aclose()
            await trio.testing.wait_all_tasks_blocked()
            await send.aclose()
        assert screen.lines[-2] == "gate sign waits for an answer: Sign the draft?"


async def test_a_gate_resolved_by_its_deadline_says_so() -> None:
    """The deadline won while the question was asked: the line names it."""
    async with open_journal() as journal, trio.open_nursery() as nursery:
        await record_gated(journal, "e1", gate_opened("sign"))
        screen, typed = Screen(), Typed()
        send, receive = trio.open_memory_channel[object](16)
        nursery.start_soon(prompter(journal, screen, typed).follow, receive)
        await send.send(event(EventType.GATE_OPENED, "sign", opened("sign")))
        await trio.testing.wait_all_tasks_blocked()
        data = {"approved": False, "input": {}, "by": "timeout", "reason": "t", "how": "timeout"}
        await send.send(event(EventType.GATE_RESOLVED, "sign", data))
        await trio.testing.wait_all_tasks_blocked()
        await send.aclose()
    assert screen.lines[-1] == "gate sign: rejected by its deadline elsewhere; question withdrawn"


async def test_an_unreadable_input_counts_as_its_end() -> None:
    """A stream that fails to read (closed) ends the questions instead of failing the run."""
    reading, writing = os.pipe()
    os.close(writing)
    stream = os.fdopen(reading, "r")
    stream.close()
    with trio.fail_after(5):
        assert await ThreadedLines(stream).readline() is None
    closed = io.StringIO()
    closed.close()
    async with open_runtime() as runtime:
        view = ProgressView(io.StringIO(), ["sign"], live=False)
        quiet = prompter_for_run(view, runtime, "e1", None, stdin=closed)
        assert quiet._lines is None


async def test_a_line_written_while_a_question_waits_goes_above_it() -> None:
    """A step's line during a question: the question is erased, the line written, then it again."""
    for live, erase in ((True, "\r\x1b[K"), (False, "\n")):
        stream = io.StringIO()
        view = ProgressView(stream, ["sign"], live=live)
        with view.holding_status():
            view.ask("approve sign? [y/n] ")
            view.note("a note")
        view.note("after")
        assert (
            stream.getvalue() == f"approve sign? [y/n] {erase}a note\napprove sign? [y/n] after\n"
        )
