"""The durable store of finished queue visits and agent state stretches.

SQLite in WAL mode is the embedded default. Writes are idempotent: a visit is keyed by
(uniqueid, queue, enter_ts) and an agent stretch by (interface, state, start_ts), so a replayed
or re-sent record is stored once. The `Store` protocol is what a PostgreSQL backend for
multi-PBX sites would implement (ON CONFLICT DO NOTHING does the same job there)."""

from __future__ import annotations

import json
import sqlite3
import threading
from pathlib import Path
from typing import Any, Protocol

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
CREATE TABLE IF NOT EXISTS tracker_state (
    id       INTEGER PRIMARY KEY CHECK (id = 1),
    saved_at REAL NOT NULL,
    state    TEXT NOT NULL
);
"""


def _json(record: Record) -> str:
    return json.dumps(record, ensure_ascii=False, separators=(",", ":"))


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
    def close(self) -> None: ...


class SqliteStore:
    """One connection, used from one thread at a time (the daemon's writer task serialises)."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._lock = threading.Lock()
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=NORMAL")  # durable at each checkpoint; WAL survives a crash
        self.db.executescript(SCHEMA)

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
        visit_rows = [(v["uniqueid"], v["queue"], v["enter_ts"], v["end_ts"], v["outcome"], v["agent"],
                       _json(v)) for v in visits]  # fmt: skip
        state_rows = [(s["interface"], s["state"], s["start_ts"], s["end_ts"], s["agent"], s["reason"],
                       s["duration_s"]) for s in agent_states]  # fmt: skip
        return self._batch([
            ("INSERT OR IGNORE INTO visits VALUES (?, ?, ?, ?, ?, ?, ?)", visit_rows),
            ("INSERT OR IGNORE INTO agent_states VALUES (?, ?, ?, ?, ?, ?, ?)", state_rows),
        ])  # fmt: skip

    def write_flow(self, legs: list[Record], feedback: list[Record]) -> int:
        """IVR legs (idempotent) and feedback (a disposition entered again replaces the first)."""
        leg_rows = [(leg["uniqueid"], leg["start_ts"], leg["end_ts"], leg["hotline"], leg["outcome"],
                     _json(leg)) for leg in legs]  # fmt: skip
        feedback_rows = [(f["uniqueid"], f["kind"], f["value"], int(bool(f.get("resolved"))), f["queue"],
                          f["agent"], f["ts"]) for f in feedback]  # fmt: skip
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
            self.db.execute(
                "INSERT OR REPLACE INTO tracker_state VALUES (1, ?, ?)", (saved_at, json.dumps(state))
            )

    def load_state(self) -> tuple[float, Record] | None:
        """The saved state, removed from the store: it is used once."""
        with self._lock:
            row = self.db.execute("SELECT saved_at, state FROM tracker_state WHERE id = 1").fetchone()
            self.db.execute("DELETE FROM tracker_state")
        return None if row is None else (float(row[0]), json.loads(row[1]))

    def count(self, table: str) -> int:
        assert table in ("visits", "agent_states", "ivr_legs", "feedback", "agent_logins")
        with self._lock:
            return int(self.db.execute(f"SELECT count(*) FROM {table}").fetchone()[0])

    def close(self) -> None:
        with self._lock:
            self.db.close()
