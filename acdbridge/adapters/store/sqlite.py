"""The embedded store: one SQLite file in WAL mode, written from the daemon's worker thread.

Writes are idempotent: a visit is keyed by (pbx, uniqueid, queue, enter_ts) and an agent stretch
by (pbx, interface, state, start_ts), so a replayed or re-sent record is stored once. The file
holds callers' numbers: it is created 0600, and the daemon holds an exclusive lock beside it."""

from __future__ import annotations

import fcntl
import json
import os
import sqlite3
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from acdbridge.adapters.store import schema
from acdbridge.adapters.store.access import AccessRows
from acdbridge.adapters.store.common import (
    COLUMNS,
    FEEDBACK_COLUMNS,
    REPORT_COLUMNS,
    REPORT_FIELDS,
    STATE_COLUMNS,
    TABLES,
    Checked,
    Record,
    Row,
    StoredRow,
    dumps,
    parsed,
    report_visit,
    strict_loads,
    with_pbx,
)
from acdbridge.adapters.store.outbox import Outbox, OutboxRows
from acdbridge.adapters.store.privacy import PrivacyRows
from acdbridge.adapters.store.recordings import RecordingRows
from acdbridge.errors import StoreLocked, StoreUnusable

CHUNK = 2000  # rows per read of each_visit


def _create_private(path: Path) -> None:
    """Create the file 0600 if it is not there (sqlite would create it with the umask's 0644)."""
    fd = os.open(path, os.O_CREAT | os.O_RDWR, 0o600)
    os.close(fd)


def _insert(table: str, verb: str = "INSERT OR IGNORE") -> str:
    columns = (*COLUMNS[table], "pbx")
    return f"{verb} INTO {table} ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})"


def _where(sql: str, args: list[Any], pbx: str | None) -> str:
    if pbx is None:
        return sql
    args.append(pbx)
    return sql + " AND pbx = ?"


