"""`acdbridge replay --db` and `acdbridge report` (docs/reports.md): the replayed store holds what the
engine produced, interval maths on the centre's clock (DST days, weeks, months), report rows equal
kpis_over over the same records filtered here, on SQLite and PostgreSQL, and the CLI's errors."""

from __future__ import annotations

import csv
import dataclasses
import itertools
import json
import re
import zipfile
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from acdbridge.adapters.store import PostgresStore, SqliteStore
from acdbridge.cli import main
from acdbridge.config import load, validate
from acdbridge.core.kpi import KpiConfig, interval_bounds, kpis_over
from acdbridge.core.report import Data, ReportError, Target, intervals, iso, report
from acdbridge.core.workforce import load_of, required
from acdbridge.replay import replay
from tests.pg import PgCluster

TRACES = Path(__file__).parent / "fixtures" / "traces"
MIXED, CALLFLOW = TRACES / "mixed.ami.gz", TRACES / "callflow.ami"
AnyStore = SqliteStore | PostgresStore


@pytest.fixture(params=["sqlite", "postgres"])
def db(request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A --db argument: an SQLite path, or a fresh PostgreSQL database's URL (PGPASSWORD set)."""
    if request.param == "postgres":
        cluster: PgCluster = request.getfixturevalue("pg_cluster")
        monkeypatch.setenv("PGPASSWORD", cluster.password)
        yield cluster.create_database()
    else:
        yield str(tmp_path / "replayed.sqlite")


def _open(db: str) -> AnyStore:
    return PostgresStore(db) if db.startswith("postgresql://") else SqliteStore(Path(db))


def test_replay_db_stores_what_the_engine_produced_once(db: str, capsys: pytest.CaptureFixture[str]) -> None:
    for trace in (MIXED, CALLFLOW, MIXED):  # the second MIXED adds nothing (idempotent keys)
        assert main(["replay", str(trace), "--db", db]) == 0
    said = capsys.readouterr().out
    assert "31 visits, 107 agent states" in said and "1 visit, 5 agent states" in said
    engines = [replay(MIXED), replay(CALLFLOW)]
    expected = {
        k: [r for e in engines for r in e.records(k)] for k in ("visit", "agent_state", "ivr", "feedback")
    }
    store = _open(db)
    try:
        visits = store.visits(-1e12, 1e12)
        key = lambda v: (v["uniqueid"], v["queue"], v["enter_ts"])  # noqa: E731
        assert sorted(visits, key=key) == sorted(expected["visit"], key=key)
        states = store.agent_states(-1e12, 1e12)
        assert len(states) == len(expected["agent_state"]) == 112
        assert {(s["interface"], s["state"], s["start_ts"]) for s in states} == {
            (s["interface"], s["state"], s["start_ts"]) for s in expected["agent_state"]
        }
        legs = store.ivr_legs(-1e12, 1e12)
        assert [(leg["uniqueid"], leg["call_type"]) for leg in legs] == [
            (leg["uniqueid"], leg["call_type"]) for leg in expected["ivr"]
        ]
        assert sorted(f["kind"] for f in store.feedback(-1e12, 1e12)) == ["disposition", "survey"]
    finally:
        store.close()


def test_replay_db_of_a_missing_trace_is_a_clear_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["replay", str(tmp_path / "nope.ami"), "--db", str(tmp_path / "s.sqlite")]) == 2
    assert "no such trace" in capsys.readouterr().err


# --- interval maths on the centre's clock -------------------------------------------------------

BERLIN = KpiConfig(timezone="Europe/Berlin")


def _at(text: str, cfg: KpiConfig = BERLIN) -> float:
    """A local wall-clock time in the config's zone (fold 0), or an ISO time with its offset."""
    when = datetime.fromisoformat(text)
    return (when if when.tzinfo else when.replace(tzinfo=ZoneInfo(cfg.timezone))).timestamp()


def _spans(start: str, end: str, interval: str, cfg: KpiConfig = BERLIN) -> list[tuple[str, str]]:
    return [
        (iso(lo, cfg), iso(hi, cfg)) for lo, hi in intervals(_at(start, cfg), _at(end, cfg), interval, cfg)
    ]


