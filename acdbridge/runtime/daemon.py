"""The daemon at run time: the parts app.py built, run as named, supervised tasks in one
TaskGroup, stopped in order on SIGTERM so nothing finished is lost.

    AMI client --(Inbox, bounded)--> engine --(bounded queue)--> store writer (thread)
        '--> journal (thread, group commit)   checkpoints <-- engine state, at journal marks

Start: the store's counters and the calls in progress come back (the last checkpoint and the
journal after it, or the stored rows), a new journal segment opens, the listeners bind, then
systemd hears READY=1. Any failure there is one StartupError line (acdbridge/errors.py). Stop: the
AMI link closes, the tracker drains its queue and saves the calls in progress (and a checkpoint),
the writer drains and commits, the store closes."""

from __future__ import annotations

import asyncio
import signal
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from functools import partial

import structlog

from acdbridge.adapters.ami import AmiClient
from acdbridge.adapters.callflow import CallFlow
from acdbridge.adapters.fastagi import FastAgiServer
from acdbridge.adapters.journal import Journal
from acdbridge.adapters.members import MembershipSync
from acdbridge.adapters.metrics import SnapshotCollector
from acdbridge.adapters.mqtt import MqttPublisher
from acdbridge.adapters.store import Store
from acdbridge.adapters.systemd import Notifier
from acdbridge.adapters.web.server import WebServer
from acdbridge.adapters.webhooks import WebhookSender
from acdbridge.config import Config
from acdbridge.errors import AgiPortInUse, HttpPortInUse, StartupError
from acdbridge.runtime import health as rt_health
from acdbridge.runtime.checkpoint import Checkpointer
from acdbridge.runtime.engine import Engine
from acdbridge.runtime.forecastjob import ForecastJob
from acdbridge.runtime.gapread import GapReader
from acdbridge.runtime.privacy import PrivacyJob
from acdbridge.runtime.recordings import RecordingIndexer
from acdbridge.runtime.reload import Reloader
from acdbridge.runtime.reportjob import ReportJob
from acdbridge.runtime.resume import Resumer
from acdbridge.runtime.selfmetrics import SelfMetrics
from acdbridge.runtime.startup import listen
from acdbridge.runtime.supervise import every, supervise
from acdbridge.runtime.track import Inbox, track
from acdbridge.runtime.views import Views
from acdbridge.runtime.writer import StoreWriter

log = structlog.get_logger("acdbridge")
METRICS_REFRESH_S = 1.0  # live gauges and counters
KPI_REFRESH_S = 10.0  # window KPIs cost more (benchmarks/scrape_bench.py): refreshed less often
BOARD_DELAY_S = 0.1
CLOCK_MARGIN_S = 2.0


@dataclass
class Parts:
    """Everything the daemon runs, built by app.py (the composition root)."""

    cfg: Config
    store: Store
    writer: StoreWriter
    engine: Engine
    views: Views
    inbox: Inbox
    ami: AmiClient
    http: WebServer
    collector: SnapshotCollector
    stop: asyncio.Event
    restarts: dict[str, int]
    reloader: Reloader
    journal: Journal | None = None
    checkpoints: Checkpointer | None = None
    gaps: GapReader | None = None
    callflow: CallFlow | None = None
    agi: FastAgiServer | None = None
    members: MembershipSync | None = None
    mqtt: MqttPublisher | None = None
    privacy: PrivacyJob | None = None  # the daily job on callers' data ([privacy])
    reports: ReportJob | None = None  # [[reports.schedule]]: made, written, mailed
    recordings: RecordingIndexer | None = None  # a hotline records: the files indexed, expired
    webhooks: WebhookSender | None = None  # [[webhooks]]: the outbox delivered (docs/webhooks.md)
    forecast: ForecastJob | None = None  # the "next" staffing's history, from the store
    lag: rt_health.LoopLag = field(default_factory=rt_health.LoopLag)
    notifier: Notifier = field(default_factory=Notifier)


