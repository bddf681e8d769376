"""The webhooks' outbox (docs/webhooks.md), shared by both backends: rows inserted in the same
transaction as the records they come from (the writer's batch, `outbox_statement`), read and
settled by the sender (adapters/webhooks.py), listed and retried by `acdbridge webhooks`.

A row is unique by (pbx, endpoint, idempotency_key): the journal replayed after a crash makes
the same keys again, and the insert ignores them. Each daemon delivers its own PBX's rows. A
backend supplies `_select`, `_change`, `_reject` and its parameter mark (`_sql`, as access.py)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from acdbridge.adapters.store.common import Record, Row, dumps, strict_loads
from acdbridge.core.webhooks import DEAD, PENDING, STATES, Event, Settled

_INSERT = ("INSERT INTO outbox (pbx, endpoint, call_key, event, idempotency_key, payload, created, since, "
           "attempts, next_attempt, state, last_error) VALUES (?, ?, ?, ?, ?, ?, ?, ?, 0, ?, 'pending', '') "
           "ON CONFLICT DO NOTHING")  # fmt: skip
_COLUMNS = ("id, endpoint, call_key, event, idempotency_key, payload, created, since, attempts, "
            "next_attempt, state, last_error, delivered_at")  # fmt: skip


Outbox = list[Event] | None  # a write's webhook events (None: none)


@dataclass(frozen=True)
class OutboxRow:
    id: int
    endpoint: str
    call_key: str
    event: str
    idempotency_key: str
    payload: str  # the JSON body as stored: sent byte for byte, so every retry signs the same body
    created: float
    since: float  # the retry window's start: created, or a manual retry
    attempts: int
    next_attempt: float
    state: str
    last_error: str
    delivered_at: float | None

    def summary(self) -> Record:
        """The row for `acdbridge webhooks list` (the payload parsed)."""
        out: Record = {k: getattr(self, k) for k in _COLUMNS.split(", ") if k != "payload"}
        out["payload"] = strict_loads(self.payload)
        return out


def _row(r: tuple[Any, ...]) -> OutboxRow:
    return OutboxRow(int(r[0]), r[1], r[2], r[3], r[4], r[5], float(r[6]), float(r[7]), int(r[8]),
                     float(r[9]), r[10], r[11], None if r[12] is None else float(r[12]))  # fmt: skip


class OutboxRows:
    """Mixed in after AccessRows, whose `_sql` it uses."""

    pbx: str
    nul_free: bool
    _sql: Callable[[str], str]
    _reject: Callable[[str, Record, str], None]

    def _select(self, sql: str, args: list[Any]) -> list[Any]:
        raise NotImplementedError

    def _change(self, sql: str, args: list[Any]) -> int:
        raise NotImplementedError

    def outbox_statement(self, events: Iterable[Event] | None) -> tuple[str, list[Row]]:
        """The insert of these events, for the writer's transaction; an event whose payload JSON
        cannot carry (a NaN) is quarantined, as its record would be."""
        now, rows = time.time(), []
        bodies: dict[int, str] = {}  # endpoints subscribed to one event share its payload: one dumps
        for e in events or ():
            try:
                body = bodies.get(id(e.payload)) or bodies.setdefault(id(e.payload), dumps(e.payload))
                if self.nul_free and "\x00" in body + e.call_key:
                    raise ValueError("a NUL character in a text column")
            except (TypeError, ValueError) as exc:
                self._reject("outbox", {"uniqueid": e.call_key, "event": e.event, **e.payload},
                             f"{type(exc).__name__}: {exc}")  # fmt: skip
                continue
            rows.append((self.pbx, e.endpoint, e.call_key, e.event, e.key, body, now, now, now))
        return self._sql(_INSERT), rows

    def outbox_due(self, endpoint: str, limit: int = 200) -> list[OutboxRow]:
        """The endpoint's oldest pending rows by id (due or not: the scheduler keeps call order)."""
        sql = (f"SELECT {_COLUMNS} FROM outbox WHERE pbx = ? AND endpoint = ? AND state = 'pending' "
               "ORDER BY id LIMIT ?")  # fmt: skip
        return [_row(r) for r in self._select(self._sql(sql), [self.pbx, endpoint, limit])]

    def outbox_settle(self, row_id: int, result: Settled, now: float) -> None:
        """An attempt's result; a delivered row keeps when it was delivered."""
        delivered = now if result.state == "delivered" else None
        sql = ("UPDATE outbox SET state = ?, attempts = ?, next_attempt = ?, last_error = ?, "
               "delivered_at = ? WHERE id = ? AND pbx = ?")  # fmt: skip
        self._change(self._sql(sql), [result.state, result.attempts, result.next_attempt,
                                      result.last_error[:500], delivered, row_id, self.pbx])  # fmt: skip

    def outbox_list(self, state: str | None = None, limit: int = 100) -> list[OutboxRow]:
        """This PBX's rows, newest first, of one state or all."""
        assert state is None or state in STATES
        args: list[Any] = [self.pbx]
        sql = f"SELECT {_COLUMNS} FROM outbox WHERE pbx = ?"
        if state is not None:
            sql += " AND state = ?"
            args.append(state)
        return [_row(r) for r in self._select(self._sql(sql + " ORDER BY id DESC LIMIT ?"), [*args, limit])]

    def outbox_retry(self, row_id: int | None, now: float) -> int:
        """A dead row (row_id None: every dead row) pending again, due now, with a fresh retry
        window; how many changed. A pending or delivered row is left alone."""
        sql = ("UPDATE outbox SET state = ?, since = ?, next_attempt = ?, attempts = 0 "
               "WHERE pbx = ? AND state = ?")  # fmt: skip
        args: list[Any] = [PENDING, now, now, self.pbx, DEAD]
        if row_id is not None:
            sql += " AND id = ?"
            args.append(row_id)
        return self._change(self._sql(sql), args)

    def outbox_prune(self, before: float, dead_before: float | None = None) -> int:
        """Rows delivered before `before`, and dead rows whose retry window began before
        `dead_before`, deleted (their payloads hold callers' data); how many."""
        sql = "DELETE FROM outbox WHERE pbx = ? AND state = 'delivered' AND delivered_at < ?"
        n = self._change(self._sql(sql), [self.pbx, before])
        if dead_before is not None:
            sql = "DELETE FROM outbox WHERE pbx = ? AND state = 'dead' AND since < ?"
            n += self._change(self._sql(sql), [self.pbx, dead_before])
        return n

    def outbox_row(self, row_id: int) -> OutboxRow | None:
        rows = self._select(self._sql(f"SELECT {_COLUMNS} FROM outbox WHERE pbx = ? AND id = ?"),
                            [self.pbx, row_id])  # fmt: skip
        return _row(rows[0]) if rows else None

    def outbox_counts(self) -> dict[tuple[str, str], int]:
        """(endpoint, state) -> rows of this PBX, pending and dead only (delivered rows pile up)."""
        sql = ("SELECT endpoint, state, count(*) FROM outbox WHERE pbx = ? AND state IN ('pending', 'dead') "
               "GROUP BY endpoint, state")  # fmt: skip
        return {(e, s): int(n) for e, s, n in self._select(self._sql(sql), [self.pbx])}
