"""`[smtp]` (the mail relay) and `[reports]` with its `[[reports.schedule]]` entries: reports made
on a schedule, written to a directory and e-mailed (docs/reports.md "Scheduled reports").

    [smtp]
    host = "mail.example.org"
    port = 587                  # default 587
    starttls = true             # default true: never log in or send a report in clear text
    username = "acdbridge"      # optional: no AUTH without it
    password_file = "/etc/acdbridge/smtp-password"   # or password, or the credential smtp-password
    from = "acdbridge@example.org"
    timeout = 30                # seconds per SMTP conversation step
    ca_file = "/etc/ssl/private-ca.pem"              # optional: a private relay's CA

    [reports]
    directory = "/var/lib/acdbridge/reports"   # default: "reports" beside the store
    state_file = "..."          # the periods already made and mailed (default beside the store)
    retries = 3                 # attempts after the first failure, RETRY_S apart
    retry_s = 300

    [[reports.schedule]]
    name = "daily"              # letters, digits, - and _; unique; in file names and the state
    every = "day"               # day (yesterday), week (the last Monday-Monday week), month (last month)
    at = "08:00"                # local time ([kpi] timezone)
    weekday = "monday"          # every = "week" only
    day = 1                     # every = "month" only, 1-28
    interval = "30m"            # the report's rows; default 30m for a day, day for a week or month
    by = "queue"
    formats = ["html", "xlsx"]  # default ["html"]
    directory = "..."           # default [reports] directory
    mail_to = ["boss@example.org"]  # none: written only
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from acdbridge.core.report import GROUPINGS, INTERVALS, ReportConfig, ReportError, check_grouping
from acdbridge.core.schedule import EVERY, WEEKDAYS, When
from acdbridge.settings.problems import Problems, dotted, get, known, str_list, table
from acdbridge.settings.secrets import secret

FORMATS = ("json", "csv", "xlsx", "html")
SMTP_KEYS = {"host", "port", "starttls", "username", "password", "password_file", "from", "timeout",
             "ca_file"}  # fmt: skip
REPORTS_KEYS = {"directory", "state_file", "retries", "retry_s", "schedule"}
SCHEDULE_KEYS = {"name", "every", "at", "weekday", "day", "interval", "by", "formats", "directory", "mail_to"}
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")
_HHMM = re.compile(r"^([01][0-9]|2[0-3]):([0-5][0-9])$")
# a bare address: no display name, no spaces or line breaks (nothing that could add a header)
_ADDRESS = re.compile(r"^[^@\s<>,;\"]+@[^@\s<>,;\"]+\.[^@\s<>,;\"]+$")
_DEFAULT_INTERVAL = {"day": "30m", "week": "day", "month": "day"}


@dataclass(frozen=True)
class SmtpConfig:
    host: str
    sender: str
    port: int = 587
    starttls: bool = True
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    timeout_s: float = 30.0
    ca_file: Path | None = None


@dataclass(frozen=True)
class Schedule:
    name: str
    when: When
    directory: Path
    interval: str = "30m"
    by: str = "queue"
    formats: tuple[str, ...] = ("html",)
    mail_to: tuple[str, ...] = ()


@dataclass(frozen=True)
class ReportsConfig:
    directory: Path
    state_file: Path
    schedules: tuple[Schedule, ...] = ()
    retries: int = 3
    retry_s: float = 300.0


def default_reports(store_path: Path) -> ReportsConfig:
    return ReportsConfig(store_path.parent / "reports", store_path.with_suffix(".reports-sent.json"))


def parse_smtp(p: Problems, t: dict[str, Any], env: Mapping[str, str]) -> SmtpConfig:
    w = "smtp"
    known(p, t, w, SMTP_KEYS)
    host = get(p, t, "host", w, str, None, empty=False)
    sender = get(p, t, "from", w, str, None, empty=False)
    for key in ("host", "from"):
        if key not in t:
            p.error(dotted(w, key), "is required")
    if sender is not None and not _ADDRESS.match(sender):
        p.error(dotted(w, "from"), f"expected an address such as acdbridge@example.org, got {sender!r}")
    username = get(p, t, "username", w, str, None, empty=False)
    password = secret(p, t, w, "password", "smtp-password", env)
    if password is not None and username is None:
        p.error(dotted(w, "password"), "is set without smtp.username")
    if username is not None and password is None:
        p.error(dotted(w, "username"), "is set without a password (password, password_file or the "
                                       "credential smtp-password)")  # fmt: skip
    starttls = get(p, t, "starttls", w, bool, True)
    if not starttls and username is not None:
        p.warn(dotted(w, "starttls"), "is false: the password and the reports cross the network in "
                                      "clear text")  # fmt: skip
    ca = get(p, t, "ca_file", w, str, None, empty=False)
    if ca is not None and not Path(ca).is_file():
        p.error(dotted(w, "ca_file"), f"no file {ca}")
    return SmtpConfig(
        host=host or "localhost", sender=sender or "acdbridge@localhost",
        port=get(p, t, "port", w, int, 587, lo=1, hi=65535),
        starttls=starttls, username=username, password=password,
        timeout_s=get(p, t, "timeout", w, float, 30.0, lo=0.1, hi=600), ca_file=Path(ca) if ca else None,
    )  # fmt: skip


def _when(p: Problems, t: dict[str, Any], w: str) -> When:
    every = get(p, t, "every", w, str, "day")
    if every not in EVERY:
        p.error(dotted(w, "every"), f"expected one of {', '.join(EVERY)}, got {every!r}")
        every = "day"
    text = get(p, t, "at", w, str, "08:00")
    m = _HHMM.match(text)
    if m is None:
        p.error(dotted(w, "at"), f'expected a time of day "HH:MM" (00:00-23:59), got {text!r}')
    weekday_name = get(p, t, "weekday", w, str, "monday").lower()
    if weekday_name not in WEEKDAYS:
        p.error(dotted(w, "weekday"), f"expected one of {', '.join(WEEKDAYS)}, got {weekday_name!r}")
        weekday_name = "monday"
    for key, only in (("weekday", "week"), ("day", "month")):
        if key in t and every != only:
            p.error(dotted(w, key), f'only for every = "{only}" (this schedule runs every {every})')
    day = get(p, t, "day", w, int, 1, lo=1, hi=28)  # 29-31: months without that day would be skipped
    run_at = (int(m.group(1)), int(m.group(2))) if m else (8, 0)
    return When(every, run_at, WEEKDAYS.index(weekday_name), day)


def _schedule(p: Problems, t: dict[str, Any], w: str, base: Path, report: ReportConfig) -> Schedule | None:
    known(p, t, w, SCHEDULE_KEYS)
    name = get(p, t, "name", w, str, None)
    if name is None or not _NAME.match(name):
        p.error(dotted(w, "name"), f"expected a name of letters, digits, - and _ (e.g. daily), got {name!r}")
    when = _when(p, t, w)
    interval = get(p, t, "interval", w, str, _DEFAULT_INTERVAL[when.every])
    if interval not in INTERVALS:
        p.error(dotted(w, "interval"), f"expected one of {', '.join(INTERVALS)}, got {interval!r}")
    by = get(p, t, "by", w, str, "queue")
    if by not in GROUPINGS:
        p.error(dotted(w, "by"), f"expected one of {', '.join(GROUPINGS)}, got {by!r}")
    else:
        try:
            check_grouping(by, report)
        except ReportError as exc:
            p.error(dotted(w, "by"), str(exc))
    formats = str_list(p, t, "formats", w) if "formats" in t else ("html",)
    if bad := [f for f in formats if f not in FORMATS]:
        p.error(dotted(w, "formats"), f"unknown {bad}; known: {', '.join(FORMATS)}")
    if not formats:
        p.error(dotted(w, "formats"), "is empty: give at least one format")
    mail_to = str_list(p, t, "mail_to", w)
    for i, address in enumerate(mail_to):
        if not _ADDRESS.match(address):
            p.error(dotted(w, "mail_to", i), f"expected an address such as boss@example.org, got {address!r}")
    directory = get(p, t, "directory", w, str, None, empty=False)
    if name is None or not _NAME.match(name) or interval not in INTERVALS or by not in GROUPINGS:
        return None
    return Schedule(name, when, Path(directory) if directory else base, interval, by,
                    tuple(dict.fromkeys(formats)), mail_to)  # fmt: skip


def parse_reports(p: Problems, t: dict[str, Any], store_path: Path, report: ReportConfig,
                  smtp: SmtpConfig | None) -> ReportsConfig:  # fmt: skip
    w = "reports"
    known(p, t, w, REPORTS_KEYS)
    defaults = default_reports(store_path)
    directory = get(p, t, "directory", w, str, None, empty=False)
    state = get(p, t, "state_file", w, str, None, empty=False)
    entries = t.get("schedule", [])
    if not isinstance(entries, list):
        p.error(dotted(w, "schedule"), "expected an array of tables ([[reports.schedule]])")
        entries = []
    base = Path(directory) if directory else defaults.directory
    schedules: list[Schedule] = []
    for i, entry in enumerate(entries):
        where = dotted(w, "schedule", i)
        s = _schedule(p, table(p, entry, where), where, base, report)
        if s is None:
            continue
        if any(o.name == s.name for o in schedules):
            p.error(dotted(where, "name"), f"{s.name!r} is used by an earlier schedule")
        elif s.mail_to and smtp is None:
            p.error(dotted(where, "mail_to"), "is set but there is no [smtp] section to send with")
        schedules.append(s)
    state_file = Path(state) if state else defaults.state_file
    if schedules and not state_file.parent.is_dir():
        p.error(dotted(w, "state_file"), f"no directory {state_file.parent} for {state_file.name}")
    return ReportsConfig(base, state_file, tuple(schedules),
                         get(p, t, "retries", w, int, 3, lo=0, hi=20),
                         get(p, t, "retry_s", w, float, 300.0, lo=0.01, hi=86_400))  # fmt: skip
