"""The interactive prompt of `orchestr8 run` and `resume`: answer approval gates as they open.

On a terminal (stdin and stderr are ttys), when a gate of the execution (or of one of its child
executions) opens, the prompt asks: the gate's prompt and a summary of its schema, `approve?
[y/n]`, then, to approve, each field of the input (its type, default, whether it is required),
and to reject, a reason. Input that does not fit is asked again with the problems named: a typo
never fails the run. Several open gates are asked one at a time, in the order they opened, by
id. The answer goes through `submit_answer`, so the journal holds it like any other. A gate
answered elsewhere meanwhile (`orchestr8 approve` in another terminal, REST) or resolved by its
deadline withdraws its question with a line saying who answered. At the end of input (Ctrl-D),
questions stop and each gate says how to answer it instead.

Not on a terminal the prompt asks nothing: each gate that opens prints once how to answer it
(`orchestr8 approve ID GATE`, `orchestr8 reject ID GATE --reason TEXT`). Only `_run` imports this
module, when a run starts; the line source and the tty decision are injected, so tests drive it
without a terminal.
"""

from __future__ import annotations

import contextlib
import json
import os
import shlex
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, Protocol, TextIO

import attrs
import outcome
import trio

from .._journal._events import Event, EventType

if TYPE_CHECKING:
    from .._execution._runtime import Runtime
    from .._journal._journal import Journal
    from ._progress import ProgressView

__all__ = [
    "GatePrompter",
    "LineSource",
    "ThreadedLines",
    "answer_commands",
    "prompter_for_run",
    "schema_summary",
]


class LineSource(Protocol):
    """Where the prompt reads a person's answers: one line at a time, None at the end of input."""

    async def readline(self) -> str | None:
        """The next line without its newline; None once the input has ended."""


class ThreadedLines:
    """Lines of a blocking stream (stdin), read from its file descriptor in a worker thread.

    A question withdrawn while a read is in flight leaves that read going: its line goes to the
    next question rather than being lost, and two reads never compete for the stream. The
    thread reads the descriptor itself (`os.read`), never the stream's buffer, so a read still
    blocked when the run ends holds no lock the interpreter needs to exit.
    """

    def __init__(self, stream: TextIO) -> None:
        """Read lines of `stream`."""
        self._stream = stream
        self._pending = b""
        self._lines: list[str | None] = []
        self._reading = False
        self._arrived = trio.Event()

    async def readline(self) -> str | None:
        """The next line (None at end of input), reading in a worker thread if none is held."""
        while not self._lines:
            if not self._reading:
                self._start_reading()
            await self._arrived.wait()
        line = self._lines[0]
        if line is not None:  # the end of input stays the end
            self._lines.pop(0)
        return line

    def _start_reading(self) -> None:
        """Read a chunk in a worker thread; `_deliver` takes it back into trio."""
        self._reading = True
        self._arrived = trio.Event()
        token = trio.lowlevel.current_trio_token()

        def deliver(result: outcome.Outcome[bytes]) -> None:
            with contextlib.suppress(trio.RunFinishedError):
                token.run_sync_soon(self._deliver, result)

        trio.lowlevel.start_thread_soon(self._read_chunk, deliver)

    def _read_chunk(self) -> bytes:
        """What the descriptor has next (a terminal gives a line at a time); b"" at its end."""
        return os.read(self._stream.fileno(), 4096)

    def _deliver(self, result: outcome.Outcome[bytes]) -> None:
        """Split what the thread read into lines (an unreadable stream counts as its end)."""
        self._reading = False
        try:
            chunk = result.unwrap()
        except (OSError, ValueError):
            chunk = b""
        if not chunk:
            if self._pending:
                self._lines.append(self._pending.decode(errors="replace").rstrip("\r"))
            self._lines.append(None)
        else:
            *complete, self._pending = (self._pending + chunk).split(b"\n")
            self._lines += [line.decode(errors="replace").rstrip("\r") for line in complete]
        self._pending = b"" if not chunk else self._pending
        self._arrived.set()


