"""The composition root: builds each part from its own config section and hands them to the
daemon (runtime/daemon.py runs them). Nothing here decides anything about calls."""

from __future__ import annotations

import asyncio
import logging
import sys
import time
from pathlib import Path
from typing import Any, cast

import structlog
from prometheus_client import CollectorRegistry

from acdbridge.access.model import AccessStore
from acdbridge.access.service import AccessService
from acdbridge.adapters.ami import AmiClient
from acdbridge.adapters.callflow import CallFlow
from acdbridge.adapters.fastagi import FastAgiServer
from acdbridge.adapters.journal import Journal
from acdbridge.adapters.members import MembershipSync
from acdbridge.adapters.metrics import new_registry, render
from acdbridge.adapters.mqtt import MqttPublisher
from acdbridge.adapters.store import Store, open_store
from acdbridge.adapters.store.access import AccessRows
from acdbridge.adapters.store.outbox import OutboxRows
from acdbridge.adapters.store.privacy import PrivacyRows
from acdbridge.adapters.store.recordings import RecordingRows
from acdbridge.adapters.web.metrics import Health, MetricsAuth
from acdbridge.adapters.web.recordings import RecordingReads
from acdbridge.adapters.web.server import WebServer
from acdbridge.adapters.web.site import Gates, build_site
from acdbridge.adapters.webhooks import WebhookSender
from acdbridge.config import Config
from acdbridge.core.webhooks import wants_call_events
from acdbridge.logmask import mask_callers
from acdbridge.runtime.checkpoint import Checkpointer
from acdbridge.runtime.daemon import Daemon, Parts
from acdbridge.runtime.desk import DeskFeed, History
from acdbridge.runtime.engine import Engine
from acdbridge.runtime.forecastjob import ForecastJob
from acdbridge.runtime.gapread import GapReader
from acdbridge.runtime.privacy import PrivacyJob, warn_if_root
from acdbridge.runtime.recordings import RecordingIndexer
from acdbridge.runtime.reload import Reloader
from acdbridge.runtime.reportjob import ReportJob
from acdbridge.runtime.startup import check_directory
from acdbridge.runtime.supervisor import SupervisorFeed
from acdbridge.runtime.track import Inbox, call_ids_of_agi, to_store
from acdbridge.runtime.views import Views
from acdbridge.runtime.writer import StoreWriter
from acdbridge.settings.checks import is_loopback, plaintext_warning
from acdbridge.settings.httpconf import tls_context

log = structlog.get_logger("acdbridge")


def configure_logging(*, mask: bool = True) -> None:
    """mask: callers' numbers keep their last 4 digits ([privacy] mask_logs, acdbridge/logmask.py)."""
    tty = sys.stderr.isatty()
    renderer: Any = structlog.dev.ConsoleRenderer() if tty else structlog.processors.JSONRenderer()
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            *([mask_callers] if mask else []),
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


