"""Callers' personal data (docs/privacy.md) on SQLite and the real PostgreSQL of tests/pg.py:
the daily job pseudonymises only old visits, once, and leaves the KPIs as they were; an erasure
takes one caller out of everything and a dry run out of nothing."""

from __future__ import annotations

import asyncio
import os
import stat
import time
import tomllib
from collections.abc import Callable
from datetime import datetime
from functools import partial
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import structlog

from acdbridge.adapters.journal import Journal, Position, segments
from acdbridge.adapters.privacykey import KeyUnusable, load_or_create, read_key
from acdbridge.adapters.store import PostgresStore, SqliteStore
from acdbridge.core import pseudonym
from acdbridge.core.kpi import KpiConfig, kpis_over
from acdbridge.core.schedule import next_run
from acdbridge.logmask import mask_callers, mask_number
from acdbridge.privatefile import private_file
from acdbridge.runtime import checkpoint
from acdbridge.runtime.privacy import JobReport, PrivacyJob, warn_if_root
from acdbridge.settings.privacyconf import PrivacyConfig
from tests.pg import PgCluster
from tests.stores import AnyStore

KEY = bytes(range(32))
DAY = 86_400.0
NOW = 1_800_000_000.0


def visit(n: int, end_ts: float, caller: str, name: str = "Ana Diaz") -> dict[str, Any]:
    enter = end_ts - 100
    return {
        "uniqueid": f"u{n}", "linkedid": f"u{n}", "queue": "water", "caller": caller, "caller_name": name,
        "outcome": "answered" if n % 3 else "abandoned", "blocked_reason": None, "enter_ts": enter,
        "answer_ts": enter + 20 if n % 3 else None, "end_ts": end_ts, "wait_s": 20.0 if n % 3 else 35.0,
        "ring_s": 5.0, "talk_s": 80.0 if n % 3 else 0.0, "hold_s": 0.0, "hold_count": 0, "wrap_s": 10.0,
        "agent": "Bo Li" if n % 3 else None, "agent_interface": None, "ring_attempts": [],
        "transfer": None, "ended_by": "caller", "time_source": "events",
    }  # fmt: skip


def leg(n: int, end_ts: float, caller: str) -> dict[str, Any]:
    return {"uniqueid": f"i{n}", "linkedid": f"i{n}", "hotline": "water", "caller": caller,
            "outcome": "routed", "start_ts": end_ts - 30, "end_ts": end_ts, "ivr_s": 30.0,
            "call_type": "", "language": "en", "vip": False, "queue": "water"}  # fmt: skip


def _fill(store: AnyStore) -> None:
    """40 old visits (10 to 50 days ago) of four callers, 10 recent ones; IVR legs alike."""
    callers = ["+4930111111", "004930222222", "+4930333333", ""]
    old = [visit(n, NOW - (10 + n) * DAY, callers[n % 4]) for n in range(40)]
    new = [visit(100 + n, NOW - n * 3600, callers[n % 4]) for n in range(10)]
    store.write(old + new, [])
    store.write_flow([leg(n, NOW - (10 + n) * DAY, callers[n % 4]) for n in range(40)]
                     + [leg(100, NOW - 60, callers[0])], [])  # fmt: skip


def _rest(record: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in record.items() if k not in ("caller", "caller_name")}


def _kpis(visits: list[dict[str, Any]]) -> Any:
    kpis = kpis_over(visits, [], KpiConfig())
    assert kpis["queues"]["water"]["offered"] == 50  # a real report, not an empty one
    return kpis


def _run_job(store: AnyStore, before: float) -> int:
    total = 0
    for table in ("visits", "ivr_legs"):
        change = partial(pseudonym.pseudonymised, table, key=KEY)
        while (n := store.pseudonymise_batch(table, before, NOW, change, limit=7)) > 0:
            total += n
    return total


