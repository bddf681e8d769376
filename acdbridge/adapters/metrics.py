"""Prometheus exposition: the metrics are a read-only view of a snapshot.

The daemon's loop builds the metric families from the core's tallies and trackers (on a timer
and at the end of a replay); the collector only returns the latest immutable list, so a scrape
served from another thread never touches loop-owned state. Domain code never sets a gauge."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector

from acdbridge.core.kpi import KpiConfig, KpiEngine, Kpis
from acdbridge.core.oncall import ONCALL_OUTCOMES
from acdbridge.core.tallies import Histogram, LiveGauges, Tallies
from acdbridge.core.workforce import Need

KpiWindows = Mapping[
    str, Mapping[str, Mapping[str, Mapping[str, Any]]]
]  # window -> queues|agents -> name -> metric


@dataclass(frozen=True)
class Health:
    ami_connected: bool
    ami_events: int
    ami_reconnects: int
    store_write_errors: int
    drops: Mapping[str, int]


@dataclass(frozen=True)
class DaemonHealth:
    """The daemon's own health, beside the AMI link's (Health): rendered by daemon_families."""

    loop_lag: Histogram
    store_write_seconds: Histogram
    queue_depth: Mapping[str, int] = field(default_factory=dict)
    task_restarts: Mapping[str, int] = field(default_factory=dict)
    config_reloads: Mapping[str, int] = field(default_factory=dict)
    input_problems: Mapping[str, int] = field(default_factory=dict)
    store_quarantined: int = 0
    store_rows_rejected: int = 0
    records_lost: int = 0
    mqtt: tuple[bool, int] | None = None  # (connected, messages waiting to be published)
    sse: tuple[int, int] | None = None  # (live /events clients, updates dropped for slow ones)
    journal: Mapping[str, float] | None = None  # adapters/journal.py JournalStats, as a dict


def _labelled(kind: type[CounterMetricFamily] | type[GaugeMetricFamily], name: str, doc: str, label: str,
              values: Mapping[str, int]) -> Metric:  # fmt: skip
    family = kind(name, doc, labels=[label])
    for key, n in sorted(values.items()):
        family.add_metric([key], n)
    return family


def daemon_families(h: DaemonHealth) -> list[Metric]:
    families = [
        _histogram("acd_event_loop_lag_seconds", "How late the event loop ran a timer (loop blocked)", [],
                   [((), h.loop_lag)]),
        _histogram("acd_store_write_seconds", "Time to write one batch to the store", [],
                   [((), h.store_write_seconds)]),
        _labelled(GaugeMetricFamily, "acd_internal_queue_depth", "Items waiting in an internal queue",
                  "queue_name", h.queue_depth),
        _labelled(CounterMetricFamily, "acd_task_restarts", "Background tasks restarted after a failure",
                  "task", h.task_restarts),
        _labelled(CounterMetricFamily, "acd_config_reloads", "SIGHUP reloads by result (ok, rejected)",
                  "result", {"ok": 0, "rejected": 0, **h.config_reloads}),
        _labelled(CounterMetricFamily, "acd_core_input_problems", "Bad AMI input and state evictions",
                  "kind", h.input_problems),
        CounterMetricFamily("acd_store_quarantined", "Rows moved to the store's quarantine table",
                            value=h.store_quarantined),
        CounterMetricFamily("acd_store_rows_rejected", "Records the store could not write (quarantined)",
                            value=h.store_rows_rejected),
        CounterMetricFamily("acd_store_records_lost", "Records lost after every write retry failed",
                            value=h.records_lost),
    ]  # fmt: skip
    if h.mqtt is not None:
        families += [
            GaugeMetricFamily("acd_mqtt_connected", "1 while connected to the broker", value=int(h.mqtt[0])),
            GaugeMetricFamily("acd_mqtt_backlog", "MQTT messages waiting to be published", value=h.mqtt[1]),
        ]  # fmt: skip
    if h.journal is not None:
        families += _journal_families(h.journal)
    if h.sse is not None:
        families += [
            GaugeMetricFamily("acd_http_sse_clients", "Live wallboard /events streams", value=h.sse[0]),
            CounterMetricFamily("acd_http_sse_dropped", "Board updates dropped for slow /events clients",
                                value=h.sse[1]),
        ]  # fmt: skip
    return families


_JOURNAL = {  # JournalStats field -> (series, help)
    "records": ("acd_journal_records", "AMI reads appended to the journal"),
    "bytes": ("acd_journal_bytes", "AMI bytes appended to the journal"),
    "dropped_records": ("acd_journal_dropped_records", "AMI reads the journal could not keep (buffer full)"),
    "write_errors": ("acd_journal_write_errors", "Failed journal writes or fsyncs"),
    "fsyncs": ("acd_journal_fsyncs", "Group commits (one fsync each)"),
    "fsync_seconds": ("acd_journal_fsync_seconds", "Time spent in journal fsyncs"),
    "segments_deleted": ("acd_journal_segments_deleted", "Journal segments deleted past retention"),
}


def _journal_families(stats: Mapping[str, float]) -> list[Metric]:
    return [CounterMetricFamily(name, doc, value=stats.get(key, 0)) for key, (name, doc) in _JOURNAL.items()]


# Window KPIs exported as gauges {queue, window}: the catalogue's name -> Prometheus name and unit.
# Counts become acd_queue_window_<name>; seconds and ratios keep their unit suffix.
QUEUE_WINDOW_METRICS = {
    "offered": "acd_queue_window_offered_calls",
    "answered": "acd_queue_window_answered_calls",
    "abandoned": "acd_queue_window_abandoned_calls",
    "short_abandoned": "acd_queue_window_short_abandoned_calls",
    "timeout": "acd_queue_window_timeout_calls",
    "exit_empty": "acd_queue_window_exit_empty_calls",
    "exit_key": "acd_queue_window_exit_key_calls",
    "blocked": "acd_queue_window_blocked_calls",
    "answered_within_sl": "acd_queue_window_answered_within_sl_calls",
    "transfers": "acd_queue_window_transfers",
    "service_level": "acd_queue_service_level_ratio",
    "abandon_rate": "acd_queue_abandon_ratio",
    "percent_answered": "acd_queue_answered_ratio",
    "transfer_rate": "acd_queue_transfer_ratio",
    "asa_s": "acd_queue_asa_seconds",
    "avg_wait_s": "acd_queue_avg_wait_seconds",
    "max_wait_s": "acd_queue_max_wait_seconds",
    "avg_abandon_wait_s": "acd_queue_avg_abandon_wait_seconds",
    "avg_talk_s": "acd_queue_avg_talk_seconds",
    "avg_hold_s": "acd_queue_avg_hold_seconds",
    "avg_wrap_s": "acd_queue_avg_wrap_seconds",
    "aht_s": "acd_queue_aht_seconds",
    "avg_rings": "acd_queue_avg_rings",
    "cost_per_call": "acd_queue_cost_per_call",
    "surveys": "acd_queue_window_survey_responses",
    "satisfaction": "acd_queue_satisfaction_ratio",
    "avg_survey_score": "acd_queue_avg_survey_score",
    "dispositions": "acd_queue_window_dispositions",
    "fcr": "acd_queue_first_call_resolution_ratio",
}
AGENT_WINDOW_METRICS = {
    "answered": "acd_agent_window_answered_calls",
    "aht_s": "acd_agent_aht_seconds",
    "occupancy": "acd_agent_occupancy_ratio",
    "calls_per_hour": "acd_agent_calls_per_hour",
    "ring_no_answer": "acd_agent_window_ring_no_answer",
    "adherence": "acd_agent_adherence_ratio",
    "attendance": "acd_agent_attendance_ratio",
    "monitoring_score": "acd_agent_monitoring_score",
}


def _histogram(
    name: str, doc: str, labels: list[str], items: Iterable[tuple[tuple[str, ...], Histogram]]
) -> Metric:
    family = HistogramMetricFamily(name, doc, labels=labels)
    for values, hist in sorted(items, key=lambda item: item[0]):
        family.add_metric(list(values), hist.cumulative(), hist.total)
    return family


histogram_family = _histogram  # for the adapters that export their own (adapters/webhooks.py)


def _call_flow_families(tallies: Tallies, oncall_hotlines: Iterable[str]) -> list[Metric]:
    ivr = CounterMetricFamily("acd_ivr_calls", "Greeting (IVR) legs finished, by outcome",
                              labels=["hotline", "outcome"])  # fmt: skip
    for (hotline, outcome), n in sorted(tallies.ivr.items()):
        ivr.add_metric([hotline, outcome], n)
    # every outcome of every hotline with a rota from the start: an alert's increase() needs the 0
    oncall_counts = {(h, o): 0 for h in oncall_hotlines for o in ONCALL_OUTCOMES} | dict(tallies.oncall)
    oncall = CounterMetricFamily("acd_oncall_calls", "Urgent calls for the on-call engineer, by outcome",
                                 labels=["hotline", "outcome"])  # fmt: skip
    for (hotline, outcome), n in sorted(oncall_counts.items()):
        oncall.add_metric([hotline, outcome], n)
    surveys = CounterMetricFamily(
        "acd_survey_responses", "Post-call survey scores", labels=["queue", "score"]
    )
    for (queue, score), n in sorted(tallies.surveys.items()):
        surveys.add_metric([queue, score], n)
    codes = CounterMetricFamily("acd_dispositions", "Disposition codes entered after calls",
                                labels=["queue", "code", "resolved"])  # fmt: skip
    for key, n in sorted(tallies.dispositions.items()):
        codes.add_metric(list(key), n)
    notices = CounterMetricFamily("acd_notices_played", "Service notices played at the greeting, by what the "
                                  "caller did next: informed (hung up) or continued",
                                  labels=["hotline", "notice", "result"])  # fmt: skip
    for key3, n in sorted(tallies.notices.items()):
        notices.add_metric(list(key3), n)
    ivr_time = [((h,), hist) for h, hist in tallies.ivr_time.items()]
    greeting_time = _histogram("acd_ivr_seconds", "Time in the greeting", ["hotline"], ivr_time)
    return [ivr, notices, oncall, surveys, codes, greeting_time]


def _window_families(windows: KpiWindows, kpi_config: KpiConfig | None) -> list[Metric]:
    families: list[Metric] = []
    for kind, metrics in (("queues", QUEUE_WINDOW_METRICS), ("agents", AGENT_WINDOW_METRICS)):
        label = kind[:-1]
        for metric, name in metrics.items():
            gauge = GaugeMetricFamily(
                name, f"{metric} over each window (docs/kpi.md)", labels=[label, "window"]
            )
            for window, kpis in sorted(windows.items()):
                for who, values in sorted(kpis.get(kind, {}).items()):
                    value = values.get(metric)
                    if value is not None:  # an empty denominator is no sample, never 0
                        gauge.add_metric([who, window], float(value))
            families.append(gauge)
    if kpi_config is not None:  # the configuration beside the figures
        queues = sorted({q for kpis in windows.values() for q in kpis.get("queues", {})})
        settings = (
            ("acd_queue_sl_threshold_seconds", "sl_threshold_s", "Service-level threshold"),
            ("acd_queue_sl_target_ratio", "sl_target", "Service-level target"),
            ("acd_queue_short_abandon_seconds", "short_abandon_s", "Short-abandon threshold"),
        )
        for name, attr, doc in settings:
            gauge = GaugeMetricFamily(name, doc, labels=["queue"])
            for queue in queues:
                gauge.add_metric([queue], getattr(kpi_config.queue(queue), attr))
            families.append(gauge)
    return families


def _health_families(health: Health) -> list[Metric]:
    families: list[Metric] = []
    families += [
        GaugeMetricFamily("acd_ami_connected", "1 while logged in to AMI", value=int(health.ami_connected)),
        CounterMetricFamily("acd_ami_events", "AMI messages received", value=health.ami_events),
        CounterMetricFamily("acd_ami_reconnects", "AMI reconnects", value=health.ami_reconnects),
        CounterMetricFamily("acd_store_write_errors", "Failed store writes", value=health.store_write_errors),
    ]
    drops = CounterMetricFamily("acd_queue_drops", "Items dropped by a full internal queue",
                                labels=["queue_name"])  # fmt: skip
    for queue_name, n in sorted(health.drops.items()):
        drops.add_metric([queue_name], n)
    families.append(drops)
    return families


def build_families(
    tallies: Tallies,
    live: LiveGauges,
    health: Health | None,
    windows: KpiWindows | None = None,
    kpi_config: KpiConfig | None = None,
    oncall_hotlines: Iterable[str] = (),
) -> list[Metric]:
    calls = CounterMetricFamily(
        "acd_queue_calls", "Queue visits finished, by outcome", labels=["queue", "outcome"]
    )
    for (queue, outcome), n in sorted(tallies.calls.items()):
        calls.add_metric([queue, outcome], n)
    short = CounterMetricFamily("acd_queue_short_abandoned", "Abandons within the short-abandon threshold",
                                labels=["queue"])  # fmt: skip
    for queue, n in sorted(tallies.short_abandoned.items()):
        short.add_metric([queue], n)
    rings = CounterMetricFamily("acd_ring_attempts", "Agent ring attempts by result",
                                labels=["queue", "agent", "result"])  # fmt: skip
    for attempt_key, n in sorted(tallies.ring_attempts.items()):
        rings.add_metric(list(attempt_key), n)
    transfers = CounterMetricFamily("acd_transfers", "Transfers by kind", labels=["queue", "kind"])
    for transfer_key, n in sorted(tallies.transfers.items()):
        transfers.add_metric(list(transfer_key), n)
    hists = {"talk": tallies.talk, "hold": tallies.hold, "wrap": tallies.wrap}
    per_queue = {name: [((q,), h) for q, h in by_queue.items()] for name, by_queue in hists.items()}
    families: list[Metric] = [
        calls, short, rings, transfers, *_call_flow_families(tallies, oncall_hotlines),
        _histogram("acd_queue_wait_seconds", "Wait in the queue", ["queue", "outcome"], tallies.wait.items()),
        _histogram("acd_talk_seconds", "Talk time, hold excluded", ["queue"], per_queue["talk"]),
        _histogram("acd_hold_seconds", "Hold time per answered call", ["queue"], per_queue["hold"]),
        _histogram("acd_wrap_seconds", "After-call work", ["queue"], per_queue["wrap"]),
    ]  # fmt: skip
    waiting = GaugeMetricFamily("acd_queue_calls_waiting", "Callers waiting now", labels=["queue"])
    longest = GaugeMetricFamily("acd_queue_longest_wait_seconds", "Longest current wait", labels=["queue"])
    for queue in sorted(live.calls_waiting):
        waiting.add_metric([queue], live.calls_waiting[queue])
        longest.add_metric([queue], live.longest_wait_s.get(queue, 0.0))
    agents = GaugeMetricFamily("acd_agents", "Agents by state, per queue", labels=["queue", "state"])
    for queue_state, n in sorted(live.agents.items()):
        agents.add_metric(list(queue_state), n)
    agent_state = GaugeMetricFamily(
        "acd_agent_state", "1 for each agent's current state", labels=["agent", "state"]
    )
    for agent_key, n in sorted(live.agent_state.items()):
        agent_state.add_metric(list(agent_key), n)
    families += [waiting, longest, agents, agent_state]
    families += _window_families(windows or {}, kpi_config)
    if health is not None:
        families += _health_families(health)
    return families


class SnapshotCollector(Collector):
    """Serves whatever list of families was published last. With a pbx id (several PBXes in one
    centre), every sample carries it as the `pbx` label; without one, no label at all, so a
    single-PBX site's series never change."""

    def __init__(self, pbx: str = "") -> None:
        self._families: list[Metric] = []
        self.pbx = pbx

    def publish(self, families: list[Metric]) -> None:
        if self.pbx:
            families = [with_label(f, "pbx", self.pbx) for f in families]
        self._families = families  # one reference swap: atomic for the scraping thread

    def collect(self) -> Iterator[Metric]:
        return iter(self._families)


