"""acdbridge's configuration: a TOML file read into frozen dataclasses. Every key is described in
docs/config.md. Parsing records EVERY problem (settings/problems.py) instead of stopping at the
first: `acdbridge check-config` prints them all, and load() -- used by `acdbridge run`, SIGHUP
and the other commands -- raises one ConfigError listing them all. There are no built-in
secrets: the AMI secret comes from `secret`, `secret_file` or the systemd credential
`ami-secret` (settings/secrets.py).

    [ami]
    host = "127.0.0.1"
    port = 5038
    username = "acdbridge"
    secret_file = "/etc/acdbridge/ami-secret"   # or secret = "...", or LoadCredential=ami-secret:...
    ping_interval_s = 10       # a Ping every 10 s; no answer in action_timeout_s = hung PBX
    action_timeout_s = 5
    reconnect_min_s = 0.5      # backoff doubles up to reconnect_max_s, with jitter
    reconnect_max_s = 30
    capture = "/var/lib/acdbridge/ami.raw"   # the older name of [journal] dir
    queue_log = "/var/log/asterisk/queue_log"  # read after a gap: the visits that ended in it

    [store]
    path = "/var/lib/acdbridge/acdbridge.sqlite"
    # or PostgreSQL (docs/scale.md): url = "postgresql://acdbridge@db.example:5432/acdbridge" with
    # password_file = "/etc/acdbridge/store-password" (or the credential store-password)
    pbx = "east"               # optional: this PBX's id in a shared store and on every Prometheus series

    [http]
    listen = "127.0.0.1:9108"  # /metrics, /healthz and the wallboard (/); loopback unless you mean it
    token = "..."              # optional: a kiosk's key, ?token=... opens the wallboard
    board_public = false       # true: the wallboard without sign-in (settings/httpconf.py: the rest)

    [journal]                  # the AMI journal and checkpoints (settings/journalconf.py)
    dir = "/var/lib/acdbridge/journal"
"""

from __future__ import annotations

import math
import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from acdbridge.core.kpi import DAY_S, KpiConfig, QueueKpiConfig
from acdbridge.core.limits import Limits
from acdbridge.core.report import ReportConfig
from acdbridge.core.webhooks import Endpoint
from acdbridge.errors import AcdError
from acdbridge.flowconfig import AGENT_KEYS, FLOW_SECTIONS, FlowConfig, FlowConfigError, parse_flow
from acdbridge.settings import checks
from acdbridge.settings.accessconf import AccessConfig, parse_access
from acdbridge.settings.amiconf import AmiConfig, parse_ami
from acdbridge.settings.deskconf import DeskConfig, parse_desk
from acdbridge.settings.httpconf import HttpConfig, parse_http
from acdbridge.settings.journalconf import JournalConfig, parse_journal
from acdbridge.settings.limitsconf import parse_limits
from acdbridge.settings.mailconf import ReportsConfig, SmtpConfig, default_reports, parse_reports, parse_smtp
from acdbridge.settings.mqttconf import MqttConfig, parse_mqtt_section
from acdbridge.settings.privacyconf import PrivacyConfig, default_key_file, parse_privacy
from acdbridge.settings.problems import Problems, dotted, get, known, table
from acdbridge.settings.recordconf import RecordingConfig, parse_recording
from acdbridge.settings.reportconf import default_sl_target, parse_report
from acdbridge.settings.secrets import secret
from acdbridge.settings.supconf import SupervisorConfig, parse_supervisor
from acdbridge.settings.webhookconf import parse_webhooks

__all__ = ["AmiConfig", "Config", "ConfigError", "FlowConfig", "FlowConfigError", "HttpConfig",
           "StoreConfig", "load", "parse", "read", "validate"]  # fmt: skip
PBX_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
SECTIONS = {"ami", "store", "queues", "http", "kpi", "agents", "mqtt", "journal", "limits", "access",
            "privacy", "targets", "desk", "smtp", "reports", "recording", "supervisor",
            "webhooks"} | FLOW_SECTIONS  # fmt: skip


class ConfigError(AcdError):
    """The config has problems; `problems` holds each one's line (FILE: key: text)."""

    code = "config"
    exit_status = 2

    def __init__(self, message: str, *, detail: str = "", problems: list[str] | None = None) -> None:
        super().__init__(message, detail=detail)
        self.problems = problems if problems is not None else [message]

    @classmethod
    def of(cls, problems: list[str]) -> ConfigError:
        if len(problems) == 1:
            return cls(problems[0])
        return cls(f"{len(problems)} problems:", detail="\n".join(problems), problems=problems)


