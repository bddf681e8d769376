"""acdbridge's configuration: a TOML file read into frozen dataclasses. Every error names the
file and the key; defaults suit the lab (`acdbridge lab up`).

    [ami]
    host = "127.0.0.1"
    port = 5038
    username = "acdbridge"
    secret = "..."
    ping_interval_s = 10       # a Ping every 10 s; no answer in action_timeout_s = hung PBX
    action_timeout_s = 5
    reconnect_min_s = 0.5      # backoff doubles up to reconnect_max_s, with jitter
    reconnect_max_s = 30
    capture = "/var/lib/acdbridge/ami.raw"   # optional: append the raw AMI stream (replayable)

    [store]
    path = "/var/lib/acdbridge/acdbridge.sqlite"

    [http]
    listen = "127.0.0.1:9108"  # /metrics, /healthz and the wallboard (/); loopback unless you mean it
    token = "..."              # optional: the wallboard then needs ?token=...

    [kpi]
    timezone = "Asia/Shanghai" # "today" and the half-hour intervals follow the centre's clock
    windows_min = [15, 60]     # rolling windows
    interval_min = 30          # closed report intervals
    ring_cadence_s = 6         # one ring of the ringback tone, for avg_rings
    cost_per_hour = 1200.0     # optional: the centre's cost rate, enables cost_per_call

    [agents."Ana Torres"]      # inputs from outside the ACD; without them the metric is absent
    qa_score = 92.5            # QA monitoring score, passed through
    schedule = [["2026-11-23T08:00:00+08:00", "2026-11-23T16:00:00+08:00"]]   # for adherence

    [mqtt]                     # optional: LED signs and other MQTT subscribers (docs/mqtt.md)
    host = "127.0.0.1"
    port = 1883
    topic_prefix = "acdbridge"

    [queues.water]
    wrapup_s = 5               # used only when GetConfig of queues.conf is not allowed
    sl_threshold_s = 20        # service level: answered within this many seconds
    sl_target = 0.8            # ... for this share of calls (alerts compare against it)
    short_abandon_s = 5        # abandons this quick are not counted against the queue
"""

from __future__ import annotations

import math
import tomllib
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from acdbridge.adapters.mqtt import MqttConfig, parse_mqtt
from acdbridge.core.kpi import KpiConfig, QueueKpiConfig
from acdbridge.errors import AcdError
from acdbridge.flowconfig import FLOW_SECTIONS, FlowConfig, FlowConfigError, parse_flow


class ConfigError(AcdError):
    code = "config"
    exit_status = 2


@dataclass(frozen=True)
class AmiConfig:
    host: str = "127.0.0.1"
    port: int = 25038
    username: str = "acdbridge"
    secret: str = "acdbridge-change-me"
    ping_interval_s: float = 10.0
    action_timeout_s: float = 5.0
    reconnect_min_s: float = 0.5
    reconnect_max_s: float = 30.0
    capture: Path | None = None


@dataclass(frozen=True)
class StoreConfig:
    path: Path = Path("acdbridge.sqlite")


@dataclass(frozen=True)
class HttpConfig:
    host: str = "127.0.0.1"
    port: int = 9108
    token: str | None = None  # the wallboard asks for ?token=... when set


@dataclass(frozen=True)
class Config:
    ami: AmiConfig = field(default_factory=AmiConfig)
    store: StoreConfig = field(default_factory=StoreConfig)
    wrapup_s: dict[str, float] = field(default_factory=dict)
    http: HttpConfig = field(default_factory=HttpConfig)
    kpi: KpiConfig = field(default_factory=KpiConfig)
    mqtt: MqttConfig | None = None  # no [mqtt] section: no MQTT
    flow: FlowConfig | None = None  # no [agi] section: no greeting, routing or feature codes


def _section(data: dict[str, Any], name: str, source: str) -> dict[str, Any]:
    value = data.get(name, {})
    if not isinstance(value, dict):
        raise ConfigError(f"{source}: [{name}] must be a table")
    return value


def _typed(table: dict[str, Any], key: str, kind: type, where: str, default: Any) -> Any:
    if key not in table:
        return default
    value = table[key]
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if not isinstance(value, kind) or isinstance(value, bool):
        raise ConfigError(f"{where}{key}: expected {kind.__name__}, got {value!r}")
    if isinstance(value, float) and (not math.isfinite(value) or value <= 0):
        raise ConfigError(f"{where}{key}: must be a positive number, got {value!r}")
    return value