def test_a_dst_day_is_one_row_of_23_or_25_hours() -> None:
    days = intervals(_at("2026-03-28"), _at("2026-03-31"), "day", BERLIN)
    assert [(hi - lo) / 3600 for lo, hi in days] == [24.0, 23.0, 24.0]
    days = intervals(_at("2026-10-24"), _at("2026-10-27"), "day", BERLIN)
    assert [(hi - lo) / 3600 for lo, hi in days] == [24.0, 25.0, 24.0]
    assert _spans("2026-10-25", "2026-10-26", "day")[0] == (
        "2026-10-25T00:00:00+02:00",
        "2026-10-26T00:00:00+01:00",
    )


def test_half_hours_across_the_dst_changes_are_each_30_real_minutes() -> None:
    back = _spans("2026-10-25T01:00+02:00", "2026-10-25T04:00+01:00", "30m")
    assert [s for s, _ in back] == [
        "2026-10-25T01:00:00+02:00", "2026-10-25T01:30:00+02:00", "2026-10-25T02:00:00+02:00",
        "2026-10-25T02:30:00+02:00", "2026-10-25T02:00:00+01:00", "2026-10-25T02:30:00+01:00",
        "2026-10-25T03:00:00+01:00", "2026-10-25T03:30:00+01:00",
    ]  # fmt: skip
    forward = intervals(_at("2026-03-29T01:00"), _at("2026-03-29T04:00"), "30m", BERLIN)
    assert [iso(lo, BERLIN) for lo, _ in forward] == [
        "2026-03-29T01:00:00+01:00", "2026-03-29T01:30:00+01:00", "2026-03-29T03:00:00+02:00",
        "2026-03-29T03:30:00+02:00",
    ]  # fmt: skip
    assert all(
        hi - lo == 1800
        for lo, hi in [*forward, *intervals(_at("2026-10-25"), _at("2026-10-26"), "30m", BERLIN)]
    )
    assert len(intervals(_at("2026-10-25"), _at("2026-10-26"), "30m", BERLIN)) == 50
    assert len(intervals(_at("2026-03-29"), _at("2026-03-30"), "1h", BERLIN)) == 23
    assert len(intervals(_at("2026-10-25"), _at("2026-10-26"), "15m", BERLIN)) == 100


def test_weeks_start_on_monday_and_months_on_the_first_the_ends_clipped() -> None:
    assert _spans("2026-03-25", "2026-04-15", "week") == [
        ("2026-03-25T00:00:00+01:00", "2026-03-30T00:00:00+02:00"),  # clipped to --from; DST in it
        ("2026-03-30T00:00:00+02:00", "2026-04-06T00:00:00+02:00"),
        ("2026-04-06T00:00:00+02:00", "2026-04-13T00:00:00+02:00"),
        ("2026-04-13T00:00:00+02:00", "2026-04-15T00:00:00+02:00"),  # clipped to --to
    ]
    assert _spans("2026-01-01", "2027-01-01", "month")[1:4] == [
        ("2026-02-01T00:00:00+01:00", "2026-03-01T00:00:00+01:00"),
        ("2026-03-01T00:00:00+01:00", "2026-04-01T00:00:00+02:00"),
        ("2026-04-01T00:00:00+02:00", "2026-05-01T00:00:00+02:00"),
    ]
    assert len(_spans("2026-01-01", "2027-01-01", "month")) == 12
    assert _spans("2026-11-23T08:10", "2026-11-23T09:00", "30m") == [
        ("2026-11-23T08:10:00+01:00", "2026-11-23T08:30:00+01:00"),
        ("2026-11-23T08:30:00+01:00", "2026-11-23T09:00:00+01:00"),
    ]


def test_every_moment_is_in_exactly_one_interval_and_live_intervals_agree() -> None:
    kathmandu = KpiConfig(timezone="Asia/Kathmandu", interval_s=1800.0)  # +05:45
    for cfg in (BERLIN, kathmandu):
        start = _at("2026-10-20", cfg)
        spans = intervals(start, start + 14 * 86400, "30m", cfg)
        assert all(a[1] == b[0] for a, b in itertools.pairwise(spans))
        # the live engine's last closed interval (kpi.interval_bounds) is one of the report's
        for lo, hi in spans[1:]:
            assert interval_bounds(hi, dataclasses.replace(cfg, interval_s=1800.0)) == (lo, hi)
    assert iso(_at("2026-11-23T08:00", kathmandu), kathmandu) == "2026-11-23T08:00:00+05:45"


