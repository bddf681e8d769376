"""The Prometheus exposition and the HTTP endpoint, without a PBX."""

from __future__ import annotations

import asyncio
import re
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from acdbridge.adapters.web.site import build_site
from acdbridge.replay import replay_metrics, replay_records

TRACES = Path(__file__).parent / "fixtures" / "traces"
ALL = sorted(p for p in TRACES.iterdir() if p.suffix in (".ami", ".gz"))
SAMPLE = re.compile(r"^(\w+)(?:\{(.*)\})? (\S+)$")


def samples(text: str) -> list[tuple[str, dict[str, str], float]]:
    out = []
    for line in text.splitlines():
        if line and not line.startswith("#"):
            m = SAMPLE.match(line)
            assert m, f"not a sample line: {line!r}"
            labels = dict(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', m.group(2) or ""))
            out.append((m.group(1), labels, float(m.group(3))))
    return out


def promtool() -> str:
    path = shutil.which("promtool")
    if path is None:
        pytest.fail("promtool is missing: install Debian's prometheus package (make test does)")
    return path


@pytest.mark.parametrize("trace", ALL, ids=lambda p: p.name)
def test_replay_metrics_is_valid_exposition_and_counts_every_visit(trace: Path) -> None:
    text = replay_metrics(trace).decode()
    lint = subprocess.run(
        [promtool(), "check", "metrics"], input=text, capture_output=True, text=True, check=False
    )
    assert lint.returncode == 0, lint.stdout + lint.stderr
    got = Counter(
        {(lb["queue"], lb["outcome"]): v for name, lb, v in samples(text) if name == "acd_queue_calls_total"}
    )
    want = Counter((r["queue"], r["outcome"]) for r in replay_records(trace))
    assert got == want
    for name, labels, _ in samples(text):  # bounded cardinality: no per-call label values
        assert not any(re.fullmatch(r"acdlab-\d+\.\d+", v) for v in labels.values()), (name, labels)


def test_histograms_and_live_gauges_on_the_mixed_trace() -> None:
    text = replay_metrics(TRACES / "mixed.ami.gz").decode()
    by = {(n, tuple(sorted(lb.items()))): v for n, lb, v in samples(text)}
    answered = [r for r in replay_records(TRACES / "mixed.ami.gz") if r["outcome"] == "answered"]
    water = [r for r in answered if r["queue"] == "water"]
    assert by[("acd_talk_seconds_count", (("queue", "water"),))] == len(water)
    assert by[("acd_talk_seconds_sum", (("queue", "water"),))] == pytest.approx(
        sum(r["talk_s"] for r in water)
    )
    within_20 = sum(r["wait_s"] <= 20 for r in water)
    key = ("acd_queue_wait_seconds_bucket", (("le", "20"), ("outcome", "answered"), ("queue", "water")))
    assert by[key] == within_20
    assert by[("acd_transfers_total", (("kind", "attended"), ("queue", "water")))] == 1
    assert by[("acd_queue_calls_waiting", (("queue", "water"),))] == 0  # everyone had left at the end


def test_replay_metrics_from_the_command_line() -> None:
    cmd = [sys.executable, "-m", "acdbridge", "replay", str(TRACES / "edge.ami"), "--metrics"]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    assert 'acd_queue_calls_total{outcome="blocked",queue="complaints"} 1.0' in out


async def _get(port: int, raw: bytes) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(raw)
    await writer.drain()
    data = await asyncio.wait_for(reader.read(), 5)
    writer.close()
    return data


def test_http_endpoint_answers_and_refuses_clearly() -> None:
    async def scenario() -> list[bytes]:
        healthy = [True]
        server = build_site("127.0.0.1", 0, lambda: b"acd_up 1\n", lambda: (healthy[0], {"why": "test"}))
        await server.start()
        port = server.port
        try:
            # a bare connect/close and a half request never hang the server
            _, w = await asyncio.open_connection("127.0.0.1", port)
            w.close()
            answers = [
                await _get(port, b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n"),
                await _get(port, b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"),
                await _get(port, b"POST /metrics HTTP/1.1\r\nHost: x\r\n\r\n"),
                await _get(port, b"GET /nope HTTP/1.1\r\nHost: x\r\n\r\n"),
                await _get(port, b"nonsense\r\n\r\n"),
            ]
            healthy[0] = False
            answers.append(await _get(port, b"GET /healthz HTTP/1.0\r\n\r\n"))
            answers.append(await _get(port, b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n"))  # still serving
        finally:
            await server.stop()
        return answers

    metrics, health, post, missing, garbage, unhealthy, again = asyncio.run(scenario())
    assert metrics.startswith(b"HTTP/1.1 200") and metrics.endswith(b"acd_up 1\n")
    assert b"text/plain; version=0.0.4" in metrics
    assert health.startswith(b"HTTP/1.1 200") and b'"ok": true' in health
    assert post.startswith(b"HTTP/1.1 405") and b"use GET" in post
    assert missing.startswith(b"HTTP/1.1 404") and b"try /, /metrics or /healthz" in missing
    assert garbage.startswith(b"HTTP/1.0 400")  # the head could not be parsed: its version neither
    assert unhealthy.startswith(b"HTTP/1.0 503") and b'"why": "test"' in unhealthy
    assert again.startswith(b"HTTP/1.1 200")


def test_every_series_the_alert_rules_use_is_exported() -> None:
    """The shipped alert rules and the exposition must not drift apart."""
    from acdbridge.adapters.metrics import (
        DaemonHealth,
        Health,
        build_families,
        daemon_families,
        new_registry,
        render,
        window_kpis,
        workforce_families,
    )
    from acdbridge.config import Config
    from acdbridge.core.kpi import KpiEngine
    from acdbridge.core.pipeline import Pipeline
    from acdbridge.core.tallies import Histogram, live_gauges
    from acdbridge.core.workforce import needs, staffed
    from acdbridge.replay import read_chunks

    rules = "".join(p.read_text() for p in (Path(__file__).parents[1] / "grafana/alerts").glob("*.rules.yml"))
    used = set(re.findall(r"\b(acd_[a-z_]+)", rules))
    cfg = Config()
    visits: list[dict[str, object]] = []
    pipeline = Pipeline(on_visit=visits.append)
    for chunk in read_chunks(TRACES / "mixed.ami.gz"):
        pipeline.feed_bytes(chunk)
    engine = KpiEngine(cfg.kpi)
    for v in visits:
        engine.add_visit(v)
    registry, collector = new_registry()
    live = live_gauges(pipeline.calls, pipeline.agents, pipeline.calls.now)
    health = Health(True, 1, 0, 0, {"events": 0, "records": 0})
    windows = window_kpis(engine, cfg.kpi, pipeline.calls.now)
    lag, writes = Histogram((0.1,)), Histogram((0.1,))
    daemon = DaemonHealth(lag, writes, queue_depth={"events": 0}, task_restarts={"metrics": 0}, journal={})
    recent = engine.rolling(pipeline.calls.now, cfg.kpi.interval_s)["queues"]
    need = needs(recent, cfg.kpi.interval_s, {q: cfg.kpi.queue(q) for q in recent}, {})
    collector.publish(
        build_families(pipeline.tallies, live, health, windows, cfg.kpi, oncall_hotlines=("water",))
        + daemon_families(daemon)
        + workforce_families(need, staffed(live))
    )
    exported = {name for name, _, _ in samples(render(registry).decode())}
    exported |= {re.sub(r"_(bucket|count|sum)$", "", n) for n in exported}
    assert used and used <= exported, sorted(used - exported)
