"""`inspect ID --at` and `inspect ID --diff`: the command line of time travel."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import attrs
import pytest
import trio
from cli_in_process import Outcome, call, record_runs

from orchestr8._cli._time_travel import MAX_DIFF_ROWS, render_diff, render_state_at
from orchestr8._cli._views import local_time
from orchestr8._journal._journal import ExecutionRecord, open_journal
from orchestr8._journal._state_diff import StateDiff, UnitChange


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """One journal with two runs: `first` (a, b) and `second` (a with other input, c)."""
    return record_runs(tmp_path_factory.mktemp("time_travel"))


def inspect(runs: dict[str, Any], *args: str) -> Outcome:
    return call("inspect", "--journal", runs["journal"], *args, cwd=runs["cwd"])


def test_at_shows_the_state_right_after_that_event(runs: dict[str, Any]) -> None:
    """`--at SEQ` names the event, then shows the execution as it was: b not started yet."""
    seq = next(event["seq"] for event in runs["events"] if event["type"] == "step.succeeded")
    last = runs["events"][-1]["seq"]
    shown = inspect(runs, runs["first"][:8], "--at", str(seq))
    assert shown.code == 0, shown.stderr
    lines = shown.stdout.splitlines()
    assert lines[0].startswith(f"at         seq {seq} of {last}: step.succeeded at ")
    assert lines[1] == f"execution  {runs['first']}"
    assert "status     running" in lines
    assert any(line.split()[:3] == ["a", "succeeded", "1"] for line in lines)
    assert any(line.split()[:3] == ["b", "pending", "0"] for line in lines)
    assert lines[-1].startswith(f"{seq} ")  # the events table ends at that event


def test_at_json_is_the_state_document(runs: dict[str, Any]) -> None:
    """`--at SEQ --json` is the document the REST state route answers with."""
    document = json.loads(inspect(runs, runs["first"], "--at", "2", "--json").stdout)
    assert document["at"] == 2
    assert document["status"] == "running"
    assert document["steps"]["a"]["status"] == "running"
    assert document["last_seq"] == runs["events"][-1]["seq"]
    last = json.loads(
        inspect(runs, runs["first"], "--at", str(document["last_seq"]), "--json").stdout
    )
    assert last["status"] == "succeeded"
    assert last["output"] == {"a": {"n": 1}, "b": {"n": 1}}


def test_at_a_time_is_the_last_event_recorded_by_then(runs: dict[str, Any]) -> None:
    """`--at TIME` (ISO-8601, `Z` for UTC) travels to the last event at or before it."""
    third = runs["events"][2]
    document = json.loads(inspect(runs, runs["first"], "--at", third["ts"], "--json").stdout)
    same_time = [event["seq"] for event in runs["events"] if event["ts"] == third["ts"]]
    assert document["at"] == max(same_time)


@pytest.mark.parametrize(
    ("at", "message"),
    [
        ("900", "--at 900: execution {id} has events 1..{last}"),
        ("0", "--at 0: execution {id} has events 1..{last}"),
        ("2020-01-01", "--at 2020-01-01: execution {id} has events from {first_ts} (seq 1)"),
        ("soon", "--at soon: expected an event's seq (1..{last}) or a time"),
    ],
)
def test_at_outside_the_events_is_an_error_naming_their_range(
    runs: dict[str, Any], at: str, message: str
) -> None:
    """A seq or time without an event exits 1 with one line naming the execution's events."""
    done = inspect(runs, runs["first"], "--at", at)
    assert done.code == 1
    expected = message.format(
        id=runs["first"], last=runs["events"][-1]["seq"], first_ts=runs["events"][0]["ts"]
    )
    assert done.stderr.startswith("error: " + expected)
    assert "Traceback" not in done.stderr


def test_the_times_inspect_prints_are_at_values(runs: dict[str, Any]) -> None:
    """The last event's time as `inspect` prints it (local, to the second) travels to the end.

    A time to the second means the end of that second: a run shorter than a second is found.
    """
    printed = inspect(runs, runs["first"]).stdout
    finished = next(line for line in printed.splitlines() if line.startswith("finished"))
    done = inspect(runs, runs["first"], "--at", finished.split(maxsplit=1)[1], "--json")
    assert done.code == 0, done.stderr
    document = json.loads(done.stdout)
    assert (document["at"], document["status"]) == (runs["events"][-1]["seq"], "succeeded")