def test_bad_intervals_and_periods_are_refused() -> None:
    with pytest.raises(ReportError, match="unknown interval '2h'"):
        intervals(0.0, 3600.0, "2h", BERLIN)
    with pytest.raises(ReportError, match="--to must be after --from"):
        intervals(3600.0, 3600.0, "1h", BERLIN)
    with pytest.raises(ReportError, match="more than 100000 intervals"):
        intervals(0.0, 1e9, "15m", BERLIN)


# --- reports over a replayed store equal kpis_over over the same records -----------------------

CONFIG = """
[kpi]
timezone = "Europe/Berlin"
[queues.water]
sl_threshold_s = 10
sl_target = 0.9
[queues.complaints]
wrapup_s = 15
[targets]
asa_s = 5
occupancy = {}
avg_talk_s = { min = 270, max = 360 }
[agents."Ana Torres"]
team = "north"
[agents."Li Wei"]
team = "north"
[agents."Zhou Min"]
team = "south"
"""


@pytest.fixture
def replayed(db: str, tmp_path: Path) -> tuple[str, Path]:
    """Both traces replayed into the store under test; the config the report reads."""
    config = tmp_path / "acdbridge.toml"
    config.write_text(CONFIG)
    for trace in (MIXED, CALLFLOW):
        assert main(["replay", str(trace), "--db", db, "--config", str(config)]) == 0
    return db, config


def _report(capsys: pytest.CaptureFixture[str], *args: str) -> dict[str, Any]:
    capsys.readouterr()
    assert main(["report", *args]) == 0
    return dict(json.loads(capsys.readouterr().out))


def _records(config: Path) -> dict[str, list[dict[str, Any]]]:
    cfg = load(config, for_daemon=False)
    engines = [replay(MIXED, cfg), replay(CALLFLOW, cfg)]
    return {k: [r for e in engines for r in e.records(k)] for k in ("visit", "agent_state", "feedback")}


def _window(row: dict[str, Any]) -> tuple[float, float]:
    return datetime.fromisoformat(row["start"]).timestamp(), datetime.fromisoformat(row["end"]).timestamp()


def _expected(records: dict[str, list[dict[str, Any]]], cfg: KpiConfig, lo: float, hi: float) -> Any:
    """kpis_over over the records filtered here by end time (visits) and ts (feedback)."""
    visits = [v for v in records["visit"] if lo <= v["end_ts"] < hi]
    feedback = [f for f in records["feedback"] if lo <= f["ts"] < hi]
    return kpis_over(visits, records["agent_state"], cfg, lo, hi, feedback)


@pytest.mark.parametrize("by", ["queue", "agent"])
def test_each_interval_row_is_kpis_over_that_interval(
    replayed: tuple[str, Path], by: str, capsys: pytest.CaptureFixture[str]
) -> None:
    db, config = replayed
    cfg = load(config, for_daemon=False)
    records = _records(config)
    out = _report(capsys, "--db", db, "--config", str(config), "--from", "2026-11-23", "--to", "2026-11-24",
                  "--interval", "15m", "--by", by)  # fmt: skip
    section = "queues" if by == "queue" else "agents"
    seen: dict[float, set[str]] = {}
    for row in out["rows"]:
        lo, hi = _window(row)
        expected = _expected(records, cfg.kpi, lo, hi)[section][row[by]]
        assert {
            k: v for k, v in row.items() if k not in ("start", "end", by, "misses", "required_agents")
        } == expected
        if by == "queue":  # Erlang from the interval's own arrivals and AHT
            assert row["required_agents"] == required(load_of(expected, hi - lo), cfg.kpi.queue(row[by]))
        else:
            assert "required_agents" not in row
        seen.setdefault(lo, set()).add(row[by])
    # every quarter hour of the (24 h) day has a row for each group kpis_over shows for it
    midnight = datetime(2026, 11, 23, tzinfo=ZoneInfo("Europe/Berlin")).timestamp()
    for lo in (midnight + 900 * k for k in range(96)):
        assert seen.get(lo, set()) == set(_expected(records, cfg.kpi, lo, lo + 900)[section])
    assert len(seen) == (96 if by == "queue" else 2)  # configured queues always; agents when active
    if by == "queue":
        assert sum(r["offered"] for r in out["rows"]) == len(records["visit"]) == 32