def test_the_job_pseudonymises_only_old_visits_once_and_the_kpis_stay(
    make_store: Callable[..., AnyStore],
) -> None:
    store = make_store()
    _fill(store)
    before = store.visits(0, NOW + 1)
    assert _run_job(store, NOW - 30 * DAY) == 2 * 19  # 19 of each ended more than 30 days ago
    after = store.visits(0, NOW + 1)
    assert len(after) == len(before) == 50
    for b, a in zip(before, after, strict=True):
        old = b["end_ts"] < NOW - 30 * DAY
        if old:  # no caller ID stays none; the name is pseudonymised all the same
            assert a["caller"].startswith("p:") and len(a["caller"]) == 18 if b["caller"] else not a["caller"]
            assert a["caller_name"] == pseudonym.name_pseudonym(KEY, "Ana Diaz")
        else:
            assert (a["caller"], a["caller_name"]) == (b["caller"], b["caller_name"])
        assert _rest(a) == _rest(b)  # durations, outcome, agent: untouched
    assert _kpis(after) == _kpis(before)
    # the same number in two spellings is one caller, so per-caller counts still add up
    old_callers = {a["caller"] for a in after if a["end_ts"] < NOW - 30 * DAY and a["caller"]}
    assert len(old_callers) == 3
    legs = store.ivr_legs(0, NOW + 1)
    assert sum(leg["caller"].startswith("p:") for leg in legs) == 14  # 19 old, 5 with no caller ID
    # idempotent: nothing is read again, and a second run changes nothing
    assert _run_job(store, NOW - 30 * DAY) == 0
    assert store.visits(0, NOW + 1) == after


def test_an_erasure_takes_the_caller_everywhere_and_a_dry_run_nowhere(
    make_store: Callable[..., AnyStore],
) -> None:
    store = make_store()
    _fill(store)
    _run_job(store, NOW - 30 * DAY)  # some of the caller's visits are pseudonyms by now
    number = "+49 30 111111"
    match = pseudonym.caller_matcher(number, KEY)
    text = pseudonym.number_pattern(number)
    store.save_state(NOW, {"calls": [{"caller": "+4930111111", "caller_name": "Ana", "queue": "water"}]})
    store._put_quarantine("visits", '{"caller":"+4930111111"}', "test")
    store._put_quarantine("visits", '{"caller":"+4930222222"}', "test")
    before = store.visits(0, NOW + 1)
    dry = store.erase_caller(match, lambda t: bool(text.search(t)), NOW, dry_run=True)
    assert dry.rows == {"visits": 13, "ivr_legs": 11} and dry.quarantine == 1 and dry.saved_state == 1
    assert store.visits(0, NOW + 1) == before and store.count("quarantine") == 2
    done = store.erase_caller(match, lambda t: bool(text.search(t)), NOW)
    assert done == dry
    after = store.visits(0, NOW + 1)
    assert not any(match(v["caller"]) for v in after) and len(after) == 50
    assert sum(v["caller"] == "" for v in after) == sum(v["caller"] == "" for v in before) + 13
    assert _kpis(after) == _kpis(before)
    assert not any(match(leg["caller"]) for leg in store.ivr_legs(0, NOW + 1))
    assert store.count("quarantine") == 1
    saved = store.load_state()
    assert saved is not None and saved[1]["calls"][0] == {"caller": "", "caller_name": "", "queue": "water"}
    # the job never touches an erased visit again, and an erasure again finds nothing
    assert store.erase_caller(match, lambda t: bool(text.search(t)), NOW).rows == {"visits": 0, "ivr_legs": 0}


def test_the_job_works_on_its_own_pbx_and_drops_old_quarantine(make_store: Callable[..., AnyStore]) -> None:
    east, west = make_store(pbx="east"), make_store(pbx="west")
    east.write([visit(1, NOW - 40 * DAY, "+4930111111")], [])
    west.write([visit(1, NOW - 40 * DAY, "+4930111111")], [])
    n = east.pseudonymise_batch("visits", NOW - DAY, NOW, lambda r: pseudonym.pseudonymised("visits", r, KEY))
    assert n == 1
    callers = {v["pbx"]: v["caller"] for v in east.visits(0, NOW)}
    assert callers["east"].startswith("p:") and callers["west"] == "+4930111111"
    east._put_quarantine("visits", "{}", "old")
    assert east.drop_quarantine_before(time.time() - DAY) == 0
    assert east.drop_quarantine_before(time.time() + 1) == 1