class SqliteStore(Checked, AccessRows, PrivacyRows, RecordingRows, OutboxRows):
    """One connection, used from one thread at a time (the daemon's writer task serialises).

    exclusive=True (the daemon) takes an flock on `<store>.lock`: a second daemon on the same
    store refuses to start instead of interleaving its records. Readers (export) take none.
    Opening brings the schema up to date (schema.py); `upgraded` says from which version."""

    def __init__(self, path: Path, *, exclusive: bool = False, pbx: str = "") -> None:
        super().__init__(pbx)
        self.path = path
        self._lock_fd: int | None = None
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            if exclusive:
                self._lock_fd = self._take_lock(path)
            _create_private(path)
            self.db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.execute("PRAGMA synchronous=NORMAL")  # durable at each checkpoint; WAL survives a crash
            self.upgraded = self._migrate()
        except (OSError, sqlite3.Error, StoreUnusable) as exc:
            self._abandon()
            if isinstance(exc, StoreUnusable):
                raise
            raise StoreUnusable(f"store {path} cannot be opened for writing: {exc}") from None
        self._lock = threading.Lock()

    def _migrate(self) -> tuple[int, int]:
        """(version found, version now); IMMEDIATE: a second opener waits, never migrates twice."""
        self.db.execute("BEGIN IMMEDIATE")
        try:
            tables = {r[0] for r in self.db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
            self.db.execute(schema.VERSION_TABLE.format(real="REAL"))
            found = int(self.db.execute("SELECT coalesce(max(version), 0) FROM schema_version").fetchone()[0])
            todo = schema.pending(found, f"store {self.path}")
            if "visits" in tables and "schema_version" not in tables:
                found = 1  # made before migrations: version 1 (migration 1 still runs, as a no-op)
            for version in todo:
                for statement in schema.SQLITE[version]:
                    self.db.execute(statement)
                self.db.execute("INSERT INTO schema_version VALUES (?, ?)", (version, time.time()))
            self.db.execute("COMMIT")
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        return found, schema.LATEST

    @staticmethod
    def _take_lock(path: Path) -> int:
        lock = path.with_name(path.name + ".lock")
        fd = os.open(lock, os.O_CREAT | os.O_RDWR, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise StoreLocked(f"store {path} is in use by another acdbridge daemon (lock {lock})") from None
        return fd

    def _abandon(self) -> None:
        if (db := getattr(self, "db", None)) is not None:
            db.close()
        self._unlock()

    def _unlock(self) -> None:
        if self._lock_fd is not None:
            os.close(self._lock_fd)  # closing the descriptor releases the flock
            self._lock_fd = None

    def _put_quarantine(self, source: str, row: str, error: str) -> None:
        with self._lock:
            self.db.execute("INSERT INTO quarantine (at, source, row, error) VALUES (?, ?, ?, ?)",
                            (time.time(), source, row, error))  # fmt: skip

    def _batch(self, statements: list[tuple[str, list[Row]]]) -> int:
        """Run executemany statements in one transaction; returns how many rows changed."""
        with self._lock:
            before = self.db.total_changes
            self.db.execute("BEGIN")
            try:
                for sql, rows in statements:
                    self.db.executemany(sql, rows)
                self.db.execute("COMMIT")
            except BaseException:
                self.db.execute("ROLLBACK")
                raise
            return self.db.total_changes - before

    def write(self, visits: list[Record], agent_states: list[Record], outbox: Outbox = None) -> int:
        """Store a batch in one transaction (with the webhook events it makes); how many rows were new."""
        visit_rows, state_rows = self._rows("visits", visits), self._rows("agent_states", agent_states)
        return self._batch([(_insert("visits"), visit_rows), (_insert("agent_states"), state_rows),
                            self.outbox_statement(outbox)])  # fmt: skip

    def write_flow(self, legs: list[Record], feedback: list[Record], outbox: Outbox = None) -> int:
        """IVR legs (idempotent) and feedback (a disposition entered again replaces the first)."""
        leg_rows, feedback_rows = self._rows("ivr_legs", legs), self._rows("feedback", feedback)
        return self._batch([
            (_insert("ivr_legs"), leg_rows), (_insert("feedback", "INSERT OR REPLACE"), feedback_rows),
            self.outbox_statement(outbox),
        ])  # fmt: skip

    def _select(self, sql: str, args: list[Any]) -> list[Any]:
        with self._lock:
            return self.db.execute(sql, args).fetchall()

    def _change(self, sql: str, args: list[Any]) -> int:
        with self._lock:
            return self.db.execute(sql, args).rowcount

    def ivr_legs(self, since: float, until: float, *, pbx: str | None = None) -> list[Record]:
        args: list[Any] = [since, until]
        sql = _where("SELECT record, pbx FROM ivr_legs WHERE end_ts >= ? AND end_ts < ?", args, pbx)
        return [with_pbx(json.loads(r), p) for r, p in self._select(sql + " ORDER BY end_ts", args)]

    def feedback(self, since: float, until: float, *, pbx: str | None = None) -> list[Record]:
        args: list[Any] = [since, until]
        sql = f"SELECT {', '.join(FEEDBACK_COLUMNS)}, pbx FROM feedback WHERE ts >= ? AND ts < ?"
        rows = self._select(_where(sql, args, pbx) + " ORDER BY ts", args)
        return [with_pbx(dict(zip(FEEDBACK_COLUMNS, row[:-1], strict=True)) | {"resolved": bool(row[3])},
                         row[-1]) for row in rows]  # fmt: skip

    def save_login(self, agent: str, since: float | None) -> None:
        """since=None: logged out."""
        with self._lock:
            if since is None:
                self.db.execute("DELETE FROM agent_logins WHERE agent = ?", (agent,))
            else:
                self.db.execute("INSERT OR REPLACE INTO agent_logins VALUES (?, ?)", (agent, since))

    def logins(self) -> dict[str, float]:
        return {a: float(t) for a, t in self._select("SELECT agent, since FROM agent_logins", [])}

    def visits(
        self, since: float, until: float, queue: str | None = None, *, pbx: str | None = None
    ) -> list[Record]:
        return list(self.each_visit(since, until, queue, pbx=pbx))

    def each_visit(
        self, since: float, until: float, queue: str | None = None, *, pbx: str | None = None
    ) -> Iterator[Record]:
        """visits() one at a time, read in chunks: an export of a month holds one chunk, not the
        month (1.5 M visits as a list are about 7 GB of Python objects)."""
        sql = "SELECT record, pbx FROM visits WHERE end_ts >= ? AND end_ts < ?"
        args: list[Any] = [since, until]
        if queue is not None:
            sql += " AND queue = ?"
            args.append(queue)
        with self._lock:
            cursor = self.db.execute(_where(sql, args, pbx) + " ORDER BY end_ts, uniqueid, queue, pbx", args)
        while True:
            with self._lock:  # released between chunks: a daemon's writer is never held up by a reader
                rows = cursor.fetchmany(CHUNK)
            if not rows:
                return
            yield from (with_pbx(json.loads(r), p) for r, p in rows)

    def ivr_legs_of(self, pbx: str, uniqueids: list[str]) -> list[Record]:
        """The IVR legs of these calls of one PBX (a report's call types and hotlines), by key."""
        out: list[Record] = []
        for i in range(0, len(uniqueids), CHUNK):
            some = uniqueids[i : i + CHUNK]
            sql = (f"SELECT record, pbx FROM ivr_legs WHERE pbx = ? "
                   f"AND uniqueid IN ({', '.join(['?'] * len(some))})")  # fmt: skip
            out += [with_pbx(json.loads(r), p) for r, p in self._select(sql, [pbx, *some])]
        return out

    def report_visits(self, since: float, until: float, *, pbx: str | None = None,
                      attempts: bool = False) -> Iterator[Record]:  # fmt: skip
        """The visits that ended in [since, until), in any order, as a report reads them
        (common.report_visit): one json_extract of the fields it needs, not the whole record
        parsed in Python (about twice as fast). attempts=False leaves ring_attempts out."""
        fields = REPORT_FIELDS if attempts else REPORT_FIELDS[:-1]
        paths = ", ".join(f"'$.{f}'" for f in fields)
        sql = f"SELECT {REPORT_COLUMNS}, json_extract(record, {paths}) FROM visits "
        sql += "WHERE end_ts >= ? AND end_ts < ?"
        args: list[Any] = [since, until]
        with self._lock:
            cursor = self.db.execute(_where(sql, args, pbx), args)  # any order: bucketed by end_ts
        while True:
            with self._lock:
                rows = cursor.fetchmany(CHUNK)
            if not rows:
                return
            # one JSON array of the chunk's field lists: one json.loads, not one per row
            values = json.loads("[" + ",".join(r[-1] for r in rows) + "]")
            yield from (report_visit(r[:-1], v) for r, v in zip(rows, values, strict=True))

    def agent_states_during(self, since: float, until: float, *, pbx: str | None = None) -> list[Record]:
        """The stretches that overlap [since, until) (a report clips them), by the end-time index."""
        args: list[Any] = [since, until]
        sql = (f"SELECT {', '.join(STATE_COLUMNS)}, pbx FROM agent_states WHERE end_ts > ? "
               f"AND start_ts < ?")  # fmt: skip
        rows = self._select(_where(sql, args, pbx) + " ORDER BY end_ts", args)
        return [with_pbx(dict(zip(STATE_COLUMNS, row[:-1], strict=True)), row[-1]) for row in rows]

    def agent_states(self, since: float, until: float, *, pbx: str | None = None) -> list[Record]:
        args: list[Any] = [since, until]
        sql = f"SELECT {', '.join(STATE_COLUMNS)}, pbx FROM agent_states WHERE end_ts >= ? AND end_ts < ?"
        rows = self._select(_where(sql, args, pbx) + " ORDER BY end_ts", args)
        return [with_pbx(dict(zip(STATE_COLUMNS, row[:-1], strict=True)), row[-1]) for row in rows]

    def save_state(self, saved_at: float, state: Record) -> None:
        """The trackers' calls in progress at an orderly stop; the next start goes on from them."""
        with self._lock:
            self.db.execute("INSERT OR REPLACE INTO tracker_state VALUES (1, ?, ?)", (saved_at, dumps(state)))

    def load_state(self) -> tuple[float, Record] | None:
        """The saved state, removed from the store: it is used once. One that does not parse is
        quarantined and None returned: a restart must never trip over it again."""
        with self._lock:
            row = self.db.execute("SELECT saved_at, state FROM tracker_state WHERE id = 1").fetchone()
            self.db.execute("DELETE FROM tracker_state")
        if row is None:
            return None
        try:
            return float(row[0]), strict_loads(row[1])
        except (TypeError, ValueError) as exc:
            self.quarantine(StoredRow("tracker_state", 1, None, str(row[1])), f"{type(exc).__name__}: {exc}")
            return None

    def stored(self, table: str, since: float) -> list[StoredRow]:
        """This PBX's rows of `table` that ended at or after `since`, for the daemon's start: parsed
        strictly, a row that does not parse comes back with record=None and the error. `+pbx`:
        the time index, not the primary key's leading pbx (every row of a one-PBX file), else a
        start on a 1 GB store scans all of it (2 s, not 0.1 s)."""
        sql = {
            "visits": "SELECT rowid, record FROM visits WHERE end_ts >= ? AND +pbx = ? "
            "ORDER BY end_ts, uniqueid, queue",
            "ivr_legs": "SELECT rowid, record FROM ivr_legs WHERE end_ts >= ? AND +pbx = ? ORDER BY end_ts",
            "feedback": "SELECT rowid, json_object('uniqueid', uniqueid, 'kind', kind, 'value', value, "
            "'resolved', json(CASE resolved WHEN 0 THEN 'false' ELSE 'true' END), 'queue', queue, "
            "'agent', agent, 'ts', ts) FROM feedback WHERE ts >= ? AND +pbx = ? ORDER BY ts",
            "agent_states": "SELECT rowid, json_object('interface', interface, 'state', state, 'start_ts', "
            "start_ts, 'end_ts', end_ts, 'agent', agent, 'reason', reason, 'duration_s', duration_s) "
            "FROM agent_states WHERE end_ts >= ? AND +pbx = ? ORDER BY end_ts",
        }[table]
        return [parsed(table, int(rowid), raw) for rowid, raw in self._select(sql, [since, self.pbx])]

    def quarantine(self, row: StoredRow, error: str) -> None:
        """Move a stored row aside in one transaction (the tracker state is already removed)."""
        assert row.table in (*TABLES, "tracker_state")
        self._batch([
            ("INSERT INTO quarantine (at, source, row, error) VALUES (?, ?, ?, ?)",
             [(time.time(), row.table, row.raw, error)]),
            (f"DELETE FROM {row.table} WHERE rowid = ?", [(row.rowid,)] if row.table in TABLES else []),
        ])  # fmt: skip
        self.quarantined += 1

    def first_visit_end(self, *, pbx: str | None = None) -> float | None:
        """When the store's oldest visit ended (the end-time index: one lookup), None if empty:
        a forecast tells a quiet week the store covers from one before the store began."""
        args: list[Any] = []
        found = self._select(_where("SELECT min(end_ts) FROM visits WHERE 1", args, pbx), args)[0][0]
        return None if found is None else float(found)

    def count(self, table: str, *, pbx: str | None = None) -> int:
        assert table in (*TABLES, "agent_logins", "quarantine")
        args: list[Any] = []
        return int(self._select(_where(f"SELECT count(*) FROM {table} WHERE 1", args, pbx), args)[0][0])

    def close(self) -> None:
        with self._lock:
            self.db.close()
        self._unlock()