def workforce_families(needs: Mapping[str, Need], staffed: Mapping[str, int]) -> list[Metric]:
    """Required agents now and next (docs/kpi.md, "Workforce") beside the agents staffed now."""
    required = GaugeMetricFamily("acd_queue_required_agents", "Agents needed for the queue's SL target",
                                 labels=["queue", "horizon"])  # fmt: skip
    calls = GaugeMetricFamily("acd_queue_forecast_calls", "Calls forecast for the next interval",
                              labels=["queue", "source"])  # fmt: skip
    for queue, need in sorted(needs.items()):
        for horizon, n in (("now", need.now), ("next", need.next)):
            if n is not None:  # no AHT measured yet: no sample, never 0
                required.add_metric([queue, horizon], n)
        if need.forecast is not None:
            calls.add_metric([queue, need.forecast.source], need.forecast.calls)
    have = GaugeMetricFamily("acd_queue_staffed_agents", "Members logged in and not paused",
                             labels=["queue"])  # fmt: skip
    for queue in sorted(set(staffed) | set(needs)):
        have.add_metric([queue], staffed.get(queue, 0))
    return [required, calls, have]


def window_kpis(engine: KpiEngine, cfg: KpiConfig, now: float) -> dict[str, Kpis]:
    """KPIs per window label: each rolling window ("15m"), "today", "24h", "interval"."""
    windows = {f"{w / 60:g}m": engine.rolling(now, w) for w in cfg.windows_s}
    return windows | {
        "today": engine.today(now),
        "24h": engine.rolling_24h(now),
        "interval": engine.interval(now),
    }


