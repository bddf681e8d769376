"""The store on both backends against a real PostgreSQL (tests/pg.py): the shared behaviour,
schema migrations (from a v1 SQLite file made by the release before them), several PBXes in one
database, PostgreSQL restarting under a writer, and the config, CLI and metrics around them."""

from __future__ import annotations

import asyncio
import json
import math
import shutil
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from structlog.testing import capture_logs

from acdbridge.adapters.metrics import new_registry
from acdbridge.adapters.store import (
    SCHEMA_VERSION,
    PostgresStore,
    SqliteStore,
    Store,
    StoreUnavailable,
    open_store,
    schema,
)  # fmt: skip
from acdbridge.adapters.store.postgres import _server_options, describe
from acdbridge.cli import main
from acdbridge.config import StoreConfig, validate
from acdbridge.core.kpi import KpiConfig
from acdbridge.errors import LabError, StoreLocked, StoreUnusable
from acdbridge.lab import pbx
from acdbridge.replay import dumps, replay_records
from acdbridge.runtime.engine import Engine
from acdbridge.runtime.resume import Resumer
from acdbridge.runtime.writer import StoreWriter
from tests.integration.daemon_harness import DaemonProcess, stop_leftovers
from tests.pg import PgCluster
from tests.stores import Factory

FIXTURES = Path(__file__).parent / "fixtures"
# made by acdbridge 3739922 (the last release before migrations) from the mixed and callflow
# traces: 32 visits, 112 agent stretches, 1 IVR leg, 2 feedback rows, a login, a saved tracker
# state and one quarantined record (a NaN end_ts)
V1_STORE = FIXTURES / "store-v1.sqlite"


def _visit(uniqueid: str, end_ts: float = 1000.0, queue: str = "water") -> dict[str, Any]:
    return {"uniqueid": uniqueid, "linkedid": uniqueid, "queue": queue, "caller": "100",
            "outcome": "abandoned", "enter_ts": end_ts - 10, "answer_ts": None, "end_ts": end_ts,
            "wait_s": 10.0, "ring_s": 0.0, "talk_s": 0.0, "hold_s": 0.0, "hold_count": 0, "wrap_s": None,
            "agent": None, "agent_interface": None, "ring_attempts": [], "transfer": None,
            "ended_by": "caller"}  # fmt: skip


def _state(start: float, state: str = "idle") -> dict[str, Any]:
    return {"interface": "PJSIP/ana", "state": state, "start_ts": start, "end_ts": start + 5,
            "agent": "Ana", "reason": None, "duration_s": 5.0}  # fmt: skip


def _leg(uniqueid: str, end_ts: float) -> dict[str, Any]:
    return {"uniqueid": uniqueid, "start_ts": end_ts - 3, "end_ts": end_ts, "hotline": "main",
            "outcome": "queued", "language": "en"}  # fmt: skip


def _feedback(uniqueid: str, value: str, ts: float, kind: str = "disposition") -> dict[str, Any]:
    return {"uniqueid": uniqueid, "kind": kind, "value": value, "resolved": value == "solved",
            "queue": "water", "agent": "Ana", "ts": ts}  # fmt: skip