def build(cfg: Config, store: Store | None = None, config_path: Path | None = None) -> Daemon:
    store = store or open_store(cfg.store, exclusive=True)  # SQLite, or PostgreSQL by url
    stop, inbox = asyncio.Event(), Inbox()
    writer = StoreWriter(store, inbox.queue.maxsize, stop, cfg.webhooks, cfg.store.pbx)
    engine = Engine(cfg.kpi, cfg.wrapup_s, to_store(writer), cfg.limits,
                    on_problem=lambda text: log.warning("tracker_problem", problem=text),
                    call_events=wants_call_events(cfg.webhooks))  # fmt: skip
    journal = checkpoints = None
    if (j := cfg.journal) is not None:
        journal = Journal(
            j.dir, fsync_interval_s=j.fsync_interval_ms / 1000, segment_bytes=int(j.segment_mb * (1 << 20))
        )
        checkpoints = Checkpointer(journal, writer, engine.pipeline, j.checkpoint_path, j.checkpoint_s,
                                   j.retention_days * 86400)  # fmt: skip
    ami = AmiClient(cfg.ami, inbox.put_event, journal, inbox.put_mark, checkpoints,
                    count=engine.pipeline.problems.count)  # fmt: skip
    callflow = agi = members = None
    if (flow := cfg.flow) is not None:
        members = MembershipSync(flow, engine.pipeline.members, ami.send, store)
        callflow = CallFlow(flow, cfg.kpi.timezone, members, engine.pipeline, ami.send)
        handlers = {name: call_ids_of_agi(h) for name, h in callflow.handlers().items()}
        agi = FastAgiServer(handlers, flow.agi_host, flow.agi_port, read_timeout_s=flow.agi_read_timeout_s,
                            max_sessions=flow.agi_max_sessions)  # fmt: skip
    privacy = None
    if isinstance(store, PrivacyRows):  # both backends are; a test's stand-in store runs no job
        privacy = PrivacyJob(cfg.privacy, cfg.kpi.timezone, store, journal,
                             cfg.journal.checkpoint_path if cfg.journal else None)  # fmt: skip
    reports = ReportJob(cfg, store) if cfg.reports.schedules and isinstance(store, PrivacyRows) else None
    records = cfg.flow is not None and any(h.record != "never" for h in cfg.flow.hotlines.values())
    recordings = None
    if records and isinstance(store, RecordingRows):  # both backends are; not a test's stand-in
        recordings = RecordingIndexer(cfg.recording, store, cfg.privacy.retain_s)
    hooks = None
    if cfg.webhooks and isinstance(store, OutboxRows):  # both backends are
        hooks = WebhookSender(cfg.webhooks, store, writer.outboxed)
    views = Views(engine, cfg.kpi)
    if callflow is not None:
        views.oncall_hotlines = lambda: callflow.flow.oncall_hotlines()
    forecast = ForecastJob(store, views, pbx=cfg.store.pbx) if isinstance(store, PrivacyRows) else None
    registry, collector = new_registry(cfg.store.pbx)
    supervisor = SupervisorFeed(engine, views, lambda: callflow.actions.flow if callflow else None,
                                cfg.supervisor.limits)  # fmt: skip
    if isinstance(store, AccessRows):  # both backends: the marks of earlier runs (today's abandons)
        supervisor.restore_handled(store.audit_actions("abandon_handled", "ok", time.time() - 2 * 86400))
    http = web_site(cfg, registry, views, lambda: daemon.self_metrics.healthz(), store, callflow,
                    DeskFeed(engine, views, cast(History, store), targets=cfg.desk.targets,
                             history_days=cfg.desk.history_days), supervisor)  # fmt: skip
    parts = Parts(cfg, store, writer, engine, views, inbox, ami, http, collector, stop, restarts={},
                  reloader=Reloader(config_path, callflow), journal=journal, checkpoints=checkpoints,
                  gaps=GapReader(cfg.ami.queue_log, journal, inbox.queue), callflow=callflow, agi=agi,
                  members=members, mqtt=MqttPublisher(cfg.mqtt) if cfg.mqtt else None,
                  privacy=privacy, reports=reports, recordings=recordings, webhooks=hooks,
                  forecast=forecast)  # fmt: skip
    daemon = Daemon(parts)
    return daemon


# both store backends have the AccessStore methods (adapters/store/access.py); Store's protocol
# predates them
def web_site(cfg: Config, registry: CollectorRegistry, views: Views, health: Health, store: Store,
             callflow: CallFlow | None, desk: DeskFeed | None = None,
             supervisor: SupervisorFeed | None = None) -> WebServer:  # fmt: skip
    h = cfg.http
    gates = Gates(h.token, h.board_public, MetricsAuth(h.metrics_token, h.metrics_user, h.metrics_password),
                  h.trusted_proxies)  # fmt: skip
    tls = tls_context(h.tls_cert, h.tls_key) if h.tls_cert and h.tls_key else None
    if not tls and not is_loopback(h.host):
        log.warning("http_plaintext_off_loopback", problem=plaintext_warning(h.host))
    return build_site(h.host, h.port, lambda: render(registry), health, board=lambda: views.board_json,
                      gates=gates, tls=tls, access=AccessService(cast(AccessStore, store), cfg.access),
                      actions=callflow.actions if callflow else None, desk=desk, supervisor=supervisor,
                      phones=cfg.supervisor.phones, clock=lambda: max(views.engine.now, time.time()),
                      recordings=(cast(RecordingReads, store), cfg.recording.dir))  # fmt: skip


def run(cfg: Config, config_path: Path | None = None) -> int:
    configure_logging(mask=cfg.privacy.mask_logs)
    warn_if_root(cfg.privacy.allow_root)
    check_directory(cfg.flow)
    asyncio.run(build(cfg, config_path=config_path).run())
    return 0