def answer_commands(execution_id: str, gate_id: str, journal_given: str | None) -> str:
    """The commands that answer a gate from another terminal, with the same `--journal`."""
    from .._shell._options import journal_hint

    option = journal_hint(journal_given)
    target = f"{shlex.quote(execution_id)} {shlex.quote(gate_id)}"
    return (
        f"orchestr8 approve{option} {target} [--input KEY=VALUE ...]  or  "
        f"orchestr8 reject{option} {target} --reason TEXT"
    )


def schema_summary(schema: Mapping[str, Any] | None) -> list[str]:
    """One line per input field of a gate's schema: name, type, default, required."""
    if not schema:
        return []
    properties = schema.get("properties")
    if schema.get("type") != "object" or not isinstance(properties, Mapping):
        return [f"input: {json.dumps(schema, ensure_ascii=False)}"]
    required = schema.get("required") or ()
    return [
        f"{name}: {_describe_field(name, field, required)}" for name, field in properties.items()
    ]


def _describe_field(name: str, field: object, required: object) -> str:
    field = field if isinstance(field, Mapping) else {}
    kind = field.get("type", "any")
    notes = [" or ".join(kind) if isinstance(kind, list) else str(kind)]
    if "enum" in field:
        notes.append("one of " + ", ".join(json.dumps(value) for value in field["enum"]))
    if "default" in field:
        notes.append(f"default {json.dumps(field['default'])}")
    if isinstance(required, list | tuple) and name in required:
        notes.append("required")
    if isinstance(field.get("description"), str):
        notes.append(field["description"])
    return ", ".join(notes)


@attrs.define
class _OpenGate:
    """A gate waiting for an answer, as the prompt knows it from its `gate.opened` event."""

    execution_id: str
    gate_id: str
    prompt: str
    schema: Mapping[str, Any] | None


