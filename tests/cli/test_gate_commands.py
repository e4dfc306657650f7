"""`orchestr8 approve` and `orchestr8 reject`: real processes answering gates in a journal."""

from __future__ import annotations

import json
from functools import partial
from pathlib import Path

import pytest
import trio
from cli_processes import cli
from gate_scripts import AMOUNT_SCHEMA, gate_opened, record_gated

from orchestr8 import open_runtime
from orchestr8._cli._gate_commands import default_answerer, parse_answer_input
from orchestr8._cli._support import CommandError
from orchestr8._journal._journal import open_journal
from orchestr8._web._serve import serve


def test_input_pairs_are_json_when_they_parse_and_keys_may_be_dotted() -> None:
    """`n=5` is a number, `x=hi` text, `a.b=1` nests; later pairs add to the same object."""
    pairs = ["n=5", "x=hi", "a.b=1", "a.c=[1]", 'q="7"', "empty="]
    assert parse_answer_input(pairs) == {
        "n": 5,
        "x": "hi",
        "a": {"b": 1, "c": [1]},
        "q": "7",
        "empty": "",
    }


def test_a_string_field_of_the_schema_keeps_the_text_given() -> None:
    """`note=12` is text when the gate's schema says note is a string, as the prompt takes it."""
    schema = {
        "type": "object",
        "properties": {
            "note": {"type": "string"},
            "either": {"type": ["string", "number"]},
            "flag": {"type": ["string", "boolean"]},
            "amount": {"type": "integer"},
            "meta": {"properties": {"tag": {"type": "string"}}},
        },
    }
    pairs = ["note=12", "either=3", "flag=true", "amount=5", "meta.tag=null", "free=1"]
    assert parse_answer_input(pairs, schema) == {
        "note": "12",
        "either": 3,
        "flag": True,
        "amount": 5,
        "meta": {"tag": "null"},
        "free": 1,
    }


@pytest.mark.parametrize(
    ("pairs", "message"),
    [
        (["amount"], "--input 'amount': expected KEY=VALUE"),
        (["a..b=1"], "--input 'a..b=1': expected KEY=VALUE"),
        (["a=1", "a.b=2"], "--input 'a.b=2': a is set to a value that is not an object"),
    ],
)
def test_a_malformed_input_pair_is_named(pairs: list[str], message: str) -> None:
    """No `=`, an empty key part, or a key inside a non-object: the error names the argument."""
    with pytest.raises(CommandError, match=message.replace("[", r"\[").replace(".", r"\.")):
        parse_answer_input(pairs)


def test_the_default_answerer_is_user_at_host() -> None:
    """`--by` defaults to `user@host`."""
    user, at, host = default_answerer().partition("@")
    assert user
    assert at
    assert host


async def prepare(journal: Path) -> None:
    """A journal holding execution `e1234` waiting at its `sign` gate."""
    async with open_journal(journal) as store:
        await record_gated(store, "e1234", gate_opened("sign", AMOUNT_SCHEMA))


