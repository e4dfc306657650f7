"""`cancel --url`: the REST calls of the CLI against a real app on a loopback port."""

from __future__ import annotations

from pathlib import Path

import pytest
import trio
from serve_processes import serving

from orchestr8 import Event, ExecutionRecord, ExecutionStatus, Runtime, open_runtime
from orchestr8._cli._server_client import cancel_through_server, get_execution
from orchestr8._shell._options import CommandError

NAP = {
    "schema_version": "1.0",
    "name": "nap",
    "steps": [{"id": "nap", "agent": "sleep", "input": {"seconds": 60}}],
}


async def orphan(runtime: Runtime, execution_id: str) -> None:
    await runtime.journal.create_execution(
        ExecutionRecord(execution_id=execution_id, workflow_name="nap", workflow=NAP)
    )
    await runtime.journal.append(
        Event(execution_id, 1, "2025-01-01T00:00:00.000Z", 0.0, "execution.started")
    )
    await runtime.journal.flush()


async def test_cancel_url_cancels_what_no_process_runs_and_refuses_what_ended(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """200: cancelled at once (exit 0); then 409: a one-line error naming the execution."""
    async with open_runtime(journal=tmp_path / "journal.db") as runtime, serving(runtime) as url:
        await orphan(runtime, "dead")
        code = await cancel_through_server(
            url, None, "dead", reason="gone", force=False, by="me", wait=True
        )
        assert code == 0
        assert capsys.readouterr().out == "execution dead cancelled: gone\n"
        with pytest.raises(CommandError, match="409 execution dead already cancelled"):
            await cancel_through_server(
                url, None, "dead", reason="again", force=False, by="me", wait=True
            )


async def test_cancel_url_waits_for_the_end_or_gives_up(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """202: without waiting, exit 0 at once; waiting past the server's grace, exit 1 saying so;
    forced, it ends cancelled within the wait, with the first cancel's reason (said so)."""
    async with (
        open_runtime(journal=tmp_path / "journal.db", cancel_grace=30) as runtime,
        serving(runtime) as url,
    ):
        handle = await runtime.start(NAP)
        assert (
            await cancel_through_server(
                url, None, handle.execution_id, reason="x", force=False, by="me", wait=False
            )
            == 0
        )
        assert "is being cancelled" in capsys.readouterr().out
        code = await cancel_through_server(
            url,
            None,
            handle.execution_id,
            reason="x",
            force=False,
            by="me",
            wait=True,
            wait_seconds=0.3,
        )
        assert code == 1
        assert "is still running 10s after the cancel request" in capsys.readouterr().err
        capsys.readouterr()
        code = await cancel_through_server(
            url, None, handle.execution_id, reason="third", force=True, by="me", wait=True
        )
        assert code == 0
        assert capsys.readouterr().out.splitlines()[-1] == (
            f"execution {handle.execution_id} cancelled: x (the reason of an earlier cancel, "
            "kept; 'third' was not recorded)"
        )
        with trio.fail_after(5):
            assert (await handle.wait()).status is ExecutionStatus.CANCELLED


async def test_an_unreachable_server_or_an_unknown_execution_is_a_command_error(
    tmp_path: Path,
) -> None:
    """No server: `cannot reach URL`; an unknown id: the server's 404 detail."""
    with pytest.raises(
        CommandError, match=r"^cannot reach http://127\.0\.0\.1:9/executions/x/cancel"
    ):
        await cancel_through_server(
            "http://127.0.0.1:9", None, "x", reason="r", force=False, by="me", wait=False
        )
    async with open_runtime(journal=tmp_path / "journal.db") as runtime, serving(runtime) as url:
        with pytest.raises(CommandError, match="404"):
            await get_execution(url, [], "nope")
