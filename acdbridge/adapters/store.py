"""The durable store of finished queue visits and agent state stretches.

SQLite in WAL mode is the embedded default. Writes are idempotent: a visit is keyed by
(uniqueid, queue, enter_ts) and an agent stretch by (interface, state, start_ts), so a replayed
or re-sent record is stored once. The `Store` protocol is what a PostgreSQL backend for
multi-PBX sites would implement (ON CONFLICT DO NOTHING does the same job there).

Nothing is dropped silently: a record that cannot be written (a NaN time, a value JSON cannot
carry) goes to the `quarantine` table with the error, is logged with its uniqueid and counted;
a stored row the daemon cannot load at start is moved there too (runtime/resume.py). The files
hold callers' numbers: they are created 0600, and the daemon holds an exclusive lock beside them."""

from __future__ import annotations

import fcntl
import json
import math
import os
import sqlite3
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import structlog

from acdbridge.errors import StoreLocked, StoreUnusable

log = structlog.get_logger("acdbridge.store")
Record = dict[str, Any]

SCHEMA = """
CREATE TABLE IF NOT EXISTS visits (
    uniqueid TEXT NOT NULL,
    queue    TEXT NOT NULL,
    enter_ts REAL NOT NULL,
    end_ts   REAL NOT NULL,
    outcome  TEXT NOT NULL,
    agent    TEXT,
    record   TEXT NOT NULL,
    PRIMARY KEY (uniqueid, queue, enter_ts)
);
CREATE INDEX IF NOT EXISTS visits_by_end ON visits (end_ts);
CREATE TABLE IF NOT EXISTS agent_states (
    interface  TEXT NOT NULL,
    state      TEXT NOT NULL,
    start_ts   REAL NOT NULL,
    end_ts     REAL NOT NULL,
    agent      TEXT,
    reason     TEXT,
    duration_s REAL NOT NULL,
    PRIMARY KEY (interface, state, start_ts)
);
CREATE TABLE IF NOT EXISTS ivr_legs (
    uniqueid TEXT NOT NULL,
    start_ts REAL NOT NULL,
    end_ts   REAL NOT NULL,
    hotline  TEXT NOT NULL,
    outcome  TEXT NOT NULL,
    record   TEXT NOT NULL,
    PRIMARY KEY (uniqueid, start_ts)
);
CREATE INDEX IF NOT EXISTS ivr_legs_by_end ON ivr_legs (end_ts);
-- a call's disposition and survey score: one of each per call, the last one entered wins
CREATE TABLE IF NOT EXISTS feedback (
    uniqueid TEXT NOT NULL,
    kind     TEXT NOT NULL,
    value    TEXT NOT NULL,
    resolved INTEGER NOT NULL,
    queue    TEXT NOT NULL,
    agent    TEXT NOT NULL,
    ts       REAL NOT NULL,
    PRIMARY KEY (uniqueid, kind)
);
CREATE INDEX IF NOT EXISTS feedback_by_ts ON feedback (ts);
-- agents logged in with the feature code: their queue memberships are kept in step
CREATE TABLE IF NOT EXISTS agent_logins (
    agent TEXT PRIMARY KEY,
    since REAL NOT NULL
);
-- rows that could not be written or loaded, kept for a person to look at (never reloaded)
CREATE TABLE IF NOT EXISTS quarantine (
    id     INTEGER PRIMARY KEY AUTOINCREMENT,
    at     REAL NOT NULL,
    source TEXT NOT NULL,
    row    TEXT NOT NULL,
    error  TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS tracker_state (
    id       INTEGER PRIMARY KEY CHECK (id = 1),
    saved_at REAL NOT NULL,
    state    TEXT NOT NULL
);
"""


TABLES = ("visits", "agent_states", "ivr_legs", "feedback")
# the numeric key and time columns of each table: NaN would bind as NULL and fail the whole batch
_NUMBERS = {"visits": ("enter_ts", "end_ts"), "agent_states": ("start_ts", "end_ts", "duration_s"),
            "ivr_legs": ("start_ts", "end_ts"), "feedback": ("ts",)}  # fmt: skip


