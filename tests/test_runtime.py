"""The daemon's runtime without a PBX: supervised tasks, backoff, quarantine, strict store,
SIGHUP reloads, call ids in the logs, the daemon's own metrics."""

from __future__ import annotations

import asyncio
import json
import math
import os
import sqlite3
import stat
from pathlib import Path
from typing import Any

import pytest
import structlog
from structlog.testing import capture_logs

from acdbridge.adapters.metrics import DaemonHealth, daemon_families, new_registry, render
from acdbridge.adapters.reconnect import backoff_delay, keep_connected
from acdbridge.adapters.store import SqliteStore
from acdbridge.core.ami import AmiMessage
from acdbridge.core.kpi import KpiConfig
from acdbridge.core.tallies import Histogram
from acdbridge.errors import DirectoryUnreadable, StoreLocked, StoreUnusable
from acdbridge.runtime.engine import Engine
from acdbridge.runtime.reload import Reloader
from acdbridge.runtime.resume import Resumer
from acdbridge.runtime.startup import check_directory
from acdbridge.runtime.supervise import supervise
from acdbridge.runtime.track import track
from tests.integration.daemon_harness import free_port
from tests.test_metrics import samples

# --- backoff ------------------------------------------------------------------------------------


def test_backoff_is_capped_for_any_number_of_failures() -> None:
    assert backoff_delay(0, 0.5, 30.0) == 0.5
    assert backoff_delay(3, 0.5, 30.0) == 4.0
    for attempt in (6, 1_024, 10_000, 10**9):  # 2.0**1024 alone overflows a float
        assert backoff_delay(attempt, 0.5, 30.0) == 30.0
    assert backoff_delay(10**9, 0.5, 30.0, 0.5) == 15.0
    assert backoff_delay(5, 0.0, 0.0) == 0.0  # degenerate settings give a number, not an error


class _Stats:
    reconnects = 0
    last_error = ""


def test_ten_thousand_failed_reconnects_in_a_row_raise_nothing() -> None:
    stats = _Stats()
    stop = asyncio.Event()
    failures = 0

    async def refused() -> None:
        nonlocal failures
        failures += 1
        if failures >= 10_000:
            stop.set()
        raise ConnectionRefusedError("refused")

    async def scenario() -> None:
        await keep_connected("pbx", refused, stop, (OSError,), stats, 1e-7, 1e-6)

    with capture_logs() as logs:
        asyncio.run(scenario())
    assert failures == 10_000 and stats.reconnects >= 9_999
    waits = [e for e in logs if e["event"] == "pbx_reconnect_wait"]
    assert waits[-1]["attempt"] == 9_999  # the streak was never reset: the exponent kept growing
    loud = [e for e in logs if e["event"] == "pbx_connection_failed" and e["log_level"] == "warning"]
    assert len(loud) == 1, "the same error again is not news: said once, loudly"


# --- supervised tasks ----------------------------------------------------------------------------


def test_a_failing_task_is_logged_counted_and_restarted() -> None:
    restarts: dict[str, int] = {}
    runs = 0

    async def flaky() -> None:
        nonlocal runs
        runs += 1
        if runs <= 3:
            raise OverflowError("(34, 'Numerical result out of range')")

    async def scenario() -> None:
        await supervise("kpi-refresh", flaky, asyncio.Event(), restarts, min_s=0.001, max_s=0.01)

    with capture_logs() as logs:
        asyncio.run(scenario())
    assert runs == 4 and restarts == {"kpi-refresh": 3}
    failed = [e for e in logs if e["event"] == "task_failed"]
    assert len(failed) == 3 and failed[0]["task"] == "kpi-refresh" and failed[0]["exc_info"] is True


def test_cancellation_goes_through_the_supervisor() -> None:
    async def scenario() -> bool:
        task = asyncio.create_task(supervise("sleeper", lambda: asyncio.sleep(60), asyncio.Event(), {}))
        await asyncio.sleep(0.01)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        return task.cancelled()

    assert asyncio.run(scenario())


def _config(tmp_path: Path, extra: str = "") -> Path:
    path = tmp_path / "acdbridge.toml"
    path.write_text(
        f'[ami]\nhost = "127.0.0.1"\nport = {free_port()}\nsecret = "not-the-lab"\n'
        f'reconnect_min_s = 0.2\nreconnect_max_s = 1\n[store]\npath = "{tmp_path / "store.sqlite"}"\n'
        f'[http]\nlisten = "127.0.0.1:{free_port()}"\n' + extra
    )
    return path


async def _get(port: int, path: str) -> tuple[int, bytes]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
    data = await reader.read()
    writer.close()
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split()[1]), body


