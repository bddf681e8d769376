"""What both store backends share: the `Store` protocol, strict JSON, the row shapes of each
table and the check that turns a record the store cannot hold into a quarantined row.

A store belongs to one PBX (`pbx`, "" for a single-PBX site): it stamps its id on every row it
writes, and what the daemon loads at start (stored(), load_state(), logins()) is its own PBX's
only. Reads for reports (visits() & co.) span every PBX unless one is named."""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Protocol

import structlog

log = structlog.get_logger("acdbridge.store")
Record = dict[str, Any]
Row = tuple[Any, ...]

TABLES = ("visits", "agent_states", "ivr_legs", "feedback")
# the numeric key and time columns of each table: NaN would bind as NULL and fail the whole batch
NUMBERS = {"visits": ("enter_ts", "end_ts"), "agent_states": ("start_ts", "end_ts", "duration_s"),
           "ivr_legs": ("start_ts", "end_ts"), "feedback": ("ts",)}  # fmt: skip
# the columns each table is written with (the pbx column comes last, see Rows)
COLUMNS = {
    "visits": ("uniqueid", "queue", "enter_ts", "end_ts", "outcome", "agent", "record"),
    "agent_states": ("interface", "state", "start_ts", "end_ts", "agent", "reason", "duration_s"),
    "ivr_legs": ("uniqueid", "start_ts", "end_ts", "hotline", "outcome", "record"),
    "feedback": ("uniqueid", "kind", "value", "resolved", "queue", "agent", "ts"),
}
STATE_COLUMNS = COLUMNS["agent_states"]
FEEDBACK_COLUMNS = COLUMNS["feedback"]


def dumps(record: Any) -> str:
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


def _visit_row(v: Record) -> Row:
    return v["uniqueid"], v["queue"], v["enter_ts"], v["end_ts"], v["outcome"], v["agent"], dumps(v)


def _state_row(s: Record) -> Row:
    return s["interface"], s["state"], s["start_ts"], s["end_ts"], s["agent"], s["reason"], s["duration_s"]


def _leg_row(leg: Record) -> Row:
    return leg["uniqueid"], leg["start_ts"], leg["end_ts"], leg["hotline"], leg["outcome"], dumps(leg)


def _feedback_row(f: Record) -> Row:
    resolved = int(bool(f.get("resolved")))
    return f["uniqueid"], f["kind"], f["value"], resolved, f["queue"], f["agent"], f["ts"]


ROW_OF: dict[str, Callable[[Record], Row]] = {
    "visits": _visit_row, "agent_states": _state_row, "ivr_legs": _leg_row, "feedback": _feedback_row,
}  # fmt: skip


@dataclass(frozen=True)
class StoredRow:
    """One stored row as read at start: `record` is None when it did not even parse."""

    table: str
    rowid: int
    record: Record | None
    raw: str
    error: str = ""


def parsed(table: str, rowid: int, raw: str) -> StoredRow:
    try:
        return StoredRow(table, rowid, strict_loads(raw), raw)
    except (TypeError, ValueError) as exc:
        return StoredRow(table, rowid, None, str(raw), f"{type(exc).__name__}: {exc}")


class Store(Protocol):
    def write(
        self, visits: list[Record], agent_states: list[Record], outbox: list[Any] | None = None
    ) -> int: ...
    def visits(
        self, since: float, until: float, queue: str | None = None, *, pbx: str | None = None
    ) -> list[Record]: ...
    def agent_states(self, since: float, until: float, *, pbx: str | None = None) -> list[Record]: ...
    def agent_states_during(self, since: float, until: float, *, pbx: str | None = None) -> list[Record]: ...
    def each_visit(
        self, since: float, until: float, queue: str | None = None, *, pbx: str | None = None
    ) -> Iterator[Record]: ...
    def save_state(self, saved_at: float, state: Record) -> None: ...
    def load_state(self) -> tuple[float, Record] | None: ...
    def write_flow(
        self, legs: list[Record], feedback: list[Record], outbox: list[Any] | None = None
    ) -> int: ...
    def ivr_legs(self, since: float, until: float, *, pbx: str | None = None) -> list[Record]: ...
    def feedback(self, since: float, until: float, *, pbx: str | None = None) -> list[Record]: ...
    def save_login(self, agent: str, since: float | None) -> None: ...
    def logins(self) -> dict[str, float]: ...
    def stored(self, table: str, since: float) -> list[StoredRow]: ...
    def quarantine(self, row: StoredRow, error: str) -> None: ...
    def count(self, table: str, *, pbx: str | None = None) -> int: ...
    def first_visit_end(self, *, pbx: str | None = None) -> float | None: ...
    def report_visits(
        self, since: float, until: float, *, pbx: str | None = None, attempts: bool = False
    ) -> Iterator[Record]: ...
    def close(self) -> None: ...