def test_writing_twice_stores_once_and_reads_by_time_and_queue(make_store: Factory) -> None:
    visits = replay_records(FIXTURES / "traces/mixed.ami.gz")
    store = make_store()
    assert store.write(visits, []) == len(visits)
    assert store.write(visits, []) == 0  # a replayed or re-sent batch changes nothing
    assert store.count("visits") == len(visits)
    got = store.visits(0, 1e12)
    assert [dumps(v) for v in got] == [dumps(v) for v in sorted(got, key=lambda v: v["end_ts"])]
    assert sorted(map(dumps, got)) == sorted(map(dumps, visits))  # byte for byte, no pbx key added
    water = store.visits(0, 1e12, queue="water")
    assert water and all(v["queue"] == "water" for v in water) and len(water) < len(visits)
    middle = sorted(v["end_ts"] for v in visits)[len(visits) // 2]
    assert len(store.visits(0, middle)) + len(store.visits(middle, 1e12)) == len(visits)  # [from, to)


def test_states_legs_feedback_logins_and_saved_state(make_store: Factory) -> None:
    store = make_store()
    states = [_state(100.0), _state(105.0, "talking"), _state(110.0)]
    assert store.write([], states + states[:1]) == 3
    assert store.agent_states(0, 1e12) == states
    assert store.agent_states(106, 1e12) == states[1:]
    legs = [_leg("1.1", 50.0), _leg("1.2", 60.0)]
    assert store.write_flow(legs, [_feedback("1.1", "sale", 70.0)]) >= 3
    store.write_flow(legs, [_feedback("1.1", "solved", 71.0), _feedback("1.1", "4", 72.0, "survey")])
    assert store.ivr_legs(0, 1e12) == legs and store.count("ivr_legs") == 2
    assert store.feedback(0, 1e12) == [
        _feedback("1.1", "solved", 71.0),
        _feedback("1.1", "4", 72.0, "survey"),
    ]
    assert store.feedback(71.5, 1e12) == [_feedback("1.1", "4", 72.0, "survey")]  # the last entered wins
    store.save_login("Ana", 1000.5)
    store.save_login("Bo", 1001.0)
    store.save_login("Bo", None)
    assert store.logins() == {"Ana": 1000.5}
    assert store.load_state() is None
    store.save_state(123.0, {"x": 1})
    store.save_state(124.0, {"x": 2, "name": "Zoë"})  # a second save replaces the first
    assert store.load_state() == (124.0, {"x": 2, "name": "Zoë"})
    assert store.load_state() is None  # used once


def test_unwritable_records_are_quarantined_and_bad_rows_moved_aside(make_store: Factory) -> None:
    store = make_store()
    with capture_logs() as logs:
        assert store.write([_visit("good.1"), _visit("bad.2", math.nan), _visit("good.3", 1001.0)], []) == 2
    assert store.count("visits") == 2 and store.count("quarantine") == 1
    assert store.rejected == 1 and store.quarantined == 1
    assert [(e["event"], e["uniqueid"]) for e in logs] == [("store_row_rejected", "bad.2")]
    with pytest.raises(ValueError, match="not JSON compliant"):  # the store's JSON is strict
        store.save_state(1.0, {"x": math.inf})
    rows = store.stored("visits", 0)
    assert [r.record["uniqueid"] for r in rows if r.record] == ["good.1", "good.3"]
    assert [r.raw for r in rows] == [dumps(_visit("good.1")), dumps(_visit("good.3", 1001.0))]
    store.quarantine(rows[0], "a test")
    assert [r.record["uniqueid"] for r in store.stored("visits", 0) if r.record] == ["good.3"]
    assert store.count("quarantine") == 2 and store.quarantined == 2
    store.write_flow([], [_feedback("9.9", "4", 5.0, "survey")])
    (fb,) = store.stored("feedback", 0)
    assert fb.record == _feedback("9.9", "4", 5.0, "survey")
    store.write([], [_state(7.0)])
    (st,) = store.stored("agent_states", 0)
    assert st.record == _state(7.0)
    store.quarantine(st, "another test")
    assert store.stored("agent_states", 0) == [] and store.count("quarantine") == 3


def test_a_nul_character_is_quarantined_not_retried_forever(pg_cluster: PgCluster, pg_url: str) -> None:
    """PostgreSQL's text cannot hold U+0000: such a row would fail its whole batch at every retry."""
    store = PostgresStore(pg_url, password=pg_cluster.password)
    assert store.write([_visit("ok.1"), _visit("nul\x00.2")], []) == 1
    assert store.count("quarantine") == 1 and store.rejected == 1
    store.close()


def test_poisoned_postgres_rows_are_quarantined_at_start(pg_cluster: PgCluster, pg_url: str) -> None:
    store = PostgresStore(pg_url, password=pg_cluster.password, pbx="east")
    store.write([_visit("good.1")], [])
    store.write_flow([], [_feedback("good.1", "4", 1001.0, "survey")])
    with psycopg.connect(pg_url, password=pg_cluster.password, autocommit=True) as db:
        bad = json.dumps(_visit("nan.2")).replace('"end_ts": 1000.0', '"end_ts": NaN')
        db.execute("INSERT INTO visits (uniqueid, queue, enter_ts, end_ts, outcome, record, pbx) "
                   "VALUES ('nan.2', 'water', 990, 1000, 'abandoned', %s, 'east')", (bad,))  # fmt: skip
        db.execute("INSERT INTO feedback VALUES ('arabic.3', 'survey', '٣', 0, 'water', 'Ana', 1002, 'east')")
        db.execute("INSERT INTO visits (uniqueid, queue, enter_ts, end_ts, outcome, record, pbx) "
                   "VALUES ('west.1', 'water', 990, 1000, 'abandoned', 'not json', 'west')")  # fmt: skip
    engine = Engine(KpiConfig())
    pipeline = engine.pipeline
    resumer = Resumer(store, engine)
    asyncio.run(resumer.run())
    assert resumer.quarantined == 2 and store.quarantined == 2
    assert pipeline.tallies.calls == {("water", "abandoned"): 1}  # the good visit counts
    assert store.count("visits", pbx="east") == 1 and store.count("feedback") == 1  # moved, not copied
    assert store.count("visits", pbx="west") == 1  # another PBX's rows are not this daemon's to judge
    store.close()


def _raw_rows(path: Path) -> dict[str, list[tuple[Any, ...]]]:
    with sqlite3.connect(path) as db:
        tables = ("visits", "agent_states", "ivr_legs", "feedback", "agent_logins", "quarantine")
        return {t: sorted(db.execute(f"SELECT * FROM {t}").fetchall()) for t in tables}


def test_a_v1_sqlite_store_upgrades_in_place(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "old.sqlite"
    shutil.copy(V1_STORE, path)
    before = _raw_rows(path)
    assert main(["db", "upgrade", "--db", str(path)]) == 0
    assert capsys.readouterr().out.strip() == f"store {path}: schema version 1 -> {SCHEMA_VERSION}"
    after = _raw_rows(path)
    for table in ("visits", "agent_states", "ivr_legs", "feedback"):  # every row kept, pbx "" added
        added = ("", None) if table in ("visits", "ivr_legs") else ("",)  # and pseudonymised_at (v4)
        assert after[table] == sorted((*row, *added) for row in before[table]), table
    assert after["agent_logins"] == before["agent_logins"] and after["quarantine"] == before["quarantine"]
    store = SqliteStore(path, exclusive=True)
    assert store.upgraded == (SCHEMA_VERSION, SCHEMA_VERSION)
    visits = store.visits(0, 1e12)
    assert len(visits) == 32 and store.write(visits, store.agent_states(0, 1e12)) == 0  # keys kept
    assert store.load_state() == (1764000100.25, {"version": 1, "calls": {"x": [1, 2]}})
    assert store.logins() == {"Ana Torres": 1764000000.5}
    store.close()
    assert main(["db", "upgrade", "--db", str(path)]) == 0
    assert capsys.readouterr().out.strip() == f"store {path}: schema version {SCHEMA_VERSION}, up to date"


def test_a_v1_postgres_database_upgrades_in_place(pg_cluster: PgCluster, pg_url: str) -> None:
    with psycopg.connect(pg_url, password=pg_cluster.password, autocommit=True) as db:
        db.execute(schema.VERSION_TABLE.format(real="DOUBLE PRECISION").encode())
        for statement in schema.POSTGRES[1]:
            db.execute(statement.encode())
        db.execute("INSERT INTO schema_version VALUES (1, 0)")
        db.execute("INSERT INTO visits VALUES ('1.1', 'water', 990, 1000, 'abandoned', NULL, %s)",
                   (dumps(_visit("1.1")),))  # fmt: skip
        db.execute("INSERT INTO tracker_state VALUES (1, 5, '{\"x\": 1}')")
        db.execute("INSERT INTO agent_logins VALUES ('Ana', 7)")
    store = PostgresStore(pg_url, password=pg_cluster.password, exclusive=True)
    assert store.upgraded == (1, SCHEMA_VERSION)
    assert store.visits(0, 1e12) == [_visit("1.1")] and store.write([_visit("1.1")], []) == 0
    assert store.load_state() == (5.0, {"x": 1}) and store.logins() == {"Ana": 7.0}
    store.close()


def test_a_store_newer_than_the_code_is_refused(make_store: Factory) -> None:
    make_store().close()
    store = make_store()
    if isinstance(store, SqliteStore):
        store.db.execute("INSERT INTO schema_version VALUES (99, 0)")
    else:
        store._select("INSERT INTO schema_version VALUES (99, 0) RETURNING version", [])
    with pytest.raises(
        StoreUnusable, match=f"schema version 99, newer than this acdbridge's {SCHEMA_VERSION}"
    ):
        make_store()


def test_two_pbxes_write_one_database(pg_cluster: PgCluster, pg_url: str) -> None:
    east = PostgresStore(pg_url, password=pg_cluster.password, pbx="east", exclusive=True)
    west = PostgresStore(pg_url, password=pg_cluster.password, pbx="west", exclusive=True)
    started = time.monotonic()
    with pytest.raises(StoreLocked, match="in use by another acdbridge daemon with pbx id 'east'"):
        PostgresStore(pg_url, password=pg_cluster.password, pbx="east", exclusive=True, lock_wait_s=0.5)
    assert time.monotonic() - started >= 0.5  # waited: it might have been a dead session's lock
    # the server gives up a dead daemon's session (and its lock) in seconds, not hours
    assert east._select("SHOW tcp_keepalives_idle", []) == [("10",)]
    assert _server_options(pg_url + "?options=-c%20work_mem%3D8MB").startswith("-c work_mem=8MB -c tcp_")
    # each PBX numbers its channels itself: the same uniqueid on two PBXes is two calls
    batches = {s: [_visit(f"{n}.{i}", 1000.0 + i) for i in range(300)] for n, s in (("1", east), ("1", west))}
    errors: list[BaseException] = []

    def write(store: PostgresStore) -> None:
        try:
            for start in range(0, 300, 50):  # interleaved small batches from two threads
                store.write(batches[store][start : start + 50], [_state(float(start))])
        except BaseException as exc:  # pragma: no cover - the assertion below shows it
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(s,)) for s in (east, west)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert east.count("visits") == 600 and east.count("visits", pbx="west") == 300
    assert [r.record for r in east.stored("visits", 0)] == batches[east]  # a daemon loads its own
    east_visits = east.visits(0, 1e12, pbx="east")
    assert len(east_visits) == 300 and {v["pbx"] for v in east_visits} == {"east"}
    assert len(east.visits(0, 1e12)) == 600 and len(east.agent_states(0, 1e12, pbx="west")) == 6
    east.save_state(1.0, {"pbx": "east"})
    west.save_state(2.0, {"pbx": "west"})
    east.save_login("Ana", 10.0)
    assert west.logins() == {} and east.logins() == {"Ana": 10.0}
    assert west.load_state() == (2.0, {"pbx": "west"}) and east.load_state() == (1.0, {"pbx": "east"})
    # a daemon starting while its previous session still holds the lock gets it once that ends
    later: list[PostgresStore] = []

    def reopen() -> None:
        later.append(PostgresStore(pg_url, password=pg_cluster.password, pbx="east", exclusive=True))

    waiter = threading.Thread(target=reopen)
    waiter.start()
    time.sleep(1.0)
    assert later == []
    east.close()
    waiter.join(20)
    assert len(later) == 1
    later[0].close()
    west.close()


def test_postgres_restarting_under_a_writer_loses_and_doubles_nothing(
    pg_cluster: PgCluster, pg_url: str
) -> None:
    store = PostgresStore(pg_url, password=pg_cluster.password, pbx="east", exclusive=True)
    first, second = [_visit(f"a.{i}") for i in range(100)], [_visit(f"b.{i}") for i in range(100)]
    assert store.write(first, []) == 100
    pg_cluster.stop()
    try:
        with pytest.raises(StoreUnavailable, match="is unavailable"):
            store.write(second, [])
        with pytest.raises(StoreUnavailable, match="is unavailable"):  # still down: a clear error again
            store.write(second, [])
    finally:
        pg_cluster.start()
    assert store.write(second, []) == 100  # reconnected (and the pbx lock taken again)
    assert store.write(first + second, []) == 0
    assert store.count("visits") == 200
    # the daemon's writer retries a failed batch: a restart shorter than its retries loses nothing
    writer = StoreWriter(store, 1000)
    third = [_visit(f"c.{i}") for i in range(50)]

    async def run() -> None:
        pg_cluster.stop()
        for v in third:
            writer.put("visit", v)
        await writer.end()
        task = asyncio.create_task(writer.run())
        await asyncio.sleep(0.3)  # the first attempt fails meanwhile
        await asyncio.to_thread(pg_cluster.start)
        await task

    asyncio.run(run())
    assert writer.stats.store_write_errors >= 1 and writer.stats.records_lost == 0
    assert store.count("visits") == 250
    store.close()


def test_config_picks_the_backend_and_keeps_the_password_out_of_the_file(tmp_path: Path) -> None:
    secret = tmp_path / "pw"
    secret.write_text("s3cret\n")
    secret.chmod(0o600)
    cfg, p = validate({"store": {"url": "postgresql://acd@db:5432/acd", "password_file": str(secret),
                                 "pbx": "east"}}, "c.toml", env={}, for_daemon=False)  # fmt: skip
    assert p.errors == [] and p.warnings == []
    assert cfg.store.url == "postgresql://acd@db:5432/acd" and cfg.store.password == "s3cret"
    assert cfg.store.pbx == "east" and "s3cret" not in repr(cfg)
    creds = tmp_path / "creds"
    creds.mkdir()
    (creds / "store-password").write_text("fromcred")
    cfg, p = validate({"store": {"url": "postgresql://acd@db/acd"}}, "c.toml",
                      env={"CREDENTIALS_DIRECTORY": str(creds)}, for_daemon=False)  # fmt: skip
    assert cfg.store.password == "fromcred" and p.errors == []
    _, p = validate({"store": {"url": "postgresql://acd:hunter2@db/acd"}}, "c.toml", env={}, for_daemon=False)
    assert p.errors == [] and len(p.warnings) == 1 and "store.url: warning: holds a password" in p.warnings[0]
    assert "hunter2" not in p.warnings[0]
    assert describe("postgresql://acd:hunter2@db:5433/acd") == "postgresql://acd@db:5433/acd"  # for logs
    _, p = validate({"store": {"url": "mysql://x", "path": "s.sqlite", "password": "x", "pbx": "a b"}},
                    "c.toml", env={}, for_daemon=False)  # fmt: skip
    assert any("expected postgresql://" in e for e in p.errors)
    assert any("either store.path (SQLite) or store.url" in e for e in p.errors)
    assert any("store.pbx: expected 1-64 letters" in e for e in p.errors)
    _, p = validate({"store": {"password": "x"}}, "c.toml", env={}, for_daemon=False)
    assert p.errors == ["c.toml: store.password: is for a PostgreSQL store: set store.url too, or remove it"]
    cfg, p = validate({}, "c.toml", env={}, for_daemon=False)
    assert cfg.store == StoreConfig() and cfg.store.pbx == "" and cfg.store.url is None


def test_open_store_follows_the_config(pg_cluster: PgCluster, pg_url: str, tmp_path: Path) -> None:
    pg = open_store(StoreConfig(url=pg_url, password=pg_cluster.password, pbx="east"), exclusive=True)
    lite = open_store(StoreConfig(path=tmp_path / "x.sqlite", pbx="east"))
    assert isinstance(pg, PostgresStore) and isinstance(lite, SqliteStore)
    stores: list[Store] = [pg, lite]
    for store in stores:
        store.write([_visit("1.1")], [])
        assert store.visits(0, 1e12) == [_visit("1.1") | {"pbx": "east"}]
        store.close()


def test_export_and_upgrade_by_url_with_a_pbx_filter(
    pg_cluster: PgCluster, pg_url: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:  # fmt: skip
    monkeypatch.setenv("PGPASSWORD", pg_cluster.password)  # as libpq reads it
    for pbx_id in ("east", "west"):
        store = PostgresStore(pg_url, pbx=pbx_id)
        store.write([_visit("1.1"), _visit("1.2", 1001.0)], [])
        store.close()
    assert main(["db", "upgrade", "--url", pg_url]) == 0
    out = capsys.readouterr().out
    assert f"schema version {SCHEMA_VERSION}, up to date" in out and pg_cluster.password not in out
    assert main(["export", "--url", pg_url, "--from", "0", "--to", "2099-01-01", "--pbx", "west"]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [(v["uniqueid"], v["pbx"]) for v in lines] == [("1.1", "west"), ("1.2", "west")]
    assert main(["export", "--url", pg_url, "--from", "0", "--to", "2099-01-01", "--format", "csv"]) == 0
    rows = capsys.readouterr().out.splitlines()
    assert rows[0].endswith(",ring_attempts,pbx") and len(rows) == 5
    assert sorted(r.rsplit(",", 1)[1] for r in rows[1:]) == ["east", "east", "west", "west"]
    config = tmp_path / "export.toml"
    config.write_text(f'[store]\nurl = "{pg_url}"\npbx = "east"\n')
    assert (
        main(["export", "--config", str(config), "--from", "0", "--to", "2099-01-01", "--pbx", "east"]) == 0
    )
    assert len(capsys.readouterr().out.splitlines()) == 2


def test_metrics_carry_a_pbx_label_only_when_configured() -> None:
    from prometheus_client.core import CounterMetricFamily

    family = CounterMetricFamily("acd_queue_calls", "x", labels=["queue", "outcome"])
    family.add_metric(["water", "answered"], 3)
    plain, labelled = new_registry()[1], new_registry("east")[1]
    plain.publish([family])
    labelled.publish([family])
    (one,) = list(plain.collect())
    (two,) = list(labelled.collect())
    assert [s.labels for s in one.samples] == [{"queue": "water", "outcome": "answered"}]
    assert [s.labels for s in two.samples] == [{"queue": "water", "outcome": "answered", "pbx": "east"}]
    assert [s.value for s in two.samples] == [3]


@pytest.fixture
def running_lab() -> Iterator[pbx.LabSettings]:
    """The shared lab (brought up if it is not running; never taken down here: others use it)."""
    settings = pbx.LabSettings()
    try:
        pbx.up(settings, lambda _line: None)
    except LabError as exc:
        pytest.fail(f"the Asterisk lab could not start: {exc}", pytrace=False)
    yield settings
    stop_leftovers()


def _saved_states(url: str, password: str) -> list[tuple[Any, ...]]:
    with psycopg.connect(url, password=password) as db:
        return db.execute("SELECT pbx, saved_at > 0 FROM tracker_state").fetchall()


@pytest.mark.asterisk
def test_the_daemon_runs_on_postgres(
    running_lab: pbx.LabSettings, pg_cluster: PgCluster, pg_url: str, tmp_path: Path
) -> None:
    """`acdbridge run` with [store] url: migrates at start, holds its pbx lock, saves its state at
    a clean stop and loads it at the next start (no calls placed: the lab is shared)."""
    password = tmp_path / "store-password"
    password.write_text(pg_cluster.password + "\n")
    password.chmod(0o600)
    daemon = DaemonProcess(tmp_path, running_lab.ami_port)
    text = daemon.config.read_text()
    store = f'[store]\nurl = "{pg_url}"\npassword_file = "{password}"\npbx = "east"\n'
    daemon.config.write_text(text.replace(f'[store]\npath = "{daemon.store_path}"\n', store))
    assert "[agi]" not in daemon.config.read_text() and 'pbx = "east"' in daemon.config.read_text()
    daemon.start()
    with psycopg.connect(pg_url, password=pg_cluster.password) as db:
        assert db.execute("SELECT max(version) FROM schema_version").fetchone() == (SCHEMA_VERSION,)
    # a second daemon with the same pbx id waits for the first one's lock (a restart overlapping
    # the old process's exit, or its session left on the server by a crashed host), then runs
    second_log = tmp_path / "second.log"
    with second_log.open("w") as out:
        second = subprocess.Popen([sys.executable, "-m", "acdbridge", "run", "--config", str(daemon.config)],
                                  stdout=out, stderr=subprocess.STDOUT, text=True)  # fmt: skip
    try:
        time.sleep(3)
        text = second_log.read_text()
        assert second.poll() is None and "store_lock_wait" in text and "ami_connected" not in text, text
        assert daemon.stop() == 0
        deadline = time.monotonic() + 20
        while "ami_connected" not in second_log.read_text() and time.monotonic() < deadline:
            time.sleep(0.2)
        assert "ami_connected" in second_log.read_text(), second_log.read_text()
    finally:
        second.send_signal(signal.SIGTERM)
        assert second.wait(20) == 0
    assert pg_cluster.password not in second_log.read_text()
    assert _saved_states(pg_url, pg_cluster.password) == [("east", True)]
    # with a journal checkpoint the next start resumes from the checkpoint; without one (the
    # journal off) the saved state is what it loads, and so removes, from PostgreSQL
    daemon.config.write_text(daemon.config.read_text() + "[journal]\nenabled = false\n")
    daemon.start()
    assert _saved_states(pg_url, pg_cluster.password) == []
    assert daemon.stop() == 0
    assert _saved_states(pg_url, pg_cluster.password) == [("east", True)]
    assert "store_write_failed" not in daemon.log_text() and "Traceback" not in daemon.log_text()


def test_the_writer_waits_out_a_database_outage_and_gives_up_only_at_stop(
    pg_cluster: PgCluster, pg_url: str
) -> None:
    """An outage longer than the writer's retries of any other failure (0.5 + 1.0 + 1.5 s) loses
    nothing; a stop during an outage ends the wait at once, the records counted as lost (the
    journal writes them at the next start)."""
    store = PostgresStore(pg_url, password=pg_cluster.password, pbx="outage", exclusive=True)
    before = store.count("visits")
    waited = [_visit(f"o.{i}") for i in range(20)]
    given_up = [_visit(f"g.{i}") for i in range(5)]

    async def outage(
        writer: StoreWriter, records: list[dict[str, Any]], down_s: float, then_stop: bool
    ) -> float:
        pg_cluster.stop()
        for v in records:
            writer.put("visit", v)
        task = asyncio.create_task(writer.drain())
        await asyncio.sleep(down_s)
        started = time.monotonic()
        if then_stop:
            assert writer.stop is not None
            writer.stop.set()
        else:
            await asyncio.to_thread(pg_cluster.start)
        await asyncio.wait_for(task, 60)
        return time.monotonic() - started

    async def both() -> tuple[StoreWriter, float]:
        writer = StoreWriter(store, 1000, asyncio.Event())
        await outage(writer, waited, 4.5, then_stop=False)
        assert writer.stats.store_write_errors >= 3 and writer.stats.records_lost == 0
        assert store.count("visits") == before + 20
        return writer, await outage(writer, given_up, 1.0, then_stop=True)

    writer, took = asyncio.run(both())
    pg_cluster.start()
    assert writer.stats.records_lost == 5 and took < 5  # a stop never waits out the backoff
    assert store.count("visits") == before + 20
    store.close()