def test_pseudonyms() -> None:
    p = pseudonym.number_pseudonym(KEY, "+86 10 1234")
    assert p == pseudonym.number_pseudonym(KEY, "0086101234") and p.startswith("p:") and len(p) == 18
    assert p != pseudonym.number_pseudonym(bytes(32), "+86 10 1234")  # keyed per site
    assert pseudonym.number_pseudonym(KEY, p) == p  # never twice
    assert pseudonym.number_pseudonym(KEY, "") == ""
    assert pseudonym.name_pseudonym(KEY, "Ana  DIAZ") == pseudonym.name_pseudonym(KEY, "ana diaz")
    assert pseudonym.name_pseudonym(KEY, "101234") != pseudonym.number_pseudonym(KEY, "101234")
    match = pseudonym.caller_matcher("+8610 1234", KEY)
    assert match("0086101234") and match(p) and not match("861012345") and not match("")
    assert pseudonym.caller_matcher("+8610 1234", None)(p) is False  # no key: no pseudonym to know
    with pytest.raises(ValueError, match="no digits"):
        pseudonym.caller_matcher("anonymous", KEY)
    pattern = pseudonym.number_pattern("+86101234")
    assert pattern.search("CallerIDNum: +86101234\r\n") and pattern.search("x 0086101234,")
    assert not pattern.search("Uniqueid: 186101234.5") and not pattern.search("861012345")


def _validate(text: str, tmp_path: Path) -> tuple[Any, list[str], list[str]]:
    from acdbridge import config

    data = tomllib.loads(f'[store]\npath = "{tmp_path / "s.sqlite"}"\n' + text)
    cfg, problems = config.validate(data, "acd.toml", env={}, for_daemon=False)
    return cfg, problems.errors, problems.warnings


def test_privacy_settings_defaults_and_mistakes(tmp_path: Path) -> None:
    cfg, errors, warnings = _validate("", tmp_path)
    pv = cfg.privacy
    assert (pv.retain_days, pv.run_at, pv.mask_logs, pv.allow_root) == (90, (3, 30), True, False)
    assert pv.key_file == tmp_path / "s.privacy-key" and errors == warnings == []
    _, errors, _ = _validate(
        '[privacy]\nretain_days = -1\nrun_at = "25:00"\nmask = 1\nkey_file = ""\n', tmp_path
    )
    assert errors == [
        "acd.toml: privacy: unknown keys ['mask']; known: allow_root, key_file, mask_logs, retain_days, "
        "run_at",
        "acd.toml: privacy.retain_days: out of range 0-36500: -1.0",
        "acd.toml: privacy.run_at: expected a time of day \"HH:MM\" (00:00-23:59), got '25:00'",
        "acd.toml: privacy.key_file: must not be empty",
    ]
    _, errors, _ = _validate("[privacy]\nretain_days = 0.5\n", tmp_path)
    assert errors == [
        "acd.toml: privacy.retain_days: 0.5 is under a day: the job runs daily (0 keeps forever)"
    ]
    cfg, errors, warnings = _validate("[privacy]\nretain_days = 0\n", tmp_path)
    assert cfg.privacy.retain_s is None and errors == [] and "kept forever" in warnings[0]


def test_the_journal_is_never_kept_longer_than_callers_data(tmp_path: Path) -> None:
    cfg, errors, warnings = _validate(
        "[privacy]\nretain_days = 5\n[journal]\nretention_days = 30\n", tmp_path
    )
    assert cfg.journal.retention_days == 5 and errors == []
    assert warnings == ["acd.toml: journal.retention_days: warning: 30 is longer than privacy.retain_days "
                        "(5): the journal is kept 5 days"]  # fmt: skip
    cfg, _, warnings = _validate("[privacy]\nretain_days = 0\n[journal]\nretention_days = 30\n", tmp_path)
    assert cfg.journal.retention_days == 30


def test_a_key_file_others_can_read_is_a_warning(tmp_path: Path) -> None:
    key = tmp_path / "k"
    key.write_text("00" * 32)
    key.chmod(0o644)
    _, errors, warnings = _validate(f'[privacy]\nkey_file = "{key}"\n', tmp_path)
    assert errors == [] and warnings == [
        f"acd.toml: privacy.key_file: warning: {key} is readable by others: chmod 600 (it unmasks pseudonyms)"
    ]


def _sqlite(tmp_path: Path) -> SqliteStore:
    store = SqliteStore(tmp_path / "s.sqlite")
    _fill(store)
    return store