def with_label(family: Metric, name: str, value: str) -> Metric:
    """A copy of the family with one more label on each sample (done at publish, on the loop)."""
    out = Metric(family.name, family.documentation, family.type, family.unit)
    out.samples = [s._replace(labels={**s.labels, name: value}) for s in family.samples]
    return out


def new_registry(pbx: str = "") -> tuple[CollectorRegistry, SnapshotCollector]:
    registry = CollectorRegistry(auto_describe=False)
    collector = SnapshotCollector(pbx)
    registry.register(collector)
    return registry, collector


def render(registry: CollectorRegistry) -> bytes:
    return generate_latest(registry)


def http_family(stats: Mapping[str, int], gauges: Iterable[str] = ()) -> Metric:
    """The HTTP server's request counters by kind (requests, timeouts, malformed, too_large...);
    what is open now (the gauges) is left out: acd_http_sse_clients carries the streams."""
    family = CounterMetricFamily("acd_http_events", "HTTP requests and refusals by kind", labels=["kind"])
    for kind, n in sorted(stats.items()):
        if kind not in gauges and isinstance(n, int):
            family.add_metric([kind], n)
    return family


def access_families(stats: Mapping[str, int]) -> list[Metric]:
    """Sign-ins by outcome and sessions (access/service.py AccessStats); sessions_open is a gauge."""
    family = CounterMetricFamily("acd_access_events", "Sign-ins and sessions by kind", labels=["kind"])
    for kind, n in sorted(stats.items()):
        if kind != "sessions_open":
            family.add_metric([kind], n)
    sessions = GaugeMetricFamily("acd_access_sessions_open", "Signed-in sessions open now",
                                 value=stats.get("sessions_open", 0))  # fmt: skip
    return [family, sessions]


def agi_family(stats: Mapping[str, int]) -> Metric:
    """The FastAGI server's session counters (sessions, completed, hangups, failed, probes...)."""
    family = CounterMetricFamily("acd_agi_events", "FastAGI sessions and commands by kind", labels=["kind"])
    for kind, n in sorted(stats.items()):
        if kind != "in_flight":
            family.add_metric([kind], n)
    return family
