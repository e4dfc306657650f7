"""`_postgres_schema`: journal URLs, the `orchestr8` schema's versions, and migrating it."""

from __future__ import annotations

import builtins
import threading
from typing import Any

import psycopg
import pytest
from postgres_server import PostgresServer

from orchestr8._errors import JournalError
from orchestr8._journal._postgres_schema import (
    SCHEMA,
    SCHEMA_VERSION,
    check_url,
    check_version,
    connect,
    explain,
    found_version,
    import_psycopg,
    is_postgres_url,
    migrate,
    prepare_database,
    redact_url,
    refuse_mistyped_url,
    scrub_password,
)

TABLES = {
    "schema_version",
    "executions",
    "events",
    "requests",
    "workflow_documents",
    "workers",
    "leases",
    "breakers",
    "limit_slots",
    "rate_buckets",
}


@pytest.mark.parametrize(
    ("location", "is_url"),
    [
        ("postgresql://u@h/db", True),
        ("postgres://u@h/db", True),
        ("POSTGRESQL://h/db", True),
        ("journal.db", False),
        ("postgresql:/not-a-url", False),
        ("sqlite://x", False),
        (None, False),
    ],
)
def test_only_postgresql_urls_name_a_database(location: Any, is_url: bool) -> None:
    """`postgresql://` and `postgres://` (any case) are URLs; everything else is a path."""
    assert is_postgres_url(location) is is_url


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("postgresql://ann:s3cret@db.example:5433/app", "postgresql://ann:***@db.example:5433/app"),
        (
            "postgresql://ann:s3cret@[::1]/app?sslmode=require",
            "postgresql://ann:***@[::1]/app?sslmode=require",
        ),
        ("postgresql://ann@127.0.0.1/app", "postgresql://ann@127.0.0.1/app"),
        ("postgresql://ann:pw@127.0.0.1:99999/app", "postgresql://ann:***@127.0.0.1/app"),
        ("postgresql://[::1/app", "postgresql://(malformed URL)"),
    ],
)
def test_a_redacted_url_never_shows_the_password(url: str, shown: str) -> None:
    """The password becomes `***`; user, host, port, database and parameters stay."""
    assert redact_url(url) == shown


@pytest.mark.parametrize(
    "url",
    [
        "postgresql://u@127.0.0.1:0/db",
        "postgresql://u@127.0.0.1:70000/db",
        "postgresql://u@127.0.0.1/db?no_such_parameter=1",
        "postgresql://[::1/db",
    ],
)
def test_a_malformed_url_is_refused_with_the_form_expected(url: str) -> None:
    """Bad ports, unknown parameters and broken hosts: one error naming the expected form."""
    with pytest.raises(JournalError, match=r"is malformed: .*expected postgresql://USER"):
        check_url(url)