@dataclass(frozen=True)
class StoreConfig:
    path: Path = Path("acdbridge.sqlite")
    url: str | None = field(default=None, repr=False)  # PostgreSQL instead of the file; may hold a password
    password: str | None = field(default=None, repr=False)
    pbx: str = ""  # "" is a single-PBX site: no pbx label on the metrics

    def describe(self) -> str:
        """Where the store is, for logs and summaries: the file, or the URL without a password."""
        if self.url is None:
            return str(self.path)
        parts = urlsplit(self.url)
        host = parts.hostname or ""
        user = f"{parts.username}@" if parts.username else ""
        port = f":{parts.port}" if parts.port else ""
        return f"{parts.scheme}://{user}{host}{port}{parts.path}"


@dataclass(frozen=True)
class Config:
    ami: AmiConfig = field(default_factory=AmiConfig)
    store: StoreConfig = field(default_factory=StoreConfig)
    wrapup_s: dict[str, float] = field(default_factory=dict)
    http: HttpConfig = field(default_factory=HttpConfig)
    kpi: KpiConfig = field(default_factory=KpiConfig)
    mqtt: MqttConfig | None = None  # no [mqtt] section: no MQTT
    flow: FlowConfig | None = None  # no [agi] section: no greeting, routing or feature codes
    journal: JournalConfig | None = None  # a config file has one unless `enabled = false`
    limits: Limits = field(default_factory=Limits)  # what the trackers remember at most
    access: AccessConfig = field(default_factory=AccessConfig)  # sign-in: sessions, lockout
    privacy: PrivacyConfig = field(
        default_factory=lambda: PrivacyConfig(default_key_file(StoreConfig().path))
    )
    report: ReportConfig = field(default_factory=ReportConfig)  # [targets], agents' teams
    desk: DeskConfig = field(default_factory=DeskConfig)  # the agent desk: targets, history
    supervisor: SupervisorConfig = field(default_factory=SupervisorConfig)  # limits, phones
    smtp: SmtpConfig | None = None  # no [smtp]: scheduled reports are written, not mailed
    reports: ReportsConfig = field(default_factory=lambda: default_reports(StoreConfig().path))
    recording: RecordingConfig = field(default_factory=RecordingConfig)  # the PBX's recordings
    webhooks: tuple[Endpoint, ...] = ()  # [[webhooks]]: signed events from the store's outbox


def _store(p: Problems, t: dict[str, Any], env: Mapping[str, str]) -> StoreConfig:
    w = "store"
    known(p, t, w, {"path", "url", "password", "password_file", "pbx"})
    path = Path(get(p, t, "path", w, str, "acdbridge.sqlite", empty=False))
    url = get(p, t, "url", w, str, None, empty=False, secret=True)  # secret: it may hold a password
    password = secret(p, t, w, "password", "store-password", env) if url else None
    if url is None and {"password", "password_file"} & set(t):
        p.error("store.password", "is for a PostgreSQL store: set store.url too, or remove it")
    if url is not None:
        if "path" in t:
            p.error("store", "give either store.path (SQLite) or store.url (PostgreSQL), not both")
        _store_url(p, url)
    pbx = get(p, t, "pbx", w, str, "")
    if pbx and not PBX_ID.match(pbx):
        p.error("store.pbx", f"expected 1-64 letters, digits, '.', '_' or '-' (a label value), got {pbx!r}")
        pbx = ""
    return StoreConfig(path, url, password, pbx)


def _store_url(p: Problems, url: str) -> None:
    """A postgresql:// URL (libpq's own syntax); a password written in it is a warning, as the
    config file is rarely as private as a password file or a credential."""
    parts = urlsplit(url)
    if parts.scheme not in ("postgresql", "postgres"):
        p.error("store.url", "expected postgresql://USER@HOST:PORT/DATABASE (libpq's URL syntax)")
        return
    inline = ":" in parts.netloc.rpartition("@")[0] or "password" in parse_qs(parts.query)
    if inline:
        p.warn("store.url", "holds a password: put it in store.password_file (chmod 600) or the "
                            "systemd credential store-password instead")  # fmt: skip


