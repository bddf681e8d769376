"""Scheduled reports e-mailed to a REAL local SMTP server (aiosmtpd on 127.0.0.1, a free port),
with STARTTLS (a certificate made by openssl here) and AUTH LOGIN / PLAIN: the mail is received,
its JSON attachment's rows are the report's; a restart does not mail a period twice; a refused
connection and a bad login are counted and retried (runtime/reportjob.py, adapters/mailer.py)."""

from __future__ import annotations

import asyncio
import email
import email.policy
import json
import socket
import ssl
import stat
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP as SMTPServer
from aiosmtpd.smtp import AuthResult, Envelope, LoginPassword, Session

from acdbridge.cli import main
from acdbridge.config import Config, load
from acdbridge.runtime.reportjob import ReportJob, report_families

TRACE = Path(__file__).parent / "fixtures" / "traces" / "mixed.ami.gz"
BERLIN = ZoneInfo("Europe/Berlin")
USER, PASSWORD = "reports", "s3cret-pw"


@dataclass
class Inbox:
    mails: list[tuple[Envelope, email.message.EmailMessage]] = field(default_factory=list)
    logins: list[str] = field(default_factory=list)
    mechanism: str = ""  # the one AUTH mechanism the server offers

    async def handle_DATA(self, server: SMTPServer, session: Session, envelope: Envelope) -> str:
        raw = envelope.original_content or b""
        msg = email.message_from_bytes(raw, policy=email.policy.default)
        assert isinstance(msg, email.message.EmailMessage)
        self.mails.append((envelope, msg))
        return "250 OK"

    def auth(self, server: SMTPServer, session: Session, envelope: Envelope, mechanism: str,
             data: Any) -> AuthResult:  # fmt: skip
        ok = isinstance(data, LoginPassword) and (data.login, data.password) == (
            USER.encode(),
            PASSWORD.encode(),
        )
        self.logins.append(f"{mechanism}:{ok}")
        return AuthResult(success=ok, handled=False)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def cert(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    d = tmp_path_factory.mktemp("tls")
    crt, key = d / "smtp.crt", d / "smtp.key"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj",
                    "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key),
                    "-out", str(crt)], check=True, capture_output=True, timeout=60)  # fmt: skip
    return crt, key


@pytest.fixture(params=["PLAIN", "LOGIN"])
def smtp(request: pytest.FixtureRequest, cert: tuple[Path, Path]) -> Iterator[tuple[Inbox, int]]:
    """A STARTTLS-only server offering one AUTH mechanism (the other excluded)."""
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(*cert)
    inbox, port = Inbox(mechanism=request.param), free_port()
    other = {"PLAIN": "LOGIN", "LOGIN": "PLAIN"}[request.param]
    controller = Controller(inbox, hostname="127.0.0.1", port=port, tls_context=ctx, require_starttls=True,
                            auth_required=True, auth_require_tls=True, authenticator=inbox.auth,
                            auth_exclude_mechanism=[other])  # fmt: skip
    controller.start()
    try:
        yield inbox, port
    finally:
        controller.stop()


def config_file(tmp_path: Path, port: int, cert: Path, password: str = PASSWORD) -> Path:
    (tmp_path / "smtp-password").write_text(password + "\n")
    (tmp_path / "smtp-password").chmod(0o600)
    path = tmp_path / "acdbridge.toml"
    path.write_text(f"""
[store]
path = "{tmp_path / "store.sqlite"}"
[kpi]
timezone = "Europe/Berlin"
[queues.water]
sl_threshold_s = 10
[smtp]
host = "127.0.0.1"
port = {port}
username = "{USER}"
password_file = "{tmp_path / "smtp-password"}"
from = "acdbridge@example.org"
timeout = 20
ca_file = "{cert}"
[reports]
directory = "{tmp_path / "out"}"
state_file = "{tmp_path / "sent.json"}"
retries = 2
retry_s = 0.05
[[reports.schedule]]
name = "daily"
every = "day"
at = "08:00"
formats = ["json", "csv"]
mail_to = ["boss@example.org", "lead@example.org"]
""")
    return path


@pytest.fixture
def stored(tmp_path: Path) -> Path:
    (tmp_path / "plain.toml").write_text(
        '[kpi]\ntimezone = "Europe/Berlin"\n[queues.water]\nsl_threshold_s = 10\n'
    )
    db = tmp_path / "store.sqlite"
    assert main(["replay", str(TRACE), "--db", str(db), "--config", str(tmp_path / "plain.toml")]) == 0
    return db