def test_a_refused_time_shows_example_times_of_the_executions_first_event(
    runs: dict[str, Any],
) -> None:
    """The examples are the first event's time in UTC and local time, and both are --at values."""
    first_ts = runs["events"][0]["ts"]
    utc, local = first_ts[:19] + "Z", local_time(first_ts)
    done = inspect(runs, runs["first"], "--at", "soon")
    assert done.stderr == (
        f"error: --at soon: expected an event's seq (1..{runs['events'][-1]['seq']}) "
        f"or a time ({utc}, or local time {local})\n"
    )
    for example in (utc, local):
        assert json.loads(inspect(runs, runs["first"], "--at", example, "--json").stdout)["at"] >= 1


def test_a_local_time_too_early_is_answered_with_the_events_local_times_too(
    runs: dict[str, Any],
) -> None:
    """Without an offset the time is local, so the refusal names the events in local time."""
    first, last = runs["events"][0]["ts"], runs["events"][-1]["ts"]
    local = inspect(runs, runs["first"], "--at", "2020-01-01 10:00:00")
    assert local.stderr.endswith(
        f"; a time without an offset is local time: from {local_time(first)} "
        f"to {local_time(last)}\n"
    )
    utc = inspect(runs, runs["first"], "--at", "2020-01-01T10:00:00+02:00")
    assert utc.stderr.endswith(f"to {last} (seq {runs['events'][-1]['seq']})\n")


def test_an_execution_without_events_says_so_for_any_at(tmp_path: Path) -> None:
    """Recorded but never started: a seq or a time is refused saying it has no events yet."""
    journal = tmp_path / "journal.db"

    async def record() -> None:
        async with open_journal(journal) as store:
            await store.create_execution(ExecutionRecord("quiet", "w", {"steps": []}))

    trio.run(record)
    for at, reason in [("1", "has no events yet"), ("soon", "but execution quiet has no events")]:
        done = call("inspect", "quiet", "--journal", str(journal), "--at", at, cwd=tmp_path)
        assert done.code == 1
        assert done.stderr.startswith(f"error: --at {at}: ")
        assert reason in done.stderr


@pytest.mark.parametrize("seqs", [("-1", "5"), ("0", "5"), ("-5", "2"), ("3", "900")])
def test_diff_out_of_range_names_the_executions_whole_range(
    runs: dict[str, Any], seqs: tuple[str, str]
) -> None:
    """Whatever the two seqs, the error names 1..the execution's last seq."""
    done = inspect(runs, runs["first"], "--diff", *seqs)
    assert done.code == 1
    last = runs["events"][-1]["seq"]
    assert done.stderr == (
        f"error: --diff {seqs[0]} {seqs[1]}: execution {runs['first']} has events 1..{last}\n"
    )


def test_a_negative_at_seq_names_the_range(runs: dict[str, Any]) -> None:
    """`--at -1` is a seq out of range, not a time that failed to parse."""
    done = inspect(runs, runs["first"], "--at", "-1")
    last = runs["events"][-1]["seq"]
    assert done.stderr == f"error: --at -1: execution {runs['first']} has events 1..{last}\n"


def test_diff_lists_what_changed_between_two_events(runs: dict[str, Any]) -> None:
    """`--diff A B` counts the events between and shows each changed step old → new."""
    last = runs["events"][-1]["seq"]
    done = inspect(runs, runs["first"], "--diff", "2", str(last))
    assert done.code == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0] == f"execution  {runs['first']}"
    assert lines[1].startswith(f"from       seq 2 to seq {last}: {last - 2} events (")
    assert lines[2] == "status     running → succeeded"
    assert lines[4].split() == ["UNIT", "STATUS", "ATTEMPTS", "CHANGE"]
    assert lines[5].split() == [
        "a",
        "running",
        "→",
        "succeeded",
        "0",
        "→",
        "1",
        "output",
        '{"n":',
        "1}",
    ]
    assert lines[6].split()[:4] == ["b", "-", "→", "succeeded"]
    document = json.loads(inspect(runs, runs["first"], "--diff", "2", str(last), "--json").stdout)
    assert [unit["unit"] for unit in document["units"]] == ["a", "b"]
    assert document["events"]["count"] == last - 2