def test_the_daily_job_yields_the_loop_between_batches_and_makes_its_key_private(
    make_store: Callable[..., AnyStore], tmp_path: Path
) -> None:
    store = make_store()
    _fill(store)
    store.write([visit(1000 + n, NOW - 60 * DAY, f"+4930{n:06d}") for n in range(2500)], [])
    cfg = PrivacyConfig(key_file=tmp_path / "keys/site.key", retain_days=30)
    job = PrivacyJob(cfg, "Europe/Berlin", store)
    ticks = 0

    async def main() -> tuple[JobReport, int]:
        nonlocal ticks
        done = asyncio.Event()

        async def ticker() -> None:
            nonlocal ticks
            while not done.is_set():
                ticks += 1
                await asyncio.sleep(0)

        task = asyncio.create_task(ticker())
        report = await job.run_once(NOW)
        done.set()
        await task
        return report, ticks

    report, ticks = asyncio.run(main())
    assert report.rows == {"visits": 2519, "ivr_legs": 19}
    assert ticks >= 4  # the loop ran while each of the batches was in the worker thread
    key_file = tmp_path / "keys/site.key"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600 and len(key_file.read_text().strip()) == 64
    assert read_key(key_file) == job.key
    again = PrivacyJob(cfg, "UTC", store)
    assert asyncio.run(again.run_once(NOW)).rows == {"visits": 0, "ivr_legs": 0}
    assert again.key == job.key  # the same key is read back, never made again


def test_a_damaged_key_is_refused_not_replaced(tmp_path: Path) -> None:
    key = tmp_path / "k"
    key.write_text("not hex\n")
    with pytest.raises(KeyUnusable, match="is not 64 hex digits"):
        load_or_create(key)
    assert key.read_text() == "not hex\n"


def test_the_job_deletes_journal_segments_past_the_retention_a_checkpoint_covers(tmp_path: Path) -> None:
    directory = tmp_path / "j"
    for _ in range(4):  # four runs, four segments
        j = Journal(directory)
        j.open()
        j.append(b"Event: Newchannel\r\nCallerIDNum: +4930111111\r\n\r\n", NOW)
        j.close()
    paths = [p for _, p in segments(directory)]
    for p in paths[:3]:
        os.utime(p, (NOW - 40 * DAY, NOW - 40 * DAY))
    cp = checkpoint.Checkpoint(NOW, Position(3, 20), Position(3, 20), 0, NOW, {}, {}, {})
    checkpoint.save(directory / "checkpoint.json", checkpoint.encode(cp))
    store = _sqlite(tmp_path)
    job = PrivacyJob(PrivacyConfig(tmp_path / "k", retain_days=30), "UTC", store, Journal(directory),
                     directory / "checkpoint.json")  # fmt: skip
    assert asyncio.run(job.run_once(NOW)).segments == 2  # the third is where a replay starts
    assert [p.name for _, p in segments(directory)] == [p.name for p in paths[2:]]
    store.close()


def test_next_run_is_the_next_local_run_at() -> None:
    berlin = ZoneInfo("Europe/Berlin")
    at = datetime(2026, 3, 28, 12, 0, tzinfo=berlin).timestamp()
    nxt = next_run(at, (3, 30), berlin)
    assert datetime.fromtimestamp(nxt, berlin) == datetime(2026, 3, 29, 3, 30, tzinfo=berlin)  # DST day
    assert nxt - at == 14.5 * 3600
    just_before = datetime(2026, 3, 29, 3, 29, tzinfo=berlin).timestamp()
    assert next_run(just_before, (3, 30), berlin) == nxt
    assert next_run(nxt, (3, 30), berlin) == datetime(2026, 3, 30, 3, 30, tzinfo=berlin).timestamp()


def test_the_root_warning() -> None:
    with structlog.testing.capture_logs() as logs:
        assert warn_if_root(False, lambda: 0) is True
        assert warn_if_root(True, lambda: 0) is False  # the lab
        assert warn_if_root(False, lambda: 1000) is False
    assert [e["event"] for e in logs] == ["running_as_root"]


def test_logs_mask_callers_numbers_keeping_the_last_four_digits() -> None:
    assert mask_number("+49 30 1234567") == "+** ** ***4567"
    assert mask_number("1005") == "1005" and mask_number("p:0123456789abcdef") == "p:0123456789abcdef"
    event: dict[str, Any] = {
        "event": "greeting", "uniqueid": "1712.5", "caller": "004930111111", "CallerIDName": "Ana",
        "record": {"caller": "+4930222222", "caller_name": "Bo", "wait_s": 12.5},
        "visits": [{"caller": "+4930333333"}], "agent": "Bo Li",
    }  # fmt: skip
    masked = mask_callers(None, "info", dict(event))
    assert masked == {
        "event": "greeting", "uniqueid": "1712.5", "caller": "********1111", "CallerIDName": "***",
        "record": {"caller": "+******2222", "caller_name": "***", "wait_s": 12.5},
        "visits": [{"caller": "+******3333"}], "agent": "Bo Li",
    }  # fmt: skip
    assert event["record"]["caller"] == "+4930222222"  # the logged object itself is untouched


