"""AMI over TLS against the real lab (manager.conf tlsenable, 127.0.0.1:25039, the cert `lab up`
made with openssl): two daemons watch the same calls, one over plain TCP and one over TLS, and
store identical records; a certificate from the wrong CA is refused with a clear error, by the
daemon (which keeps running and retrying) and by check-config --pbx."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path

from acdbridge.lab import pbx, queuelog, scenario, traffic
from acdbridge.lab.tlscert import make_self_signed
from tests.truth import compare, truth_visits

from .daemon_harness import LAB_CONFIG, REPO, DaemonProcess


def tls_keys(ca: Path, name: str | None = None) -> str:
    return f'tls = true\ntls_ca = "{ca}"\n' + (f'tls_server_name = "{name}"\n' if name else "")


def daemon(work: Path, port: int, ami_extra: str = "") -> DaemonProcess:
    work.mkdir()
    return DaemonProcess(work, port, ami_extra=ami_extra)


def _connected_at(d: DaemonProcess) -> float:
    """When the daemon's AMI link came up, from its log."""
    lines = (json.loads(line) for line in d.log_text().splitlines() if '"ami_connected"' in line)
    first = next(line for line in lines if line.get("event") == "ami_connected")
    return datetime.fromisoformat(first["timestamp"]).timestamp()


def test_plain_and_tls_daemons_store_the_same_calls_identically(lab: pbx.LabSettings, tmp_path: Path) -> None:
    plain = daemon(tmp_path / "plain", lab.ami_port)
    tls = daemon(tmp_path / "tls", lab.ami_tls_port, tls_keys(lab.tls_cert, "acdbridge-lab"))
    plain.start()
    tls.start()
    assert '"tls": true' in tls.log_text() and '"tls": false' in plain.log_text()
    started = time.time()
    report = asyncio.run(traffic.run_async(scenario.load("mixed"), lab, lambda _line: None))
    assert report.ok, report.summary()
    time.sleep(12)  # the last wrap-up (10 s at most in the sample config) ends before the stop
    assert plain.stop() == 0 and tls.stop() == 0, tls.log_text()[-3000:]
    over_tls, over_tcp = tls.stored_visits(), plain.stored_visits()
    truth = truth_visits(queuelog.read(lab.queue_log, since=started))
    assert len(truth) >= 25 and compare(truth, over_tls) == []
    # field by field: ids and times come from the PBX's own events, so nothing may differ
    assert sorted(json.dumps(v, sort_keys=True) for v in over_tls) == sorted(
        json.dumps(v, sort_keys=True) for v in over_tcp
    )
    # a state already under way when a daemon connected starts at that daemon's own connect time (the PBX
    # gives no start for it: the status reply's receive time), so only states begun once both daemons
    # listened must agree to the microsecond; start() may return before the link is up, hence the log
    listening = max(_connected_at(d) for d in (tls, plain)) + 1.0
    states = [
        sorted(json.dumps(s, sort_keys=True) for s in d.stored("agent_states") if s["start_ts"] >= listening)
        for d in (tls, plain)
    ]
    assert states[0] and states[0] == states[1]


def test_a_certificate_from_the_wrong_ca_is_refused_by_name(lab: pbx.LabSettings, tmp_path: Path) -> None:
    other = tmp_path / "other-ca.crt"
    make_self_signed(other, tmp_path / "other-ca.key", name="someone-else")
    refused = daemon(tmp_path / "d", lab.ami_tls_port, tls_keys(other))
    try:
        refused.start()
    except RuntimeError:
        pass  # it never connects: that is the point
    else:
        raise AssertionError("the daemon connected to a PBX whose certificate it cannot verify")
    log = refused.log_text()
    assert (
        "ami_connection_failed" in log and "AmiTlsError: TLS: the PBX's certificate at 127.0.0.1:25039" in log
    )
    assert f"is not trusted (self-signed certificate): checked against ami.tls_ca = {other}" in log, log[
        -2000:
    ]
    assert refused.proc is not None and refused.proc.poll() is None  # still serving, still retrying
    assert refused.stop() == 0


def check_config(tmp_path: Path, ami: str) -> subprocess.CompletedProcess[str]:
    text = LAB_CONFIG.read_text(encoding="utf-8").replace("port = 25038\n", ami, 1)
    config = tmp_path / f"acdbridge-{len(list(tmp_path.glob('*.toml')))}.toml"
    config.write_text(text.replace('"examples/', f'"{REPO}/examples/'), encoding="utf-8")
    return subprocess.run(
        [sys.executable, "-m", "acdbridge", "check-config", "--config", str(config), "--pbx"],
        capture_output=True, text=True, timeout=60, cwd=REPO,
    )  # fmt: skip


def test_check_config_over_tls(lab: pbx.LabSettings, tmp_path: Path) -> None:
    good = check_config(tmp_path, f"port = {lab.ami_tls_port}\n{tls_keys(lab.tls_cert)}")
    assert good.returncode == 0 and "OK and matches the PBX" in good.stdout, good.stdout + good.stderr
    other = tmp_path / "other.crt"
    make_self_signed(other, tmp_path / "other.key", name="someone-else")
    wrong = check_config(tmp_path, f"port = {lab.ami_tls_port}\n{tls_keys(other)}")
    assert wrong.returncode != 0
    assert "ami: TLS: the PBX's certificate at 127.0.0.1:25039 is not trusted" in wrong.stdout + wrong.stderr
    plain_port = check_config(tmp_path, f"port = {lab.ami_port}\n{tls_keys(lab.tls_cert)}")
    said = plain_port.stdout + plain_port.stderr
    assert plain_port.returncode != 0 and "ami: TLS: 127.0.0.1:25038 does not speak TLS" in said, said