def test_diff_of_an_event_with_itself_says_nothing_changed(runs: dict[str, Any]) -> None:
    """The same seq twice: no step changed."""
    done = inspect(runs, runs["first"], "--diff", "3", "3")
    assert done.stdout.splitlines()[-1] == "no step changed"
    assert "status     running (unchanged)" in done.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--diff", "3", "2"], "error: --diff 3 2: the earlier event comes first: 3 is after 2\n"),
        (["--diff", "1", "900"], "error: --diff 1 900: execution {id} has events 1..{last}\n"),
        (["--at", "1", "--diff", "1", "2"], "error: --at shows one moment and --diff two"),
        (["--at", "1", "--timeline"], "error: --timeline draws the whole execution"),
    ],
)
def test_refused_time_travel_says_why(runs: dict[str, Any], args: list[str], message: str) -> None:
    """Out of order or out of range seqs, and options that do not go together: exit 1."""
    done = inspect(runs, runs["first"], *args)
    assert done.code == 1
    assert done.stderr.startswith(message.format(id=runs["first"], last=runs["events"][-1]["seq"]))


def test_time_travel_needs_an_execution(runs: dict[str, Any]) -> None:
    """Without an ID, `--at` and `--diff` are refused."""
    done = inspect(runs, "--at", "3")
    assert (done.code, done.stderr) == (1, "error: --at and --diff need an execution ID\n")


def test_the_state_view_shows_gates_tokens_and_each_childs_status_now() -> None:
    """Gates get their table before the events; tokens a line; a child its status now."""
    step = {"status": "running", "attempts": 1, "duration": None, "output": None, "error": None}
    document = {
        "execution_id": "x",
        "workflow": "w",
        "at": 4,
        "at_time": None,
        "at_type": "gate.opened",
        "last_seq": 9,
        "status": "running",
        "created_at": "2026-01-01T00:00:00.000Z",
        "started_at": None,
        "finished_at": None,
        "duration": None,
        "inputs": {},
        "output": None,
        "error": None,
        "parent": None,
        "usage": {"input_tokens": 5},
        "steps": {
            "sub": {**step, "reason": None, "child": {"execution_id": "x.sub"}},
            "other": {**step, "reason": None, "child": {"execution_id": "x.other"}},
        },
        "gates": {
            "ok": {"status": "open", "prompt": "Ship it?", "opened_seq": 4, "resolved_seq": None},
            "no": {
                "status": "rejected",
                "opened_seq": 2,
                "resolved_seq": 3,
                "answer": {"approved": False, "by": "ann", "reason": "too early"},
            },
            "yes": {
                "status": "approved",
                "opened_seq": 1,
                "resolved_seq": 2,
                "answer": {"approved": True, "by": "bob", "reason": None},
            },
        },
    }
    text = render_state_at(document, [], color=False, children={"x.sub": "succeeded"})
    assert text.startswith("at         seq 4 of 9: gate.opened at -\nusage      input_tokens 5\n")
    assert "  sub runs child execution x.sub (now succeeded)" in text
    assert "x.other" not in text
    gates = text[text.index("GATE") : text.index("SEQ")].splitlines()
    # The gates table is the detail view's (`render_gates`), drawn once.
    assert text.count("GATE") == 1
    assert gates[1].split() == ["ok", "open", "-", "Ship", "it?"]
    assert gates[2].split() == ["no", "rejected", "-", "by", "ann:", "too", "early"]
    assert gates[3].split() == ["yes", "approved", "-", "by", "bob"]


