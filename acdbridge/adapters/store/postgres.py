"""The PostgreSQL store, for sites that outgrow one SQLite file or run several PBXes.

psycopg 3, not asyncpg: the daemon already calls its store through asyncio.to_thread from one
writer task, behind the synchronous `Store` protocol that SQLite needs anyway. psycopg fits that
protocol as it is (one connection, a lock, executemany pipelined in one round trip), so both
backends share the writer, the resume code and the tests; asyncpg would need a second, async
protocol and a second writer for the same batches, for no gain at one writer per daemon.

Several daemons (one per PBX) write one database: every row carries its daemon's `pbx` id, in
every unique key, and what a daemon loads at start is its own PBX's. A daemon holds a session
advisory lock on its pbx id, so a second daemon with the same id is refused (as SQLite's flock
does). When the connection is lost (PostgreSQL restarting, the network) the call raises
StoreUnavailable and the next call reconnects: the writer retries the batch, and the idempotent
keys make a batch whose COMMIT was applied but never acknowledged harmless to send again."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import psycopg
from psycopg.conninfo import conninfo_to_dict

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
    log,
    parsed,
    quarantine_text,
    report_visit,
    strict_loads,
    with_pbx,
)
from acdbridge.adapters.store.outbox import Outbox, OutboxRows
from acdbridge.adapters.store.privacy import PrivacyRows
from acdbridge.adapters.store.recordings import RecordingRows
from acdbridge.errors import StoreLocked, StoreUnusable

CHUNK = 2000  # rows per fetch of each_visit's server-side cursor
LOCK_CLASS = 0x41434442  # "ACDB": the advisory-lock namespace of acdbridge's per-PBX locks
# a dead peer is noticed in about 30 s, not at the kernel's two-hour keepalive default
_TCP = {"keepalives": 1, "keepalives_idle": 10, "keepalives_interval": 5, "keepalives_count": 3,
        "tcp_user_timeout": 30_000}  # fmt: skip
# and the server drops the session of a daemon whose host died (a power cut) as soon, so the pbx
# lock that session held is free when the daemon starts again (the server's default is 2 hours)
_SERVER_TCP = ("-c tcp_keepalives_idle=10 -c tcp_keepalives_interval=5 -c tcp_keepalives_count=3 "
               "-c tcp_user_timeout=30000")  # fmt: skip
_JSON_FIELDS = ("transfer", "ring_attempts")  # the report fields that are JSON values, not numbers
LOCK_WAIT_S = 40.0  # at start: longer than the server takes to drop a dead daemon's session


class StoreUnavailable(StoreUnusable):
    """PostgreSQL cannot be reached now; at start the daemon exits (13), later a write retries."""


def describe(url: str) -> str:
    """The URL without its password, for messages and logs."""
    try:
        info = conninfo_to_dict(url)
    except psycopg.ProgrammingError:
        return "postgresql://(unparseable URL)"
    user = f"{info['user']}@" if info.get("user") else ""
    port = f":{info['port']}" if info.get("port") else ""
    return f"postgresql://{user}{info.get('host', '')}{port}/{info.get('dbname', '')}"


def _server_options(url: str) -> str:
    """The URL's own `options` (kept: a keyword argument would replace them) and ours."""
    try:
        given = conninfo_to_dict(url).get("options")
    except psycopg.ProgrammingError:
        given = None  # the connection says what is wrong with the URL
    return f"{given} {_SERVER_TCP}" if given else _SERVER_TCP


def _insert(table: str, conflict: str = "DO NOTHING") -> str:
    columns = (*COLUMNS[table], "pbx")
    return (f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join(['%s'] * len(columns))}) "
            f"ON CONFLICT {conflict}")  # fmt: skip


_FEEDBACK_UPSERT = _insert("feedback", "(pbx, uniqueid, kind) DO UPDATE SET " + ", ".join(
    f"{c} = EXCLUDED.{c}" for c in FEEDBACK_COLUMNS if c not in ("uniqueid", "kind")))  # fmt: skip


