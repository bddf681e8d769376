"""`acdbridge run` as ops meet it: each start-up failure is one line and its own exit status;
a refused AMI login is retried and said once; systemd's notify protocol (the test plays
systemd's side of NOTIFY_SOCKET); SIGHUP with a broken config; a poisoned store."""

from __future__ import annotations

import itertools
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

import pytest

from acdbridge.adapters.store import SqliteStore
from acdbridge.lab import pbx
from acdbridge.lab.pbx import AMI_USERS
from tests.test_metrics import samples
from tests.test_runtime import _poison
from tests.test_systemd_notify import FakeSystemd

from .daemon_harness import RUNNING, CuttableProxy, flow_config, free_port


def _config(tmp_path: Path, ami_port: int, *, http_port: int | None = None, store: Path | None = None,
            secret: str = AMI_USERS["acdbridge"], extra: str = "",
            backoff: tuple[float, float] = (0.2, 1.0)) -> Path:  # fmt: skip
    path = tmp_path / "acdbridge.toml"
    path.write_text(
        f'[ami]\nhost = "127.0.0.1"\nport = {ami_port}\nusername = "acdbridge"\nsecret = "{secret}"\n'
        f"ping_interval_s = 2\naction_timeout_s = 3\nreconnect_min_s = {backoff[0]}\n"
        f"reconnect_max_s = {backoff[1]}\n"
        f'[store]\npath = "{store or tmp_path / "store.sqlite"}"\n'
        f'[http]\nlisten = "127.0.0.1:{http_port or free_port()}"\n' + extra
    )
    return path


def _http_port(config: Path) -> int:
    return int(re.findall(r'listen = "127\.0\.0\.1:(\d+)"', config.read_text())[0])


def _spawn(config: Path, log: Path, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "acdbridge", "run", "--config", str(config)],
        stdout=subprocess.DEVNULL, stderr=log.open("w"), text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})},
    )  # fmt: skip
    RUNNING.append(proc)
    return proc