def _queues(
    p: Problems, t: dict[str, Any], default_sl: float = 0.8
) -> tuple[dict[str, float], dict[str, QueueKpiConfig]]:
    wrapup: dict[str, float] = {}
    queue_kpi: dict[str, QueueKpiConfig] = {}
    keys = {"wrapup_s", "sl_threshold_s", "short_abandon_s", "sl_target"}
    for queue, value in t.items():
        where = dotted("queues", queue)
        qt = table(p, value, where)
        known(p, qt, where, keys)
        seconds = {
            k: v
            for k in sorted(keys - {"sl_target"} & set(qt))
            if (v := _seconds(p, qt, k, where)) is not None
        }
        if "wrapup_s" in seconds:
            wrapup[queue] = seconds.pop("wrapup_s")
        target = get(p, qt, "sl_target", where, float, default_sl)
        if not 0 <= target <= 1:
            p.error(where, f"sl_target must be a ratio between 0 and 1, got {target!r}")
            target = default_sl
        queue_kpi[queue] = QueueKpiConfig(**seconds, sl_target=target)
    return wrapup, queue_kpi


def _seconds(p: Problems, t: dict[str, Any], key: str, where: str) -> float | None:
    value = t[key]
    if type(value) not in (int, float) or not math.isfinite(value) or value < 0:
        p.error(dotted(where, key), f"expected seconds >= 0, got {value!r}")
        return None
    return float(value)


def _schedule(p: Problems, spans: Any, where: str) -> list[tuple[float, float]]:
    if not isinstance(spans, list):
        p.error(where, "expected an array of [start, end] times")
        return []
    out = []
    for span in spans:
        if not (isinstance(span, list) and len(span) == 2 and all(isinstance(t, str) for t in span)):
            p.error(where, f"expected [start, end] ISO 8601 times, got {span!r}")
            continue
        try:
            start, end = (datetime.fromisoformat(t).timestamp() for t in span)
        except ValueError as exc:
            p.error(where, str(exc))
            continue
        if end <= start:
            p.error(where, f"{span[1]} is not after {span[0]}")
        else:
            out.append((start, end))
    return out


def _agents(p: Problems, t: dict[str, Any]) -> tuple[dict[str, float], dict[str, list[tuple[float, float]]]]:
    scores: dict[str, float] = {}
    schedules: dict[str, list[tuple[float, float]]] = {}
    for agent, value in t.items():
        where = dotted("agents", agent)
        at = table(p, value, where)
        known(p, at, where, AGENT_KEYS)
        score = get(p, at, "qa_score", where, float, None, lo=0, hi=100)
        if score is not None:
            scores[agent] = score
        spans = _schedule(p, at.get("schedule", []), dotted(where, "schedule"))
        if spans:
            schedules[agent] = spans
    return scores, schedules


def _kpi(
    p: Problems,
    t: dict[str, Any],
    queues: dict[str, QueueKpiConfig],
    agents: dict[str, Any],
    default_sl: float = 0.8,
) -> KpiConfig:
    w = "kpi"
    known(p, t, w, {"timezone", "windows_min", "interval_min", "ring_cadence_s", "cost_per_hour"})
    scores, schedules = _agents(p, agents)
    windows = t.get("windows_min", [15, 60])
    if (
        not isinstance(windows, list)
        or not windows
        or not all(type(m) in (int, float) and 0 < m <= 7 * 24 * 60 for m in windows)
    ):
        p.error("kpi.windows_min", f"expected an array of minutes (0-10080), got {windows!r}")
        windows = [15, 60]
    interval = get(p, t, "interval_min", w, float, 30.0, lo=1, hi=1440)
    if DAY_S % (interval * 60):
        p.error("kpi.interval_min", f"{interval:g}: the report interval_s must divide a day (86400 s)")
        interval = 30.0
    timezone = get(p, t, "timezone", w, str, "UTC")
    try:
        ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError):
        p.error("kpi.timezone", f"unknown timezone {timezone!r} (an IANA name such as Asia/Shanghai)")
        timezone = "UTC"
    return KpiConfig(
        queues=queues, default=QueueKpiConfig(sl_target=default_sl),
        windows_s=tuple(float(m) * 60 for m in windows), interval_s=interval * 60,
        ring_cadence_s=get(p, t, "ring_cadence_s", w, float, 6.0, lo=0.5, hi=60), timezone=timezone,
        cost_per_hour=get(p, t, "cost_per_hour", w, float, None, lo=0), qa_scores=scores or None,
        schedules=schedules or None,
    )  # fmt: skip


def _journal_within(
    p: Problems, journal: JournalConfig | None, privacy: PrivacyConfig
) -> JournalConfig | None:
    """The raw AMI holds callers' numbers too: never kept longer than the privacy retention."""
    if journal is None or privacy.retain_s is None or journal.retention_days <= privacy.retain_days:
        return journal
    days = f"{privacy.retain_days:g}"
    p.warn("journal.retention_days", f"{journal.retention_days:g} is longer than privacy.retain_days "
                                     f"({days}): the journal is kept {days} days")  # fmt: skip
    return replace(journal, retention_days=privacy.retain_days)


