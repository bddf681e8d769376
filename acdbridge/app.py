"""The daemon's composition root: builds every part, runs them as named tasks in one TaskGroup,
and stops them in order on SIGTERM so nothing finished is lost.

    AMI client --(bounded queue)--> core pipeline --(bounded queue)--> store writer (thread)

Both queues are bounded; a full queue drops and counts (and logs) rather than growing without
limit. On stop: the AMI link closes, the tracker drains its queue and finishes open wrap-ups, the
writer drains and commits, the store closes."""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import structlog

from acdbridge.adapters.ami import AmiClient
from acdbridge.adapters.callflow import CallFlow
from acdbridge.adapters.fastagi import FastAgiServer
from acdbridge.adapters.http import HttpServer
from acdbridge.adapters.members import MembershipSync
from acdbridge.adapters.metrics import Health, agi_family, build_families, new_registry, render, window_kpis
from acdbridge.adapters.mqtt import MqttPublisher
from acdbridge.adapters.store import SqliteStore, Store
from acdbridge.config import Config, ConfigError, load
from acdbridge.core.ami import AmiMessage
from acdbridge.core.board import agent_boards, queue_boards
from acdbridge.core.kpi import KpiEngine, Kpis
from acdbridge.core.pipeline import Pipeline, Record
from acdbridge.core.tallies import live_gauges

log = structlog.get_logger("acdbridge")
QUEUE_SIZE = 50_000
STALE_STATE_S = 900.0  # a saved state older than this is finished, not resumed
METRICS_REFRESH_S = 1.0  # live gauges and counters
BOARD_DELAY_S = 0.1
CLOCK_MARGIN_S = 2.0
KPI_REFRESH_S = 10.0  # window KPIs cost more (benchmarks/scrape_bench.py): refreshed less often
BATCH = 500
_END = None


@dataclass
class Counters:
    events_dropped: int = 0
    records_dropped: int = 0
    store_write_errors: int = 0
    visits_stored: int = 0
    states_stored: int = 0


def configure_logging() -> None:
    renderer: Any = (
        structlog.dev.ConsoleRenderer() if sys.stderr.isatty() else structlog.processors.JSONRenderer()
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            renderer,
        ],
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
    )