def test_the_daemon_keeps_serving_while_its_kpi_refresh_keeps_failing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from acdbridge import app
    from acdbridge.config import load
    from acdbridge.runtime import daemon as daemon_module
    from acdbridge.runtime import views

    def overflow(*_args: Any) -> Any:
        raise OverflowError("absurd Timestamp 1e20")

    monkeypatch.setattr(views, "window_kpis", overflow)
    monkeypatch.setattr(daemon_module, "KPI_REFRESH_S", 0.05)
    cfg = load(_config(tmp_path))

    async def scenario() -> tuple[int, bytes, bytes, bool]:
        daemon = app.build(cfg)
        running = asyncio.create_task(daemon.run())
        for _ in range(100):  # the supervisor backs off 0.25-0.5 s, then 0.5-1 s
            await asyncio.sleep(0.05)
            if daemon.restarts.get("kpi-refresh", 0) >= 2 and daemon.http.listening:
                break
        await asyncio.sleep(1.1)  # one more metrics pass with the new count
        status, health = await _get(cfg.http.port, "/healthz")
        _, metrics = await _get(cfg.http.port, "/metrics")
        alive = not running.done()
        daemon.stop.set()
        await asyncio.wait_for(running, 10)
        return status, health, metrics, alive

    status, health, metrics, alive = asyncio.run(scenario())
    assert alive
    assert status == 503 and json.loads(health)["task_restarts"] >= 2  # 503: no PBX here; it answers
    restarts = {lb["task"]: v for n, lb, v in samples(metrics.decode()) if n == "acd_task_restarts_total"}
    assert restarts.pop("kpi-refresh") >= 2 and set(restarts.values()) == {0}  # the others run on
    assert {"ami", "tracker", "metrics", "wallboard", "store-writer", "systemd", "loop-lag"} <= set(restarts)


# --- the store: strict, never silent, private, locked --------------------------------------------


def _visit(uniqueid: str, end_ts: float = 1_000.0) -> dict[str, Any]:
    return {"uniqueid": uniqueid, "linkedid": uniqueid, "queue": "water", "caller": "100",
            "outcome": "abandoned", "enter_ts": 990.0, "answer_ts": None, "end_ts": end_ts, "wait_s": 10.0,
            "ring_s": 0.0, "talk_s": 0.0, "hold_s": 0.0, "hold_count": 0, "wrap_s": None, "agent": None,
            "agent_interface": None, "ring_attempts": [], "transfer": None, "ended_by": "caller"}  # fmt: skip


def test_a_record_the_store_cannot_write_is_quarantined_logged_and_counted(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "s.sqlite")
    with capture_logs() as logs:
        assert store.write([_visit("good.1"), _visit("bad.2", math.nan), _visit("good.3")], []) == 2
    assert store.count("visits") == 2 and store.count("quarantine") == 1
    assert store.rejected == 1 and store.quarantined == 1
    assert [(e["event"], e["uniqueid"]) for e in logs] == [("store_row_rejected", "bad.2")]
    row, error = store.db.execute("SELECT row, error FROM quarantine").fetchone()
    assert json.loads(row)["end_ts"] == "nan" and "end_ts" in error
    with pytest.raises(ValueError, match="not JSON compliant"):  # the store's JSON is strict
        store.save_state(1.0, {"x": math.inf})
    store.close()


def test_store_files_are_private_and_a_second_daemon_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "s.sqlite"
    first = SqliteStore(path, exclusive=True)
    first.write([_visit("a")], [])
    for f in (path, path.with_name("s.sqlite.lock"), path.with_name("s.sqlite-wal")):
        assert stat.S_IMODE(os.stat(f).st_mode) == 0o600, f
    with pytest.raises(StoreLocked, match="in use by another acdbridge daemon"):
        SqliteStore(path, exclusive=True)
    SqliteStore(path).close()  # a reader (export) takes no lock
    first.close()
    SqliteStore(path, exclusive=True).close()  # released at close
    with pytest.raises(StoreUnusable, match="cannot be opened"):
        SqliteStore(tmp_path)
    (tmp_path / "junk.sqlite").write_bytes(b"not a database at all" * 100)
    with pytest.raises(StoreUnusable, match="not a database"):
        SqliteStore(tmp_path / "junk.sqlite")