def test_a_missing_psycopg_names_the_extra_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without psycopg the error says which package gives it."""
    real_import = builtins.__import__

    def refuse(name: str, *arguments: Any, **keywords: Any) -> Any:
        if name == "psycopg":
            raise ImportError("no psycopg")
        return real_import(name, *arguments, **keywords)

    monkeypatch.setattr(builtins, "__import__", refuse)
    with pytest.raises(JournalError, match=r"pip install 'orchestr8\[postgresql\]'"):
        import_psycopg()


@pytest.mark.parametrize(
    ("message", "said"),
    [
        ('password authentication failed for user "ann"', "cannot log into"),
        ('database "x" does not exist', "does not exist"),
        ("permission denied for database x", "refused access"),
        ("connection refused", "cannot reach"),
        ("something else entirely", "cannot use the journal database"),
    ],
)
def test_connection_errors_are_explained_in_words(message: str, said: str) -> None:
    """Each kind of failure gets its own words, and the URL without its password."""
    explained = explain("postgresql://ann:pw@127.0.0.1/x", Exception(message))
    assert said in explained
    assert "pw" not in explained.replace("password", "")


def tables(url: str) -> set[str]:
    """The tables of the `orchestr8` schema."""
    with psycopg.connect(url) as connection:
        rows = connection.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = %s", (SCHEMA,)
        ).fetchall()
    return {name for (name,) in rows}


def test_migrating_an_empty_database_creates_every_table_once(
    postgres_server: PostgresServer,
) -> None:
    """The first migration creates the schema at the current version; the second does nothing."""
    url = postgres_server.create_empty_database()
    assert prepare_database(url) == (None, SCHEMA_VERSION)
    assert tables(url) == TABLES
    assert prepare_database(url) == (SCHEMA_VERSION, SCHEMA_VERSION)
    assert tables(url) == TABLES


def test_an_older_schema_is_brought_up_to_date_keeping_its_rows(
    postgres_server: PostgresServer, postgres_url: str
) -> None:
    """Schema 1 with an execution: migrate adds the later tables, and the row stays."""
    with psycopg.connect(postgres_url, autocommit=True) as connection:
        connection.execute(
            "DROP TABLE orchestr8.leases, orchestr8.workers, orchestr8.breakers,"
            " orchestr8.limit_slots, orchestr8.rate_buckets"
        )
        connection.execute("UPDATE orchestr8.schema_version SET version = 1")
        connection.execute(
            "INSERT INTO orchestr8.executions (execution_id, workflow_name, workflow, inputs,"
            " status, created_at) VALUES ('kept', 'w', '{}', '{}', 'pending', 't')"
        )
    with (
        connect(postgres_url, purpose="test") as connection,
        pytest.raises(JournalError, match="orchestr8 journal migrate"),
    ):
        check_version(connection, postgres_url, create=True)
    assert prepare_database(postgres_url) == (1, SCHEMA_VERSION)
    assert tables(postgres_url) == TABLES
    with psycopg.connect(postgres_url) as connection:
        assert connection.execute("SELECT execution_id FROM orchestr8.executions").fetchall() == [
            ("kept",)
        ]


def test_migrations_racing_take_turns_and_both_succeed(postgres_server: PostgresServer) -> None:
    """Two processes migrating one empty database at once: one creates, the other finds it done."""
    url = postgres_server.create_empty_database()
    results: list[tuple[int | None, int]] = []
    errors: list[BaseException] = []

    def migrate_once() -> None:
        try:
            results.append(prepare_database(url))
        except BaseException as error:
            errors.append(error)

    threads = [threading.Thread(target=migrate_once) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert sorted(results, key=str) == sorted(
        [(None, SCHEMA_VERSION)] + [(SCHEMA_VERSION, SCHEMA_VERSION)] * 3, key=str
    )
    assert tables(url) == TABLES


def test_versions_are_checked_before_use(postgres_server: PostgresServer) -> None:
    """No journal yet (not created when asked not to), newer, or current: each is told apart."""
    url = postgres_server.create_empty_database()
    with connect(url, purpose="test") as connection:
        assert found_version(connection) is None
        with pytest.raises(JournalError, match="holds no orchestr8 journal; create it with"):
            check_version(connection, url, create=False)
        check_version(connection, url, create=True)
        assert found_version(connection) == SCHEMA_VERSION
        check_version(connection, url, create=False)
        connection.execute(f"UPDATE {SCHEMA}.schema_version SET version = 99")
        with pytest.raises(JournalError, match="newer than this orchestr8 knows"):
            check_version(connection, url, create=False)
        with pytest.raises(JournalError, match="upgrade orchestr8"):
            migrate(connection, url)


@pytest.mark.parametrize(
    "location",
    [
        "postgresql//app:S3cretPW@127.0.0.1/x",
        "postgresq://app:S3cretPW@127.0.0.1/x",
        "postgresql+psycopg://app:S3cretPW@127.0.0.1:5432/jobs",
        "postgresql:/jobs",
        "mysql://app:S3cretPW@127.0.0.1/jobs",
    ],
)
def test_a_value_meant_as_a_url_but_not_a_postgresql_one_is_refused(location: str) -> None:
    """A typo never becomes a SQLite file in folders named after it; its password is hidden."""
    with pytest.raises(JournalError, match="looks like a URL but is not a PostgreSQL one") as error:
        refuse_mistyped_url(location)
    assert "S3cretPW" not in str(error.value)


@pytest.mark.parametrize(
    "location", ["postgres.db", "journals/postgresql.db", "./j.db", ":memory:"]
)
def test_file_paths_and_postgresql_urls_are_not_taken_for_typos(location: str) -> None:
    """Paths, even ones starting with `postgres`, and real URLs pass."""
    refuse_mistyped_url(location)
    refuse_mistyped_url("postgresql://app@127.0.0.1/jobs")


def test_a_password_holding_an_at_sign_is_hidden_whole() -> None:
    """Up to the last `@` before the host is password, in redaction and in a driver's message."""
    url = "postgresql://app:S3c@ret@127.0.0.1:1/jobs"
    assert redact_url(url) == "postgresql://app:***@127.0.0.1:1/jobs"
    assert scrub_password("see postgresql//app:S3c@ret@h/x") == "see postgresql//app:***@h/x"
    message = explain(url, OSError("failed to resolve host 'ret@127.0.0.1'"))
    assert "ret@" not in message
    assert "S3c" not in message
    assert "%40" in message


def test_migrate_runs_again_over_tables_its_version_row_does_not_count(
    postgres_url: str,
) -> None:
    """A version row behind the tables (edited, or an interrupted migration) is brought level."""
    with psycopg.connect(postgres_url, autocommit=True) as connection:
        connection.execute(f"UPDATE {SCHEMA}.schema_version SET version = 1")
    assert prepare_database(postgres_url) == (1, SCHEMA_VERSION)
    with psycopg.connect(postgres_url, autocommit=True) as connection:
        assert found_version(connection) == SCHEMA_VERSION
