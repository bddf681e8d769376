"""One path from AMI bytes to records, shared by the live daemon and `acdbridge replay`."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from acdbridge.core.agents import AgentTracker
from acdbridge.core.ami import AmiMessage, FrameParser
from acdbridge.core.calls import CallTracker
from acdbridge.core.tallies import Tallies

Record = dict[str, Any]
DEFAULT_SHORT_ABANDON_S = 5.0


class Pipeline:
    def __init__(
        self,
        wrapup_s: dict[str, float] | None = None,
        on_visit: Callable[[Record], None] | None = None,
        on_problem: Callable[[str], None] | None = None,
        on_agent_state: Callable[[Record], None] | None = None,
        short_abandon_s: dict[str, float] | None = None,
    ) -> None:
        self.tallies = Tallies()
        self.short_abandon_s = short_abandon_s or {}
        self.parser = FrameParser(on_error=on_problem)
        self.agents = AgentTracker(on_state=on_agent_state)
        self.calls = CallTracker(
            wrapup_s, on_visit=self._visit_done, on_problem=on_problem, on_wrap_end=self.agents.wrap_ended
        )
        self._on_visit = on_visit

    def _visit_done(self, record: Record) -> None:
        # an agent rung for this caller but not the one who answered stops ringing now
        for attempt in record["ring_attempts"]:
            if attempt["result"] in ("canceled", "dumped"):
                self.agents.ring_canceled(attempt["interface"], attempt["end_ts"])
        self.tally(record)
        if self._on_visit is not None:
            self._on_visit(record)

    def tally(self, record: Record) -> None:
        """Count a finished visit in the Prometheus tallies (also a stored one, at start-up)."""
        self.tallies.add_visit(record, self.short_abandon_s.get(record["queue"], DEFAULT_SHORT_ABANDON_S))

    def new_connection(self) -> None:
        """A new AMI connection starts with a banner: parse it afresh; tracked state stays."""
        self.parser = FrameParser(on_error=self.parser.on_error)

    def feed_bytes(self, data: bytes, received_at: float = 0.0) -> list[AmiMessage]:
        messages = self.parser.feed(data)
        for msg in messages:
            self.feed(msg, received_at)
        return messages

    def feed(self, msg: AmiMessage, received_at: float = 0.0) -> None:
        self.calls.feed(msg, received_at)
        self.agents.feed(msg, self.calls.now if "Timestamp" in msg.headers else received_at)

    def snapshot(self) -> Record:
        return {"version": 1, "calls": self.calls.snapshot(), "agents": self.agents.snapshot()}

    def restore(self, snap: Record) -> None:
        if snap.get("version") != 1:
            raise ValueError(f"unknown tracker snapshot version {snap.get('version')!r}")
        self.calls.restore(snap["calls"])
        self.agents.restore(snap["agents"])

    def advance(self, ts: float) -> None:
        """The clock moves on with no event (see CallTracker.advance)."""
        self.calls.advance(ts)

    def finish(self) -> None:
        self.calls.finish()
        self.agents.finish(self.calls.now)