def parse(data: dict[str, Any], source: str = "<config>") -> Config:
    unknown = set(data) - {"ami", "store", "queues", "http", "kpi", "agents", "mqtt"} - FLOW_SECTIONS
    if unknown:
        raise ConfigError(f"{source}: unknown sections {sorted(unknown)}")
    ami_t = _section(data, "ami", source)
    where = f"{source}: ami."
    known = set(AmiConfig.__dataclass_fields__)
    if set(ami_t) - known:
        raise ConfigError(f"{where} unknown keys {sorted(set(ami_t) - known)}")
    d = AmiConfig()
    port = _typed(ami_t, "port", int, where, d.port)
    if not 1 <= port <= 65535:
        raise ConfigError(f"{where}port: out of range 1-65535: {port}")
    capture = _typed(ami_t, "capture", str, where, None)
    ami = AmiConfig(
        host=_typed(ami_t, "host", str, where, d.host),
        port=port,
        username=_typed(ami_t, "username", str, where, d.username),
        secret=_typed(ami_t, "secret", str, where, d.secret),
        ping_interval_s=_typed(ami_t, "ping_interval_s", float, where, d.ping_interval_s),
        action_timeout_s=_typed(ami_t, "action_timeout_s", float, where, d.action_timeout_s),
        reconnect_min_s=_typed(ami_t, "reconnect_min_s", float, where, d.reconnect_min_s),
        reconnect_max_s=_typed(ami_t, "reconnect_max_s", float, where, d.reconnect_max_s),
        capture=Path(capture) if capture else None,
    )
    store_t = _section(data, "store", source)
    if set(store_t) - {"path"}:
        raise ConfigError(f"{source}: store.: unknown keys {sorted(set(store_t) - {'path'})}")
    store = StoreConfig(Path(_typed(store_t, "path", str, f"{source}: store.", "acdbridge.sqlite")))
    wrapup: dict[str, float] = {}
    queue_kpi: dict[str, QueueKpiConfig] = {}
    for queue, qt in _section(data, "queues", source).items():
        keys = {"wrapup_s", "sl_threshold_s", "short_abandon_s", "sl_target"}
        if not isinstance(qt, dict) or set(qt) - keys:
            raise ConfigError(f"{source}: queues.{queue}: expected a table with {', '.join(sorted(keys))}")
        seconds = {k: _seconds(qt[k], f"{source}: queues.{queue}.{k}") for k in keys if k in qt}
        if "wrapup_s" in seconds:
            wrapup[queue] = seconds.pop("wrapup_s")
        try:
            queue_kpi[queue] = QueueKpiConfig(**seconds)
        except ValueError as exc:
            raise ConfigError(f"{source}: queues.{queue}: {exc}") from exc
    kpi = _kpi(_section(data, "kpi", source), queue_kpi, _section(data, "agents", source), source)
    mqtt = None
    if "mqtt" in data:
        try:
            mqtt = parse_mqtt(_section(data, "mqtt", source), source)
        except ValueError as exc:
            raise ConfigError(str(exc)) from exc
    try:
        flow = parse_flow(data, source)
    except FlowConfigError as exc:
        raise ConfigError(str(exc)) from exc
    return Config(ami, store, wrapup, _http(_section(data, "http", source), source), kpi, mqtt, flow)


def _seconds(value: Any, where: str) -> float:
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float))
        or value < 0
        or not math.isfinite(value)
    ):
        raise ConfigError(f"{where}: expected seconds >= 0, got {value!r}")
    return float(value)


def _agents(
    table: dict[str, Any], source: str
) -> tuple[dict[str, float], dict[str, list[tuple[float, float]]]]:
    scores: dict[str, float] = {}
    schedules: dict[str, list[tuple[float, float]]] = {}
    for agent, at in table.items():
        where = f"{source}: agents.{agent}."
        if not isinstance(at, dict) or set(at) - {"qa_score", "schedule", "extension", "interface", "skills"}:
            raise ConfigError(
                f"{where} expected a table with qa_score, schedule, extension, interface, skills"
            )
        if "qa_score" in at:
            scores[agent] = _seconds(at["qa_score"], f"{where}qa_score")
        spans = at.get("schedule", [])
        if not isinstance(spans, list):
            raise ConfigError(f"{where}schedule: expected a list of [start, end] times")
        for span in spans:
            if not (isinstance(span, list) and len(span) == 2 and all(isinstance(t, str) for t in span)):
                raise ConfigError(f"{where}schedule: expected [start, end] ISO 8601 times, got {span!r}")
            try:
                start, end = (datetime.fromisoformat(t).timestamp() for t in span)
            except ValueError as exc:
                raise ConfigError(f"{where}schedule: {exc}") from exc
            if end <= start:
                raise ConfigError(f"{where}schedule: {span[1]} is not after {span[0]}")
            schedules.setdefault(agent, []).append((start, end))
    return scores, schedules


def _kpi(
    table: dict[str, Any], queues: dict[str, QueueKpiConfig], agents: dict[str, Any], source: str
) -> KpiConfig:
    where = f"{source}: kpi."
    known = {"timezone", "windows_min", "interval_min", "ring_cadence_s", "cost_per_hour"}
    if set(table) - known:
        raise ConfigError(f"{where} unknown keys {sorted(set(table) - known)}")
    scores, schedules = _agents(agents, source)
    windows = table.get("windows_min", [15, 60])
    if not isinstance(windows, list) or not windows or not all(isinstance(w, int | float) for w in windows):
        raise ConfigError(f"{where}windows_min: expected a list of minutes, got {windows!r}")
    try:
        return KpiConfig(
            queues=queues,
            windows_s=tuple(float(w) * 60 for w in windows),
            interval_s=_typed(table, "interval_min", float, where, 30.0) * 60,
            ring_cadence_s=_typed(table, "ring_cadence_s", float, where, 6.0),
            timezone=_typed(table, "timezone", str, where, "UTC"),
            cost_per_hour=_typed(table, "cost_per_hour", float, where, None),
            qa_scores=scores or None,
            schedules=schedules or None,
        )
    except ValueError as exc:
        raise ConfigError(f"{where} {exc}") from exc


def _http(table: dict[str, Any], source: str) -> HttpConfig:
    if set(table) - {"listen", "token"}:
        raise ConfigError(f"{source}: http.: unknown keys {sorted(set(table) - {'listen', 'token'})}")
    token = _typed(table, "token", str, f"{source}: http.", None)
    listen = _typed(table, "listen", str, f"{source}: http.", "127.0.0.1:9108")
    host, sep, port = listen.rpartition(":")
    if not sep or not host or not port.isdigit() or not 1 <= int(port) <= 65535:
        raise ConfigError(f"{source}: http.listen: expected HOST:PORT, got {listen!r}")
    return HttpConfig(host.strip("[]"), int(port), token or None)


def load(path: Path) -> Config:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read config {path}: {exc.strerror or exc}") from exc
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from exc
    return parse(data, str(path))