def job_at(cfg: Config, when: datetime, **kw: Any) -> tuple[ReportJob, Any]:
    from acdbridge.adapters.store import open_store

    store = open_store(cfg.store)
    return ReportJob(cfg, store, clock=lambda: when.timestamp(), **kw), store


def expected_rows(config: Path, capsys: pytest.CaptureFixture[str]) -> list[dict[str, Any]]:
    capsys.readouterr()
    assert main(["report", "--config", str(config), "--from", "2026-11-23", "--to", "2026-11-24",
                 "--interval", "30m", "--by", "queue"]) == 0  # fmt: skip
    return list(json.loads(capsys.readouterr().out)["rows"])


def sample(job: ReportJob, name: str, labels: dict[str, str]) -> float:
    for family in report_families(job):
        for s in family.samples:
            if s.name == name and s.labels == labels:
                return float(s.value)
    raise AssertionError(f"no sample {name} {labels}")


def test_the_report_is_mailed_with_its_attachments_once(
    tmp_path: Path, stored: Path, smtp: tuple[Inbox, int], cert: tuple[Path, Path],
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    inbox, port = smtp
    config = config_file(tmp_path, port, cert[0])
    cfg = load(config, for_daemon=False)
    job, store = job_at(cfg, datetime(2026, 11, 24, 9, 0, tzinfo=BERLIN))
    asyncio.run(job.catch_up())
    store.close()
    assert len(inbox.mails) == 1
    envelope, msg = inbox.mails[0]
    assert envelope.rcpt_tos == ["boss@example.org", "lead@example.org"]
    assert envelope.mail_from == "acdbridge@example.org"
    assert msg["Subject"] == "acdbridge report daily: 2026-11-23"
    assert inbox.logins == [f"{inbox.mechanism}:True"]
    files = {part.get_filename(): part.get_content() for part in msg.iter_attachments()}
    assert set(files) == {"daily-2026-11-23.json", "daily-2026-11-23.csv"}
    attached = json.loads(files["daily-2026-11-23.json"])
    rows = expected_rows(config, capsys)
    assert attached["rows"] == rows and len({r["start"] for r in rows}) == 48
    assert sum(r["offered"] for r in rows) > 0
    written = tmp_path / "out" / "daily-2026-11-23.json"
    assert json.loads(written.read_text()) == attached
    assert stat.S_IMODE(written.stat().st_mode) == 0o600
    assert (sample(job, "acd_reports_made_total", {"schedule": "daily"}),
            sample(job, "acd_reports_mailed_total", {"schedule": "daily"})) == (1, 1)  # fmt: skip
    # a restart (a new job, the same state file) an hour later does not mail it again
    again, store = job_at(cfg, datetime(2026, 11, 24, 10, 0, tzinfo=BERLIN))
    asyncio.run(again.catch_up())
    store.close()
    assert len(inbox.mails) == 1 and again.stats["daily"].made == 0


def test_after_downtime_only_the_latest_period_is_made(
    tmp_path: Path, stored: Path, smtp: tuple[Inbox, int], cert: tuple[Path, Path]
) -> None:
    inbox, port = smtp
    cfg = load(config_file(tmp_path, port, cert[0]), for_daemon=False)
    job, store = job_at(cfg, datetime(2026, 11, 28, 9, 0, tzinfo=BERLIN))  # down since the 24th

    async def daemon_task() -> None:  # the daemon's task: catches up, then waits for the next 08:00
        stop = asyncio.Event()
        task = asyncio.create_task(job.run(stop))
        for _ in range(600):
            if inbox.mails:
                break
            await asyncio.sleep(0.05)
        stop.set()
        await asyncio.wait_for(task, 30)

    asyncio.run(daemon_task())
    store.close()
    assert [m["Subject"] for _e, m in inbox.mails] == ["acdbridge report daily: 2026-11-27"]
    assert json.loads((tmp_path / "sent.json").read_text()) == {"done": {"daily": ["2026-11-27"]}}


def test_a_bad_login_is_counted_and_retried_then_left_for_the_next_start(
    tmp_path: Path, stored: Path, smtp: tuple[Inbox, int], cert: tuple[Path, Path]
) -> None:
    inbox, port = smtp
    cfg = load(config_file(tmp_path, port, cert[0], password="wrong"), for_daemon=False)
    job, store = job_at(cfg, datetime(2026, 11, 24, 9, 0, tzinfo=BERLIN))
    asyncio.run(job.catch_up())
    assert inbox.mails == [] and inbox.logins == [f"{inbox.mechanism}:False"] * 3
    assert sample(job, "acd_reports_failed_total", {"schedule": "daily", "step": "mail"}) == 3  # 1 + retries
    assert sample(job, "acd_reports_made_total", {"schedule": "daily"}) == 3
    assert "SMTPAuthenticationError 535" in job.last_error
    assert not (tmp_path / "sent.json").exists()
    # the password fixed: the next start makes the period it could not mail
    assert cfg.smtp is not None
    fixed = replace(cfg, smtp=replace(cfg.smtp, password=PASSWORD))
    job2 = ReportJob(fixed, store, clock=job.clock)
    asyncio.run(job2.catch_up())
    store.close()
    assert len(inbox.mails) == 1 and job2.stats["daily"].mailed == 1


def test_a_refused_connection_is_counted_and_retried(
    tmp_path: Path, stored: Path, cert: tuple[Path, Path]
) -> None:
    cfg = load(config_file(tmp_path, free_port(), cert[0]), for_daemon=False)  # nothing listens there
    job, store = job_at(cfg, datetime(2026, 11, 24, 9, 0, tzinfo=BERLIN))
    asyncio.run(job.catch_up())
    store.close()
    assert job.stats["daily"].failed == {"make": 0, "mail": 3}
    assert "Connection refused" in job.last_error
    assert (tmp_path / "out" / "daily-2026-11-23.csv").exists()  # written all the same


def test_report_run_by_hand(
    tmp_path: Path, stored: Path, smtp: tuple[Inbox, int], cert: tuple[Path, Path],
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    inbox, port = smtp
    config = config_file(tmp_path, port, cert[0])
    capsys.readouterr()
    assert main(["report-run", "--config", str(config), "--schedule", "daily", "--period", "2026-11-23"]) == 0
    assert "daily 2026-11-23:" in capsys.readouterr().out
    assert [m["Subject"] for _e, m in inbox.mails] == ["acdbridge report daily: 2026-11-23"]
    assert not (tmp_path / "sent.json").exists()  # by hand: the daemon's state untouched
    assert main(["report-run", "--config", str(config), "--schedule", "weekly"]) == 2
    assert "--schedule: no schedule 'weekly'" in capsys.readouterr().err
    assert main(["report-run", "--config", str(config), "--schedule", "daily", "--period", "23.11."]) == 2
    assert "--period: expected a date YYYY-MM-DD" in capsys.readouterr().err


def test_the_daemon_runs_the_schedule_and_exports_its_counters(tmp_path: Path) -> None:
    from acdbridge import app
    from acdbridge.adapters.store import SqliteStore
    from tests.test_metrics import samples
    from tests.test_runtime import _config, _get

    SqliteStore(tmp_path / "store.sqlite").close()
    extra = (f'[reports]\ndirectory = "{tmp_path / "out"}"\n[[reports.schedule]]\nname = "daily"\n'
             'formats = ["json"]\n')  # fmt: skip
    cfg = load(_config(tmp_path, extra))

    async def scenario() -> bytes:
        daemon = app.build(cfg)
        running = asyncio.create_task(daemon.run())
        for _ in range(300):  # the start's catch-up makes yesterday's report
            await asyncio.sleep(0.05)
            if daemon.p.reports is not None and daemon.p.reports.stats["daily"].made >= 1:
                break
        await asyncio.sleep(1.1)  # a metrics pass with the run in it
        _, metrics = await _get(cfg.http.port, "/metrics")
        daemon.stop.set()
        await asyncio.wait_for(running, 10)
        return metrics

    metrics = {(n, tuple(lb.values())): v for n, lb, v in samples(asyncio.run(scenario()).decode())}
    assert metrics["acd_reports_made_total", ("daily",)] == 1
    assert metrics["acd_reports_failed_total", ("daily", "mail")] == 0
    assert metrics["acd_task_restarts_total", ("reports",)] == 0
    (made,) = (tmp_path / "out").iterdir()
    report = json.loads(made.read_text())  # yesterday's of an empty store: no rows, the targets
    assert made.name.startswith("daily-") and report["rows"] == [] and report["targets"]
    assert "daily" in json.loads((tmp_path / "store.reports-sent.json").read_text())["done"]
