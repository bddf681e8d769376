"""The one engine: AMI input in, finished records and KPIs out, for every path that has AMI.

The live daemon (runtime/track.py), the start after a crash (runtime/recovery.py, the journal's
tail) and `acdbridge replay` (replay.py, a capture or a journal) all feed one `Engine`, in the same
order and with the same receive times, so they produce the same records, KPIs and metrics (a lab
test runs the daemon live and replays its journal). Pure code: no asyncio, no sockets, no wall
clock; time comes from the events' Timestamp or from the receive time passed in.

    AMI bytes + receive time -> FrameParser (one per connection) -> Pipeline (trackers)
        -> Output(kind, record) -> KPI engine (record by record) -> `out` (the store writer, a list)

The live adapter parses its own bytes (it must route replies to its own actions at once, not
behind 50,000 queued events) with the same FrameParser class and the same problem counter, and
hands each message to `feed`; everything after the parser is this object."""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal, NamedTuple

import structlog
from structlog.contextvars import bound_contextvars

from acdbridge.adapters.journal import CONNECT, QUEUE_LOG
from acdbridge.core.ami import AmiMessage, FrameParser
from acdbridge.core.kpi import KpiConfig, KpiEngine
from acdbridge.core.limits import Limits
from acdbridge.core.pipeline import Pipeline, Record
from acdbridge.core.qlines import lines_of

log = structlog.get_logger("acdbridge")
# call_event: call.offered / call.answered for webhooks (no table: only their outbox rows are stored)
Kind = Literal["visit", "agent_state", "ivr", "feedback", "call_event"]
KINDS: tuple[Kind, ...] = ("visit", "agent_state", "ivr", "feedback")


class Output(NamedTuple):
    """A finished record: `kind` names its store table (runtime/writer.py), `record` its row."""

    kind: Kind
    record: Record


OnOutput = Callable[[Output], None]


def call_ids(msg: AmiMessage) -> dict[str, str]:
    headers = msg.headers
    ids = {"uniqueid": headers.get("Uniqueid", ""), "linkedid": headers.get("Linkedid", "")}
    return {k: v for k, v in ids.items() if v}


class Engine:
    def __init__(
        self,
        kpi: KpiConfig,
        wrapup_s: dict[str, float] | None = None,
        out: OnOutput | None = None,
        limits: Limits | None = None,
        on_problem: Callable[[str], None] | None = None,
        call_events: bool = False,
    ) -> None:
        self.kpis = KpiEngine(kpi)
        self.kept: list[Output] = []  # without `out` (a replay): every output, in order
        self.out: OnOutput = out or self.kept.append
        self.pipeline = Pipeline(
            wrapup_s,
            on_visit=lambda r: self._emit("visit", r),
            on_agent_state=lambda r: self._emit("agent_state", r),
            on_problem=on_problem,
            short_abandon_s={q: c.short_abandon_s for q, c in kpi.queues.items()},
            on_leg=lambda r: self._emit("ivr", r),
            on_feedback=lambda r: self._emit("feedback", r),
            limits=limits,
            on_call_event=(lambda r: self._emit("call_event", r)) if call_events else None,
        )
        self.parser: FrameParser = self.pipeline.new_parser()
        self.messages = 0

    # KPIs are kept record by record, live and in a replay alike (no side list fed afterwards)
    def _emit(self, kind: Kind, record: Record) -> None:
        if kind == "visit":
            self.kpis.add_visit(record)
        elif kind == "agent_state":
            self.kpis.add_agent_state(record)
        elif kind == "feedback":
            self.kpis.add_feedback(record)
        self.out(Output(kind, record))

    @property
    def now(self) -> float:
        """The stream's clock: the newest event time seen (0.0 before any)."""
        return self.pipeline.calls.now

    def connected(self) -> None:
        """A new AMI connection: its bytes are parsed afresh (its banner, fed, does the rest)."""
        self.parser = self.pipeline.new_parser()

    def feed(self, msg: AmiMessage, received_at: float) -> None:
        """One parsed message with the time its bytes arrived (0.0: unknown). A tracker bug costs
        this event, never the daemon or a replay; every line logged meanwhile names the call."""
        self.messages += 1
        with bound_contextvars(**call_ids(msg)):
            try:
                self.pipeline.feed(msg, received_at)
            except Exception:
                log.exception("tracker_failed", event=msg.name)

    def feed_bytes(self, data: bytes, received_at: float) -> int:
        """AMI bytes as read from the socket: parsed here, each message fed. Returns how many."""
        messages = self.parser.feed(data)
        for msg in messages:
            self.feed(msg, received_at)
        return len(messages)

    def feed_record(self, kind: int, data: bytes, received_at: float) -> int:
        """One journal record (adapters/journal.py): a new connection, the queue_log lines read
        for a gap, or AMI bytes. Returns the AMI messages fed."""
        if kind == CONNECT:
            self.connected()
            return 0
        if kind == QUEUE_LOG:
            self.backfill(lines_of(data))
            return 0
        return self.feed_bytes(data, received_at)

    def backfill(self, lines: list[str] | None) -> None:
        """A gap's queue_log lines (None: no queue_log): its visits out as queue_log has them."""
        gap = self.pipeline.gap.gap
        try:
            n = self.pipeline.backfill(lines)
        except Exception:  # a bug here costs the gap's rebuilt visits, not the daemon
            log.exception("backfill_failed", lines=len(lines or ()))
            return
        if gap is not None and lines is not None:
            log.info("gap_backfilled", since=gap.since, until=gap.until, lines=len(lines), visits=n,
                     vanished=len(gap.vanished))  # fmt: skip

    def gap_due(self) -> tuple[float, float] | None:
        """A gap a resync just closed, once: (since, until) to read queue_log for."""
        window = self.pipeline.gap.due()
        if window is not None:
            self.pipeline.gap.requested = True
        return window

    def advance(self, ts: float) -> None:
        """The clock moves on with no event: wrap-ups due by `ts` end."""
        self.pipeline.advance(ts)

    def finish(self) -> None:
        """The end of a replay: every call in progress ends as at an orderly stop's end."""
        self.pipeline.finish()

    def records(self, kind: Kind) -> list[Record]:
        """The kept outputs of one kind (a replay), in the order they came."""
        return [o.record for o in self.kept if o.kind == kind]