def _poison(path: Path) -> None:
    """A store as a crashed older version may have left it: rows the daemon cannot load."""
    store = SqliteStore(path)
    store.write([_visit("good.1")], [])
    feedback = {"uniqueid": "good.1", "kind": "survey", "value": "4", "resolved": False, "queue": "water",
                "agent": "Ana", "ts": 1_001.0}  # fmt: skip
    store.write_flow([], [feedback])
    store.close()
    with sqlite3.connect(path) as db:
        bad = json.dumps(_visit("nan.2")).replace('"end_ts": 1000.0', '"end_ts": NaN')
        db.execute(
            "INSERT INTO visits (uniqueid, queue, enter_ts, end_ts, outcome, agent, record)"
            " VALUES ('nan.2', 'water', 990, 1000, 'abandoned', NULL, ?)",
            (bad,),
        )
        db.execute(
            "INSERT INTO feedback (uniqueid, kind, value, resolved, queue, agent, ts)"
            " VALUES ('arabic.3', 'survey', '٣', 0, 'water', 'Ana', 1002)"
        )
        db.execute("INSERT INTO tracker_state VALUES (1, 1000, '{\"version\": 99}')")


def test_rows_that_cannot_be_loaded_are_quarantined_and_the_start_goes_on(tmp_path: Path) -> None:
    path = tmp_path / "s.sqlite"
    _poison(path)
    store = SqliteStore(path)
    engine = Engine(KpiConfig())
    pipeline = engine.pipeline
    with capture_logs() as logs:
        resumer = Resumer(store, engine)
        asyncio.run(resumer.run())
    assert resumer.quarantined == 3 and store.quarantined == 3
    assert pipeline.tallies.calls == {("water", "abandoned"): 1}  # the good visit counts
    assert dict(pipeline.tallies.surveys) == {("water", "4"): 1}
    sources = dict(store.db.execute("SELECT source, error FROM quarantine").fetchall())
    assert set(sources) == {"visits", "feedback", "tracker_state"}
    assert "not ASCII digits" in sources["feedback"] and "NaN" in sources["visits"]
    assert store.count("visits") == 1 and store.count("feedback") == 1  # moved, not copied
    quarantined = [e for e in logs if e["event"] == "store_row_quarantined"]
    assert {e.get("uniqueid") for e in quarantined} == {"arabic.3", None}
    asyncio.run(Resumer(store, Engine(KpiConfig())).run())  # the next start: clean
    assert store.count("quarantine") == 3
    store.close()


def test_an_unreadable_caller_directory_stops_the_start(tmp_path: Path) -> None:
    from acdbridge.flowconfig import FlowConfig

    with pytest.raises(DirectoryUnreadable, match=r"caller directory .* is unreadable"):
        check_directory(FlowConfig(directory=tmp_path))  # a directory, not a file
    good = tmp_path / "callers.csv"
    good.write_text("number,name\n100,Ana\n")
    check_directory(FlowConfig(directory=good))
    check_directory(None)


# --- SIGHUP ---------------------------------------------------------------------------------------


def test_an_invalid_new_config_is_rejected_whole(tmp_path: Path) -> None:
    path = _config(tmp_path)
    reloader = Reloader(path, None)
    reloader.reload()
    path.write_text(path.read_text().replace('secret = "not-the-lab"\n', "") + "[ami\n")
    with capture_logs() as logs:
        reloader.reload()
    assert reloader.results == {"ok": 1, "rejected": 1}
    assert [e["event"] for e in logs] == ["reload_rejected"] and "\n" not in logs[0]["problem"]


# --- call ids in the logs -------------------------------------------------------------------------


def test_everything_logged_while_feeding_an_event_names_its_call() -> None:
    log = structlog.get_logger("test")
    engine = Engine(KpiConfig())
    engine.pipeline.feed = lambda msg, received_at=0.0: log.info("inside", event_name=msg.name)  # type: ignore[method-assign]
    events: asyncio.Queue[tuple[AmiMessage, float] | None] = asyncio.Queue()
    call = {"Uniqueid": "1733140000.42", "Linkedid": "1733140000.40"}
    events.put_nowait((AmiMessage("event", "QueueCallerJoin", call), 0.0))
    events.put_nowait((AmiMessage("event", "FullyBooted", {}), 0.0))
    events.put_nowait(None)
    with capture_logs(processors=[structlog.contextvars.merge_contextvars]) as logs:
        asyncio.run(track(events, engine, lambda _name: None))
    assert logs[0]["uniqueid"] == "1733140000.42" and logs[0]["linkedid"] == "1733140000.40"
    assert "uniqueid" not in logs[1]  # bound only around its own event


# --- the daemon's own metrics ---------------------------------------------------------------------