def test_the_daemons_logging_masks_by_default(capsys: pytest.CaptureFixture[str]) -> None:
    from acdbridge.app import configure_logging

    try:
        configure_logging()
        structlog.get_logger("t").info("greeting", caller="+4930111111")
        configure_logging(mask=False)
        structlog.get_logger("t").info("greeting", caller="+4930111111")
    finally:
        structlog.reset_defaults()
    first, second = capsys.readouterr().err.splitlines()
    assert "+******1111" in first and "4930111111" not in first
    assert "+4930111111" in second


def test_files_with_callers_data_are_private_whatever_the_umask(tmp_path: Path) -> None:
    old = os.umask(0o022)
    try:
        store = SqliteStore(tmp_path / "s.sqlite", exclusive=True)
        _fill(store)
        journal = Journal(tmp_path / "j")
        journal.open()
        journal.append(b"Event: Newchannel\r\nCallerIDNum: +4930111111\r\n\r\n", NOW)
        journal.close()
        checkpoint.save(tmp_path / "j/checkpoint.json", b"{}")
        load_or_create(tmp_path / "s.privacy-key")
        with private_file(tmp_path / "capture.ami") as f:
            f.write(b"x")
        modes = {
            p.name: stat.S_IMODE(p.stat().st_mode) for p in (*tmp_path.iterdir(), *(tmp_path / "j").iterdir())
        }
        store.close()
    finally:
        os.umask(old)
    assert modes.pop("j") == 0o700
    assert modes == dict.fromkeys(modes, 0o600)
    assert {"s.sqlite", "s.sqlite-wal", "s.sqlite.lock", "s.privacy-key", "capture.ami", "checkpoint.json",
            "000000000001.journal"} <= set(modes)  # fmt: skip


def _journal_with(directory: Path, number: str) -> list[Path]:
    """Segments 1-3: the number in 1 and 3, not in 2; a checkpoint whose replay starts at 3."""
    for text in (number, "+4930999999", number):
        j = Journal(directory)
        j.open()
        j.append(f"Event: Newchannel\r\nCallerIDNum: {text}\r\n\r\n".encode(), NOW)
        j.close()
    cp = checkpoint.Checkpoint(NOW, Position(3, 20), Position(3, 20), 0, NOW, {}, {}, {})
    checkpoint.save(directory / "checkpoint.json", checkpoint.encode(cp))
    return [p for _, p in segments(directory)]


def _audit(store: AnyStore) -> list[Any]:
    return store.audit_entries(0, time.time() + 10)