def _json(record: Record) -> str:
    """Strict JSON: NaN and Infinity are not JSON, and a reader elsewhere would choke on them."""
    return json.dumps(record, ensure_ascii=False, separators=(",", ":"), allow_nan=False)


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def strict_loads(text: str) -> Any:
    return json.loads(text, parse_constant=_reject_constant)


def _loose(value: Any) -> Any:
    """A copy JSON can always carry (non-finite numbers as text), for the quarantine table only."""
    if isinstance(value, float) and not math.isfinite(value):
        return repr(value)
    if isinstance(value, dict):
        return {str(k): _loose(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_loose(v) for v in value]
    return value if value is None or isinstance(value, str | int | float | bool) else repr(value)


def quarantine_text(record: Any) -> str:
    return json.dumps(_loose(record), ensure_ascii=False, separators=(",", ":"), allow_nan=False)


def _visit_row(v: Record) -> tuple[Any, ...]:
    return v["uniqueid"], v["queue"], v["enter_ts"], v["end_ts"], v["outcome"], v["agent"], _json(v)


def _state_row(s: Record) -> tuple[Any, ...]:
    return s["interface"], s["state"], s["start_ts"], s["end_ts"], s["agent"], s["reason"], s["duration_s"]


def _leg_row(leg: Record) -> tuple[Any, ...]:
    return leg["uniqueid"], leg["start_ts"], leg["end_ts"], leg["hotline"], leg["outcome"], _json(leg)


def _feedback_row(f: Record) -> tuple[Any, ...]:
    resolved = int(bool(f.get("resolved")))
    return f["uniqueid"], f["kind"], f["value"], resolved, f["queue"], f["agent"], f["ts"]


@dataclass(frozen=True)
class StoredRow:
    """One stored row as read at start: `record` is None when it did not even parse."""

    table: str
    rowid: int
    record: Record | None
    raw: str
    error: str = ""


def _create_private(path: Path) -> None:
    """Create the file 0600 if it is not there (sqlite would create it with the umask's 0644)."""
    fd = os.open(path, os.O_CREAT | os.O_RDWR, 0o600)
    os.close(fd)


class Store(Protocol):
    def write(self, visits: list[Record], agent_states: list[Record]) -> int: ...
    def visits(self, since: float, until: float, queue: str | None = None) -> list[Record]: ...
    def agent_states(self, since: float, until: float) -> list[Record]: ...
    def save_state(self, saved_at: float, state: Record) -> None: ...
    def load_state(self) -> tuple[float, Record] | None: ...
    def write_flow(self, legs: list[Record], feedback: list[Record]) -> int: ...
    def ivr_legs(self, since: float, until: float) -> list[Record]: ...
    def feedback(self, since: float, until: float) -> list[Record]: ...
    def save_login(self, agent: str, since: float | None) -> None: ...
    def logins(self) -> dict[str, float]: ...
    def stored(self, table: str, since: float) -> list[StoredRow]: ...
    def quarantine(self, row: StoredRow, error: str) -> None: ...
    def close(self) -> None: ...


class SqliteStore:
    """One connection, used from one thread at a time (the daemon's writer task serialises).

    exclusive=True (the daemon) takes an flock on `<store>.lock`: a second daemon on the same
    store refuses to start instead of interleaving its records. Readers (export) take none."""

    def __init__(self, path: Path, *, exclusive: bool = False) -> None:
        self.path = path
        self.rejected = 0  # records that could not be written, put in quarantine instead
        self.quarantined = 0  # rows moved to quarantine (written or loaded)
        self.on_reject: Callable[[str, Record, str], None] | None = None
        self._lock_fd: int | None = None
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            if exclusive:
                self._lock_fd = self._take_lock(path)
            _create_private(path)
            self.db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.execute("PRAGMA synchronous=NORMAL")  # durable at each checkpoint; WAL survives a crash
            self.db.executescript(SCHEMA)
        except (OSError, sqlite3.Error) as exc:
            self._unlock()
            raise StoreUnusable(f"store {path} cannot be opened for writing: {exc}") from None
        self._lock = threading.Lock()

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

    def _unlock(self) -> None:
        if self._lock_fd is not None:
            os.close(self._lock_fd)  # closing the descriptor releases the flock
            self._lock_fd = None

    def _checked(
        self, table: str, records: list[Record], row: Callable[[Record], tuple[Any, ...]]
    ) -> list[tuple[Any, ...]]:
        """The rows to insert; a record that cannot be stored is quarantined, logged and counted."""
        rows = []
        for record in records:
            try:
                bad = [k for k in _NUMBERS[table] if not math.isfinite(float(record[k]))]
                if bad:
                    raise ValueError(f"not a finite number: {', '.join(bad)}")
                rows.append(row(record))
            except (KeyError, TypeError, ValueError) as exc:
                self._reject(table, record, f"{type(exc).__name__}: {exc}")
        return rows

    def _reject(self, table: str, record: Record, error: str) -> None:
        self.rejected += 1
        self.quarantined += 1
        uniqueid = record.get("uniqueid") if isinstance(record, dict) else None
        log.error("store_row_rejected", table=table, uniqueid=uniqueid, error=error)
        with self._lock:
            self.db.execute("INSERT INTO quarantine (at, source, row, error) VALUES (?, ?, ?, ?)",
                            (time.time(), table, quarantine_text(record), error))  # fmt: skip
        if self.on_reject is not None:
            self.on_reject(table, record, error)

    def _batch(self, statements: list[tuple[str, list[tuple[Any, ...]]]]) -> int:
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

    def write(self, visits: list[Record], agent_states: list[Record]) -> int:
        """Store a batch in one transaction; returns how many rows were new."""
        visit_rows = self._checked("visits", visits, _visit_row)
        state_rows = self._checked("agent_states", agent_states, _state_row)
        return self._batch([
            ("INSERT OR IGNORE INTO visits VALUES (?, ?, ?, ?, ?, ?, ?)", visit_rows),
            ("INSERT OR IGNORE INTO agent_states VALUES (?, ?, ?, ?, ?, ?, ?)", state_rows),
        ])  # fmt: skip

    def write_flow(self, legs: list[Record], feedback: list[Record]) -> int:
        """IVR legs (idempotent) and feedback (a disposition entered again replaces the first)."""
        leg_rows = self._checked("ivr_legs", legs, _leg_row)
        feedback_rows = self._checked("feedback", feedback, _feedback_row)
        return self._batch([
            ("INSERT OR IGNORE INTO ivr_legs VALUES (?, ?, ?, ?, ?, ?)", leg_rows),
            ("INSERT OR REPLACE INTO feedback VALUES (?, ?, ?, ?, ?, ?, ?)", feedback_rows),
        ])  # fmt: skip

    def ivr_legs(self, since: float, until: float) -> list[Record]:
        sql = "SELECT record FROM ivr_legs WHERE end_ts >= ? AND end_ts < ? ORDER BY end_ts"
        with self._lock:
            rows = self.db.execute(sql, (since, until)).fetchall()
        return [json.loads(r[0]) for r in rows]

    def feedback(self, since: float, until: float) -> list[Record]:
        cols = ("uniqueid", "kind", "value", "resolved", "queue", "agent", "ts")
        sql = f"SELECT {', '.join(cols)} FROM feedback WHERE ts >= ? AND ts < ? ORDER BY ts"
        with self._lock:
            rows = self.db.execute(sql, (since, until)).fetchall()
        return [dict(zip(cols, row, strict=True)) | {"resolved": bool(row[3])} for row in rows]

    def save_login(self, agent: str, since: float | None) -> None:
        """since=None: logged out."""
        with self._lock:
            if since is None:
                self.db.execute("DELETE FROM agent_logins WHERE agent = ?", (agent,))
            else:
                self.db.execute("INSERT OR REPLACE INTO agent_logins VALUES (?, ?)", (agent, since))

    def logins(self) -> dict[str, float]:
        with self._lock:
            return {a: float(t) for a, t in self.db.execute("SELECT agent, since FROM agent_logins")}

    def visits(self, since: float, until: float, queue: str | None = None) -> list[Record]:
        sql = "SELECT record FROM visits WHERE end_ts >= ? AND end_ts < ?"
        args: list[Any] = [since, until]
        if queue is not None:
            sql += " AND queue = ?"
            args.append(queue)
        with self._lock:
            rows = self.db.execute(sql + " ORDER BY end_ts, uniqueid, queue", args).fetchall()
        return [json.loads(r[0]) for r in rows]

    def agent_states(self, since: float, until: float) -> list[Record]:
        cols = ("interface", "state", "start_ts", "end_ts", "agent", "reason", "duration_s")
        sql = f"SELECT {', '.join(cols)} FROM agent_states WHERE end_ts >= ? AND end_ts < ? ORDER BY end_ts"
        with self._lock:
            rows = self.db.execute(sql, (since, until)).fetchall()
        return [dict(zip(cols, row, strict=True)) for row in rows]

    def save_state(self, saved_at: float, state: Record) -> None:
        """The trackers' calls in progress at an orderly stop; the next start goes on from them."""
        with self._lock:
            self.db.execute("INSERT OR REPLACE INTO tracker_state VALUES (1, ?, ?)", (saved_at, _json(state)))

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
        """Every row of `table` that ended at or after `since`, for the daemon's start: parsed
        strictly, a row that does not parse comes back with record=None and the error."""
        sql = {
            "visits": "SELECT rowid, record FROM visits WHERE end_ts >= ? ORDER BY end_ts, uniqueid, queue",
            "ivr_legs": "SELECT rowid, record FROM ivr_legs WHERE end_ts >= ? ORDER BY end_ts",
            "feedback": "SELECT rowid, json_object('uniqueid', uniqueid, 'kind', kind, 'value', value, "
            "'resolved', json(CASE resolved WHEN 0 THEN 'false' ELSE 'true' END), 'queue', queue, "
            "'agent', agent, 'ts', ts) FROM feedback WHERE ts >= ? ORDER BY ts",
            "agent_states": "SELECT rowid, json_object('interface', interface, 'state', state, 'start_ts', "
            "start_ts, 'end_ts', end_ts, 'agent', agent, 'reason', reason, 'duration_s', duration_s) "
            "FROM agent_states WHERE end_ts >= ? ORDER BY end_ts",
        }[table]
        with self._lock:
            rows = self.db.execute(sql, (since,)).fetchall()
        out = []
        for rowid, raw in rows:
            try:
                out.append(StoredRow(table, int(rowid), strict_loads(raw), raw))
            except (TypeError, ValueError) as exc:
                out.append(StoredRow(table, int(rowid), None, str(raw), f"{type(exc).__name__}: {exc}"))
        return out

    def quarantine(self, row: StoredRow, error: str) -> None:
        """Move a stored row aside in one transaction (the tracker state is already removed)."""
        assert row.table in (*TABLES, "tracker_state")
        self._batch([
            ("INSERT INTO quarantine (at, source, row, error) VALUES (?, ?, ?, ?)",
             [(time.time(), row.table, row.raw, error)]),
            (f"DELETE FROM {row.table} WHERE rowid = ?", [(row.rowid,)] if row.table in TABLES else []),
        ])  # fmt: skip
        self.quarantined += 1

    def count(self, table: str) -> int:
        assert table in (*TABLES, "agent_logins", "quarantine")
        with self._lock:
            return int(self.db.execute(f"SELECT count(*) FROM {table}").fetchone()[0])

    def close(self) -> None:
        with self._lock:
            self.db.close()
        self._unlock()
