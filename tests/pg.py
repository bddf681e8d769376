"""A real PostgreSQL for the tests: Debian's server binaries, a throwaway cluster made with initdb
in a temp dir, on a free loopback port with its unix socket in that dir; never the system's
cluster. As root the server runs as the system user `acdtest-pg` (created if missing: PostgreSQL
refuses to run as root). Password authentication (scram) with a random password, so nobody else
on the host can use it meanwhile. The fixture FAILS, never skips, when no server can start.

`pg_cluster` (session) is the running cluster; `pg_url` (per test) a fresh, empty database in it."""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import secrets
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
import pytest

PG_USER = "acdtest-pg"  # the OS user the server runs as when the tests run as root
DB_USER = "acdtest"


class PgUnavailable(RuntimeError):
    pass


def pg_bin() -> Path:
    """The newest /usr/lib/postgresql/N/bin holding initdb and pg_ctl."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(p.split("/")[4]))
    if not found:
        raise PgUnavailable("no PostgreSQL server: /usr/lib/postgresql/*/bin/initdb is missing "
                            "(install Debian's postgresql package; `make test` should)")  # fmt: skip
    return Path(found[-1]).parent


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _server_user() -> str | None:
    """None when not root (the server runs as us); as root, a system user made for it."""
    if os.geteuid() != 0:
        return None
    try:
        pwd.getpwnam(PG_USER)
    except KeyError:
        subprocess.run(["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", PG_USER],
                       check=True, capture_output=True)  # fmt: skip
    return PG_USER


@dataclass
class PgCluster:
    bin: Path
    dir: Path
    port: int
    password: str = field(repr=False)
    user: str | None  # the OS user the server runs as (None: this one)
    databases: int = 0

    @property
    def data(self) -> Path:
        return self.dir / "data"

    def url(self, database: str = "postgres") -> str:
        """The URL without the password (as a config would hold it); pass `password` apart."""
        return f"postgresql://{DB_USER}@127.0.0.1:{self.port}/{database}"

    def _run(self, *args: str) -> subprocess.CompletedProcess[str]:
        command = [str(self.bin / args[0]), *args[1:]]
        if self.user is not None:
            command = ["runuser", "-u", self.user, "--", *command]
        done = subprocess.run(command, capture_output=True, text=True, timeout=120, cwd=self.dir)
        if done.returncode != 0:
            log = (self.dir / "server.log").read_text() if (self.dir / "server.log").exists() else ""
            raise PgUnavailable(f"{args[0]} failed ({done.returncode}): {done.stderr.strip()}\n{log[-2000:]}")
        return done

    def init(self) -> None:
        pwfile = self.dir / "pw"
        pwfile.write_text(self.password + "\n")
        if self.user is not None:
            shutil.chown(self.dir, self.user)
            shutil.chown(pwfile, self.user)
        self._run("initdb", "-D", str(self.data), "-U", DB_USER, "--pwfile", str(pwfile),
                  "-A", "scram-sha-256", "-E", "UTF8", "--locale", "C", "--no-sync")  # fmt: skip
        pwfile.unlink()

    def start(self) -> None:
        options = (f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 "
                   "-c max_connections=50 -c shared_buffers=64MB")  # fmt: skip
        self._run("pg_ctl", "-D", str(self.data), "-o", options, "-l", str(self.dir / "server.log"), "-w",
                  "-t", "60", "start")  # fmt: skip

    def stop(self, mode: str = "fast") -> None:
        self._run("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "stop")

    def create_database(self) -> str:
        """A fresh, empty database; its URL."""
        self.databases += 1
        name = f"t{self.databases}"
        with psycopg.connect(self.url(), password=self.password, autocommit=True) as db:
            db.execute(f"CREATE DATABASE {name}".encode())
        return self.url(name)


def start_cluster() -> PgCluster:
    """initdb and start; the caller stops it and removes `dir` (remove_cluster)."""
    base = tempfile.mkdtemp(prefix="acdbridge-pg-")
    cluster = PgCluster(pg_bin(), Path(base), _free_port(), secrets.token_urlsafe(18), _server_user())
    try:
        cluster.init()
        cluster.start()
    except (PgUnavailable, OSError, subprocess.SubprocessError) as exc:
        shutil.rmtree(base, ignore_errors=True)
        raise PgUnavailable(f"the test PostgreSQL could not start: {exc}") from exc
    return cluster


def remove_cluster(cluster: PgCluster) -> None:
    with contextlib.suppress(PgUnavailable):  # already stopped: a test stopped it, then failed
        cluster.stop("immediate")
    shutil.rmtree(cluster.dir, ignore_errors=True)


@pytest.fixture(scope="session")
def pg_cluster() -> Iterator[PgCluster]:
    try:
        cluster = start_cluster()
    except PgUnavailable as exc:
        pytest.fail(str(exc), pytrace=False)
    yield cluster
    remove_cluster(cluster)


@pytest.fixture
def pg_url(pg_cluster: PgCluster) -> str:
    """A fresh database of the session's cluster (password: pg_cluster.password)."""
    return pg_cluster.create_database()
