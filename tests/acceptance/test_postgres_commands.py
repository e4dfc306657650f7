"""End to end on PostgreSQL: every journal command, as a real process, with `--journal URL`."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import httpx
import trio
from cli_processes import cli, environment
from serve_processes import orchestr8_serve

from orchestr8._journal._events import Event
from orchestr8._journal._journal import ExecutionRecord, open_journal

EXAMPLES = Path(__file__).resolve().parent.parent.parent / "examples"

PAIR: dict[str, Any] = {
    "schema_version": "1.1",
    "name": "pair",
    "steps": [
        {"id": "first", "agent": "echo", "input": {"n": 1}},
        {
            "id": "second",
            "agent": "echo",
            "depends_on": ["first"],
            "input": "${steps.first.output}",
        },
    ],
    "output": {"second": "${steps.second.output}"},
}


def _ran(outcome: Any, code: int = 0) -> str:
    """The execution id of a `--json` command that exited with `code`."""
    assert outcome.returncode == code, outcome.stderr
    execution_id: str = json.loads(outcome.stdout)["execution_id"]
    return execution_id


async def _record_dead_run(url: str) -> None:
    """An execution whose process died in its first step: started, never ended."""
    async with open_journal(url) as journal:
        await journal.create_execution(ExecutionRecord("dead-run", "pair", PAIR))
        stamp = "2026-01-01T00:00:00.000Z"
        await journal.append(Event("dead-run", 1, stamp, 0.0, "execution.started"))
        await journal.append(Event("dead-run", 2, stamp, 0.1, "step.started", "first"))


def test_every_command_works_on_a_postgresql_journal(tmp_path: Path, postgres_url: str) -> None:
    """run, inspect (list, one, events), follow, compare, fork, approve, resume, cancel, prune."""
    for name in ("fork.json", "approval.json"):
        shutil.copy(EXAMPLES / name, tmp_path / name)
    (tmp_path / "pair.json").write_text(json.dumps(PAIR))
    given = ("--journal", postgres_url)

    pair = _ran(cli("run", "pair.json", *given, "--json", cwd=tmp_path))
    failed = _ran(
        cli("run", "fork.json", *given, "--json", "--input", "year=20244", cwd=tmp_path), 2
    )
    forked = cli(
        "fork", failed, "--from", "check", "--input", "year=2024", *given, "--json", cwd=tmp_path
    )
    fork = _ran(forked)

    listed = cli("inspect", *given, "--json", cwd=tmp_path)
    assert listed.returncode == 0, listed.stderr
    assert {row["execution_id"] for row in json.loads(listed.stdout)} == {pair, failed, fork}
    from_environment = cli(
        "inspect", "--json", cwd=tmp_path, env=environment(tmp_path, ORCHESTR8_JOURNAL=postgres_url)
    )
    assert json.loads(from_environment.stdout) == json.loads(listed.stdout)
    shown = cli("inspect", pair[:8], *given, "--events", "all", cwd=tmp_path)
    assert shown.returncode == 0, shown.stderr
    assert "execution.succeeded" in shown.stdout
    detail = json.loads(cli("inspect", pair, *given, "--json", cwd=tmp_path).stdout)
    assert detail["status"] == "succeeded"
    assert detail["output"] == {"second": {"n": 1}}
    followed = cli("follow", pair, *given, cwd=tmp_path)
    assert followed.returncode == 0, followed.stderr
    assert "execution succeeded in" in followed.stdout
    compared = cli("compare", failed, fork, *given, cwd=tmp_path)
    assert compared.returncode == 0, compared.stderr
    assert "check" in compared.stdout

    waiting = _ran(
        cli("run", "approval.json", *given, "--json", "--exit-when-waiting", cwd=tmp_path), 5
    )
    approved = cli("approve", waiting, "review", "--input", "amount=20", *given, cwd=tmp_path)
    assert approved.returncode == 0, approved.stderr
    resumed = cli("resume", waiting, *given, "--json", cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    assert json.loads(resumed.stdout)["output"]["payment"]["terms"] == {"amount": 20}

    trio.run(_record_dead_run, postgres_url)
    finished = cli("resume", "dead-run", *given, "--json", cwd=tmp_path)
    assert finished.returncode == 0, finished.stderr
    assert json.loads(finished.stdout)["status"] == "succeeded"

    other = _ran(
        cli("run", "approval.json", *given, "--json", "--exit-when-waiting", cwd=tmp_path), 5
    )
    cancelled = cli("cancel", other, *given, "--reason", "not needed", cwd=tmp_path)
    assert cancelled.returncode == 0, cancelled.stderr
    assert cancelled.stdout.strip() == f"execution {other} cancelled: not needed"

    dry = cli("prune", "--older-than", "0s", "--dry-run", "--json", *given, cwd=tmp_path)
    assert dry.returncode == 0, dry.stderr
    assert json.loads(dry.stdout)["executions"] == 6
    pruned = cli("prune", "--older-than", "0s", *given, cwd=tmp_path)
    assert pruned.returncode == 0, pruned.stderr
    assert "pruned 6 executions" in pruned.stdout
    assert "vacuumed (VACUUM (ANALYZE))" in pruned.stdout
    empty = cli("inspect", *given, cwd=tmp_path)
    assert empty.stdout.strip() == "no executions"


def test_an_empty_database_or_a_bad_url_is_one_clear_line(
    tmp_path: Path, postgres_server: Any
) -> None:
    """inspect ID names the migrate command; the list says there is none; a bad URL is named."""
    empty = postgres_server.create_empty_database()
    one = cli("inspect", "abc", "--journal", empty, cwd=tmp_path)
    assert one.returncode == 1
    assert one.stderr.strip() == (
        f"error: the database {empty} holds no orchestr8 journal; create one with: "
        f"orchestr8 journal migrate --journal {empty}"
    )
    listed = cli("inspect", "--journal", empty, cwd=tmp_path)
    assert listed.stdout.strip() == f"no executions: there is no journal at {empty}"
    bad = cli("inspect", "--journal", "postgresql://app@127.0.0.1:70000/x", cwd=tmp_path)
    assert bad.returncode == 1
    assert "is malformed" in bad.stderr
    assert "Traceback" not in bad.stderr


async def test_serve_on_a_postgresql_journal_lists_what_the_command_line_ran(
    tmp_path: Path, postgres_url: str
) -> None:
    """`serve --journal URL` shows the URL without its password and serves the journal's runs."""
    (tmp_path / "pair.json").write_text(json.dumps(PAIR))
    ran = await trio.to_thread.run_sync(
        lambda: cli("run", "pair.json", "--journal", postgres_url, "--json", cwd=tmp_path)
    )
    execution_id = _ran(ran)
    secret = postgres_url.replace("postgres@", "postgres:sekret@", 1)
    async with orchestr8_serve(secret) as server, httpx.AsyncClient() as client:
        listed = await client.get(f"{server.url}/executions")
        assert [item["execution_id"] for item in listed.json()["items"]] == [execution_id]
        assert await server.stop() == 0
    said = server.stderr.decode()
    assert f"journal: {postgres_url.replace('postgres@', 'postgres:***@', 1)};" in said
    assert "sekret" not in said


def test_hints_name_a_password_placeholder_never_the_password(
    tmp_path: Path, postgres_url: str
) -> None:
    """`inspect`'s resume hint repeats the URL with PASSWORD where its password was."""
    trio.run(_record_dead_run, postgres_url)
    with_password = postgres_url.replace("postgres@", "postgres:S3cretPW@")
    shown = cli("inspect", "dead-run", "--journal", with_password, cwd=tmp_path)
    assert shown.returncode == 0, shown.stderr
    assert "S3cretPW" not in shown.stdout + shown.stderr
    assert "orchestr8 resume --journal postgresql://postgres:PASSWORD@" in shown.stdout
