"""The daemon's metrics beside the core's: one place that reads every part's counters (AMI link,
writer, journal, MQTT, HTTP, FastAGI, loop lag, task restarts) into /metrics families and the
/healthz answer. The core's own families come from runtime/views.py, as in a replay."""

from __future__ import annotations

from dataclasses import asdict
from typing import TYPE_CHECKING

from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, Metric

from acdbridge.adapters.metrics import (
    DaemonHealth,
    Health,
    access_families,
    agi_family,
    daemon_families,
    http_family,
)
from acdbridge.adapters.webhooks import webhook_families
from acdbridge.core.values import PROBLEM_KINDS
from acdbridge.runtime.reportjob import report_families

if TYPE_CHECKING:
    from acdbridge.runtime.daemon import Parts
    from acdbridge.runtime.privacy import PrivacyJob


class SelfMetrics:
    def __init__(self, parts: Parts) -> None:
        self.p = parts

    def input_problems(self) -> dict[str, int]:
        """Every kind from the start (so increase() sees the first), and what the KPI engine and
        the tallies left out or folded away beside what the trackers counted."""
        engine = self.p.engine
        counts = dict.fromkeys(PROBLEM_KINDS, 0) | engine.pipeline.problem_counts
        counts["kpi_record_rejected"] = engine.kpis.rejected
        counts["kpi_record_evicted"] = engine.kpis.evicted
        counts["tally_series_overflow"] = engine.pipeline.tallies.overflowed
        return counts

    def link(self) -> Health:
        p = self.p
        ami, writer = p.ami.stats, p.writer.stats
        drops = {"events": p.inbox.dropped, "records": writer.records_dropped}
        return Health(ami.connected, ami.messages, ami.reconnects, writer.store_write_errors, drops)

    def daemon_health(self) -> DaemonHealth:
        p = self.p
        w, http = p.writer.stats, getattr(p.http, "stats", None)
        return DaemonHealth(
            p.lag.histogram, w.write_seconds,
            queue_depth={"events": p.inbox.queue.qsize(), "records": p.writer.queue.qsize()},
            task_restarts=dict(p.restarts), config_reloads=dict(p.reloader.results),
            input_problems=self.input_problems(),
            store_quarantined=getattr(p.store, "quarantined", 0),
            store_rows_rejected=getattr(p.store, "rejected", 0), records_lost=w.records_lost,
            mqtt=(p.mqtt.stats.connected, p.mqtt.backlog) if p.mqtt else None,
            sse=(getattr(http, "streams", 0), getattr(http, "sse_dropped", 0)) if http else None,
            journal=dict(vars(p.journal.stats)) if p.journal is not None else None,
        )  # fmt: skip

    def families(self, now: float) -> list[Metric]:
        p = self.p
        families = p.views.families(now, self.link())
        families += daemon_families(self.daemon_health())
        if p.agi is not None:
            families.append(agi_family(vars(p.agi.stats)))
        if (http := getattr(p.http, "stats", None)) is not None:
            families.append(http_family(vars(http), getattr(http, "GAUGES", ())))
        if (access := getattr(p.http, "access_stats", None)) is not None:
            families += access_families(asdict(access()))
        return families + self.links()

    def links(self) -> list[Metric]:
        """The counters the AMI and MQTT links keep beyond Health's (every counter is exported)."""
        ami = self.p.ami.stats
        out: list[Metric] = [
            CounterMetricFamily("acd_ami_logins", "Successful AMI logins (each followed by a resync)",
                                value=ami.connections),
            CounterMetricFamily("acd_ami_malformed_frames", "AMI frames the parser skipped (by kind in "
                                "acd_core_input_problems_total)", value=ami.malformed),
        ]  # fmt: skip
        if (job := self.p.privacy) is not None:
            out += privacy_families(job)
        if (reports := self.p.reports) is not None:
            out += report_families(reports)
        if (hooks := self.p.webhooks) is not None:
            out += webhook_families(hooks.stats)
        if (mqtt := self.p.mqtt) is not None:
            out += [
                CounterMetricFamily("acd_mqtt_published", "MQTT messages the broker acknowledged",
                                    value=mqtt.stats.published),
                CounterMetricFamily("acd_mqtt_reconnects", "MQTT reconnects", value=mqtt.stats.reconnects),
            ]  # fmt: skip
        return out

    def healthz(self) -> tuple[bool, dict[str, object]]:
        """/healthz: the AMI link up and the store writing (not the error count: a store back
        from an outage is well again)."""
        ami, writer = self.p.ami.stats, self.p.writer.stats
        failing = writer.failing
        return ami.connected and not failing, {
            "ami_connected": ami.connected, "last_ami_error": ami.last_error,
            "store_failing": failing, "store_write_errors": writer.store_write_errors,
            "task_restarts": sum(self.p.restarts.values()),
        }  # fmt: skip


def privacy_families(job: PrivacyJob) -> list[Metric]:
    """The daily privacy job (docs/privacy.md): an alert on the last run's age finds a stuck job."""
    rows = CounterMetricFamily("acd_privacy_rows_pseudonymised", "Rows whose caller fields the privacy "
                               "job pseudonymised, by table", labels=["table"])  # fmt: skip
    for table, n in job.totals.rows.items():
        rows.add_metric([table], n)
    deleted = CounterMetricFamily("acd_privacy_deleted", "What the privacy job deleted past the "
                                  "retention", labels=["what"])  # fmt: skip
    deleted.add_metric(["quarantine_rows"], job.totals.quarantine)
    deleted.add_metric(["journal_segments"], job.totals.segments)
    return [
        rows, deleted,
        CounterMetricFamily("acd_privacy_runs", "Runs of the daily privacy job", value=job.runs),
        GaugeMetricFamily("acd_privacy_last_run_timestamp_seconds", "When the privacy job last "
                          "finished (0: not yet)", value=job.last_run_at),
    ]  # fmt: skip