class Checked:
    """The rejection bookkeeping both backends share; a backend supplies _put_quarantine."""

    pbx: str
    nul_free = False  # PostgreSQL's text cannot hold U+0000: such a row is quarantined, not retried

    def __init__(self, pbx: str) -> None:
        self.pbx = pbx
        self.rejected = 0  # records that could not be written, put in quarantine instead
        self.quarantined = 0  # rows moved to quarantine (written or loaded)
        self.on_reject: Callable[[str, Record, str], None] | None = None

    def _put_quarantine(self, source: str, row: str, error: str) -> None:
        raise NotImplementedError

    def _rows(self, table: str, records: list[Record]) -> list[Row]:
        """The rows to insert, each ending with this store's pbx id; a record that cannot be
        stored is quarantined, logged and counted."""
        rows = []
        for record in records:
            try:
                bad = [k for k in NUMBERS[table] if not math.isfinite(float(record[k]))]
                if bad:
                    raise ValueError(f"not a finite number: {', '.join(bad)}")
                row = (*ROW_OF[table](record), self.pbx)
                if self.nul_free and any(isinstance(v, str) and "\x00" in v for v in row):
                    raise ValueError("a NUL character in a text column")
                rows.append(row)
            except (KeyError, TypeError, ValueError) as exc:
                self._reject(table, record, f"{type(exc).__name__}: {exc}")
        return rows

    def _reject(self, table: str, record: Record, error: str) -> None:
        self.rejected += 1
        self.quarantined += 1
        uniqueid = record.get("uniqueid") if isinstance(record, dict) else None
        log.error("store_row_rejected", table=table, uniqueid=uniqueid, error=error)
        self._put_quarantine(table, quarantine_text(record), error)
        if self.on_reject is not None:
            self.on_reject(table, record, error)


# What a report reads of a visit beyond its columns: the numbers kpis_over reads (and ring_attempts
# for agent figures). tests/test_report.py compares reports with kpis_over over whole records,
# so a field kpis_over starts reading and this list lacks fails there, not silently.
REPORT_FIELDS = ("wait_s", "talk_s", "hold_s", "wrap_s", "ring_s", "transfer", "ring_attempts")
REPORT_COLUMNS = "uniqueid, queue, enter_ts, end_ts, outcome, agent, pbx"
_REPORT_KEYS = (*REPORT_COLUMNS.split(", "), *REPORT_FIELDS)


def report_visit(row: Row, fields: list[Any]) -> Record:
    """A visit as a report reads it: its columns, then REPORT_FIELDS' values (JSON values)."""
    # one dict built from one zip: a month's report builds 1.5 M of them
    v = dict(zip(_REPORT_KEYS, (*row, *fields), strict=False))
    pbx = v.pop("pbx")
    if v.get("ring_attempts") is None:  # not asked for (a queue report), or absent
        v["ring_attempts"] = []
    if pbx:
        v["pbx"] = pbx  # a record read for a report carries its PBX when it has one
    return v


def with_pbx(record: Record, pbx: str) -> Record:
    """A record read for a report carries its PBX when it has one (single-PBX output unchanged)."""
    return record | {"pbx": pbx} if pbx else record