def _rowid(ctid: str) -> int:
    """PostgreSQL has no rowid: a row's ctid "(block,offset)" as one int, valid until the row is
    updated or moved, which the daemon's start (the only user, before any write) never does."""
    block, offset = ctid.strip("()").split(",")
    return int(block) << 16 | int(offset)


def _ctid(rowid: int) -> str:
    return f"({rowid >> 16},{rowid & 0xFFFF})"


def _where(sql: str, args: list[Any], pbx: str | None) -> str:
    if pbx is None:
        return sql
    args.append(pbx)
    return sql + " AND pbx = %s"


class PostgresStore(Checked, AccessRows, PrivacyRows, RecordingRows, OutboxRows):
    """One connection, used under a lock (the daemon's writer task serialises anyway)."""

    nul_free = True
    _mark = "%s"
    _json = "::jsonb"
    _state_key = "pbx"

    def __init__(self, url: str, *, exclusive: bool = False, pbx: str = "", password: str | None = None,
                 connect_timeout_s: float = 5.0, lock_wait_s: float = LOCK_WAIT_S) -> None:  # fmt: skip
        super().__init__(pbx)
        self.url = url
        self.where = describe(url)
        self.exclusive = exclusive
        self._lock_wait_s = lock_wait_s
        self._locked_once = False
        self._options: dict[str, Any] = {"connect_timeout": max(1, round(connect_timeout_s)),
                                         "application_name": f"acdbridge {pbx}".strip(), **_TCP,
                                         "options": _server_options(url)}  # fmt: skip
        if password is not None:
            self._options["password"] = password
        self._lock = threading.Lock()
        self._db: psycopg.Connection[Any] | None = None
        with self._using() as db:
            self.upgraded = self._migrate(db)

    def _connect(self) -> psycopg.Connection[Any]:
        db = psycopg.connect(self.url, autocommit=True, **self._options)
        if self.exclusive:
            try:
                self._take_lock(db)
            except BaseException:
                db.close()
                raise
        return db

    def _take_lock(self, db: psycopg.Connection[Any]) -> None:
        """The pbx id's advisory lock. At start a held lock is waited for (lock_wait_s): it may be
        this daemon's previous session, still open on the server after its host crashed; a second
        daemon with the same id is refused once the wait is over. A reconnect does not wait."""
        deadline = time.monotonic() + (0.0 if self._locked_once else self._lock_wait_s)
        said = False
        while True:
            taken = db.execute(
                "SELECT pg_try_advisory_lock(%s, hashtext(%s))", (LOCK_CLASS, self.pbx)
            ).fetchone()
            if taken and taken[0]:
                self._locked_once = True
                return
            if time.monotonic() >= deadline:
                raise StoreLocked(f"store {self.where} is in use by another acdbridge daemon "
                                  f"with pbx id {self.pbx!r}")  # fmt: skip
            if not said:
                log.warning("store_lock_wait", store=self.where, pbx=self.pbx, wait_s=self._lock_wait_s)
                said = True
            time.sleep(0.5)

    @contextmanager
    def _using(self) -> Iterator[psycopg.Connection[Any]]:
        """The connection (made again after a loss); a lost one becomes StoreUnavailable."""
        with self._lock:
            try:
                if self._db is None or self._db.closed:
                    self._db = None
                    self._db = self._connect()
                yield self._db
            except (psycopg.OperationalError, psycopg.InterfaceError) as exc:
                self._drop()
                reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
                raise StoreUnavailable(f"PostgreSQL store {self.where} is unavailable: {reason}") from exc

    def _drop(self) -> None:
        if self._db is not None:
            try:
                self._db.close()
            finally:
                self._db = None

    def _migrate(self, db: psycopg.Connection[Any]) -> tuple[int, int]:
        """Under a transaction-scoped advisory lock: daemons starting together migrate once."""
        with db.transaction():
            db.execute("SELECT pg_advisory_xact_lock(%s, 0)", (LOCK_CLASS,))
            db.execute(schema.VERSION_TABLE.format(real="DOUBLE PRECISION"))
            row = db.execute("SELECT coalesce(max(version), 0) FROM schema_version").fetchone()
            found = int(row[0]) if row else 0
            for version in schema.pending(found, f"store {self.where}"):
                for statement in schema.POSTGRES[version]:
                    db.execute(statement.encode())  # bytes: fixed SQL of our own, never a parameter
                db.execute("INSERT INTO schema_version VALUES (%s, %s)", (version, time.time()))
        return found, schema.LATEST

    def _put_quarantine(self, source: str, row: str, error: str) -> None:
        with self._using() as db:
            db.execute("INSERT INTO quarantine (at, source, row, error, pbx) VALUES (%s, %s, %s, %s, %s)",
                       (time.time(), source, row, error, self.pbx))  # fmt: skip

    def _batch(self, statements: list[tuple[str, list[Row]]]) -> int:
        """executemany statements in one transaction; returns how many rows changed."""
        changed = 0
        with self._using() as db, db.transaction(), db.cursor() as cur:
            for sql, rows in statements:
                if rows:
                    cur.executemany(sql.encode(), rows)
                    changed += max(cur.rowcount, 0)
        return changed

    def _select(self, sql: str, args: list[Any]) -> list[Any]:
        with self._using() as db:
            return db.execute(sql.encode(), args).fetchall()

    def _change(self, sql: str, args: list[Any]) -> int:
        with self._using() as db:
            return db.execute(sql.encode(), args).rowcount

    def _flag(self, value: bool) -> bool:
        return value

    def write(self, visits: list[Record], agent_states: list[Record], outbox: Outbox = None) -> int:
        """Store a batch in one transaction (with the webhook events it makes); how many rows were new."""
        visit_rows, state_rows = self._rows("visits", visits), self._rows("agent_states", agent_states)
        return self._batch([(_insert("visits"), visit_rows), (_insert("agent_states"), state_rows),
                            self.outbox_statement(outbox)])  # fmt: skip

    def write_flow(self, legs: list[Record], feedback: list[Record], outbox: Outbox = None) -> int:
        """IVR legs (idempotent) and feedback (a disposition entered again replaces the first)."""
        leg_rows, feedback_rows = self._rows("ivr_legs", legs), self._rows("feedback", feedback)
        return self._batch([(_insert("ivr_legs"), leg_rows), (_FEEDBACK_UPSERT, feedback_rows),
                            self.outbox_statement(outbox)])  # fmt: skip

    def visits(
        self, since: float, until: float, queue: str | None = None, *, pbx: str | None = None
    ) -> list[Record]:
        return list(self.each_visit(since, until, queue, pbx=pbx))

    def each_visit(
        self, since: float, until: float, queue: str | None = None, *, pbx: str | None = None
    ) -> Iterator[Record]:
        """visits() one at a time, through a server-side cursor: an export of a month holds one
        chunk, not the month. The store is held until the iteration ends (export only)."""
        sql = "SELECT record, pbx FROM visits WHERE end_ts >= %s AND end_ts < %s"
        args: list[Any] = [since, until]
        if queue is not None:
            sql += " AND queue = %s"
            args.append(queue)
        sql = _where(sql, args, pbx) + " ORDER BY end_ts, uniqueid, queue, pbx"
        with self._using() as db, db.transaction(), db.cursor(name="acdbridge_export") as cursor:
            cursor.itersize = CHUNK
            cursor.execute(sql.encode(), args)
            yield from (with_pbx(strict_loads(r), p) for r, p in cursor)

    def ivr_legs_of(self, pbx: str, uniqueids: list[str]) -> list[Record]:
        """The IVR legs of these calls of one PBX (a report's call types and hotlines), by key."""
        out: list[Record] = []
        for i in range(0, len(uniqueids), CHUNK):
            some = uniqueids[i : i + CHUNK]
            sql = (f"SELECT record, pbx FROM ivr_legs WHERE pbx = %s "
                   f"AND uniqueid IN ({', '.join(['%s'] * len(some))})")  # fmt: skip
            out += [with_pbx(strict_loads(r), p) for r, p in self._select(sql, [pbx, *some])]
        return out

    def report_visits(self, since: float, until: float, *, pbx: str | None = None,
                      attempts: bool = False) -> Iterator[Record]:  # fmt: skip
        """The visits that ended in [since, until) as a report reads them (common.report_visit):
        each record parsed once by the server (json_to_record), only its needed fields sent.
        Through a server-side cursor: the store is held until the iteration ends."""
        fields = REPORT_FIELDS if attempts else REPORT_FIELDS[:-1]
        types = ", ".join(f"{f} {'json' if f in _JSON_FIELDS else 'float8'}" for f in fields)
        values = ", ".join(f"x.{f}::text" if f in _JSON_FIELDS else f"x.{f}" for f in fields)
        columns = ", ".join(f"v.{c.strip()}" for c in REPORT_COLUMNS.split(","))
        sql = (f"SELECT {columns}, {values} FROM visits v, json_to_record(v.record::json) AS x({types}) "
               "WHERE v.end_ts >= %s AND v.end_ts < %s")  # fmt: skip
        args: list[Any] = [since, until]
        if pbx is not None:
            sql += " AND v.pbx = %s"
            args.append(pbx)
        n = len(REPORT_COLUMNS.split(","))
        with self._using() as db, db.transaction(), db.cursor(name="acdbridge_report") as cursor:
            cursor.itersize = CHUNK
            cursor.execute(sql.encode(), args)
            for row in cursor:
                values_ = [strict_loads(x) if f in _JSON_FIELDS and x is not None else x
                           for f, x in zip(fields, row[n:], strict=True)]  # fmt: skip
                yield report_visit(row[:n], values_)

    def agent_states_during(self, since: float, until: float, *, pbx: str | None = None) -> list[Record]:
        """The stretches that overlap [since, until) (a report clips them), by the end-time index."""
        args: list[Any] = [since, until]
        sql = (f"SELECT {', '.join(STATE_COLUMNS)}, pbx FROM agent_states WHERE end_ts > %s "
               f"AND start_ts < %s")  # fmt: skip
        rows = self._select(_where(sql, args, pbx) + " ORDER BY end_ts", args)
        return [with_pbx(dict(zip(STATE_COLUMNS, row[:-1], strict=True)), row[-1]) for row in rows]

    def agent_states(self, since: float, until: float, *, pbx: str | None = None) -> list[Record]:
        args: list[Any] = [since, until]
        sql = f"SELECT {', '.join(STATE_COLUMNS)}, pbx FROM agent_states WHERE end_ts >= %s AND end_ts < %s"
        rows = self._select(_where(sql, args, pbx) + " ORDER BY end_ts", args)
        return [with_pbx(dict(zip(STATE_COLUMNS, row[:-1], strict=True)), row[-1]) for row in rows]

    def ivr_legs(self, since: float, until: float, *, pbx: str | None = None) -> list[Record]:
        args: list[Any] = [since, until]
        sql = _where("SELECT record, pbx FROM ivr_legs WHERE end_ts >= %s AND end_ts < %s", args, pbx)
        return [with_pbx(strict_loads(r), p) for r, p in self._select(sql + " ORDER BY end_ts", args)]

    def feedback(self, since: float, until: float, *, pbx: str | None = None) -> list[Record]:
        args: list[Any] = [since, until]
        sql = f"SELECT {', '.join(FEEDBACK_COLUMNS)}, pbx FROM feedback WHERE ts >= %s AND ts < %s"
        rows = self._select(_where(sql, args, pbx) + " ORDER BY ts", args)
        return [with_pbx(dict(zip(FEEDBACK_COLUMNS, row[:-1], strict=True)) | {"resolved": bool(row[3])},
                         row[-1]) for row in rows]  # fmt: skip

    def save_login(self, agent: str, since: float | None) -> None:
        """since=None: logged out."""
        with self._using() as db:
            if since is None:
                db.execute("DELETE FROM agent_logins WHERE pbx = %s AND agent = %s", (self.pbx, agent))
            else:
                db.execute("INSERT INTO agent_logins (pbx, agent, since) VALUES (%s, %s, %s) "
                           "ON CONFLICT (pbx, agent) DO UPDATE SET since = EXCLUDED.since",
                           (self.pbx, agent, since))  # fmt: skip

    def logins(self) -> dict[str, float]:
        rows = self._select("SELECT agent, since FROM agent_logins WHERE pbx = %s", [self.pbx])
        return {a: float(t) for a, t in rows}

    def save_state(self, saved_at: float, state: Record) -> None:
        """The trackers' calls in progress at an orderly stop; the next start goes on from them."""
        text = dumps(state)
        with self._using() as db:
            db.execute("INSERT INTO tracker_state (pbx, saved_at, state) VALUES (%s, %s, %s) ON CONFLICT "
                       "(pbx) DO UPDATE SET saved_at = EXCLUDED.saved_at, state = EXCLUDED.state",
                       (self.pbx, saved_at, text))  # fmt: skip

    def load_state(self) -> tuple[float, Record] | None:
        """The saved state, removed as it is read (used once); one that does not parse is
        quarantined and None returned."""
        rows = self._select("DELETE FROM tracker_state WHERE pbx = %s RETURNING saved_at, state", [self.pbx])
        if not rows:
            return None
        try:
            return float(rows[0][0]), strict_loads(rows[0][1])
        except (TypeError, ValueError) as exc:
            self.quarantine(
                StoredRow("tracker_state", 1, None, str(rows[0][1])), f"{type(exc).__name__}: {exc}"
            )
            return None

    def stored(self, table: str, since: float) -> list[StoredRow]:
        """This PBX's rows of `table` that ended at or after `since`, for the daemon's start, each
        parsed strictly (record=None and the error when it does not)."""
        if table in ("visits", "ivr_legs"):
            order = "end_ts, uniqueid, queue" if table == "visits" else "end_ts"
            sql = f"SELECT ctid::text, record FROM {table} WHERE end_ts >= %s AND pbx = %s ORDER BY {order}"
            return [parsed(table, _rowid(c), raw) for c, raw in self._select(sql, [since, self.pbx])]
        columns, time_column = (FEEDBACK_COLUMNS, "ts") if table == "feedback" else (STATE_COLUMNS, "end_ts")
        sql = (f"SELECT ctid::text, {', '.join(columns)} FROM {table} WHERE {time_column} >= %s AND pbx = %s "
               f"ORDER BY {time_column}")  # fmt: skip
        return [self._fresh(table, row, columns) for row in self._select(sql, [since, self.pbx])]

    @staticmethod
    def _fresh(table: str, row: tuple[Any, ...], columns: tuple[str, ...]) -> StoredRow:
        record = dict(zip(columns, row[1:], strict=True))
        if table == "feedback":
            record["resolved"] = bool(record["resolved"])
        try:  # the same strict JSON test the SQLite rows pass: a NaN time cannot be loaded
            return StoredRow(table, _rowid(row[0]), record, dumps(record))
        except ValueError as exc:
            return StoredRow(table, _rowid(row[0]), None, quarantine_text(record), f"ValueError: {exc}")

    def quarantine(self, row: StoredRow, error: str) -> None:
        """Move a stored row aside in one transaction (the tracker state is already removed)."""
        assert row.table in (*TABLES, "tracker_state")
        delete = [(_ctid(row.rowid), self.pbx)] if row.table in TABLES else []
        self._batch([
            ("INSERT INTO quarantine (at, source, row, error, pbx) VALUES (%s, %s, %s, %s, %s)",
             [(time.time(), row.table, row.raw, error, self.pbx)]),
            (f"DELETE FROM {row.table} WHERE ctid = %s::tid AND pbx = %s", delete),
        ])  # fmt: skip
        self.quarantined += 1

    def first_visit_end(self, *, pbx: str | None = None) -> float | None:
        """When the store's oldest visit ended (the end-time index: one lookup), None if empty:
        a forecast tells a quiet week the store covers from one before the store began."""
        args: list[Any] = []
        found = self._select(_where("SELECT min(end_ts) FROM visits WHERE true", args, pbx), args)[0][0]
        return None if found is None else float(found)

    def count(self, table: str, *, pbx: str | None = None) -> int:
        assert table in (*TABLES, "agent_logins", "quarantine")
        args: list[Any] = []
        return int(self._select(_where(f"SELECT count(*) FROM {table} WHERE true", args, pbx), args)[0][0])

    def close(self) -> None:
        with self._lock:
            self._drop()  # the session's end releases its advisory lock