def test_purge_cli_on_sqlite_dry_run_then_for_real(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from acdbridge.cli import main

    db = tmp_path / "s.sqlite"
    store = SqliteStore(db)
    _fill(store)
    before = store.visits(0, NOW + 1)
    store.close()
    paths = _journal_with(tmp_path / "s.journal", "+4930111111")
    key = load_or_create(tmp_path / "s.privacy-key")
    assert main(["purge", "--caller", "+49 30 111111", "--dry-run", "--db", str(db)]) == 0
    out = capsys.readouterr().out
    assert "caller +** ** **1111 (dry run: nothing changed):" in out and "4930111111" not in out
    assert "13 visits and 11 IVR legs would be made anonymous" in out
    assert "1 segment would be deleted" in out and "1 segment KEPT" in out and "000000000003" in out
    store = SqliteStore(db)
    assert store.visits(0, NOW + 1) == before and all(p.exists() for p in paths)
    assert [(e.action, e.outcome) for e in _audit(store)] == [("caller_purge", "dry_run")]
    store.close()
    assert main(["purge", "--caller", "+49 30 111111", "--db", str(db)]) == 0
    out = capsys.readouterr().out
    assert "13 visits and 11 IVR legs were made anonymous" in out and "1 segment were deleted" in out
    store = SqliteStore(db)
    match = pseudonym.caller_matcher("+4930111111", key)
    assert not any(match(v["caller"]) for v in store.visits(0, NOW + 1))
    assert [p.exists() for p in paths] == [False, True, True]  # 3: a recovery starts there
    entries = _audit(store)
    assert entries[-1].outcome == "ok" and entries[-1].target == pseudonym.number_pseudonym(
        key, "+4930111111"
    )
    assert not any("111111" in f"{e.target} {e.detail}" for e in entries)  # the number is never audited
    store.close()


def test_purge_cli_on_postgres_through_the_config(
    pg_cluster: PgCluster, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from acdbridge.cli import main

    url = pg_cluster.create_database()
    store = PostgresStore(url, password=pg_cluster.password, pbx="east")
    _fill(store)
    store.close()
    (tmp_path / "pw").write_text(pg_cluster.password + "\n")
    (tmp_path / "pw").chmod(0o600)
    config = tmp_path / "acd.toml"
    config.write_text(f'[store]\nurl = "{url}"\npassword_file = "{tmp_path / "pw"}"\npbx = "east"\n'
                      f'[journal]\ndir = "{tmp_path / "j"}"\n')  # fmt: skip
    assert main(["purge", "--caller", "004930222222", "--config", str(config)]) == 0
    assert "13 visits and 10 IVR legs were made anonymous" in capsys.readouterr().out
    store = PostgresStore(url, password=pg_cluster.password)
    assert sum(v["caller"] == "004930222222" for v in store.visits(0, NOW + 1)) == 0
    assert [(e.action, e.outcome) for e in _audit(store)] == [("caller_purge", "ok")]
    store.close()


def test_purge_refuses_what_is_no_number(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from acdbridge.cli import main

    assert main(["purge", "--caller", "anonymous", "--db", str(tmp_path / "none.sqlite")]) == 2
    assert "--caller 'anonymous' is not a number (no digits)" in capsys.readouterr().err
    assert main(["purge", "--caller", "+1 23", "--db", str(tmp_path / "none.sqlite")]) == 2
    assert "has 3 digits: too short to tell from other numbers in the journal (at least 5)" in (
        capsys.readouterr().err
    )
    assert main(["purge", "--caller", "12345", "--db", str(tmp_path / "none.sqlite")]) == 2
    assert f"no store at {tmp_path / 'none.sqlite'}" in capsys.readouterr().err


def test_the_daemon_runs_the_job_at_run_at_and_exports_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from acdbridge import app
    from acdbridge.config import load
    from acdbridge.runtime import privacy
    from tests.test_metrics import samples
    from tests.test_runtime import _config, _get

    store = SqliteStore(tmp_path / "store.sqlite")
    store.write([visit(n, time.time() - 100 * DAY + n, "+4930111111") for n in range(30)], [])
    store.close()
    monkeypatch.setattr(privacy, "next_run", lambda now, run_at, tz: now + 0.3)  # run_at: in 0.3 s
    cfg = load(_config(tmp_path, '[privacy]\nretain_days = 30\nrun_at = "04:15"\n'))

    async def scenario() -> bytes:
        daemon = app.build(cfg)
        running = asyncio.create_task(daemon.run())
        for _ in range(200):
            await asyncio.sleep(0.05)
            if daemon.p.privacy is not None and daemon.p.privacy.runs >= 1:
                break
        await asyncio.sleep(1.1)  # a metrics pass with the run in it
        _, metrics = await _get(cfg.http.port, "/metrics")
        daemon.stop.set()
        await asyncio.wait_for(running, 10)
        return metrics

    metrics = {(n, tuple(lb.values())): v for n, lb, v in samples(asyncio.run(scenario()).decode())}
    assert metrics["acd_privacy_rows_pseudonymised_total", ("visits",)] == 30
    assert metrics["acd_privacy_runs_total", ()] >= 1  # every 0.3 s here: once a day in life
    assert metrics["acd_privacy_last_run_timestamp_seconds", ()] > time.time() - 60
    assert metrics["acd_task_restarts_total", ("privacy",)] == 0
    store = SqliteStore(tmp_path / "store.sqlite")
    assert all(v["caller"].startswith("p:") for v in store.visits(0, time.time()))
    store.close()
    assert stat.S_IMODE((tmp_path / "store.privacy-key").stat().st_mode) == 0o600


def test_export_output_is_a_private_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from acdbridge.cli import main

    db = tmp_path / "s.sqlite"
    _sqlite(tmp_path).close()
    out = tmp_path / "visits.csv"
    out.write_text("old\n")
    out.chmod(0o644)
    old = os.umask(0o022)
    try:
        args = ["export", "--db", str(db), "--from", "0", "--to", str(NOW + 1), "--format", "csv"]
        assert main([*args, "--output", str(out)]) == 0
    finally:
        os.umask(old)
    assert stat.S_IMODE(out.stat().st_mode) == 0o600 and capsys.readouterr().out == ""
    lines = out.read_text().splitlines()
    assert lines[0].startswith("uniqueid,linkedid,queue,caller,") and len(lines) == 51