async def test_approve_records_the_answer_and_says_how_it_continues(tmp_path: Path) -> None:
    """Exit 0; the journal holds the answer; nobody runs it, so `resume` is named."""
    journal = tmp_path / "journal.db"
    await prepare(journal)
    done = await trio.to_thread.run_sync(
        partial(
            cli,
            "approve",
            "e12",
            "sign",
            "--input",
            "amount=12",
            "--by",
            "ada",
            "--journal",
            str(journal),
            cwd=tmp_path,
        )
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("gate sign of execution e1234: approval recorded;")
    assert "orchestr8 resume e1234" in done.stdout
    async with open_journal(journal) as store:
        [request] = await store.requests("e1234")
    assert request.body == {"approve": True, "input": {"amount": 12}, "reason": None, "by": "ada"}

    again = await trio.to_thread.run_sync(
        partial(
            cli,
            "reject",
            "e1234",
            "sign",
            "--reason",
            "no",
            "--journal",
            str(journal),
            cwd=tmp_path,
        )
    )
    assert again.returncode == 1
    assert "was answered already: approved by ada at" in again.stderr
    as_json = await trio.to_thread.run_sync(
        partial(cli, "approve", "e1234", "sign", "--json", "--journal", str(journal), cwd=tmp_path)
    )
    assert as_json.returncode == 1
    refused = json.loads(as_json.stdout)
    assert (refused["status"], refused["execution_id"], refused["gate_id"]) == (
        "refused",
        "e1234",
        "sign",
    )
    assert "was answered already" in refused["message"]


async def test_an_invalid_answer_exits_1_listing_every_problem(tmp_path: Path) -> None:
    """Each schema problem on its own line; nothing recorded."""
    journal = tmp_path / "journal.db"
    await prepare(journal)
    done = await trio.to_thread.run_sync(
        partial(
            cli,
            "approve",
            "e1234",
            "sign",
            "--input",
            "amount=3",
            "--input",
            "x=1",
            "--journal",
            str(journal),
            cwd=tmp_path,
        )
    )
    assert done.returncode == 1
    assert done.stderr.splitlines() == [
        "error: the answer to gate sign was refused: 2 problems",
        "  $.input: Additional properties are not allowed ('x' was unexpected)",
        "  $.input.amount: 3 is less than the minimum of 10",
    ]
    missing = await trio.to_thread.run_sync(
        partial(cli, "reject", "e1234", "sign", "--journal", str(journal), cwd=tmp_path)
    )
    assert missing.returncode != 0
    assert "--reason" in missing.stderr
    unknown = await trio.to_thread.run_sync(
        partial(cli, "approve", "e1234", "nope", "--journal", str(journal), cwd=tmp_path)
    )
    assert unknown.returncode == 1
    assert "no approval step 'nope' (its approval steps: sign, review)" in unknown.stderr


async def test_approve_through_a_server_uses_the_gate_route(tmp_path: Path) -> None:
    """`--url`: the answer goes through `POST /executions/{id}/gates/{gate}`, errors as text."""
    journal = tmp_path / "journal.db"
    await prepare(journal)
    async with (
        open_runtime(journal=journal, cancel_grace=0.1) as runtime,
        trio.open_nursery() as nursery,
    ):
        stop = trio.Event()
        [url] = await nursery.start(partial(serve, runtime, port=0, shutdown_trigger=stop.wait))
        bad = await trio.to_thread.run_sync(
            partial(cli, "approve", "e1234", "sign", "--url", url, cwd=tmp_path)
        )
        assert bad.returncode == 1
        assert "  $.input: 'amount' is a required property" in bad.stderr
        done = await trio.to_thread.run_sync(
            partial(
                cli,
                "approve",
                "e1234",
                "sign",
                "--input",
                "amount=10",
                "--url",
                url,
                "--json",
                cwd=tmp_path,
            )
        )
        assert done.returncode == 0, done.stderr
        document = json.loads(done.stdout)
        assert (document["status"], document["gate_id"]) == ("recorded", "sign")
        refused = await trio.to_thread.run_sync(
            partial(cli, "approve", "e1234", "sign", "--url", url, cwd=tmp_path)
        )
        assert refused.returncode == 1
        assert "answered already" in refused.stderr
        prefix = await trio.to_thread.run_sync(
            partial(cli, "approve", "e12", "sign", "--url", url, cwd=tmp_path)
        )
        assert prefix.returncode == 1
        assert "with --url give the whole execution id (a server takes no prefix)" in (
            prefix.stderr
        )
        gone = await trio.to_thread.run_sync(
            partial(cli, "approve", "e1234", "sign", "--url", "http://127.0.0.1:1", cwd=tmp_path)
        )
        assert gone.returncode == 1
        assert "--url http://127.0.0.1:1" in gone.stderr
        stop.set()


def test_an_input_nested_too_deeply_is_named() -> None:
    """A VALUE nested past Python's recursion limit: an error naming the key, no traceback."""
    with pytest.raises(CommandError, match="--input deep: nested too deeply"):
        parse_answer_input(["deep=" + "[" * 100_000])


def test_without_a_user_name_the_answerer_is_unknown(monkeypatch: pytest.MonkeyPatch) -> None:
    """No login name (a container without a passwd entry): `unknown@host`."""

    def no_user() -> str:
        raise KeyError("uid")

    monkeypatch.setattr("getpass.getuser", no_user)
    assert default_answerer().startswith("unknown@")


async def test_a_url_that_is_not_an_orchestr8_server_is_a_clear_error() -> None:
    """An answer that is not a problem or an outcome: the status, no traceback."""
    from orchestr8._cli._gate_commands import _answer_through_server

    async def reply(stream: trio.SocketStream) -> None:
        await stream.receive_some(65536)
        await stream.send_all(b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 3\r\n\r\nbad")

    async with trio.open_nursery() as nursery:
        [listener] = await nursery.start(partial(trio.serve_tcp, reply, 0, host="127.0.0.1"))
        port = listener.socket.getsockname()[1]
        url = f"http://127.0.0.1:{port}"
        with pytest.raises(CommandError, match="HTTP 502, not an orchestr8 answer"):
            await _answer_through_server(url, "k", "e1", "sign", {"approve": True})
        nursery.cancel_scope.cancel()