class GatePrompter:
    """Asks a person to answer the gates of one execution as they open (or says how to)."""

    def __init__(
        self,
        execution_id: str,
        journal: Journal,
        say: Callable[[str], None],
        *,
        lines: LineSource | None,
        ask: Callable[[str], None] | None = None,
        runtime: Runtime | None = None,
        by: str = "unknown",
        journal_given: str | None = None,
        hold: Callable[[], contextlib.AbstractContextManager[object]] = contextlib.nullcontext,
    ) -> None:
        """Prompt for the gates of `execution_id` and its child executions.

        Args:
            execution_id: the execution `run` or `resume` runs.
            journal: where answers are recorded (through `submit_answer`).
            say: writes one line (the progress view's `note`).
            lines: where answers are read; None: not interactive, only say how to answer.
            ask: writes a question without ending the line (default: `say`).
            runtime: the runtime running the execution, so answers apply at once.
            by: who answers (`user@host`).
            journal_given: the `--journal` given, repeated in the commands it prints.
            hold: a context in which nothing else draws on the terminal (the status line).
        """
        self._execution_id = execution_id
        self._journal = journal
        self._say = say
        self._ask = ask or say
        self._lines = lines
        self._runtime = runtime
        self._by = by
        self._journal_given = journal_given
        self._hold = hold
        self._open: dict[tuple[str, str], _OpenGate] = {}
        self._changed = trio.Event()
        self._asking: tuple[tuple[str, str], trio.CancelScope] | None = None
        self._answered_here: set[tuple[str, str]] = set()
        self._submitting: tuple[str, str] | None = None
        self._untold: list[_OpenGate] = []
        self._withdrawn = ""

    async def follow(self, events: trio.MemoryReceiveChannel[Any]) -> None:
        """Read the bus until it closes, asking about (or telling of) each gate that opens."""
        async with trio.open_nursery() as nursery:
            if self._lines is not None:
                nursery.start_soon(self._ask_loop)
            async for event in events:
                self.see(event)
                if self._untold:
                    await self._tell_unanswered()
            nursery.cancel_scope.cancel()

    def see(self, event: object) -> None:
        """Take one bus event: note a gate that opened, withdraw one resolved elsewhere."""
        if not isinstance(event, Event) or event.step_id is None:
            return
        owner = event.execution_id
        if owner != self._execution_id and not owner.startswith(self._execution_id + "."):
            return
        key = (owner, event.step_id)
        if event.type == EventType.GATE_OPENED:
            if key in self._open or key in self._answered_here:
                return
            schema = event.data.get("schema")
            gate = _OpenGate(
                owner,
                event.step_id,
                str(event.data.get("prompt") or ""),
                schema if isinstance(schema, Mapping) else None,
            )
            self._open[key] = gate
            if self._lines is None:
                self._untold.append(gate)
            self._wake()
        elif event.type == EventType.GATE_RESOLVED:
            self._open.pop(key, None)
            if key in self._answered_here or key == self._submitting:
                return
            asking = self._asking
            if asking is not None and asking[0] == key:
                asking[1].cancel()
                # Said once the question is gone, so its line is not drawn again below this.
                self._withdrawn = (
                    f"gate {event.step_id}: {_resolution(event.data)} elsewhere; question withdrawn"
                )
            self._wake()

    def _wake(self) -> None:
        self._changed.set()
        self._changed = trio.Event()

    async def _tell_unanswered(self) -> None:
        """Say how to answer each gate that opened, unless an answer for it was given already.

        A held answer (or one recorded while nobody ran the execution) resolves its gate as it
        opens: telling the user to answer it would mislead.
        """
        from .._journal._requests import RequestKind

        untold, self._untold = self._untold, []
        for gate in untold:
            requests = await self._journal.requests(gate.execution_id)
            answered = any(
                request.kind == RequestKind.ANSWER
                and request.target == gate.gate_id
                and request.outcome != "refused"
                for request in requests
            )
            if not answered and (gate.execution_id, gate.gate_id) in self._open:
                self._tell_how_to_answer(gate)

    def _tell_how_to_answer(self, gate: _OpenGate) -> None:
        prompt = f": {gate.prompt}" if gate.prompt else ""
        self._say(
            f"gate {gate.gate_id} waits for an answer{prompt}\n  answer it: "
            + answer_commands(gate.execution_id, gate.gate_id, self._journal_given)
        )

    async def _ask_loop(self) -> None:
        """Ask about the open gates one at a time, in the order they opened."""
        while True:
            pending = [key for key in self._open if key not in self._answered_here]
            if not pending:
                await self._changed.wait()
                continue
            key = pending[0]
            gate = self._open[key]
            ended = False
            with trio.CancelScope() as scope:
                self._asking = (key, scope)
                try:
                    ended = await self._ask_gate(gate)
                finally:
                    self._asking = None
            if self._withdrawn:
                self._say(self._withdrawn)
                self._withdrawn = ""
            if ended:
                # The input ended: say how to answer each gate still open, and ask no more.
                for remaining in self._open.values():
                    self._tell_how_to_answer(remaining)
                self._lines = None
                return
            self._open.pop(key, None)

    async def _ask_gate(self, gate: _OpenGate) -> bool:
        """Ask about one gate until it is answered here; True when the input ended."""
        from .._errors import Orchestr8Error
        from .._execution._answers import submit_answer

        with self._hold():
            self._say(f"gate {gate.gate_id} of execution {gate.execution_id} asks: {gate.prompt}")
            for line in schema_summary(gate.schema):
                self._say(f"  {line}")
        body = await self._read_answer(gate)
        if body is None:
            return True
        key = (gate.execution_id, gate.gate_id)
        self._submitting = key
        try:
            with trio.CancelScope(shield=True):
                result = await submit_answer(
                    self._journal,
                    gate.execution_id,
                    gate.gate_id,
                    body,
                    runtime=self._runtime,
                    by=self._by,
                )
        except Orchestr8Error as error:
            # Answered or resolved meanwhile, the journal failing: told, never the run's end.
            self._say(str(error))
            return False
        finally:
            self._submitting = None
        self._answered_here.add(key)
        self._say(result.message)
        return False

    async def _read_answer(self, gate: _OpenGate) -> dict[str, Any] | None:
        """Ask approve or reject, then the input or the reason; None when the input ended."""
        while True:
            reply = await self._question(f"approve {gate.gate_id}? [y/n] ")
            if reply is None:
                return None
            choice = reply.strip().lower()
            if choice in ("y", "yes"):
                answer_input = await self._read_input(gate.schema)
                if answer_input is None:
                    return None
                return {"approve": True, "input": answer_input, "reason": None}
            if choice in ("n", "no"):
                while True:
                    reason = await self._question("reason: ")
                    if reason is None:
                        return None
                    if reason.strip():
                        return {"approve": False, "input": {}, "reason": reason.strip()}
                    self._say("a rejection needs a reason")
            self._say("answer y or n")

    async def _read_input(self, schema: Mapping[str, Any] | None) -> dict[str, Any] | None:
        """The input for an approval, field by field, until it fits the schema."""
        from .._execution._answers import answer_problems

        properties = schema.get("properties") if schema else None
        while True:
            if not schema:
                return {}
            if schema.get("type") != "object" or not isinstance(properties, Mapping):
                text = await self._question("input (a JSON object): ")
                if text is None:
                    return None
                value = _parse(text, None)
                if not isinstance(value, dict):
                    self._say("the input must be a JSON object")
                    continue
                answer_input = value
            else:
                filled = await self._read_fields(properties, schema.get("required") or ())
                if filled is None:
                    return None
                answer_input = filled
            problems = answer_problems({"approve": True, "input": answer_input}, schema)
            if not problems:
                return answer_input
            self._say("that input does not fit:")
            for problem in problems:
                self._say(f"  {problem}")

    async def _read_fields(
        self, properties: Mapping[str, Any], required: object
    ) -> dict[str, Any] | None:
        """Each field of an object schema in turn: empty keeps the default or leaves it out."""
        answer_input: dict[str, Any] = {}
        for name, field in properties.items():
            field = field if isinstance(field, Mapping) else {}
            while True:
                text = await self._question(
                    f"  {name} ({_describe_field(name, field, required)}): "
                )
                if text is None:
                    return None
                if text.strip():
                    answer_input[name] = _parse(text.strip(), field.get("type"))
                elif "default" in field:
                    answer_input[name] = field["default"]
                elif isinstance(required, list | tuple) and name in required:
                    self._say(f"  {name} is required")
                    continue
                break
        return answer_input

    async def _question(self, text: str) -> str | None:
        """Ask one question and read its line (None at the end of input)."""
        lines = self._lines
        if lines is None:
            return None
        with self._hold():
            self._ask(text)
            return await lines.readline()


