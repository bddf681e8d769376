"""Every query of the Grafana dashboards (grafana/dashboards/*.json), run against a real Prometheus that
scraped `acdbridge run` through real lab traffic: each must be valid PromQL and return series, as each
panel would show them, for every queue the scenario used and for the All selection."""

from __future__ import annotations

import asyncio
import json
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

from acdbridge.lab import pbx, scenario, traffic
from tests.test_dashboards import (
    ALLOWED_EXTRA,
    DASHBOARDS,
    QUEUE_VARIABLE,
    exposition_names,
    load,
    metric_names,
    panel_queries,
    substitute,
    variable_as_promql,
    variable_query,
)

from .daemon_harness import DaemonProcess, build_lab_prompts, flow_config

# About 25 s in both queues: answered calls, a short and a long abandon, a ring-no-answer (an agent who
# never picks up) and a pause, so that every panel has something to show.
SCENARIO: dict[str, Any] = {
    "name": "grafana",
    "description": "both queues: answers, short and long abandons, ring-no-answer, a pause",
    "seed": 17,
    "max_duration_s": 70,
    "queues": {
        # through the daemon's greeting: callers press the menu key, and rate the call when asked
        "water": {"dial": "6000", "max_wait_s": 40, "talk_s": 3, "menu": "1"},
        "broadband": {"dial": "6100", "max_wait_s": 40, "talk_s": 3, "menu": "2"},
    },
    "agents": [
        {"id": "9001", "name": "Ana Torres", "queues": ["water"], "ring_delay_s": 1,
         "after_talk": {"agent_hangs_up": 1}},
        {"id": "9003", "name": "Pedro Ruiz", "queues": ["water"], "ring_delay_s": "never"},
        {"id": "9004", "name": "Wang Fang", "queues": ["broadband"], "ring_delay_s": 1,
         "after_talk": {"caller_hangs_up": 1}, "pauses": [{"at_s": 9, "for_s": 4, "reason": "break"}]},
    ],
    "calls": [
        {"at_s": 0, "queue": "water"},
        {"at_s": 0, "queue": "broadband"},
        {"at_s": 0.5, "queue": "water"},  # one of the two first water calls rings Pedro: ring-no-answer
        {"at_s": 1, "queue": "water", "patience_s": 2},  # short abandon
        {"at_s": 1, "queue": "broadband", "patience_s": 6},  # long abandon: Wang is busy
        {"at_s": 16, "queue": "broadband"},  # after Wang's wrap-up and break
    ],
}  # fmt: skip
QUEUES = tuple(SCENARIO["queues"])

# Queries that may return nothing in a healthy lab once the scenario is over, and why.
MAY_BE_EMPTY = {
    ("acdbridge-supervisor", "Paused agents", "A"): "nobody is paused after the scenario: agents are removed",
    ("acdbridge-ops", "Alerts", "A"): "the test Prometheus loads no rule files, so ALERTS never exists",
    ("acdbridge-supervisor", "First-call resolution (today)", "A"): "the lab's agents enter no dispositions",
}
# Series a healthy daemon serves only once something happened: no sample until then.
MAY_BE_ABSENT = {"acd_queue_first_call_resolution_ratio": "no disposition was entered in the scenario"}
# Queries empty for one queue only, and why.
MAY_BE_EMPTY_FOR_QUEUE = {
    ("acdbridge-supervisor", "Ring-no-answer per 30 minutes", "A", "broadband"): "its only agent answers",
    ("acdbridge-supervisor", "Satisfaction (today)", "A", "broadband"): "its callers hang up: no survey",
}
# Series Prometheus makes itself: not in acdbridge's /metrics.
PROMETHEUS_SERIES = {"up", "scrape_duration_seconds", "scrape_samples_scraped", "ALERTS"}


def _query(port: int, promql: str) -> tuple[list[dict[str, Any]], str | None]:
    """(series, None) or ([], the error Prometheus gave)."""
    url = f"http://127.0.0.1:{port}/api/v1/query?" + urllib.parse.urlencode({"query": promql})
    try:
        with urllib.request.urlopen(url, timeout=10) as r:
            body = json.load(r)
    except urllib.error.HTTPError as exc:
        return [], exc.read().decode(errors="replace")
    if body.get("status") != "success":
        return [], str(body)
    return list(body["data"]["result"]), None


def _check_queries(web: int) -> tuple[list[str], int]:
    """Every variable and panel query of every dashboard: (what failed, how many queries ran)."""
    failures: list[str] = []
    ran = 0
    for model in (load(name) for name in DASHBOARDS):
        for variable in model["templating"]["list"]:
            series, error = _query(web, variable_as_promql(variable_query(variable)))
            values = {str(s["metric"].get(variable["name"])) for s in series}
            ran += 1
            if error or not set(QUEUES) <= values:
                failures.append(f"{model['uid']} variable ${variable['name']}: {error or sorted(values)}")
        for query in panel_queries(model):
            key = (query.dashboard, query.panel, query.ref_id)
            # a repeated wallboard row gets one queue; the All selection arrives as a regex
            selections = (".*", *QUEUES) if QUEUE_VARIABLE in query.expr else (".*",)
            for queue in selections:
                promql = substitute(query.expr, queue)
                series, error = _query(web, promql)
                ran += 1
                if error:
                    failures.append(f"{key} {promql}\n    error: {error}")
                elif not series:
                    why = MAY_BE_EMPTY.get(key) or MAY_BE_EMPTY_FOR_QUEUE.get((*key, queue))
                    if why is None:
                        failures.append(f"{key} {promql}\n    returned no series")
                    else:
                        print(f"empty, as allowed ({why}): {promql}")
    return failures, ran


def test_every_dashboard_query_returns_series(
    lab: pbx.LabSettings, tmp_path: Path, prometheus: tuple[int, int]
) -> None:
    web, target = prometheus
    build_lab_prompts(lab.root)
    daemon = DaemonProcess(tmp_path, lab.ami_port, http_port=target, extra=flow_config())
    daemon.start()
    try:
        started = time.monotonic()
        report = asyncio.run(traffic.run_async(scenario.parse(SCENARIO, "grafana"), lab, print))
        print(f"traffic took {time.monotonic() - started:.1f} s, queue_log: {report.queue_log}")
        time.sleep(12)  # the daemon refreshes the window KPIs every 10 s; Prometheus scrapes every second

        with urllib.request.urlopen(f"http://127.0.0.1:{target}/metrics", timeout=10) as r:
            served = exposition_names(r.read().decode())
        used = {n for name in DASHBOARDS for q in panel_queries(load(name)) for n in metric_names(q.expr)}
        assert not used - served - PROMETHEUS_SERIES - set(MAY_BE_ABSENT), f"not served: {used - served}"
        assert set(ALLOWED_EXTRA) - PROMETHEUS_SERIES - set(MAY_BE_ABSENT) <= served

        assert _query(web, "sum(acd_queue_calls_total")[1], "a PromQL error must be seen as one"
        failures, ran = _check_queries(web)
        print(f"{ran} queries run against Prometheus")
        assert not failures, "\n".join(failures) + f"\n--- daemon log (end)\n{daemon.log_text()[-3000:]}"
    finally:
        code = daemon.stop()
    assert code == 0