def _until(what: str, predicate: Callable[[], object], seconds: float = 15.0) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def _get(port: int, path: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()
    except OSError:
        return 0, ""


def _metric(port: int, name: str, **labels: str) -> float | None:
    _, text = _get(port, "/metrics")
    found = [v for n, lb, v in samples(text) if n == name and all(lb.get(k) == x for k, x in labels.items())]
    return found[0] if found else None


def _events(log: Path) -> list[dict[str, object]]:
    out = []
    for line in log.read_text().splitlines():
        if line.startswith("{"):
            out.append(json.loads(line))
    return out


def _stop(proc: subprocess.Popen[str]) -> int:
    proc.send_signal(signal.SIGTERM)
    return proc.wait(timeout=20)


# --- start-up failures: one line, a distinct exit status ------------------------------------------


def _fails(config: Path, tmp_path: Path) -> tuple[int, list[str]]:
    log = tmp_path / "failed.log"
    proc = _spawn(config, log)
    status = proc.wait(timeout=20)
    return status, log.read_text().splitlines()


def _one_line(lines: list[str], status: int, expected_status: int, *needles: str) -> None:
    text = "\n".join(lines)
    assert status == expected_status, text
    assert "Traceback" not in text, text
    errors = [line for line in lines if line.startswith("acdbridge: ")]
    assert len(errors) == 1 and lines[-1] == errors[0], text
    for needle in needles:
        assert needle in errors[0], errors[0]


def test_http_port_in_use(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        status, lines = _fails(_config(tmp_path, free_port(), http_port=port), tmp_path)
    _one_line(lines, status, 11, "http_port_in_use", f"127.0.0.1:{port} is already in use")


def test_fastagi_port_in_use(tmp_path: Path) -> None:
    # the AMI port is a closed one: this daemon with [agi] never reaches the shared lab
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        flow = flow_config().replace('listen = "127.0.0.1:24573"', f'listen = "127.0.0.1:{port}"')
        assert f":{port}" in flow
        status, lines = _fails(_config(tmp_path, free_port(), extra=flow), tmp_path)
    _one_line(lines, status, 12, "agi_port_in_use", f"FastAGI port 127.0.0.1:{port}")


def test_a_store_locked_by_another_daemon(tmp_path: Path) -> None:
    store = tmp_path / "shared.sqlite"
    first = _spawn(_config(tmp_path, free_port(), store=store), tmp_path / "first.log")
    try:
        _until(
            "the first daemon's listener", lambda: "http_listening" in (tmp_path / "first.log").read_text()
        )
        other = tmp_path / "other"
        other.mkdir()
        status, lines = _fails(_config(other, free_port(), store=store), other)
        _one_line(lines, status, 14, "store_locked", "in use by another acdbridge daemon")
    finally:
        assert _stop(first) == 0


def test_a_store_that_is_not_a_database(tmp_path: Path) -> None:
    store = tmp_path / "store.sqlite"
    store.write_bytes(b"this is no SQLite file\n" * 200)
    status, lines = _fails(_config(tmp_path, free_port(), store=store), tmp_path)
    _one_line(lines, status, 13, "store_unusable", "file is not a database")


@pytest.mark.parametrize("case", ["store_is_a_directory", "store_under_a_file", "directory_unreadable"])
def test_files_the_config_check_catches_first(tmp_path: Path, case: str) -> None:
    """These are found by the config's own checks before anything opens (exit 2, the key named);
    the daemon's StoreUnusable / DirectoryUnreadable (13, 15) catch what changes in between."""
    (tmp_path / "a_file").write_text("x")
    if case == "store_is_a_directory":
        config, key = _config(tmp_path, free_port(), store=tmp_path), "store.path"
    elif case == "store_under_a_file":
        config, key = _config(tmp_path, free_port(), store=tmp_path / "a_file" / "s.sqlite"), "store.path"
    else:
        flow = flow_config().replace(
            f'"{Path(__file__).parents[2] / "examples/callers.csv"}"', f'"{tmp_path}"'
        )
        flow = flow.replace('listen = "127.0.0.1:24573"', f'listen = "127.0.0.1:{free_port()}"')
        config, key = _config(tmp_path, free_port(), extra=flow), "directory.path"
    status, lines = _fails(config, tmp_path)
    assert status == 2 and "Traceback" not in "\n".join(lines), lines
    assert key in "\n".join(lines)


# --- AMI login refused: retried with backoff, said once, loudly --------------------------------------


def test_a_refused_ami_login_is_retried_and_said_once(lab: pbx.LabSettings, tmp_path: Path) -> None:
    config = _config(tmp_path, lab.ami_port, secret="wrong-secret")
    log = tmp_path / "daemon.log"
    proc = _spawn(config, log)
    port = _http_port(config)
    try:
        _until("3 failed logins", lambda: (_metric(port, "acd_ami_reconnects_total") or 0) >= 3)
        status, body = _get(port, "/healthz")
        assert status == 503 and "refused" in json.loads(body)["last_ami_error"]
        assert proc.poll() is None
    finally:
        assert _stop(proc) == 0
    failures = [e for e in _events(log) if e["event"] == "ami_connection_failed"]
    assert len(failures) == 1 and failures[0]["level"] == "error", failures
    assert "login as 'acdbridge' refused" in str(failures[0]["error"])


# --- systemd notify, a live daemon ----------------------------------------------------------------


def test_a_live_daemon_speaks_systemds_notify_protocol(lab: pbx.LabSettings, tmp_path: Path) -> None:
    proxy = CuttableProxy(lab.ami_port)
    fake = FakeSystemd(str(tmp_path / "notify"))
    env = {"NOTIFY_SOCKET": str(tmp_path / "notify"), "WATCHDOG_USEC": "400000"}
    # a backoff of 1.5-3 s keeps the link down long enough for the status pass (every 0.2 s here)
    proc = _spawn(_config(tmp_path, proxy.port, backoff=(3.0, 6.0)), tmp_path / "daemon.log", env)

    def statuses() -> list[str]:
        return [m for _, m in fake.messages if m.startswith("STATUS=")]

    try:
        _until("READY=1", lambda: fake.times("READY=1"))
        _until("AMI up", lambda: statuses() and "AMI connected" in statuses()[-1])
        time.sleep(2.0)
        proxy.cut()
        _until("AMI down", lambda: "AMI down" in statuses()[-1])
        _until("AMI up again", lambda: "AMI connected" in statuses()[-1])
        assert _stop(proc) == 0
        _until("STOPPING=1", lambda: fake.times("STOPPING=1"))
    finally:
        if proc.poll() is None:
            proc.kill()
        proxy.close()
        fake.close()
    ready, pings = fake.times("READY=1"), fake.times("WATCHDOG=1")
    assert len(ready) == 1 and fake.messages[0][1] == "READY=1"  # nothing before the listeners are up
    gaps = [b - a for a, b in itertools.pairwise(pings)]
    assert len(pings) >= 10 and max(gaps) < 0.5 and sum(gaps) / len(gaps) == pytest.approx(0.2, abs=0.05)
    assert re.fullmatch(r"STATUS=AMI connected; \d+ calls in progress, \d+ waiting", statuses()[-1])
    assert fake.messages[-1][1] == "STOPPING=1"


# --- SIGHUP with a broken config; a poisoned store ---------------------------------------------------


def test_a_poisoned_store_and_a_broken_reload_leave_the_daemon_serving(
    lab: pbx.LabSettings, tmp_path: Path
) -> None:
    _poison(tmp_path / "store.sqlite")  # a NaN end_ts, a survey score '٣', an unknown saved state
    config = _config(tmp_path, lab.ami_port)
    good = config.read_text()
    log = tmp_path / "daemon.log"
    proc = _spawn(config, log)
    port = _http_port(config)
    try:
        _until("AMI up", lambda: _get(port, "/healthz")[0] == 200)
        assert _metric(port, "acd_store_quarantined_total") == 3
        config.write_text(good.replace("ping_interval_s = 2", "ping_interval_s = -1"))
        proc.send_signal(signal.SIGHUP)
        _until(
            "the reload refused", lambda: _metric(port, "acd_config_reloads_total", result="rejected") == 1
        )
        config.write_text(good)
        proc.send_signal(signal.SIGHUP)
        _until("the reload accepted", lambda: _metric(port, "acd_config_reloads_total", result="ok") == 1)
        assert _get(port, "/healthz")[0] == 200 and proc.poll() is None
    finally:
        assert _stop(proc) == 0
    events = _events(log)
    assert [e["event"] for e in events].count("store_row_quarantined") == 3
    rejected = [e for e in events if e["event"] == "reload_rejected"]
    assert len(rejected) == 1 and "ami.ping_interval_s" in str(rejected[0]["problem"])
    store = SqliteStore(tmp_path / "store.sqlite")
    try:
        assert store.count("quarantine") == 3 and store.count("visits") == 1
    finally:
        store.close()
