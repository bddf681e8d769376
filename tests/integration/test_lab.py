"""The lab against a real Asterisk 22: lifecycle, CLI, and the errors people meet."""

from __future__ import annotations

import grp
import pwd
import re
import socket
import time
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from acdbridge.errors import LabError
from acdbridge.lab import identity, pbx, queuelog

from .helpers import acdbridge


def test_lab_runs_asterisk_22_with_the_sample_queues(lab: pbx.LabSettings) -> None:
    version = acdbridge("lab", "cli", "core show version")
    assert version.returncode == 0, version.stderr
    assert version.stdout.startswith("Asterisk 22."), version.stdout
    queues = acdbridge("lab", "cli", "queue show")
    assert "water has" in queues.stdout and "broadband has" in queues.stdout
    status = acdbridge("lab", "status")
    assert status.returncode == 0 and "lab running" in status.stdout and "127.0.0.1:25038" in status.stdout
    assert "AMI over TLS  127.0.0.1:25039" in status.stdout and "chroot built from: " in status.stdout


def test_asterisk_runs_as_the_labs_own_host_user_and_starts_clean(lab: pbx.LabSettings) -> None:
    state = pbx.running_state(lab)
    assert state is not None
    status = Path(f"/proc/{state.pid}/status").read_text().splitlines()
    uids = next(line.split()[1:] for line in status if line.startswith("Uid:"))
    gids = next(line.split()[1:] for line in status if line.startswith("Gid:"))
    assert len(set(uids)) == 1 and len(set(gids)) == 1, (uids, gids)  # real, effective, saved, fs
    uid, gid = int(uids[0]), int(gids[0])
    assert uid != 0, "Asterisk must not run as root"
    # on the host that uid is the lab's own account and nobody else's (not postgres, not anyone)
    assert [e.pw_name for e in pwd.getpwall() if e.pw_uid == uid] == [identity.LAB_USER]
    assert [g.gr_name for g in grp.getgrall() if g.gr_gid == gid] == [identity.LAB_USER]
    entry = pwd.getpwnam(identity.LAB_USER)
    assert (entry.pw_uid, entry.pw_gid, entry.pw_shell) == (uid, gid, "/usr/sbin/nologin")
    assert state.uid == uid and f"uid {uid} ({identity.LAB_USER})" in acdbridge("lab", "status").stdout
    # what it writes is the lab user's; the TLS key it reads is its alone
    assert lab.queue_log.stat().st_uid == uid
    key = (lab.root / pbx.CHROOT_KEYS / "ami.key").stat()
    assert (key.st_uid, key.st_mode & 0o777) == (uid, 0o600)
    assert lab.tls_key.stat().st_mode & 0o777 == 0o600
    # the trimmed config set loads without errors (no DNS lookups, no missing files): nothing
    # above NOTICE in the first seconds after the last start. Lines of a call (a "[C-..." id) are
    # not the start's: tests running beside this one may already place calls then.
    lines = lab.messages_log.read_text(errors="replace").splitlines()
    start = max(i for i, line in enumerate(lines) if "modules will be loaded" in line)
    started = datetime.fromisoformat(lines[start][1:24])
    boot = [
        line for line in lines[start:] if datetime.fromisoformat(line[1:24]) - started < timedelta(seconds=5)
    ]
    starting = [line for line in boot if "][C-" not in line]
    assert not [line for line in starting if " ERROR[" in line or " WARNING[" in line], starting


def test_ami_speaks_on_the_lab_port_with_timestamps(lab: pbx.LabSettings) -> None:
    member = "Interface: Local/9999@lab-agents/n\r\nQueue: water\r\n"
    with socket.create_connection((lab.host, lab.ami_port), timeout=5) as s:
        assert s.recv(64).startswith(b"Asterisk Call Manager/")
        user, secret = "acdbridge", pbx.AMI_USERS["acdbridge"]
        s.sendall(f"Action: Login\r\nUsername: {user}\r\nSecret: {secret}\r\n\r\n".encode())
        # acdbridge's AMI user may manage membership (agent login) and sees the events it causes
        s.sendall(f"Action: QueueAdd\r\n{member}\r\nAction: QueueRemove\r\n{member}\r\n".encode())
        data = b""
        deadline = time.monotonic() + 5
        while b"Event: QueueMemberRemoved" not in data and time.monotonic() < deadline:
            data += s.recv(65536)
    assert b"Authentication accepted" in data and b"Added interface to queue" in data
    removed = data[data.index(b"Event: QueueMemberRemoved") :].split(b"\r\n\r\n")[0].decode()
    stamp = next(line for line in removed.splitlines() if line.startswith("Timestamp: "))
    assert abs(float(stamp.split(": ")[1]) - time.time()) < 10  # timestampevents = yes: epoch.micro


def test_up_down_and_a_scenario_work_twice_in_a_row(lab: pbx.LabSettings) -> None:
    for _ in range(2):
        down = acdbridge("lab", "down")
        assert down.returncode == 0, down.stderr
        assert acdbridge("lab", "status").returncode == 3
        assert not any(Path(m).is_mount() for m in (lab.root / "proc", lab.root / "dev"))
        up = acdbridge("lab", "up")
        assert up.returncode == 0, up.stdout + up.stderr
        again = acdbridge("lab", "up")  # idempotent
        assert again.returncode == 0 and "already running" in again.stdout
        started = time.time()
        run = acdbridge("lab", "traffic", "--scenario", "smoke", timeout=120)
        assert run.returncode == 0, run.stdout + run.stderr
        events = queuelog.event_counts(queuelog.read(lab.queue_log, since=started))
        assert events["ENTERQUEUE"] == 3 and events["CONNECT"] == 2 and events["ABANDON"] == 1, events
        assert events["COMPLETEAGENT"] == 1 and events["COMPLETECALLER"] == 1, events


def test_asterisk_that_fails_to_start_is_reported_with_its_log(lab: pbx.LabSettings, tmp_path: Path) -> None:
    broken = tmp_path / "conf"
    broken.mkdir()
    for conf in lab.conf_dir.glob("*.conf"):
        (broken / conf.name).write_text(conf.read_text())
    with (broken / "modules.conf").open("a") as f:
        f.write("require = res_no_such_module.so\n")
    pbx.down(lab, print)
    try:
        with pytest.raises(LabError, match="Asterisk failed to start") as err:
            pbx.up(pbx.LabSettings(conf_dir=broken), print)
        assert "res_no_such_module" in str(err.value)  # the tail of its log names the cause
        assert pbx.running_state(lab) is None
        assert not (lab.root / "proc").is_mount()
    finally:
        pbx.up(lab, print)


def test_port_already_taken_is_named(lab: pbx.LabSettings, tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        with pytest.raises(LabError, match=f"port already taken: 127.0.0.1:{port}/TCP"):
            pbx.up(pbx.LabSettings(dir=tmp_path / "lab2", ami_port=port, sip_port=25061), print)
    res = acdbridge("lab", "up", "--dir", str(tmp_path / "lab3"), "--ami-port", str(lab.ami_port))
    assert res.returncode == 1 and "port already taken" in res.stderr


def test_unreachable_mirror_is_named(tmp_path: Path) -> None:
    settings = pbx.LabSettings(
        dir=tmp_path / "lab",
        ami_port=25040,
        ami_tls_port=25041,
        sip_port=25062,
        mirror="http://127.0.0.1:9/debian",
    )
    with pytest.raises(
        LabError, match=re.escape("package mirror unreachable: http://127.0.0.1:9/debian/dists/sid")
    ):
        pbx.up(settings, print)
