"""Scheduling maths of the scheduled reports (core/schedule.py) and their config (settings/mailconf.py):
local times across DST, weekly and monthly runs, the period each run reports. Pure: a fake `now`."""

from __future__ import annotations

from datetime import date, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from acdbridge import config
from acdbridge.core.schedule import Period, When, next_run, period_before, period_of

BERLIN = ZoneInfo("Europe/Berlin")


def ts(y: int, mo: int, d: int, h: int = 0, mi: int = 0) -> float:
    return datetime(y, mo, d, h, mi, tzinfo=BERLIN).timestamp()


def test_daily_run_is_at_local_time_across_dst() -> None:
    daily = When("day", (8, 0))
    # the night the clocks go back (2026-10-25): 08:00 is 25 real hours after the day before's
    first = daily.next_due(ts(2026, 10, 24, 9, 0), BERLIN)
    assert first == ts(2026, 10, 25, 8, 0)
    assert first - ts(2026, 10, 24, 8, 0) == 25 * 3600
    assert daily.next_due(ts(2026, 3, 28, 8, 0), BERLIN) - ts(2026, 3, 28, 8, 0) == 23 * 3600
    assert daily.period_at(first, BERLIN) == Period(date(2026, 10, 24), date(2026, 10, 25))
    start, end = daily.period_at(ts(2026, 10, 26, 8, 0), BERLIN).bounds(BERLIN)
    assert end - start == 25 * 3600  # the DST day reported whole


def test_a_run_at_a_missing_local_time_happens_once() -> None:
    # 02:30 does not exist on 2026-03-29 in Berlin: the zone puts it at 03:30 summer time
    at = next_run(ts(2026, 3, 29, 0, 0), (2, 30), BERLIN)
    assert datetime.fromtimestamp(at, BERLIN).date() == date(2026, 3, 29)
    assert next_run(at, (2, 30), BERLIN) == ts(2026, 3, 30, 2, 30)


def test_weekly_runs_on_its_weekday_for_the_last_whole_week() -> None:
    wednesday = When("week", (7, 15), weekday=2)
    due = wednesday.next_due(ts(2026, 12, 3, 12, 0), BERLIN)  # a Thursday
    assert due == ts(2026, 12, 9, 7, 15)
    assert wednesday.period_at(due, BERLIN) == Period(date(2026, 11, 30), date(2026, 12, 7))
    assert wednesday.last_due(ts(2026, 12, 3, 12, 0), BERLIN) == ts(2026, 12, 2, 7, 15)
    monday = When("week", (8, 0), weekday=0)
    assert monday.period_at(ts(2026, 12, 7, 8, 0), BERLIN).name == "2026-11-30"


def test_monthly_runs_on_day_n_for_the_month_before() -> None:
    second = When("month", (6, 0), day=2)
    due = second.next_due(ts(2026, 12, 2, 6, 0), BERLIN)  # exactly at a run: the next one
    assert due == ts(2027, 1, 2, 6, 0)
    assert second.period_at(due, BERLIN) == Period(date(2026, 12, 1), date(2027, 1, 1))
    assert second.last_due(ts(2026, 12, 2, 5, 59), BERLIN) == ts(2026, 11, 2, 6, 0)
    assert period_before(date(2026, 3, 1), "month") == Period(date(2026, 2, 1), date(2026, 3, 1))
    assert period_of(date(2024, 2, 29), "month").end == date(2024, 3, 1)


def test_last_due_is_none_before_the_first_run_of_a_new_schedule() -> None:
    assert When("day", (8, 0)).last_due(ts(2026, 12, 3, 7, 59), BERLIN) == ts(2026, 12, 2, 8, 0)
    assert When("day", (8, 0)).last_due(ts(2026, 12, 3, 8, 0), BERLIN) == ts(2026, 12, 3, 8, 0)


def test_schedule_config_is_parsed(tmp_path: Path) -> None:
    cfg = config.parse({
        "store": {"path": str(tmp_path / "s.sqlite")},
        "smtp": {"host": "127.0.0.1", "port": 2525, "from": "acd@example.org", "username": "u",
                 "password": "p"},
        "reports": {"schedule": [
            {"name": "daily", "mail_to": ["a@example.org"], "formats": ["json", "csv"]},
            {"name": "weekly", "every": "week", "weekday": "friday", "at": "06:30"},
        ]},
    }, for_daemon=False)  # fmt: skip
    daily, weekly = cfg.reports.schedules
    assert (daily.interval, daily.by, daily.formats, daily.directory) == (
        "30m",
        "queue",
        ("json", "csv"),
        tmp_path / "reports",
    )
    assert weekly.when == When("week", (6, 30), weekday=4) and weekly.interval == "day"
    assert cfg.reports.state_file == tmp_path / "s.reports-sent.json"
    assert cfg.smtp is not None and cfg.smtp.starttls and cfg.smtp.port == 2525


def test_check_config_names_every_schedule_mistake(tmp_path: Path) -> None:
    data = {
        "smtp": {"port": 0, "username": "u", "from": "not an address", "colour": 1},
        "reports": {"schedule": [
            {"name": "bad name", "every": "fortnight", "at": "8am", "by": "team", "formats": ["pdf"],
             "mail_to": ["x"]},
            {"name": "d", "every": "day", "weekday": "monday", "day": 31},
            {"name": "d", "interval": "2h"},
        ], "retries": -1, "state_file": "/nonexistent-dir/sent.json"},
    }  # fmt: skip
    _cfg, problems = config.validate(data, "c.toml", env={}, for_daemon=False)
    text = "\n".join(problems.errors)
    s0 = "reports.schedule[0]"
    for expected in ("smtp: unknown keys ['colour']", "smtp.host: is required",
                     "smtp.port: must be a positive",
                     "smtp.from: expected an address", "smtp.username: is set without a password",
                     f"{s0}.name: expected a name", f"{s0}.every: expected one of",
                     f"{s0}.at: expected a time of day", f"{s0}.by:", f"{s0}.formats: unknown ['pdf']",
                     f"{s0}.mail_to[0]: expected",
                     'reports.schedule[1].weekday: only for every = "week"', "reports.schedule[1].day:",
                     "reports.schedule[2].interval: expected one of", "reports.retries:",
                     "reports.state_file: no directory /nonexistent-dir for sent.json"):  # fmt: skip
        assert expected in text, expected


def test_mail_to_without_smtp_is_an_error() -> None:
    _cfg, problems = config.validate({"reports": {"schedule": [{"name": "d", "mail_to": ["a@b.org"]}]}},
                                     "c.toml", env={}, for_daemon=False)  # fmt: skip
    assert problems.errors == [
        "c.toml: reports.schedule[0].mail_to: is set but there is no [smtp] section to send with"
    ]


@pytest.mark.parametrize("name", ["daily", "x-1", "A_b"])
def test_good_names(name: str) -> None:
    _cfg, problems = config.validate({"reports": {"schedule": [{"name": name}]}}, env={}, for_daemon=False)
    assert problems.errors == []


def test_check_config_summary_lists_the_schedules(tmp_path: Path) -> None:
    from acdbridge.settings.summary import summary

    cfg = config.parse({"store": {"path": str(tmp_path / "s.sqlite")}, "reports": {"schedule": [
        {"name": "weekly", "every": "week", "formats": ["xlsx"]}]}}, for_daemon=False)  # fmt: skip
    assert f"reports (1): weekly every week at 08:00 (xlsx) to {tmp_path / 'reports'}" in summary(cfg)
