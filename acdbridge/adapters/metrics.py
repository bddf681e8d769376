"""Prometheus exposition: the metrics are a read-only view of a snapshot.

The daemon's loop builds the metric families from the core's tallies and trackers (on a timer
and at the end of a replay); the collector only returns the latest immutable list, so a scrape
served from another thread never touches loop-owned state. Domain code never sets a gauge."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector

from acdbridge.core.kpi import KpiConfig, KpiEngine
from acdbridge.core.tallies import Histogram, LiveGauges, Tallies

KpiWindows = Mapping[str, Mapping[str, Mapping[str, float | int | None]]]  # window -> queue -> metric


@dataclass(frozen=True)
class Health:
    ami_connected: bool
    ami_events: int
    ami_reconnects: int
    store_write_errors: int
    drops: Mapping[str, int]


# window KPIs exported as gauges: metric in the KPI engine -> (name, help)
WINDOW_GAUGES = {
    "service_level": ("acd_queue_service_level_ratio", "Answered within threshold / (offered-blocked-short)"),
    "asa_s": ("acd_queue_asa_seconds", "Average speed of answer"),
    "abandon_rate": ("acd_queue_abandon_ratio", "(Abandoned-short) / (offered-blocked-short)"),
    "percent_answered": ("acd_queue_answered_ratio", "Answered / offered (blocked included)"),
    "aht_s": ("acd_queue_aht_seconds", "Average handle time: talk + hold + wrap"),
    "avg_wait_s": ("acd_queue_avg_wait_seconds", "Average wait, blocked calls excluded"),
    "avg_abandon_wait_s": ("acd_queue_avg_abandon_wait_seconds", "Average wait before abandoning"),
    "offered": ("acd_queue_offered_calls", "Calls offered in the window"),
    "transfer_rate": ("acd_queue_transfer_ratio", "Transfers / answered"),
}  # fmt: skip


def _histogram(
    name: str, doc: str, labels: list[str], items: Iterable[tuple[tuple[str, ...], Histogram]]
) -> Metric:
    family = HistogramMetricFamily(name, doc, labels=labels)
    for values, hist in sorted(items):
        family.add_metric(list(values), hist.cumulative(), hist.total)
    return family


def build_families(
    tallies: Tallies, live: LiveGauges, health: Health | None, windows: KpiWindows | None = None
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
        calls, short, rings, transfers,
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
    for metric, (name, doc) in WINDOW_GAUGES.items():
        gauge = GaugeMetricFamily(name, doc, labels=["queue", "window"])
        for window, queues in sorted((windows or {}).items()):
            for queue, values in sorted(queues.items()):
                value = values.get(metric)
                if value is not None:  # an empty denominator is no sample, never 0
                    gauge.add_metric([queue, window], float(value))
        families.append(gauge)
    if health is not None:
        families += [
            GaugeMetricFamily(
                "acd_ami_connected", "1 while logged in to AMI", value=int(health.ami_connected)
            ),
            CounterMetricFamily("acd_ami_events", "AMI messages received", value=health.ami_events),
            CounterMetricFamily("acd_ami_reconnects", "AMI reconnects", value=health.ami_reconnects),
            CounterMetricFamily(
                "acd_store_write_errors", "Failed store writes", value=health.store_write_errors
            ),
        ]
        drops = CounterMetricFamily("acd_queue_drops", "Items dropped by a full internal queue",
                                    labels=["queue_name"])  # fmt: skip
        for queue_name, n in sorted(health.drops.items()):
            drops.add_metric([queue_name], n)
        families.append(drops)
    return families


class SnapshotCollector(Collector):
    """Serves whatever list of families was published last."""

    def __init__(self) -> None:
        self._families: list[Metric] = []

    def publish(self, families: list[Metric]) -> None:
        self._families = families  # one reference swap: atomic for the scraping thread

    def collect(self) -> Iterator[Metric]:
        return iter(self._families)


def window_kpis(engine: KpiEngine, cfg: KpiConfig, now: float) -> dict[str, dict[str, dict[str, Any]]]:
    """Queue KPIs per window label: each rolling window ("15m"), "today", "24h", "interval"."""
    windows = {f"{w / 60:g}m": engine.rolling(now, w) for w in cfg.windows_s}
    windows |= {"today": engine.today(now), "24h": engine.rolling_24h(now), "interval": engine.interval(now)}
    return {label: kpis["queues"] for label, kpis in windows.items()}


def new_registry() -> tuple[CollectorRegistry, SnapshotCollector]:
    registry = CollectorRegistry(auto_describe=False)
    collector = SnapshotCollector()
    registry.register(collector)
    return registry, collector


def render(registry: CollectorRegistry) -> bytes:
    return generate_latest(registry)