def _parse(text: str, kind: object) -> Any:
    """A typed field: JSON when it parses (text as is for a string field), else the text."""
    if kind == "string":
        return text
    try:
        return json.loads(text)
    except ValueError:
        return text


def _resolution(data: Mapping[str, Any]) -> str:
    """How a gate was resolved, for the line withdrawing its question."""
    verdict = "approved" if data.get("approved") else "rejected"
    if data.get("how") == "timeout":
        return f"{verdict} by its deadline"
    return f"{verdict} by {data.get('by') or 'someone'}"


def prompter_for_run(
    view: ProgressView,
    runtime: Runtime,
    execution_id: str,
    journal_given: str | None,
    *,
    interactive: bool | None = None,
    stdin: TextIO | None = None,
) -> GatePrompter:
    """The prompt of a `run` or `resume`: interactive when stdin and stderr are terminals.

    `interactive` overrides the terminal check; `stdin` is where answers are read (sys.stdin).
    """
    import sys

    from ._gate_commands import default_answerer

    source = sys.stdin if stdin is None else stdin
    if interactive is None:
        interactive = _is_terminal(source) and _is_terminal(sys.stderr)
    return GatePrompter(
        execution_id,
        runtime.journal,
        view.note,
        lines=ThreadedLines(source) if interactive else None,
        ask=view.ask,
        runtime=runtime,
        by=default_answerer(),
        journal_given=journal_given,
        hold=view.holding_status,
    )


def _is_terminal(stream: TextIO) -> bool:
    """Whether `stream` is a terminal (a closed or replaced stream is not)."""
    try:
        return stream.isatty()
    except (AttributeError, ValueError, OSError):
        return False