def test_a_long_diff_lists_the_first_units_and_counts_the_rest() -> None:
    """Beyond MAX_DIFF_ROWS units the text says how many more; gates and tokens get lines."""
    fields = {"status": "succeeded", "attempts": 1, "output": None, "error": {"type": "E"}}
    units = tuple(
        UnitChange(f"each[{n}]", None, fields, ("status", "error"))
        for n in range(MAX_DIFF_ROWS + 5)
    )
    diff = StateDiff(
        "x",
        1,
        2,
        ("running", "running"),
        units,
        ("g",),
        {"h": "approved"},
        {"output_tokens": 7},
        {"gate.opened": 1},
    )
    text = render_diff(diff, color=False)
    assert "from       seq 1 to seq 2: 1 event (1 gate.opened)" in text
    answers = {
        "h": {"approved": True, "by": "ann", "reason": "fine", "how": "answer"},
        "t": {"approved": False, "by": "timeout", "how": "timeout"},
        "q": {"approved": True, "how": "answer"},
    }
    resolved = {"h": "approved", "t": "rejected", "q": "approved", "c": "closed"}
    answered = render_diff(
        attrs.evolve(diff, gates_resolved=resolved, answers=answers), color=False
    )
    gates = "h (approved by ann: fine), t (rejected on timeout), q (approved), c (closed)"
    assert f"resolved   gates {gates}" in answered
    assert "usage      output_tokens 7 more" in text
    assert "opened     gates g" in text
    assert "resolved   gates h (approved)" in text
    assert text.endswith("... and 5 more units changed; --json lists every one")
    assert ["each[0]", "-", "→", "succeeded", "1", "error", "E"] in [
        line.split() for line in text.splitlines()
    ]


CLI_DOCS = Path(__file__).resolve().parents[2] / "docs" / "cli.md"
EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def shown_in_docs(command: str) -> list[str]:
    """The lines docs/cli.md shows a console command printing, up to the next prompt or fence."""
    text = CLI_DOCS.read_text(encoding="utf-8")
    start = text.index(f"$ {command}\n") + len(command) + 3
    lines = []
    for line in text[start:].splitlines():
        if line.startswith(("$ ", "```")):
            break
        lines.append(line)
    return lines


def normalised(lines: list[str], ids: dict[str, str]) -> list[str]:
    """Lines with execution ids named, times and durations blanked, trailing spaces gone."""
    result = []
    for line in lines:
        for name, execution_id in ids.items():
            line = line.replace(execution_id, name)
        line = re.sub(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d", "TIME", line)
        line = re.sub(r"\b\d+\.\d+s?\b", "N", line)
        result.append(line.rstrip())
    return result


def test_the_docs_examples_are_what_the_commands_print(tmp_path: Path) -> None:
    """The `--at`, `--diff` and `compare` examples of docs/cli.md, run on examples/hello.json."""
    journal = str(tmp_path / "journal.db")
    ids = {}
    for name in ("Ada", "Grace"):
        done = call(
            "run",
            str(EXAMPLES / "hello.json"),
            "--input",
            f"name={name}",
            "--json",
            "--journal",
            journal,
            cwd=tmp_path,
        )
        ids[name] = json.loads(done.stdout)["execution_id"]
    names = {"A": ids["Ada"], "B": ids["Grace"]}
    examples = [
        ("orchestr8 inspect f506 --at 4", ["inspect", ids["Ada"], "--at", "4"]),
        ("orchestr8 inspect f506 --diff 4 8", ["inspect", ids["Ada"], "--diff", "4", "8"]),
        ("orchestr8 inspect f506 --at 900", ["inspect", ids["Ada"], "--at", "900"]),
        ("orchestr8 compare f506 15d3", ["compare", ids["Ada"], ids["Grace"]]),
    ]
    documented = {"A": "f506d24b49354e6d902bf63d07fc32f1", "B": "15d3ce492f8a4492953653ddd6f4ba36"}
    for command, args in examples:
        done = call(*args, "--journal", journal, cwd=tmp_path)
        printed = normalised((done.stdout + done.stderr).splitlines(), names)
        shown = normalised(shown_in_docs(command), documented)
        cut = shown.index("...") if "..." in shown else len(shown)
        assert cut > 0, command
        assert printed[:cut] == shown[:cut], command