def test_day_rows_misses_and_targets_follow_the_config(
    replayed: tuple[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    db, config = replayed
    out = _report(capsys, "--db", db, "--config", str(config), "--from", "2026-11-23", "--to", "2026-11-25",
                  "--interval", "day", "--by", "queue")  # fmt: skip
    targets = out["targets"]
    assert targets["asa_s"] == {"max": 5.0} and "occupancy" not in targets
    assert targets["avg_talk_s"] == {"min": 270.0, "max": 360.0}
    assert targets["service_level"] == {"min": 0.8} and targets["queues"]["water"] == {
        "service_level": {"min": 0.9}
    }
    rows = {(r["start"], r["queue"]): r for r in out["rows"]}
    water = rows[("2026-11-23T00:00:00+01:00", "water")]
    assert water["end"] == "2026-11-24T00:00:00+01:00" and water["sl_threshold_s"] == 10.0
    bounds = {"asa_s": Target(max=5.0), "avg_talk_s": Target(270.0, 360.0), "service_level": Target(min=0.9)}
    for key, target in bounds.items():
        assert (key in water["misses"]) == target.missed(water[key])
    assert "avg_talk_s" in water["misses"]  # the lab's calls are seconds long, not 270 s
    # the next day: the configured queues, with no calls and so nothing missed
    empty = rows[("2026-11-24T00:00:00+01:00", "water")]
    assert empty["offered"] == 0 and empty["service_level"] is None and empty["misses"] == []


def test_teams_call_types_hotlines_and_pbx(
    replayed: tuple[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    db, config = replayed
    common = ["--db", db, "--config", str(config), "--from", "2026-11-23", "--to", "2026-11-24", "--interval"]
    agents = _report(capsys, *common, "day", "--by", "agent")["rows"]
    teams = {r["team"]: r for r in _report(capsys, *common, "day", "--by", "team")["rows"]}
    of = {"north": ("Ana Torres", "Li Wei"), "south": ("Zhou Min",)}
    for team, names in of.items():
        mine = [r for r in agents if r["agent"] in names]
        assert teams[team]["answered"] == sum(r["answered"] for r in mine)
        assert teams[team]["logged_in_s"] == pytest.approx(sum(r["logged_in_s"] for r in mine), abs=1e-5)
    others = [r for r in agents if r["agent"] not in of["north"] + of["south"]]
    assert teams[None]["answered"] == sum(r["answered"] for r in others)  # agents without a team
    call_types = {
        r["call_type"]: r["offered"] for r in _report(capsys, *common, "day", "--by", "call_type")["rows"]
    }
    assert call_types == {"complaint": 1, None: 31}  # only the callflow call went through the greeting
    hotlines = {
        r["hotline"]: r["offered"] for r in _report(capsys, *common, "day", "--by", "hotline")["rows"]
    }
    assert hotlines == {"water": 1, None: 31}
    pbxes = _report(capsys, *common, "day", "--by", "pbx")["rows"]
    assert [(r["pbx"], r["offered"]) for r in pbxes] == [("", 32)]


def test_csv_xlsx_and_html(
    replayed: tuple[str, Path], capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    db, config = replayed
    common = ["report", "--db", db, "--config", str(config), "--from", "2026-11-23", "--to", "2026-11-24",
              "--interval", "1h", "--by", "queue"]  # fmt: skip
    rows = _report(capsys, *common[1:])["rows"]
    assert main([*common, "--format", "csv", "--out", str(tmp_path / "r.csv")]) == 0
    table = list(csv.DictReader((tmp_path / "r.csv").open()))
    assert len(table) == len(rows) and [r["queue"] for r in table] == [r["queue"] for r in rows]
    shown = ["" if r["service_level"] is None else str(r["service_level"]) for r in rows]
    assert [r["service_level"] for r in table] == shown
    assert main([*common, "--format", "xlsx", "--out", str(tmp_path / "r.xlsx")]) == 0
    with zipfile.ZipFile(tmp_path / "r.xlsx") as book:
        sheets = re.findall(r'<sheet name="([^"]+)"', book.read("xl/workbook.xml").decode())
        texts = book.read("xl/sharedStrings.xml").decode()
    assert sheets == ["rows", *dict.fromkeys(r["queue"] for r in rows), "targets"]  # a sheet per queue
    assert "service_level" in texts and "misses" in texts
    assert main([*common, "--format", "html", "--out", str(tmp_path / "r.html")]) == 0
    page = (tmp_path / "r.html").read_text()
    assert page.startswith("<!doctype html>") and page.count("<svg") == 3 * len({r["queue"] for r in rows})
    assert "<script" not in page and "http" not in page.replace('lang="en"', "")  # self-contained
    assert "class=miss" in page


def test_cli_errors_name_the_problem(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    store = tmp_path / "s.sqlite"
    assert main(["replay", str(CALLFLOW), "--db", str(store)]) == 0
    base = ["report", "--db", str(store), "--interval", "1h", "--by", "queue"]
    cases = [
        ([*base, "--from", "yesterday", "--to", "2026-11-24"], "--from: not a time: 'yesterday'"),
        (
            [*base, "--from", "2026-11-24", "--to", "2026-11-23"],
            "--to 2026-11-23 is not after --from 2026-11-24",
        ),
        (
            [
                "report",
                "--db",
                str(tmp_path / "none.sqlite"),
                "--from",
                "2026-11-23",
                "--to",
                "2026-11-24",
                "--interval",
                "1h",
                "--by",
                "queue",
            ],
            "--db: no store at",
        ),
        (
            [
                "report",
                "--db",
                str(store),
                "--from",
                "2026-11-23",
                "--to",
                "2026-11-24",
                "--interval",
                "1h",
                "--by",
                "team",
            ],
            "--by team: no agent has a team",
        ),
        (
            ["report", "--from", "2026-11-23", "--to", "2026-11-24", "--interval", "1h", "--by", "queue"],
            "give --db STORE or --config C",
        ),
    ]
    for argv, message in cases:
        capsys.readouterr()
        assert main(argv) == 2, argv
        assert message in capsys.readouterr().err
    for option, value in (("--interval", "2h"), ("--by", "caller")):
        argv = [*base, "--from", "2026-11-23", "--to", "2026-11-24", option, value]
        with pytest.raises(SystemExit) as exit_:
            main(argv)
        assert (
            exit_.value.code == 2
            and f"argument {option}: invalid choice: '{value}'" in capsys.readouterr().err
        )


def test_targets_config_errors_are_reported(tmp_path: Path) -> None:
    data = {"targets": {"asa": 20, "service_level": 80, "aht_s": {"min": 600, "max": 300}, "fcr": "high"},
            "agents": {"Ana": {"team": ""}}}  # fmt: skip
    _, problems = validate(data, "c.toml", {}, for_daemon=False)
    text = "\n".join(problems.errors)
    assert "targets: unknown keys ['asa']" in text
    assert "targets.service_level: is a ratio between 0 and 1, got 80" in text
    assert "targets.aht_s: min 600 is above max 300" in text
    assert "targets.fcr: expected a number >= 0, got a string 'high'" in text
    assert "agents.Ana.team" in text
    data = {"targets": {"service_level": 0.9}, "queues": {"water": {"wrapup_s": 5}}}
    cfg, problems = validate(data, "c.toml", {}, for_daemon=False)
    assert not problems.errors
    # [targets] service_level is every queue's default sl_target (the wallboard and alerts read it)
    assert cfg.kpi.queue("water").sl_target == 0.9 and cfg.kpi.queue("other").sl_target == 0.9


def test_the_in_memory_report_is_the_stores(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """core/report.py's report() over records in memory gives the rows the command reads from the
    store a day at a time (a period over two days and a partial first interval)."""
    config = tmp_path / "acdbridge.toml"
    config.write_text(CONFIG)
    db = str(tmp_path / "s.sqlite")
    for trace in (MIXED, CALLFLOW):
        assert main(["replay", str(trace), "--db", db, "--config", str(config)]) == 0
    cfg, records = load(config, for_daemon=False), _records(config)
    data = Data(records["visit"], records["agent_state"], records["feedback"])
    start, end = _at("2026-11-22T23:10"), _at("2026-11-24T06:00")
    for by in ("queue", "agent", "team"):
        got = _report(capsys, "--db", db, "--config", str(config), "--from", "2026-11-22T23:10",
                      "--to", "2026-11-24T06:00", "--interval", "30m", "--by", by)  # fmt: skip
        assert got == report(data, cfg.kpi, cfg.report, start, end, "30m", by)