def validate(
    data: dict[str, Any], source: str = "<config>", env: Mapping[str, str] | None = None,
    *, for_daemon: bool = True,
) -> tuple[Config, Problems]:  # fmt: skip
    """The config and every problem in it (errors and warnings); the Config holds defaults where
    a value was wrong, so it is only fit to run when there are no errors. `for_daemon=False` is
    for the offline commands (replay, export): they read thresholds and paths, never the PBX, so
    a config without the AMI secret is fine for them."""
    p = Problems(source)
    env = os.environ if env is None else env
    if not data and for_daemon:
        p.error("", "the file is empty: at least [ami] with the PBX's address and secret is needed")
    unknown = sorted(set(data) - SECTIONS)
    if unknown:
        p.error("", f"unknown sections {unknown}; known: {', '.join(sorted(SECTIONS))}")
    sections = {
        name: table(p, data.get(name, {}), name)
        for name in (
            "ami",
            "store",
            "http",
            "kpi",
            "queues",
            "agents",
            "journal",
            "limits",
            "access",
            "privacy",
            "desk",
            "recording",
        )
    }
    report = parse_report(p, data.get("targets", {}), sections["agents"])
    ami = parse_ami(p, sections["ami"], env, require_secret=for_daemon)
    store = _store(p, sections["store"], env)
    wrapup, queue_kpi = _queues(p, sections["queues"], default_sl_target(report))
    http = parse_http(p, sections["http"], env)
    kpi = _kpi(p, sections["kpi"], queue_kpi, sections["agents"], default_sl_target(report))
    mqtt = parse_mqtt_section(p, table(p, data["mqtt"], "mqtt"), env) if "mqtt" in data else None
    journal = parse_journal(p, sections["journal"], ami.capture, store.path)
    if for_daemon and journal is not None and not journal.key and store.url is not None:
        # the default sits beside an SQLite file; a PostgreSQL store has none to sit beside
        p.warn("journal.dir", f"not set with store.url: the journal goes to {journal.dir}; set a "
                              "local directory, e.g. /var/lib/acdbridge/journal")  # fmt: skip
    limits = parse_limits(p, sections["limits"])
    access = parse_access(p, sections["access"])
    # the key sits beside the store's file; a PostgreSQL store has none, the journal's directory does
    beside = journal.dir if store.url is not None and journal is not None and journal.key else store.path
    privacy = parse_privacy(p, sections["privacy"], beside)
    journal = _journal_within(p, journal, privacy)
    desk = parse_desk(p, sections["desk"])
    smtp = parse_smtp(p, table(p, data["smtp"], "smtp"), env) if "smtp" in data else None
    reports = parse_reports(p, table(p, data.get("reports", {}), "reports"), store.path, report, smtp)
    flow = parse_flow(data, p)
    reasons = set(flow.pause_reasons.values()) if flow is not None else None
    sup = parse_supervisor(p, table(p, data.get("supervisor", {}), "supervisor"), reasons)
    webhooks = parse_webhooks(p, data["webhooks"], env) if "webhooks" in data else ()
    cfg = Config(ami, store, wrapup, http, kpi, mqtt, flow, journal=journal, limits=limits,
                 access=access, privacy=privacy, report=report, desk=desk, supervisor=sup, smtp=smtp,
                 reports=reports, recording=parse_recording(p, sections["recording"]),
                 webhooks=webhooks)  # fmt: skip
    checks.check(cfg, p, data)
    return cfg, p


def parse(
    data: dict[str, Any], source: str = "<config>", env: Mapping[str, str] | None = None,
    *, for_daemon: bool = True,
) -> Config:  # fmt: skip
    cfg, problems = validate(data, source, env, for_daemon=for_daemon)
    if problems.errors:
        raise ConfigError.of(problems.errors)
    return cfg


def read(path: Path) -> dict[str, Any]:
    """The TOML file as a dict; one clear line when it is unreadable, not UTF-8 or not TOML."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"cannot read config {path}: {exc.strerror or exc}") from exc
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise ConfigError(f"{path}: not UTF-8 text (byte 0x{raw[exc.start]:02x} on line {line})") from None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None


def load(path: Path, *, for_daemon: bool = True) -> Config:
    return parse(read(path), str(path), for_daemon=for_daemon)
