"""A real PostgreSQL server for the tests: started once per session, a fresh database per test.

The server comes from the machine's own binaries (`/usr/lib/postgresql/*/bin`, Debian's
`postgresql` package, which `.ci/run` installs when missing). `initdb` refuses to run as root, so
as root the data directory belongs to the `postgres` OS user and every server command runs through
`runuser -u postgres`. The server listens on a free port of 127.0.0.1 only (no Unix socket), trusts
loopback connections, and lives in a temporary directory removed at the end of the session.

Each test gets a database of its own, copied from a template database (`CREATE DATABASE ...
TEMPLATE`, about 0.1 s) that holds the journal schema already, so no test sees another's rows.
`PostgresServer.stop` / `start` stop and restart the same server on the same port: how tests make
the database vanish under a running journal.

Where no PostgreSQL binaries are installed the tests that need one are skipped with the reason,
unless `ORCHESTR8_POSTGRES_TESTS=required` (as CI sets it), which makes them fail instead.
"""

from __future__ import annotations

import contextlib
import glob
import itertools
import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import attrs

SUPERUSER = "postgres"
TEMPLATE = "orchestr8_template"
_counter = itertools.count(1)


def binaries() -> Path | None:
    """The newest installed PostgreSQL's bin directory, or None when there is none."""
    found = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/initdb"),
        key=lambda path: int(Path(path).parent.parent.name),
    )
    configured = os.environ.get("ORCHESTR8_POSTGRES_BIN")
    if configured:
        return Path(configured)
    return Path(found[-1]).parent if found else None


def free_port() -> int:
    """A TCP port of 127.0.0.1 nobody listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _as_server_user(command: list[str]) -> list[str]:
    """Run `command` as the `postgres` OS user when we are root (initdb refuses root)."""
    if os.geteuid() == 0:
        return ["runuser", "-u", SUPERUSER, "--", *command]
    return command


@attrs.define(eq=False)
class PostgresServer:
    """One running PostgreSQL server on loopback, owned by the test session."""

    bin_dir: Path
    root: Path
    port: int
    log: Path

    @property
    def data(self) -> Path:
        """The server's data directory."""
        return self.root / "data"

    def url(self, database: str = SUPERUSER) -> str:
        """The connection URL of `database` on this server."""
        return f"postgresql://{SUPERUSER}@127.0.0.1:{self.port}/{database}"

    def _ctl(self, *arguments: str) -> None:
        command = [str(self.bin_dir / "pg_ctl"), "-D", str(self.data), "-l", str(self.log)]
        subprocess.run(
            _as_server_user([*command, *arguments]),
            check=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            timeout=60,
        )

    def start(self) -> None:
        """Start the server (again) on its port and wait until it accepts connections."""
        options = f"-p {self.port} -c listen_addresses=127.0.0.1 -c unix_socket_directories=''"
        self._ctl("-w", "-o", options, "start")

    def stop(self, mode: str = "fast") -> None:
        """Stop the server: `fast` ends sessions cleanly, `immediate` as a crash would."""
        self._ctl("-w", "-m", mode, "stop")

    def execute(self, sql: str, database: str = SUPERUSER) -> None:
        """Run one statement outside a transaction, as the superuser."""
        import psycopg

        with psycopg.connect(self.url(database), autocommit=True) as connection:
            connection.execute(sql.encode())

    def create_database(self) -> str:
        """A fresh database copied from the template (schema ready); return its URL."""
        name = f"test_{os.getpid()}_{next(_counter)}"
        self.execute(f"CREATE DATABASE {name} TEMPLATE {TEMPLATE}")
        return self.url(name)

    def create_empty_database(self) -> str:
        """A fresh database without the journal schema; return its URL."""
        name = f"empty_{os.getpid()}_{next(_counter)}"
        self.execute(f"CREATE DATABASE {name} TEMPLATE template0")
        return self.url(name)


def _initialise(bin_dir: Path, root: Path, *, durable: bool = False) -> None:
    """initdb a data directory under `root`, owned by the server's OS user.

    `durable` keeps PostgreSQL's own durability settings (fsync on, full page writes,
    `synchronous_commit` default), as a benchmark needs; tests turn fsync off.
    """
    if os.geteuid() == 0:
        shutil.chown(root, SUPERUSER)
    subprocess.run(
        _as_server_user(
            [
                str(bin_dir / "initdb"),
                "-D",
                str(root / "data"),
                "-U",
                SUPERUSER,
                "--auth=trust",
                *(() if durable else ("--no-sync",)),
                "-E",
                "UTF8",
                "--locale=C",
            ]
        ),
        check=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        timeout=120,
    )
    # Tests are throwaway: durability costs only time here (fsync off, like initdb --no-sync).
    settings = "max_connections = 300\n"
    if not durable:
        settings = "fsync = off\nfull_page_writes = off\n" + settings
    with (root / "data" / "postgresql.conf").open("a") as conf:
        conf.write(settings)


def _make_template(server: PostgresServer) -> None:
    """Create the template database and give it the journal schema."""
    server.execute(f"CREATE DATABASE {TEMPLATE} TEMPLATE template0")
    from orchestr8._journal._postgres_schema import prepare_database

    prepare_database(server.url(TEMPLATE))


@contextlib.contextmanager
def running_server(*, durable: bool = False) -> Iterator[PostgresServer]:
    """Start a throwaway server for the session, and remove it afterwards.

    `durable` runs it with fsync on and `synchronous_commit` at its default (benchmarks).
    """
    bin_dir = binaries()
    if bin_dir is None:
        raise FileNotFoundError("no PostgreSQL binaries under /usr/lib/postgresql/*/bin")
    root = Path(tempfile.mkdtemp(prefix="orchestr8-postgres-"))
    root.chmod(0o755)
    server = PostgresServer(bin_dir=bin_dir, root=root, port=free_port(), log=root / "server.log")
    try:
        _initialise(bin_dir, root, durable=durable)
        if os.geteuid() == 0:
            shutil.chown(root, SUPERUSER)
        started = time.monotonic()
        while True:
            try:
                server.start()
                break
            except subprocess.CalledProcessError:
                # The port was taken between choosing and binding it: choose again, briefly.
                if time.monotonic() - started > 30:
                    raise
                server.port = free_port()
        _make_template(server)
        yield server
    finally:
        with contextlib.suppress(subprocess.SubprocessError, OSError):
            server.stop("immediate")
        shutil.rmtree(root, ignore_errors=True)