class Daemon:
    def __init__(self, cfg: Config, store: Store | None = None, config_path: Path | None = None) -> None:
        self.cfg = cfg
        self.store: Store = store or SqliteStore(cfg.store.path)
        self.counters = Counters()
        self.events: asyncio.Queue[tuple[AmiMessage, float] | None] = asyncio.Queue(QUEUE_SIZE)
        self.records: asyncio.Queue[tuple[str, Record] | None] = asyncio.Queue(QUEUE_SIZE)
        self.kpis = KpiEngine(cfg.kpi)
        self.short_abandon_s = {q: c.short_abandon_s for q, c in cfg.kpi.queues.items()}
        self.pipeline = Pipeline(
            cfg.wrapup_s,
            on_visit=lambda r: self._put_record("visit", r),
            on_agent_state=lambda r: self._put_record("agent_state", r),
            on_problem=lambda text: log.warning("tracker_problem", problem=text),
            short_abandon_s=self.short_abandon_s,
            on_leg=lambda r: self._put_record("ivr", r),
            on_feedback=lambda r: self._put_record("feedback", r),
        )
        self.ami = AmiClient(cfg.ami, self._put_event)
        self.config_path = config_path
        self.callflow: CallFlow | None = None
        self.agi: FastAgiServer | None = None
        self.members: MembershipSync | None = None
        if cfg.flow is not None:
            self.members = MembershipSync(cfg.flow, self.pipeline.members, self.ami.send, self.store)
            self.callflow = CallFlow(cfg.flow, cfg.kpi.timezone, self.members, self.pipeline, self.ami.send)
            self.agi = FastAgiServer(self.callflow.handlers(), cfg.flow.agi_host, cfg.flow.agi_port,
                                     read_timeout_s=cfg.flow.agi_read_timeout_s,
                                     max_sessions=cfg.flow.agi_max_sessions)  # fmt: skip
        self.stop = asyncio.Event()
        self.resumed = asyncio.Event()
        self._windows: dict[str, Kpis] = {}
        self._windows_at = 0.0
        self.registry, self.collector = new_registry()
        self.http = HttpServer(cfg.http.host, cfg.http.port, lambda: render(self.registry), self._health,
                               board=lambda: self._board_json, token=cfg.http.token)  # fmt: skip
        self._board_json = b'{"queues": {}, "agents": {}}'
        self.mqtt = MqttPublisher(cfg.mqtt) if cfg.mqtt else None
        self.board_dirty = asyncio.Event()

    def _health(self) -> tuple[bool, dict[str, object]]:
        ok = self.ami.stats.connected and self.counters.store_write_errors == 0
        return ok, {"ami_connected": self.ami.stats.connected, "last_ami_error": self.ami.stats.last_error,
                    "store_write_errors": self.counters.store_write_errors}  # fmt: skip

    def publish_metrics(self) -> None:
        """Render the core's state into an immutable list of metric families (on the loop)."""
        calls, agents = self.pipeline.calls, self.pipeline.agents
        now = max(calls.now, time.time())  # windows move on even when no call comes
        live = live_gauges(calls, agents, now)
        drops = {"events": self.counters.events_dropped, "records": self.counters.records_dropped}
        health = Health(self.ami.stats.connected, self.ami.stats.messages, self.ami.stats.reconnects,
                        self.counters.store_write_errors, drops)  # fmt: skip
        if now - self._windows_at >= KPI_REFRESH_S:
            self._windows, self._windows_at = window_kpis(self.kpis, self.cfg.kpi, now), now
        windows = self._windows
        families = build_families(self.pipeline.tallies, live, health, windows, self.cfg.kpi)
        if self.agi is not None:
            families.append(agi_family(vars(self.agi.stats)))
        self.collector.publish(families)

    def refresh_board(self) -> None:
        """Recompute the wallboard view; push it to the web clients when it changed."""
        calls, agents = self.pipeline.calls, self.pipeline.agents
        live = live_gauges(calls, agents, max(calls.now, time.time()))
        queues, people = queue_boards(live, self._windows, self.cfg.kpi), agent_boards(live)
        if self.mqtt is not None:
            self.mqtt.update(queues, people)
        board = {"queues": {q: b.as_dict() for q, b in queues.items()},
                 "agents": {a: {"agent": b.agent, "state": b.state} for a, b in people.items()}}  # fmt: skip
        data = json.dumps(board, ensure_ascii=False, sort_keys=True).encode()
        if data != self._board_json:
            self._board_json = data
            self.http.broadcast(data)

    async def _board(self) -> None:
        """Within BOARD_DELAY_S of an AMI event (and every second, so waits keep counting)."""
        await self.resumed.wait()
        while not self.stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.board_dirty.wait(), 1.0)
            await asyncio.sleep(BOARD_DELAY_S)  # coalesce a burst of events into one update
            self.board_dirty.clear()
            # in a quiet spell, wrap-ups still end: the PBX clock is this host's (loopback AMI);
            # the margin keeps a slightly slow PBX clock from ending them early
            self.pipeline.advance(time.time() - CLOCK_MARGIN_S)
            self.refresh_board()

    async def _metrics(self) -> None:
        await self.resumed.wait()  # never serve counters before they are restored from the store
        await self.http.start()
        try:
            while not self.stop.is_set():
                self.publish_metrics()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.stop.wait(), METRICS_REFRESH_S)
        finally:
            await self.http.stop()

    def _put_event(self, msg: AmiMessage, received_at: float) -> None:
        try:
            self.events.put_nowait((msg, received_at))
        except asyncio.QueueFull:
            self.counters.events_dropped += 1
            if self.counters.events_dropped % 1000 == 1:
                log.error("event_queue_full", dropped=self.counters.events_dropped)

    def _put_record(self, kind: str, record: Record) -> None:
        if kind == "visit":  # the canonical log line: one per finished visit
            log.info("visit", **{k: record[k] for k in ("uniqueid", "queue", "outcome", "wait_s", "agent")})
            self.kpis.add_visit(record)
        elif kind == "ivr":
            log.info(
                "ivr_leg", **{k: record[k] for k in ("uniqueid", "hotline", "outcome", "ivr_s", "queue")}
            )
        elif kind == "feedback":
            log.info("feedback", **{k: record[k] for k in ("uniqueid", "kind", "value", "queue", "agent")})
            self.kpis.add_feedback(record)
        else:
            self.kpis.add_agent_state(record)
        try:
            self.records.put_nowait((kind, record))
        except asyncio.QueueFull:
            self.counters.records_dropped += 1
            log.error("record_queue_full", dropped=self.counters.records_dropped, kind=kind)

    async def _ami(self) -> None:
        try:
            await self.ami.run(self.stop)
        finally:
            await self.events.put(_END)

    async def _resume(self) -> None:
        # counters go on from what is stored, so a restart is no false reset for rate()
        now = time.time()
        recent = now - self.kpis.retention_s
        visits = await asyncio.to_thread(self.store.visits, 0.0, float("inf"))
        for visit in visits:
            self.pipeline.tally(visit)
            if visit["end_ts"] >= recent:
                self.kpis.add_visit(visit)
        for state in await asyncio.to_thread(self.store.agent_states, recent, float("inf")):
            self.kpis.add_agent_state(state)
        for leg in await asyncio.to_thread(self.store.ivr_legs, 0.0, float("inf")):
            self.pipeline.tallies.add_ivr_leg(leg)
        for fb in await asyncio.to_thread(self.store.feedback, 0.0, float("inf")):
            self.pipeline.tallies.add_feedback(fb)
            if fb["ts"] >= recent:
                self.kpis.add_feedback(fb)
        if self.callflow is not None and self.members is not None:
            repeat_since = now - self.callflow.recent.window_s
            for visit in visits:  # in end_ts order, so each number's latest call is seen last
                if visit["end_ts"] >= repeat_since:
                    self.callflow.recent.seen(visit["caller"], visit["enter_ts"])
            await self.members.load()
        saved = await asyncio.to_thread(self.store.load_state)
        if saved is None:
            return
        saved_at, state = saved
        try:
            self.pipeline.restore(state)
        except (KeyError, TypeError, ValueError) as exc:
            log.error("saved_state_unreadable", error=str(exc))
            return
        age = time.time() - saved_at
        log.info("resumed", calls=len(self.pipeline.calls.active), age_s=round(age, 1))
        if age > STALE_STATE_S:  # too old to resume: report what had finished talking, drop the rest
            self.pipeline.finish()
            self.pipeline.calls.active.clear()

    async def _track(self) -> None:
        try:
            await self._resume()
        finally:
            self.resumed.set()
        while (item := await self.events.get()) is not _END:
            msg, received_at = item
            try:
                self.pipeline.feed(msg, received_at)
            except Exception:  # a tracker bug must cost one event, not the daemon
                log.exception("tracker_failed", event=msg.name)
            self.board_dirty.set()
        # an orderly stop: calls in progress are saved, so a restart loses none of them
        await asyncio.to_thread(self.store.save_state, time.time(), self.pipeline.snapshot())
        await self.records.put(_END)

    async def _write(self) -> None:
        ended = False
        while not ended:
            item = await self.records.get()
            batch = [item]
            while len(batch) < BATCH and not self.records.empty():
                batch.append(self.records.get_nowait())
            ended = _END in batch
            items = [it for it in batch if it is not None]
            visits = [r for kind, r in items if kind == "visit"]
            states = [r for kind, r in items if kind == "agent_state"]
            legs = [r for kind, r in items if kind == "ivr"]
            feedback = [r for kind, r in items if kind == "feedback"]
            if visits or states or legs or feedback:
                await self._store_batch(visits, states, legs, feedback)

    async def _store_batch(
        self, visits: list[Record], states: list[Record], legs: list[Record], feedback: list[Record]
    ) -> None:
        for attempt in range(3):
            try:
                if visits or states:
                    await asyncio.to_thread(self.store.write, visits, states)
                    self.counters.visits_stored += len(visits)
                    self.counters.states_stored += len(states)
                    visits, states = [], []  # stored: a retry of the rest must not count them twice
                if legs or feedback:
                    await asyncio.to_thread(self.store.write_flow, legs, feedback)
                return
            except Exception as exc:  # disk full, locked database...: retry, then count the loss
                self.counters.store_write_errors += 1
                log.error("store_write_failed", error=str(exc), attempt=attempt + 1, visits=len(visits))
                await asyncio.sleep(0.5 * (attempt + 1))

    def reload(self) -> None:
        """SIGHUP: read the config again; agent profiles, hotlines and routing apply at once. The
        rest (ports, store) needs a restart. A broken file is reported and the old config kept."""
        if self.config_path is None or self.callflow is None:
            return
        try:
            cfg = load(self.config_path)
        except ConfigError as exc:
            log.error("reload_failed", problem=str(exc))
            return
        if cfg.flow is None:
            log.error(
                "reload_failed", problem="the new config has no [agi] section; keeping the old call flow"
            )
            return
        self.callflow.reload(cfg.flow)
        log.info("reloaded", agents=len(cfg.flow.profiles), hotlines=sorted(cfg.flow.hotlines))

    async def _fastagi(self, server: FastAgiServer) -> None:
        await self.resumed.wait()
        await server.serve_forever(self.stop)

    async def _member_sync(self, members: MembershipSync) -> None:
        await self.resumed.wait()
        await members.run(self.stop)

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.stop.set)
        loop.add_signal_handler(signal.SIGHUP, self.reload)
        log.info(
            "daemon_start", ami=f"{self.cfg.ami.host}:{self.cfg.ami.port}", store=str(self.cfg.store.path)
        )
        try:
            async with asyncio.TaskGroup() as tg:
                tg.create_task(self._ami(), name="ami")
                tg.create_task(self._track(), name="tracker")
                tg.create_task(self._write(), name="store-writer")
                tg.create_task(self._metrics(), name="metrics-http")
                tg.create_task(self._board(), name="wallboard")
                if self.mqtt is not None:
                    tg.create_task(self.mqtt.run(self.stop), name="mqtt")
                if self.agi is not None and self.members is not None:
                    tg.create_task(self._fastagi(self.agi), name="fastagi")
                    tg.create_task(self._member_sync(self.members), name="member-sync")
        finally:
            for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
                loop.remove_signal_handler(sig)
            await asyncio.to_thread(self.store.close)
            ignored = self.pipeline.calls.ignored + self.pipeline.agents.ignored
            log.info("daemon_stop", **vars(self.counters), ami_reconnects=self.ami.stats.reconnects,
                     ami_messages=self.ami.stats.messages, ami_malformed=self.ami.stats.malformed,
                     ignored_transitions=dict(ignored))  # fmt: skip


def run(cfg: Config, config_path: Path | None = None) -> int:
    configure_logging()
    asyncio.run(Daemon(cfg, config_path=config_path).run())
    return 0
