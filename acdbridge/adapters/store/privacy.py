"""The store side of callers' personal data (docs/privacy.md), shared by both backends: the daily
job's pseudonymisation in batches, the retention of quarantined rows, and an erasure request.

A backend supplies `_select`, `_batch`, `_put_quarantine` and its parameter mark (`_sql`, as
access.py). Every statement is written with `?`. The job works on this store's own PBX's rows
(each daemon of a shared database does its own); an erasure spans every PBX of the store."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from acdbridge.adapters.store.common import Record, Row, dumps, strict_loads
from acdbridge.core import pseudonym

BATCH = 1000  # rows per transaction: the writer thread waits at most one batch for the store
PAGE = 2000  # rows per read of an erasure's scan
# the primary key of each table with caller data (the pbx column first, as in the key)
KEYS = {"visits": ("pbx", "uniqueid", "queue", "enter_ts"), "ivr_legs": ("pbx", "uniqueid", "start_ts")}


@dataclass
class Erasure:
    """What an erasure found (and, unless a dry run, blanked or deleted) in the store."""

    rows: dict[str, int] = field(default_factory=lambda: dict.fromkeys(KEYS, 0))
    quarantine: int = 0  # quarantined rows naming the number: deleted
    saved_state: int = 0  # calls in progress in a saved tracker state: their caller blanked
    outbox: int = 0  # webhook events naming the number, in any state: deleted (never sent)
    calls: set[tuple[str, str]] = field(default_factory=set)  # (pbx, uniqueid) matched: their recordings


class PrivacyRows:
    """Mixed in after AccessRows, whose `_sql` it uses."""

    pbx: str
    _sql: Callable[[str], str]
    _state_key = "id"  # tracker_state's key column (PostgreSQL: pbx)

    def _select(self, sql: str, args: list[Any]) -> list[Any]:
        raise NotImplementedError

    def _batch(self, statements: list[tuple[str, list[Row]]]) -> int:
        raise NotImplementedError

    def _put_quarantine(self, source: str, row: str, error: str) -> None:
        raise NotImplementedError

    def _update(self, table: str) -> str:
        where = " AND ".join(f"{k} = ?" for k in KEYS[table])
        return self._sql(f"UPDATE {table} SET record = ?, pseudonymised_at = ? WHERE {where}")

    def pseudonymise_batch(
        self, table: str, before: float, now: float, change: Callable[[Record], Record], limit: int = BATCH
    ) -> int:
        """Up to `limit` of this PBX's rows of `table` that ended before `before` and are not
        pseudonymised yet: `change`d and marked, in one transaction. How many were read (fewer
        than `limit`: nothing is left). A row that does not parse goes to quarantine."""
        keys = KEYS[table]
        sql = (f"SELECT {', '.join(keys)}, record FROM {table} WHERE pseudonymised_at IS NULL "
               "AND pbx = ? AND end_ts < ? ORDER BY end_ts LIMIT ?")  # fmt: skip
        rows = self._select(self._sql(sql), [self.pbx, before, limit])
        updates: list[Row] = []
        for *key, raw in rows:
            try:
                updates.append((dumps(change(strict_loads(raw))), now, *key))
            except (TypeError, ValueError) as exc:  # moved aside: kept, but never as it was
                self._put_quarantine(table, str(raw), f"pseudonymise: {type(exc).__name__}: {exc}")
                where = " AND ".join(f"{k} = ?" for k in keys)
                self._batch([(self._sql(f"DELETE FROM {table} WHERE {where}"), [tuple(key)])])
        self._batch([(self._update(table), updates)])
        return len(rows)

    def drop_quarantine_before(self, before: float) -> int:
        """Quarantined rows (whole records, callers' numbers in them) are kept as long as visits."""
        return self._batch([(self._sql("DELETE FROM quarantine WHERE at < ?"), [(before,)])])

    def erase_caller(self, match: Callable[[object], bool], text_match: Callable[[str], bool],
                     now: float, *, dry_run: bool = False) -> Erasure:  # fmt: skip
        """Blank the caller fields of every record of this number (all PBXes), delete the
        quarantined rows and webhook events naming it and blank it in saved tracker states; the
        calls found are in the answer's `calls` (their recordings are files: purge.py's).
        `match` tests a field, `text_match` a raw text. dry_run: only count."""
        found = Erasure()
        for table in KEYS:
            found.rows[table] = self._erase_rows(table, match, now, dry_run, found.calls)
        rows = self._select("SELECT id, row FROM quarantine", [])
        doomed = [(qid,) for qid, raw in rows if text_match(str(raw))]
        found.quarantine = len(doomed)
        if doomed and not dry_run:
            self._batch([(self._sql("DELETE FROM quarantine WHERE id = ?"), doomed)])
        outbox = self._select("SELECT id, payload FROM outbox", [])
        events = [(oid,) for oid, raw in outbox if text_match(raw)]
        found.outbox = len(events)
        if events and not dry_run:  # a pending event is not sent either: the erasure comes first
            self._batch([(self._sql("DELETE FROM outbox WHERE id = ?"), events)])
        for key, raw in self._select(f"SELECT {self._state_key}, state FROM tracker_state", []):
            try:
                state, count = pseudonym.erase_in(strict_loads(raw), match) if text_match(raw) else (None, 0)
            except (TypeError, ValueError):
                continue  # loaded once at the next start, and quarantined there
            found.saved_state += count
            if count and not dry_run:
                sql = self._sql(f"UPDATE tracker_state SET state = ? WHERE {self._state_key} = ?")
                self._batch([(sql, [(dumps(state), key)])])
        return found

    def _erase_rows(self, table: str, match: Callable[[object], bool], now: float, dry_run: bool,
                    calls: set[tuple[str, str]]) -> int:  # fmt: skip
        """Every row of `table`, read in pages in key order (keyset: no offset rescans); the
        matched rows' (pbx, uniqueid) added to `calls`."""
        keys = KEYS[table]
        columns = ", ".join(keys)
        after: tuple[Any, ...] | None = None
        count = 0
        while True:
            where = f"WHERE ({columns}) > ({', '.join('?' * len(keys))}) " if after else ""
            sql = self._sql(f"SELECT {columns}, record FROM {table} {where}ORDER BY {columns} LIMIT ?")
            rows = self._select(sql, [*(after or ()), PAGE])
            updates: list[Row] = []
            for *key, raw in rows:
                try:
                    record = strict_loads(raw)
                except (TypeError, ValueError):
                    continue  # the daemon quarantines such a row when it meets it
                if pseudonym.record_matches(table, record, match):
                    updates.append((dumps(pseudonym.erased(table, record)), now, *key))
                    calls.add((str(key[0]), str(key[1])))  # both tables' keys begin pbx, uniqueid
            count += len(updates)
            if updates and not dry_run:
                self._batch([(self._update(table), updates)])
            if len(rows) < PAGE:
                return count
            after = tuple(rows[-1][:-1])