def test_the_daemon_health_families_render() -> None:
    lag = Histogram((0.01, 0.1))
    lag.observe(0.002)
    lag.observe(0.5)
    health = DaemonHealth(lag, Histogram((0.01,)), queue_depth={"events": 3, "records": 0},
                          task_restarts={"metrics": 2}, config_reloads={"rejected": 1},
                          input_problems={"bad_timestamp": 4}, store_quarantined=1, mqtt=(False, 7),
                          sse=(2, 5))  # fmt: skip
    registry, collector = new_registry()
    collector.publish(daemon_families(health))
    got = {(n, tuple(sorted(lb.items()))): v for n, lb, v in samples(render(registry).decode())}
    assert got[("acd_event_loop_lag_seconds_count", ())] == 2
    assert got[("acd_event_loop_lag_seconds_bucket", (("le", "0.1"),))] == 1
    assert got[("acd_internal_queue_depth", (("queue_name", "events"),))] == 3
    assert got[("acd_task_restarts_total", (("task", "metrics"),))] == 2
    assert got[("acd_config_reloads_total", (("result", "ok"),))] == 0
    assert got[("acd_config_reloads_total", (("result", "rejected"),))] == 1
    assert got[("acd_core_input_problems_total", (("kind", "bad_timestamp"),))] == 4
    assert got[("acd_store_quarantined_total", ())] == 1
    assert got[("acd_mqtt_backlog", ())] == 7 and got[("acd_http_sse_clients", ())] == 2


def test_a_fastagi_session_logs_name_its_call() -> None:
    from types import SimpleNamespace

    from acdbridge.runtime.track import call_ids_of_agi

    log = structlog.get_logger("test")

    async def handler(session: Any) -> None:
        log.info("greeting")

    session = SimpleNamespace(request=SimpleNamespace(env={"agi_uniqueid": "1733140000.7"}))
    with capture_logs(processors=[structlog.contextvars.merge_contextvars]) as logs:
        asyncio.run(call_ids_of_agi(handler)(session))  # type: ignore[arg-type]
    assert logs == [{"event": "greeting", "log_level": "info", "uniqueid": "1733140000.7"}]


def test_loop_lag_records_how_long_the_loop_was_blocked() -> None:
    import time

    from acdbridge.runtime.health import LoopLag

    lag = LoopLag(period_s=0.05)

    async def scenario() -> None:
        stop = asyncio.Event()
        task = asyncio.create_task(lag.run(stop))
        await asyncio.sleep(0.2)
        time.sleep(0.3)  # noqa: ASYNC251 -- the point: a callback that blocks the loop
        await asyncio.sleep(0.2)
        stop.set()
        await task

    asyncio.run(scenario())
    counts = dict(lag.histogram.cumulative())
    assert counts["+Inf"] >= 5 and counts["+Inf"] - counts["0.1"] == 1  # one wake-up 0.25-0.3 s late


def test_a_store_outage_backs_off_per_outage_and_health_recovers(monkeypatch: pytest.MonkeyPatch) -> None:
    from acdbridge.adapters.store import StoreUnavailable
    from acdbridge.runtime import writer as writer_mod

    class Flaky:
        def __init__(self) -> None:
            self.down_for = 0  # the next this many writes fail
            self.rows: list[str] = []

        def write(self, visits: list[dict[str, Any]], states: list[dict[str, Any]]) -> None:
            if self.down_for > 0:
                self.down_for -= 1
                raise StoreUnavailable("PostgreSQL store postgresql://x@db/acd is unavailable: refused")
            self.rows += [v["uniqueid"] for v in visits]

    delays: list[int] = []

    def no_wait(failures: int, *_args: float) -> float:
        delays.append(failures)
        return 0.0

    monkeypatch.setattr(writer_mod, "backoff_delay", no_wait)
    store = Flaky()
    w = writer_mod.StoreWriter(store, 10)  # type: ignore[arg-type]
    seen_failing: list[bool] = []

    async def outage(uid: str, failures: int) -> None:
        store.down_for = failures
        w.put("visit", _visit(uid))
        first = w.queue.get_nowait()
        task = asyncio.create_task(w._one_batch(first))
        while not task.done():
            seen_failing.append(w.stats.failing)
            await asyncio.sleep(0)
        await task

    async def scenario() -> None:
        await outage("long", 6)  # a long outage: the backoff grows
        await outage("blip", 1)  # days later, one failed write: retried at once, not after 30 s

    asyncio.run(scenario())
    assert store.rows == ["long", "blip"] and w.stats.records_lost == 0
    assert delays == [1, 2, 3, 4, 5, 6, 1]  # counted per outage, not over the daemon's life
    assert True in seen_failing and w.stats.failing is False  # health is back after the outage
    assert w.stats.store_write_errors == 7  # the counter keeps the history
