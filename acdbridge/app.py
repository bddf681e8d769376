"""The daemon's composition root: builds every part, runs them as named, supervised tasks in one
TaskGroup, and stops them in order on SIGTERM so nothing finished is lost.

    AMI client --(bounded queue)--> core pipeline --(bounded queue)--> store writer (thread)
        '--> journal (thread, group commit)   checkpoints <-- tracker, at journal marks

Start: the caller directory is checked, the store opened and locked, the last checkpoint and
the journal after it replayed (or, with no checkpoint yet, the stored rows loaded; bad ones
quarantined), a new journal segment opened, the listeners bound, then systemd hears READY=1.
Any failure there is one StartupError line (acdbridge/errors.py). Stop: the AMI link closes,
the tracker drains its queue and saves the calls in progress (and a checkpoint), the writer
drains and commits, the store closes."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import signal
import sys
import time
from collections.abc import Awaitable, Callable
from functools import partial
from pathlib import Path
from typing import Any

import structlog

from acdbridge.adapters.ami import AmiClient
from acdbridge.adapters.callflow import CallFlow
from acdbridge.adapters.fastagi import FastAgiServer
from acdbridge.adapters.http import HttpServer
from acdbridge.adapters.journal import Journal, Mark
from acdbridge.adapters.members import MembershipSync
from acdbridge.adapters.metrics import (
    DaemonHealth,
    Health,
    agi_family,
    build_families,
    daemon_families,
    http_family,
    new_registry,
    render,
    window_kpis,
)
from acdbridge.adapters.mqtt import MqttPublisher
from acdbridge.adapters.store import Store, open_store
from acdbridge.adapters.systemd import Notifier
from acdbridge.config import Config
from acdbridge.core.ami import AmiMessage
from acdbridge.core.board import agent_boards, queue_boards
from acdbridge.core.kpi import KpiEngine, Kpis
from acdbridge.core.pipeline import Pipeline
from acdbridge.core.tallies import live_gauges
from acdbridge.core.values import PROBLEM_KINDS
from acdbridge.errors import AgiPortInUse, HttpPortInUse, StartupError
from acdbridge.runtime import health as rt_health
from acdbridge.runtime.checkpoint import Checkpointer
from acdbridge.runtime.gapread import GapReader
from acdbridge.runtime.reload import Reloader
from acdbridge.runtime.resume import Resumer
from acdbridge.runtime.startup import check_directory, listen
from acdbridge.runtime.supervise import every, supervise
from acdbridge.runtime.track import Event, Recorder, call_ids_of_agi, track
from acdbridge.runtime.writer import StoreWriter

log = structlog.get_logger("acdbridge")
QUEUE_SIZE = 50_000
METRICS_REFRESH_S = 1.0  # live gauges and counters
BOARD_DELAY_S = 0.1
CLOCK_MARGIN_S = 2.0
KPI_REFRESH_S = 10.0  # window KPIs cost more (benchmarks/scrape_bench.py): refreshed less often


def configure_logging() -> None:
    tty = sys.stderr.isatty()
    renderer: Any = structlog.dev.ConsoleRenderer() if tty else structlog.processors.JSONRenderer()
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            *([] if tty else [structlog.processors.format_exc_info]),  # a traceback as one JSON field
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(logging.INFO),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
    )
    # panoramisk says "Not able to reconnect" in plain text at every attempt; the reconnect loop
    # already reports each new error once, as JSON
    logging.getLogger("panoramisk").setLevel(logging.ERROR)


class Daemon:
    def __init__(self, cfg: Config, store: Store | None = None, config_path: Path | None = None) -> None:
        self.cfg = cfg
        self.store: Store = store or open_store(cfg.store, exclusive=True)  # SQLite, or PostgreSQL by url
        self.events: asyncio.Queue[Event] = asyncio.Queue(QUEUE_SIZE)
        self.events_dropped = 0
        self.stop = asyncio.Event()
        self.writer = StoreWriter(self.store, QUEUE_SIZE, self.stop)
        self.kpis = KpiEngine(cfg.kpi)
        record = Recorder(self.kpis, self.writer)
        self.pipeline = Pipeline(
            cfg.wrapup_s,
            on_visit=lambda r: record("visit", r),
            on_agent_state=lambda r: record("agent_state", r),
            on_problem=lambda text: log.warning("tracker_problem", problem=text),
            short_abandon_s={q: c.short_abandon_s for q, c in cfg.kpi.queues.items()},
            on_leg=lambda r: record("ivr", r),
            on_feedback=lambda r: record("feedback", r),
            limits=cfg.limits,
        )
        self.journal, self.checkpoints = self._journal(cfg)
        self.gaps = GapReader(cfg.ami.queue_log, self.journal, self.events)
        self.ami = AmiClient(
            cfg.ami,
            self._put_event,
            self.journal,
            self._put_mark,
            self.checkpoints,
            count=self.pipeline.problems.count,
        )
        self.callflow: CallFlow | None = None
        self.agi: FastAgiServer | None = None
        self.members: MembershipSync | None = None
        if cfg.flow is not None:
            self.members = MembershipSync(cfg.flow, self.pipeline.members, self.ami.send, self.store)
            self.callflow = CallFlow(cfg.flow, cfg.kpi.timezone, self.members, self.pipeline, self.ami.send)
            handlers = {name: call_ids_of_agi(h) for name, h in self.callflow.handlers().items()}
            self.agi = FastAgiServer(handlers, cfg.flow.agi_host, cfg.flow.agi_port,
                                     read_timeout_s=cfg.flow.agi_read_timeout_s,
                                     max_sessions=cfg.flow.agi_max_sessions)  # fmt: skip
        self.restarts: dict[str, int] = {}
        self.reloader = Reloader(config_path, self.callflow)
        self.lag = rt_health.LoopLag()
        self.notifier = Notifier()
        self._windows: dict[str, Kpis] = {}
        self._waiting = 0
        self.registry, self.collector = new_registry(cfg.store.pbx)
        self.http = HttpServer(cfg.http.host, cfg.http.port, lambda: render(self.registry), self._health,
                               board=lambda: self._board_json, token=cfg.http.token)  # fmt: skip
        self._board_json = b'{"queues": {}, "agents": {}}'
        self.mqtt = MqttPublisher(cfg.mqtt) if cfg.mqtt else None
        self.board_dirty = asyncio.Event()

    def _journal(self, cfg: Config) -> tuple[Journal | None, Checkpointer | None]:
        j = cfg.journal
        if j is None:
            return None, None
        journal = Journal(j.dir, fsync_interval_s=j.fsync_interval_ms / 1000,
                          segment_bytes=int(j.segment_mb * (1 << 20)))  # fmt: skip
        return journal, Checkpointer(journal, self.writer, self.pipeline, j.checkpoint_path,
                                     j.checkpoint_s, j.retention_days * 86400)  # fmt: skip

    def _health(self) -> tuple[bool, dict[str, object]]:
        failing = self.writer.stats.failing  # not the error count: a store back from an outage is well
        return self.ami.stats.connected and not failing, {
            "ami_connected": self.ami.stats.connected, "last_ami_error": self.ami.stats.last_error,
            "store_failing": failing, "store_write_errors": self.writer.stats.store_write_errors,
            "task_restarts": sum(self.restarts.values()),
        }  # fmt: skip

    def input_problems(self) -> dict[str, int]:
        """Every kind from the start (so increase() sees the first), and what the KPI engine and
        the tallies left out or folded away beside what the trackers counted."""
        counts = dict.fromkeys(PROBLEM_KINDS, 0) | self.pipeline.problem_counts
        counts["kpi_record_rejected"] = self.kpis.rejected
        counts["kpi_record_evicted"] = self.kpis.evicted
        counts["tally_series_overflow"] = self.pipeline.tallies.overflowed
        return counts

    def daemon_health(self) -> DaemonHealth:
        w, http = self.writer.stats, getattr(self.http, "stats", None)
        return DaemonHealth(
            self.lag.histogram, w.write_seconds,
            queue_depth={"events": self.events.qsize(), "records": self.writer.queue.qsize()},
            task_restarts=dict(self.restarts), config_reloads=dict(self.reloader.results),
            input_problems=self.input_problems(),
            store_quarantined=getattr(self.store, "quarantined", 0),
            store_rows_rejected=getattr(self.store, "rejected", 0), records_lost=w.records_lost,
            mqtt=(self.mqtt.stats.connected, self.mqtt.backlog) if self.mqtt else None,
            sse=(getattr(http, "streams", 0), getattr(http, "sse_dropped", 0)) if http else None,
            journal=dict(vars(self.journal.stats)) if self.journal is not None else None,
        )  # fmt: skip

    def publish_metrics(self) -> None:
        """Render the core's state into an immutable list of metric families (on the loop)."""
        calls, agents = self.pipeline.calls, self.pipeline.agents
        live = live_gauges(calls, agents, max(calls.now, time.time()))  # windows move on with no call
        self._waiting = sum(live.calls_waiting.values())  # for systemd's STATUS= line
        drops = {"events": self.events_dropped, "records": self.writer.stats.records_dropped}
        health = Health(self.ami.stats.connected, self.ami.stats.messages, self.ami.stats.reconnects,
                        self.writer.stats.store_write_errors, drops)  # fmt: skip
        families = build_families(self.pipeline.tallies, live, health, self._windows, self.cfg.kpi)
        families += daemon_families(self.daemon_health())
        if self.agi is not None:
            families.append(agi_family(vars(self.agi.stats)))
        if (http := getattr(self.http, "stats", None)) is not None:
            families.append(http_family(vars(http), getattr(http, "GAUGES", ())))
        self.collector.publish(families)

    def refresh_kpis(self) -> None:
        now = max(self.pipeline.calls.now, time.time())
        self._windows = window_kpis(self.kpis, self.cfg.kpi, now)

    def refresh_board(self) -> None:
        """Recompute the wallboard view; push it to the web clients when it changed."""
        calls, agents = self.pipeline.calls, self.pipeline.agents
        live = live_gauges(calls, agents, max(calls.now, time.time()))
        queues, people = queue_boards(live, self._windows, self.cfg.kpi), agent_boards(live)
        if self.mqtt is not None:
            self.mqtt.update(queues, people)
        board = {"queues": {q: b.as_dict() for q, b in queues.items()},
                 "agents": {a: {"agent": b.agent, "state": b.state} for a, b in people.items()}}  # fmt: skip
        data = json.dumps(board, ensure_ascii=False, sort_keys=True, allow_nan=False).encode()
        if data != self._board_json:
            self._board_json = data
            self.http.broadcast(data)

    async def _board(self) -> None:
        """Within BOARD_DELAY_S of an AMI event (and every second, so waits keep counting)."""
        while not self.stop.is_set():
            await _first(1.0, self.board_dirty.wait(), self.stop.wait())
            await asyncio.sleep(BOARD_DELAY_S)  # coalesce a burst of events into one update
            self.board_dirty.clear()
            # in a quiet spell, wrap-ups still end: the PBX clock is this host's (loopback AMI);
            # the margin keeps a slightly slow PBX clock from ending them early
            self.pipeline.advance(time.time() - CLOCK_MARGIN_S)
            self.refresh_board()

    def _put_event(self, msg: AmiMessage, received_at: float) -> None:
        try:
            self.events.put_nowait((msg, received_at))
        except asyncio.QueueFull:
            self.events_dropped += 1
            if self.events_dropped % 1000 == 1:
                log.error("event_queue_full", dropped=self.events_dropped)

    def _put_mark(self, mark: Mark) -> None:
        with contextlib.suppress(asyncio.QueueFull):  # the events around it are dropped and counted
            self.events.put_nowait(mark)

    async def _ami(self) -> None:
        try:
            await supervise("ami", lambda: self.ami.run(self.stop), self.stop, self.restarts)
        finally:
            await self.events.put(None)

    async def _track(self) -> None:
        on_mark = self.checkpoints.at_mark if self.checkpoints else None
        tracker = lambda: track(self.events, self.pipeline, self.board_dirty.set, on_mark, self.gaps)  # noqa: E731
        await supervise("tracker", tracker, self.stop, self.restarts)
        # an orderly stop: calls in progress are saved, so a restart loses none of them
        await asyncio.to_thread(self.store.save_state, time.time(), self.pipeline.snapshot())
        if self.checkpoints is not None:  # and the checkpoint covers the whole journal
            await self.checkpoints.final()
        await self.writer.end()

    def _status(self) -> str:
        stats = self.ami.stats  # waiting: from the last metrics pass, not a gauge pass of its own
        return rt_health.status_line(stats.connected, stats.last_error, len(self.pipeline.calls.active),
                                     self._waiting)  # fmt: skip

    async def _start(self) -> None:
        """Load the store, then bind the listeners: /metrics never serves a count not yet restored."""
        await Resumer(self.store, self.pipeline, self.kpis, self.callflow, self.members,
                      journal=self.cfg.journal, writer=self.writer).run()  # fmt: skip
        if self.journal is not None and self.checkpoints is not None:
            await self._open_journal(self.journal, self.checkpoints)
        try:  # the first /metrics already has the restored counters
            self.publish_metrics()
        except Exception:  # the metrics task says it again, supervised; the start goes on
            log.exception("metrics_failed_at_start")
        cfg = self.cfg
        await listen("HTTP", f"{cfg.http.host}:{cfg.http.port}", self.http.start, HttpPortInUse)
        if self.agi is not None and cfg.flow is not None:
            await listen("FastAGI", f"{cfg.flow.agi_host}:{cfg.flow.agi_port}", self.agi.start, AgiPortInUse)
        self.notifier.ready()

    async def _open_journal(self, journal: Journal, checkpoints: Checkpointer) -> None:
        """A new segment, and at once a checkpoint of the state recovered: a second crash starts
        from here, and what was replayed need not be kept (beyond the retention)."""
        try:
            await asyncio.to_thread(journal.open)
        except OSError as exc:
            why = exc.strerror or exc
            raise StartupError(f"cannot open the journal in {journal.directory}: {why}") from exc
        await checkpoints.final()

    def _tasks(self) -> dict[str, Callable[[], Awaitable[None]]]:
        stop = self.stop
        tasks: dict[str, Callable[[], Awaitable[None]]] = {
            "store-writer": self.writer.run,
            "metrics": lambda: every(METRICS_REFRESH_S, stop, self.publish_metrics),
            "kpi-refresh": lambda: every(KPI_REFRESH_S, stop, self.refresh_kpis),
            "wallboard": self._board,
            "loop-lag": lambda: self.lag.run(stop),
            "systemd": lambda: self.notifier.run(stop, self._status),
        }
        if self.checkpoints is not None:
            tasks["checkpoint"] = partial(self.checkpoints.run, stop)
        if self.mqtt is not None:
            tasks["mqtt"] = partial(self.mqtt.run, stop)
        if self.agi is not None and self.members is not None:
            tasks["fastagi"] = partial(_wait, stop)  # the server serves on its own; closed at the end
            tasks["member-sync"] = partial(self.members.run, stop)
        return tasks

    def _on_stop_signal(self) -> None:
        if not self.stop.is_set():
            self.notifier.stopping()
            self.stop.set()

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self._on_stop_signal)
        loop.add_signal_handler(signal.SIGHUP, self.reloader.reload)
        log.info(
            "daemon_start", ami=f"{self.cfg.ami.host}:{self.cfg.ami.port}", store=self.cfg.store.describe()
        )
        try:
            await self._start()
            tasks = self._tasks()
            # every task's series exists from the start, so increase() sees the first restart
            self.restarts.update(dict.fromkeys(("ami", "tracker", *tasks), 0))
            async with asyncio.TaskGroup() as tg:
                tg.create_task(self._ami(), name="ami")
                tg.create_task(self._track(), name="tracker")
                for name, body in tasks.items():
                    tg.create_task(supervise(name, body, self.stop, self.restarts), name=name)
        finally:
            for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
                loop.remove_signal_handler(sig)
            self.notifier.stopping()
            await self._close()

    async def _close(self) -> None:
        if self.agi is not None:
            await self.agi.close()
        await self.http.stop()
        await asyncio.to_thread(self.store.close)
        if self.journal is not None:
            await asyncio.to_thread(self.journal.close)
        self.notifier.close()
        ignored = self.pipeline.calls.ignored + self.pipeline.agents.ignored
        stats = vars(self.writer.stats) | {"write_seconds": self.writer.stats.write_seconds.total}
        log.info("daemon_stop", **stats, events_dropped=self.events_dropped, task_restarts=self.restarts,
                 ami_reconnects=self.ami.stats.reconnects, ami_messages=self.ami.stats.messages,
                 ami_malformed=self.ami.stats.malformed, ignored_transitions=dict(ignored),
                 journal=vars(self.journal.stats) if self.journal else None)  # fmt: skip


async def _wait(stop: asyncio.Event) -> None:
    await stop.wait()


async def _first(seconds: float, *waits: Awaitable[object]) -> None:
    tasks = [asyncio.ensure_future(w) for w in waits]
    try:
        await asyncio.wait(tasks, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()


def run(cfg: Config, config_path: Path | None = None) -> int:
    configure_logging()
    check_directory(cfg.flow)
    asyncio.run(Daemon(cfg, config_path=config_path).run())
    return 0
