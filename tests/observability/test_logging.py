"""Tests of `logging`: JSON and text lines, ids from records and context, redaction."""

from __future__ import annotations

import io
import json
import logging
import re
from collections.abc import Iterator
from typing import Any

import pytest
import trio

from orchestr8 import AgentContext
from orchestr8._observability._logging import (
    JsonFormatter,
    TextFormatter,
    configure_logging,
    current_log_context,
    log_context,
    remove_logging_handler,
    resolve_log_settings,
)
from orchestr8._observability._redaction import Redactor

SECRET = "sk-live-0123456789abcdef"
TIME = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")


@pytest.fixture
def stream() -> Iterator[io.StringIO]:
    """Log to a string through `configure_logging`, then put the root logger back."""
    root = logging.getLogger()
    level, handlers = root.level, list(root.handlers)
    buffer = io.StringIO()
    try:
        yield buffer
    finally:
        for handler in list(root.handlers):
            if handler not in handlers:
                remove_logging_handler(handler)
        root.setLevel(level)


def install(stream: io.StringIO, format: str = "json", level: str = "debug") -> None:
    configure_logging(
        format, level, stream=stream, redactor=Redactor(secret_values=[SECRET]), environ={}
    )


def lines(stream: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_json_line_shape(stream: io.StringIO) -> None:
    install(stream)
    logging.getLogger("orchestr8.engine").warning("step %s failed", "fetch")
    [line] = lines(stream)
    assert list(line) == ["time", "level", "message", "logger"]
    assert TIME.match(line["time"])
    assert line["level"] == "WARNING"
    assert line["message"] == "step fetch failed"
    assert line["logger"] == "orchestr8.engine"


def test_ids_from_the_log_context_and_from_records(stream: io.StringIO) -> None:
    install(stream)
    logger = logging.getLogger("orchestr8.engine")
    with log_context(execution_id="e1", correlation_id="req-9", workflow_name="wf"):
        logger.info("started")
        with log_context(step_id="fetch", attempt=2, agent_id=None):
            logger.info("attempt", extra={"attempt": 3, "delay": 1.5})
    logger.info("outside")
    started, attempt, outside = lines(stream)
    assert started == {
        "time": started["time"],
        "level": "INFO",
        "message": "started",
        "logger": "orchestr8.engine",
        "execution_id": "e1",
        "correlation_id": "req-9",
        "workflow_name": "wf",
    }
    assert list(attempt)[4:8] == ["execution_id", "step_id", "attempt", "correlation_id"]
    assert attempt["attempt"] == 3  # the record's own attribute wins
    assert attempt["delay"] == 1.5
    assert "agent_id" not in attempt
    assert "execution_id" not in outside


async def test_the_log_context_flows_into_child_tasks(stream: io.StringIO) -> None:
    install(stream)

    async def child() -> None:
        logging.getLogger("x").info("from a child")

    with log_context(execution_id="e2"):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(child)
    assert current_log_context() == {}
    [line] = lines(stream)
    assert line["execution_id"] == "e2"


def test_agent_context_logger_ids(stream: io.StringIO) -> None:
    install(stream)
    context = AgentContext(
        execution_id="e3", step_id="brief", attempt=2, agent_id="llm", workflow_name="wf"
    )
    with log_context(correlation_id="req-1"):
        context.logger.info("calling the model", extra={"model": "m"})
    [line] = lines(stream)
    assert line["logger"] == "orchestr8.agents.llm"
    assert (line["execution_id"], line["step_id"], line["attempt"], line["correlation_id"]) == (
        "e3",
        "brief",
        2,
        "req-1",
    )
    assert line["agent_id"] == "llm"
    assert line["model"] == "m"
    assert line["idempotency_key"] == "e3:brief"


def test_secrets_are_redacted_in_messages_extras_and_exceptions(stream: io.StringIO) -> None:
    install(stream)
    logger = logging.getLogger("orchestr8.agents")
    logger.info("request headers %s", {"Authorization": f"Bearer {SECRET}"})
    logger.info(
        "configured",
        extra={
            "api_key": "plain-text",
            "config": {"token": "t"},
            "note": f"key={SECRET}",
            "usage": {"max_tokens": 5},
        },
    )
    try:
        raise RuntimeError(f"rejected key {SECRET}")
    except RuntimeError:
        logger.exception("call failed")
    text = stream.getvalue()
    assert SECRET not in text
    headers, configured, failed = lines(stream)
    assert headers["message"] == "request headers {'Authorization': '***'}"
    assert configured["api_key"] == "***"
    assert configured["config"] == {"token": "***"}
    assert configured["note"] == "key=***"
    assert configured["usage"] == {"max_tokens": 5}
    assert failed["level"] == "ERROR"
    assert failed["exception"].startswith("Traceback (most recent call last):")
    assert failed["exception"].endswith("RuntimeError: rejected key ***")


def test_non_json_extras_are_rendered(stream: io.StringIO) -> None:
    install(stream)

    class Thing:
        def __repr__(self) -> str:
            return f"Thing({SECRET})"

    logging.getLogger("x").warning("odd", extra={"thing": Thing(), "error": ValueError("v")})
    [line] = lines(stream)
    assert line["thing"] == "Thing(***)"
    assert line["error"] == "v"


def test_text_format(stream: io.StringIO) -> None:
    install(stream, "text")
    logger = logging.getLogger("orchestr8.engine")
    with log_context(execution_id="e1", correlation_id="e1"):
        logger.warning("same correlation")
        with log_context(correlation_id="req-2", step_id="s", attempt=1):
            logger.error("password=%s", "hunter2")
    logger.info("plain %s", SECRET)
    first, second, third = stream.getvalue().splitlines()
    assert re.fullmatch(
        r"\S+Z WARNING  orchestr8\.engine: same correlation \[execution_id=e1\]", first
    )
    assert second.endswith(
        "ERROR    orchestr8.engine: password=*** "
        "[execution_id=e1 step_id=s attempt=1 correlation_id=req-2]"
    )
    assert third.endswith("INFO     orchestr8.engine: plain ***")


def test_text_format_with_exception(stream: io.StringIO) -> None:
    install(stream, "text")
    try:
        raise KeyError(SECRET)
    except KeyError:
        logging.getLogger("x").exception("boom")
    text = stream.getvalue()
    assert "boom\nTraceback (most recent call last):" in text
    assert SECRET not in text
    assert "KeyError: '***'" in text


def test_levels_filter(stream: io.StringIO) -> None:
    install(stream, "json", "error")
    logging.getLogger("x").warning("hidden")
    logging.getLogger("x").error("shown")
    assert [line["message"] for line in lines(stream)] == ["shown"]


def test_configure_replaces_its_own_handler(stream: io.StringIO) -> None:
    install(stream, "text")
    install(stream, "json")
    logging.getLogger("x").warning("once")
    assert len(stream.getvalue().splitlines()) == 1
    assert lines(stream)[0]["message"] == "once"


def test_settings_from_arguments_environment_and_defaults() -> None:
    assert resolve_log_settings(environ={}) == ("text", logging.WARNING)
    environ = {"ORCHESTR8_LOG_FORMAT": "JSON", "ORCHESTR8_LOG_LEVEL": "debug"}
    assert resolve_log_settings(environ=environ) == ("json", logging.DEBUG)
    assert resolve_log_settings("text", "Error", environ) == ("text", logging.ERROR)
    assert resolve_log_settings(None, "warn", {}) == ("text", logging.WARNING)
    assert resolve_log_settings(None, "15", {}) == ("text", 15)
    with pytest.raises(ValueError, match="unknown log format 'yaml': expected one of text, json"):
        resolve_log_settings("yaml", None, {})
    with pytest.raises(ValueError, match="unknown log level 'loud'"):
        resolve_log_settings(None, None, {"ORCHESTR8_LOG_LEVEL": "loud"})


def test_environment_defaults_reach_configure(stream: io.StringIO) -> None:
    configure_logging(
        stream=stream, environ={"ORCHESTR8_LOG_FORMAT": "json", "ORCHESTR8_LOG_LEVEL": "info"}
    )
    logging.getLogger("x").info("via env")
    assert lines(stream)[0]["message"] == "via env"


def test_formatters_use_the_process_default_redactor() -> None:
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "token=%s", ("abc",), None)
    assert json.loads(JsonFormatter().format(record))["message"] == "token=***"
    assert TextFormatter().format(record).endswith("x: token=***")
