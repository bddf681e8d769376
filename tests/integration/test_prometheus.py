"""A real Prometheus (Debian's package) scrapes `acdbridge run` while lab traffic runs: what it
stored must agree with the call records in acdbridge's store, across a daemon restart."""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
import time
import urllib.parse
import urllib.request
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from acdbridge.lab import pbx, scenario, traffic

from .daemon_harness import DaemonProcess, free_port


@pytest.fixture
def prometheus(tmp_path: Path) -> Iterator[tuple[int, int]]:
    """(prometheus port, the port it scrapes acdbridge on)."""
    binary = shutil.which("prometheus")
    if binary is None:
        pytest.fail("prometheus is missing: install Debian's prometheus package (make test does)")
    web, target = free_port(), free_port()
    config = tmp_path / "prometheus.yml"
    config.write_text(
        "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
        "scrape_configs:\n  - job_name: acdbridge\n    static_configs:\n"
        f"      - targets: ['127.0.0.1:{target}']\n"
    )
    log = (tmp_path / "prometheus.log").open("w")
    proc = subprocess.Popen(
        [binary, f"--config.file={config}", f"--storage.tsdb.path={tmp_path / 'tsdb'}",
         f"--web.listen-address=127.0.0.1:{web}"],
        stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{web}/-/ready", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                time.sleep(0.3)
        else:
            pytest.fail(f"prometheus did not start: {(tmp_path / 'prometheus.log').read_text()[-2000:]}")
        yield web, target
    finally:
        proc.terminate()
        proc.wait(10)


def query(port: int, promql: str) -> list[dict[str, object]]:
    url = f"http://127.0.0.1:{port}/api/v1/query?" + urllib.parse.urlencode({"query": promql})
    with urllib.request.urlopen(url, timeout=5) as r:
        body = json.load(r)
    assert body["status"] == "success", body
    return list(body["data"]["result"])


def test_prometheus_scrapes_what_the_store_holds(
    lab: pbx.LabSettings, tmp_path: Path, prometheus: tuple[int, int]
) -> None:
    web, target = prometheus
    daemon = DaemonProcess(tmp_path, lab.ami_port, http_port=target)
    daemon.start()
    asyncio.run(traffic.run_async(scenario.load("smoke"), lab, print))
    assert daemon.stop() == 0
    daemon.start()  # counters must go on from the store, not restart at zero
    asyncio.run(traffic.run_async(scenario.load("sip_hold"), lab, print))
    time.sleep(3)  # a few scrapes after the last call
    stored = Counter((v["queue"], v["outcome"]) for v in daemon.stored_visits())
    assert sum(stored.values()) == 5
    scraped = {
        (str(s["metric"]["queue"]), str(s["metric"]["outcome"])): int(float(s["value"][1]))  # type: ignore[index]
        for s in query(web, "acd_queue_calls_total")
    }
    assert scraped == dict(stored)
    assert query(web, "resets(acd_queue_calls_total[5m]) > 0") == []  # the restart was no reset
    assert [s["value"][1] for s in query(web, 'up{job="acdbridge"}')] == ["1"]  # type: ignore[index]
    holds = query(web, 'acd_hold_seconds_count{queue="water"}')
    assert holds and float(holds[0]["value"][1]) == stored[("water", "answered")]  # type: ignore[index]
    assert daemon.stop() == 0