class Daemon:
    def __init__(self, parts: Parts) -> None:
        self.p = parts
        self.stop, self.restarts, self.http = parts.stop, parts.restarts, parts.http
        self.board_dirty = asyncio.Event()
        self.board_urgent = asyncio.Event()  # a phone rings: its screen pop skips the coalescing delay
        self.self_metrics = SelfMetrics(parts)

    def publish_metrics(self) -> None:
        """The core's families and the daemon's own, as one immutable snapshot (on the loop)."""
        self.p.collector.publish(self.self_metrics.families(self.clock()))

    def clock(self) -> float:
        """The stream's clock, or the host's when it is later: windows move on with no call."""
        return max(self.p.engine.now, time.time())

    def refresh_kpis(self) -> None:
        self.p.views.refresh_windows(self.clock())

    def refresh_board(self) -> None:
        """Recompute the wallboard view; push it to the web clients (and MQTT) when it changed."""
        board = self.p.views.board(self.clock())
        if self.p.mqtt is not None:
            self.p.mqtt.update(board.queues, board.agents)
        if board.changed:
            self.http.broadcast(board.data)
        self.http.tick()  # an agent's desk may change with the board unchanged (a pause's reason)

    async def _board(self) -> None:
        """Within BOARD_DELAY_S of an AMI event (and every second, so waits keep counting)."""
        while not self.stop.is_set():
            await _first(1.0, self.board_dirty.wait(), self.stop.wait())
            # coalesce a burst of events into one update, unless (or until) a phone rings
            await _first(BOARD_DELAY_S, self.board_urgent.wait())
            self.board_dirty.clear()
            self.board_urgent.clear()
            # in a quiet spell, wrap-ups still end: the PBX clock is this host's (loopback AMI);
            # the margin keeps a slightly slow PBX clock from ending them early
            self.p.engine.advance(time.time() - CLOCK_MARGIN_S)
            self.refresh_board()

    async def _ami(self) -> None:
        try:
            await supervise("ami", lambda: self.p.ami.run(self.stop), self.stop, self.restarts)
        finally:
            await self.p.inbox.queue.put(None)

    def _fed(self, event: str) -> None:
        """The board (and the desks) is due; at once when an agent's phone starts ringing."""
        if event == "AgentCalled":
            self.board_urgent.set()
        self.board_dirty.set()

    async def _track(self) -> None:
        p = self.p
        on_mark = p.checkpoints.at_mark if p.checkpoints else None
        tracker = lambda: track(p.inbox.queue, p.engine, self._fed, on_mark, p.gaps)  # noqa: E731
        await supervise("tracker", tracker, self.stop, self.restarts)
        # an orderly stop: calls in progress are saved, so a restart loses none of them
        await asyncio.to_thread(p.store.save_state, time.time(), p.engine.pipeline.snapshot())
        if p.checkpoints is not None:  # and the checkpoint covers the whole journal
            await p.checkpoints.final()
        await p.writer.end()

    def _status(self) -> str:
        stats = self.p.ami.stats  # waiting: from the last metrics pass, not a gauge pass of its own
        calls = len(self.p.engine.pipeline.calls.active)
        return rt_health.status_line(stats.connected, stats.last_error, calls, self.p.views.waiting)

    async def _start(self) -> None:
        """Load the store, then bind the listeners: /metrics never serves a count not yet restored."""
        p, cfg = self.p, self.p.cfg
        await Resumer(p.store, p.engine, p.callflow, p.members, journal=cfg.journal, writer=p.writer).run()
        if p.journal is not None and p.checkpoints is not None:
            await _open_journal(p.journal, p.checkpoints)
        try:  # the first /metrics already has the restored counters
            self.publish_metrics()
        except Exception:  # the metrics task says it again, supervised; the start goes on
            log.exception("metrics_failed_at_start")
        await listen("HTTP", f"{cfg.http.host}:{cfg.http.port}", self.http.start, HttpPortInUse)
        if p.agi is not None and cfg.flow is not None:
            await listen("FastAGI", f"{cfg.flow.agi_host}:{cfg.flow.agi_port}", p.agi.start, AgiPortInUse)
        p.notifier.ready()

    def _tasks(self) -> dict[str, Callable[[], Awaitable[None]]]:
        p, stop = self.p, self.stop
        tasks: dict[str, Callable[[], Awaitable[None]]] = {
            "store-writer": p.writer.run,
            "metrics": lambda: every(METRICS_REFRESH_S, stop, self.publish_metrics),
            "kpi-refresh": lambda: every(KPI_REFRESH_S, stop, self.refresh_kpis),
            "wallboard": self._board,
            "loop-lag": lambda: p.lag.run(stop),
            "systemd": lambda: p.notifier.run(stop, self._status),
        }
        if p.checkpoints is not None:
            tasks["checkpoint"] = partial(p.checkpoints.run, stop)
        if p.mqtt is not None:
            tasks["mqtt"] = partial(p.mqtt.run, stop)
        if p.privacy is not None:
            tasks["privacy"] = partial(p.privacy.run, stop)
        if p.reports is not None:
            tasks["reports"] = partial(p.reports.run, stop)
        if p.recordings is not None:
            tasks["recordings"] = partial(p.recordings.run, stop)
        if p.webhooks is not None:
            tasks["webhooks"] = partial(p.webhooks.run, stop)
        if p.forecast is not None:
            tasks["forecast"] = partial(p.forecast.run, stop)
        if p.agi is not None and p.members is not None:
            tasks["fastagi"] = partial(_wait, stop)  # the server serves on its own; closed at the end
            tasks["member-sync"] = partial(p.members.run, stop)
        return tasks

    def _on_stop_signal(self) -> None:
        if not self.stop.is_set():
            self.p.notifier.stopping()
            self.stop.set()

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self._on_stop_signal)
        loop.add_signal_handler(signal.SIGHUP, self.p.reloader.reload)
        cfg = self.p.cfg
        log.info("daemon_start", ami=f"{cfg.ami.host}:{cfg.ami.port}", store=cfg.store.describe())
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
            self.p.notifier.stopping()
            await self._close()

    async def _close(self) -> None:
        p = self.p
        if p.agi is not None:
            await p.agi.close()
        await self.http.stop()
        await asyncio.to_thread(p.store.close)
        if p.journal is not None:
            await asyncio.to_thread(p.journal.close)
        p.notifier.close()
        pipeline = p.engine.pipeline
        ignored = pipeline.calls.ignored + pipeline.agents.ignored
        stats = vars(p.writer.stats) | {"write_seconds": p.writer.stats.write_seconds.total}
        ami = p.ami.stats
        log.info("daemon_stop", **stats, events_dropped=p.inbox.dropped, task_restarts=self.restarts,
                 ami_reconnects=ami.reconnects, ami_messages=ami.messages, ami_malformed=ami.malformed,
                 ignored_transitions=dict(ignored),
                 journal=vars(p.journal.stats) if p.journal else None)  # fmt: skip


async def _open_journal(journal: Journal, checkpoints: Checkpointer) -> None:
    """A new segment, and at once a checkpoint of the state recovered: a second crash starts
    from here, and what was replayed need not be kept (beyond the retention)."""
    try:
        await asyncio.to_thread(journal.open)
    except OSError as exc:
        why = exc.strerror or exc
        raise StartupError(f"cannot open the journal in {journal.directory}: {why}") from exc
    await checkpoints.final()


async def _wait(stop: asyncio.Event) -> None:
    await stop.wait()


async def _first(seconds: float, *waits: Awaitable[object]) -> None:
    tasks = [asyncio.ensure_future(w) for w in waits]
    try:
        await asyncio.wait(tasks, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()
