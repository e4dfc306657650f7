"""The PostgreSQL journal's database format: its URL, schema, migrations, and how it connects.

A PostgreSQL journal keeps its tables in a schema of their own, `orchestr8` (`SCHEMA`), so it can
share a database with an application's tables; every connection sets `search_path` to it. The
table `orchestr8.schema_version` holds the version; `migrate` brings an older database up to
`SCHEMA_VERSION` in one transaction, under an advisory lock so two processes never migrate at
once. Opening a journal creates the schema in an empty database (the first use needs no extra
step), but refuses a database with an older schema: migrating a database that other workers and
servers use is the operator's decision (`orchestr8 journal migrate`), never a side effect.

Text columns that are ordered or compared (ids, timestamps) use the `C` collation, so executions
sort by byte value exactly as they do in SQLite, whatever the database's locale. Times the
journal writes are its own UTC text stamps, as in SQLite; times that coordinate processes (lease
expiry, heartbeats, breaker TTLs) are the database's `now()`, so hosts never compare clocks.

psycopg (3) is imported only here and in the stores on it, so orchestr8 without the
`postgresql` extra still runs every SQLite workflow.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any, Final
from urllib.parse import urlsplit, urlunsplit

from .._errors import JournalError

if TYPE_CHECKING:
    import psycopg

SCHEMA: Final = "orchestr8"
"""The PostgreSQL schema (namespace) that holds every table of the journal."""

URL_SCHEMES: Final = ("postgresql", "postgres")
"""The URL schemes that name a PostgreSQL journal (anything else is a SQLite path)."""

CONNECT_TIMEOUT: Final = 5
"""Seconds a connection attempt may take before the database counts as unreachable."""

_ADVISORY_LOCK: Final = 0x6F72386A
"""The advisory lock key migrations hold ("or8j", like the SQLite journal's application id)."""

_MIGRATIONS: tuple[tuple[str, ...], ...] = (
    (
        # The journal: the same tables, columns and rules as the SQLite journal (`_sqlite_schema`).
        """CREATE TABLE IF NOT EXISTS executions (
            execution_id TEXT COLLATE "C" PRIMARY KEY,
            workflow_name TEXT COLLATE "C" NOT NULL,
            workflow TEXT NOT NULL,
            inputs TEXT NOT NULL,
            status TEXT COLLATE "C" NOT NULL,
            created_at TEXT COLLATE "C" NOT NULL,
            correlation_id TEXT,
            idempotency_key TEXT COLLATE "C",
            started_at TEXT,
            finished_at TEXT,
            output TEXT,
            error TEXT,
            parent_id TEXT COLLATE "C",
            parent_step TEXT,
            workflow_digest TEXT COLLATE "C",
            forked_from TEXT COLLATE "C",
            fork_seq BIGINT
        )""",
        """CREATE TABLE IF NOT EXISTS events (
            execution_id TEXT COLLATE "C" NOT NULL REFERENCES executions (execution_id),
            seq BIGINT NOT NULL,
            ts TEXT NOT NULL,
            elapsed DOUBLE PRECISION NOT NULL,
            type TEXT COLLATE "C" NOT NULL,
            step_id TEXT COLLATE "C",
            attempt BIGINT,
            data TEXT NOT NULL,
            PRIMARY KEY (execution_id, seq)
        )""",
        "CREATE INDEX IF NOT EXISTS executions_by_time ON executions (created_at, execution_id)",
        "CREATE INDEX IF NOT EXISTS executions_by_status"
        " ON executions (status, created_at, execution_id)",
        "CREATE UNIQUE INDEX IF NOT EXISTS executions_by_idempotency_key"
        " ON executions (idempotency_key) WHERE idempotency_key IS NOT NULL",
        "CREATE INDEX IF NOT EXISTS executions_by_fork"
        " ON executions (forked_from, created_at, execution_id) WHERE forked_from IS NOT NULL",
        "CREATE INDEX IF NOT EXISTS executions_by_workflow"
        " ON executions (workflow_name, created_at, execution_id)",
        "CREATE INDEX IF NOT EXISTS executions_by_parent"
        " ON executions (parent_id) WHERE parent_id IS NOT NULL",
        """CREATE TABLE IF NOT EXISTS requests (
            request_id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            execution_id TEXT COLLATE "C" NOT NULL REFERENCES executions (execution_id),
            kind TEXT NOT NULL,
            target TEXT COLLATE "C",
            body TEXT NOT NULL,
            created_at TEXT COLLATE "C" NOT NULL,
            outcome TEXT,
            detail TEXT,
            settled_at TEXT
        )""",
        "CREATE UNIQUE INDEX IF NOT EXISTS one_answer_per_gate ON requests (execution_id, target)"
        " WHERE kind = 'answer' AND (outcome IS NULL OR outcome = 'applied')",
        "CREATE INDEX IF NOT EXISTS pending_requests ON requests (execution_id, request_id)"
        " WHERE outcome IS NULL",
        """CREATE TABLE IF NOT EXISTS workflow_documents (
            digest TEXT COLLATE "C" PRIMARY KEY,
            document TEXT NOT NULL,
            step_hashes TEXT NOT NULL
        )""",
    ),
    (
        # Workers (docs/scale-out.md): the processes that run executions, and their leases.
        # `session_pid`/`session_start` name the worker's database session, so a worker whose
        # session died (its process was killed) loses its leases at once, not at their expiry.
        """CREATE TABLE IF NOT EXISTS workers (
            holder TEXT COLLATE "C" PRIMARY KEY,
            name TEXT NOT NULL,
            host TEXT NOT NULL,
            pid INTEGER NOT NULL,
            concurrency INTEGER,
            session_pid INTEGER,
            session_start TIMESTAMPTZ,
            started_at TIMESTAMPTZ NOT NULL DEFAULT now(),
            heartbeat_at TIMESTAMPTZ NOT NULL DEFAULT now(),
            stopped_at TIMESTAMPTZ
        )""",
        # One row per execution some runtime ran or a submitter queued. `epoch` grows by one at
        # every claim; appends carry the epoch their writer claimed, and the database refuses
        # those of an older one (fencing). `queued`: workers run it until it ends.
        """CREATE TABLE IF NOT EXISTS leases (
            execution_id TEXT COLLATE "C" PRIMARY KEY
                REFERENCES executions (execution_id) ON DELETE CASCADE,
            epoch BIGINT NOT NULL DEFAULT 0,
            holder TEXT COLLATE "C",
            expires_at TIMESTAMPTZ,
            queued BOOLEAN NOT NULL DEFAULT false,
            submitted_at TIMESTAMPTZ,
            claims INTEGER NOT NULL DEFAULT 0,
            claimed_at TIMESTAMPTZ
        )""",
        "CREATE INDEX IF NOT EXISTS leases_queued"
        " ON leases (submitted_at, execution_id) WHERE queued",
        "CREATE INDEX IF NOT EXISTS leases_by_holder ON leases (holder) WHERE holder IS NOT NULL",
    ),
    (
        # Shared resilience state (docs/scale-out.md): breakers' open/close transitions, global
        # bulkhead slots and global rate-limit buckets, each keyed like the process-local ones.
        """CREATE TABLE IF NOT EXISTS breakers (
            key TEXT COLLATE "C" PRIMARY KEY,
            state TEXT NOT NULL,
            opened_by TEXT,
            reason TEXT,
            open_until TIMESTAMPTZ,
            updated_at TIMESTAMPTZ NOT NULL DEFAULT now()
        )""",
        """CREATE TABLE IF NOT EXISTS limit_slots (
            key TEXT COLLATE "C" NOT NULL,
            slot BIGINT GENERATED ALWAYS AS IDENTITY,
            holder TEXT COLLATE "C" NOT NULL,
            expires_at TIMESTAMPTZ NOT NULL,
            PRIMARY KEY (key, slot)
        )""",
        """CREATE TABLE IF NOT EXISTS rate_buckets (
            key TEXT COLLATE "C" PRIMARY KEY,
            tokens DOUBLE PRECISION NOT NULL,
            updated_at TIMESTAMPTZ NOT NULL DEFAULT now()
        )""",
    ),
)
"""Migration N (0-based) takes a database from schema version N to N + 1.

Every statement may run again (`IF NOT EXISTS`): a database whose recorded version is behind
the tables it holds (a migration interrupted by hand, a version row edited) is brought up
to date instead of refused.
"""

SCHEMA_VERSION: Final = len(_MIGRATIONS)
"""The PostgreSQL journal schema version this code writes."""


def is_postgres_url(location: object) -> bool:
    """Whether a `--journal` value names a PostgreSQL database (`postgresql://...`)."""
    if not isinstance(location, str):
        return False
    scheme, separator, _ = location.partition("://")
    return bool(separator) and scheme.lower() in URL_SCHEMES


_URL_LIKE: Final = re.compile(r"^(?:[A-Za-z][A-Za-z0-9+.-]*://|postgres(?:ql)?[:/])", re.I)
"""A value meant as a URL (a scheme and `://`, or `postgres` with a colon or slash after it)."""

_USER_INFO: Final = re.compile(r"(?<=[^:/@\s]):[^/\s]*@")
"""`:PASSWORD@` after a user name, up to the LAST `@` before the host (a password may hold `@`)."""


def refuse_mistyped_url(location: str) -> None:
    """Refuse a journal value meant as a URL that is not a PostgreSQL one (a typo's victim).

    `postgresql//host/db`, `postgresq://...` or `postgresql+psycopg://...` would otherwise name
    a SQLite file in folders named after the URL, password included.

    Raises:
        JournalError: the value looks like a URL but is not `postgresql://` or `postgres://`.
    """
    if not is_postgres_url(location) and _URL_LIKE.match(location):
        raise JournalError(
            f"the journal {scrub_password(location)!r} looks like a URL but is not a PostgreSQL "
            "one: expected postgresql://USER[:PASSWORD]@HOST[:PORT]/DATABASE (or a file path "
            "for a SQLite journal)"
        )


def scrub_password(text: str) -> str:
    """`text` with every `user:PASSWORD@` password replaced by `***`, however malformed."""
    return _USER_INFO.sub(":***@", text)


def _password_fragments(url: str) -> list[str]:
    """The pieces of the URL's password a driver's message may quote (split at each `@`)."""
    _, separator, rest = url.partition("://")
    authority = rest.split("/", 1)[0] if separator else ""
    user_info = authority.rpartition("@")[0]
    password = user_info.partition(":")[2]
    if not password:
        return []
    pieces = {password, *password.split("@")}
    return sorted((piece for piece in pieces if len(piece) >= 2), key=len, reverse=True)


def redact_url(url: str, mask: str = "***") -> str:
    """The URL with its password replaced by `mask`, for messages, views and hints.

    Hints a person copies use a placeholder (`mask="PASSWORD"`): a command holding `***`
    would send it as the password.
    """
    try:
        parts = urlsplit(url)
    except ValueError:
        return "postgresql://(malformed URL)"
    if parts.password is None:
        return url
    user = parts.username or ""
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    netloc = f"{user}:{mask}@{host}" + (f":{parts.port}" if _has_port(parts) else "")
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


def _has_port(parts: Any) -> bool:
    """Whether the URL gives a (valid) port."""
    try:
        return parts.port is not None
    except ValueError:
        return False


def check_url(url: str) -> None:
    """Refuse a URL libpq cannot parse, naming the problem (`--journal`, `ORCHESTR8_JOURNAL`).

    Raises:
        JournalError: the URL is malformed (bad port, unknown parameter, no database host...).
    """
    psycopg = import_psycopg()
    try:
        parts = urlsplit(url)
        if parts.port is not None and not 0 < parts.port < 65536:
            raise ValueError(f"port {parts.port} is out of range")
        psycopg.conninfo.conninfo_to_dict(url)
    except (ValueError, psycopg.ProgrammingError) as error:
        raise JournalError(
            f"the journal URL {redact_url(url)} is malformed: {' '.join(str(error).split())}; "
            "expected "
            "postgresql://USER[:PASSWORD]@HOST[:PORT]/DATABASE[?PARAMETERS]"
        ) from None


def import_psycopg() -> Any:
    """Import psycopg, or say which package to install.

    Raises:
        JournalError: psycopg is not installed (the `postgresql` extra).
    """
    try:
        import psycopg
    except ImportError:
        raise JournalError(
            "a PostgreSQL journal needs psycopg: pip install 'orchestr8[postgresql]'"
        ) from None
    return psycopg


def connect(url: str, *, purpose: str, autocommit: bool = True) -> psycopg.Connection[Any]:
    """Open one connection to the journal's database, its `search_path` set to `SCHEMA`.

    `purpose` names the connection in `pg_stat_activity` (`orchestr8 writer`, `orchestr8 leases`).

    Raises:
        JournalError: the URL is malformed or the database cannot be reached or logged into
            (the message says which, and names the database without its password), or
            psycopg is not installed.
    """
    driver = import_psycopg()
    check_url(url)
    try:
        connection: psycopg.Connection[Any] = driver.connect(
            url,
            autocommit=autocommit,
            connect_timeout=CONNECT_TIMEOUT,
            application_name=purpose,
            options=f"-c search_path={SCHEMA}",
        )
    except driver.Error as error:
        raise JournalError(explain(url, error)) from None
    return connection


def explain(url: str, error: Exception) -> str:
    """Say in words why the database at `url` could not be used, and what to do about it."""
    where = redact_url(url)
    message = " ".join(str(error).split())
    for piece in _password_fragments(url):
        message = message.replace(piece, "***")
    if len(_password_fragments(url)) > 1:
        message += " (a password holding @ must be written %40 in the URL)"
    lowered = message.lower()
    if "password authentication failed" in lowered or "no password supplied" in lowered:
        return f"cannot log into the journal database {where}: {message} (check the user/password)"
    if "does not exist" in lowered and "database" in lowered:
        return f"the journal database {where} does not exist: {message} (create it: createdb NAME)"
    if "permission denied" in lowered:
        return (
            f"the journal database {where} refused access: {message} (grant the user CREATE "
            f"on the database, or create the schema {SCHEMA} as its owner)"
        )
    if (
        "connection refused" in lowered
        or "could not connect" in lowered
        or "timeout" in lowered
        or "could not translate host name" in lowered
        or "connection failed" in lowered
    ):
        return f"cannot reach the journal database {where}: {message}"
    return f"cannot use the journal database {where}: {message}"


def found_version(connection: psycopg.Connection[Any]) -> int | None:
    """The schema version recorded in the database, or None when it holds no journal yet."""
    row = connection.execute(
        "SELECT to_regclass(%s) IS NOT NULL", (f"{SCHEMA}.schema_version",)
    ).fetchone()
    if row is None or not row[0]:
        return None
    version = connection.execute(f"SELECT version FROM {SCHEMA}.schema_version").fetchone()
    return None if version is None else int(version[0])


def check_version(connection: psycopg.Connection[Any], url: str, *, create: bool) -> None:
    """Make sure the database holds this code's schema: create it if empty and `create`.

    Raises:
        JournalError: the schema is older (run `orchestr8 journal migrate`), newer (upgrade
            orchestr8), absent while not `create`, or cannot be created (permissions).
    """
    version = found_version(connection)
    where = redact_url(url)
    if version == SCHEMA_VERSION:
        return
    if version is None and create:
        migrate(connection, url)
        return
    if version is None:
        raise JournalError(
            f"{where} holds no orchestr8 journal; create it with: orchestr8 journal migrate "
            f"--journal {redact_url(url, mask='PASSWORD')}"
        )
    if version > SCHEMA_VERSION:
        raise JournalError(
            f"{where} has journal schema version {version}, newer than this orchestr8 knows "
            f"({SCHEMA_VERSION}); upgrade orchestr8 to use it"
        )
    raise JournalError(
        f"{where} has journal schema version {version}, older than this orchestr8's "
        f"({SCHEMA_VERSION}); upgrade it with: orchestr8 journal migrate --journal "
        f"{redact_url(url, mask='PASSWORD')}"
    )


def migrate(connection: psycopg.Connection[Any], url: str) -> tuple[int | None, int]:
    """Bring the database's schema to `SCHEMA_VERSION`; return (version before, version after).

    One transaction under an advisory lock: two processes migrating at once take turns, and the
    second finds nothing left to do.

    Raises:
        JournalError: the schema is newer than this code's, or the user may not create it.
    """
    psycopg = import_psycopg()
    before: int | None = None
    try:
        with connection.transaction():
            connection.execute("SELECT pg_advisory_xact_lock(%s)", (_ADVISORY_LOCK,))
            before = found_version(connection)
            if before is not None and before > SCHEMA_VERSION:
                raise JournalError(
                    f"{redact_url(url)} has journal schema version {before}, newer than this "
                    f"orchestr8 knows ({SCHEMA_VERSION}); upgrade orchestr8 to use it"
                )
            if before is None:
                connection.execute(f"CREATE SCHEMA IF NOT EXISTS {SCHEMA}")
                connection.execute(f"SET LOCAL search_path TO {SCHEMA}")
                connection.execute(f"CREATE TABLE {SCHEMA}.schema_version (version INTEGER)")
                connection.execute(f"INSERT INTO {SCHEMA}.schema_version VALUES (0)")
            else:
                connection.execute(f"SET LOCAL search_path TO {SCHEMA}")
            for statements in _MIGRATIONS[before or 0 :]:
                for statement in statements:
                    connection.execute(statement.encode())
            connection.execute(
                f"UPDATE {SCHEMA}.schema_version SET version = %s", (SCHEMA_VERSION,)
            )
    except psycopg.Error as error:
        raise JournalError(explain(url, error)) from None
    return before, SCHEMA_VERSION


def prepare_database(url: str) -> tuple[int | None, int]:
    """Connect, create or migrate the schema, and disconnect (`orchestr8 journal migrate`).

    Raises:
        JournalError: as `connect` and `migrate` do.
    """
    connection = connect(url, purpose="orchestr8 migrate")
    try:
        return migrate(connection, url)
    finally:
        connection.close()
