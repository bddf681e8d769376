"""`acdbridge check-config --pbx` against a real Asterisk 22: the shared lab with the shipped lab
example matches; a lab of our own, started from a deliberately broken copy of asterisk_conf/
(its own directory and ports), shows every mistake, one line each."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from acdbridge.lab import pbx

from .daemon_harness import REPO

BROKEN_DIR = Path("/var/tmp/acdbridge-lab-check-config")  # a lab of its own, never the shared one
BROKEN_AMI = 25138


def check_config(config: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "acdbridge", "check-config", "--config", str(config), "--pbx", *extra],
        capture_output=True, text=True, timeout=60, cwd=REPO,
    )  # fmt: skip


def test_the_lab_example_matches_the_shared_lab(lab: pbx.LabSettings) -> None:
    run = check_config(REPO / "examples/acdbridge-lab.toml")
    assert run.returncode == 0, run.stdout + run.stderr
    lines = run.stdout.splitlines()
    assert next(line for line in lines if ": warning: " not in line) == (
        f"{REPO / 'examples/acdbridge-lab.toml'}: OK and matches the PBX (1 warning)"
    )
    assert (
        "  hotlines (3): water (6000) -> water; telecom (6100) -> broadband; complaints (6200) -> complaints"
        in lines
    )


def _edit(path: Path, old: str, new: str) -> None:
    text = path.read_text(encoding="utf-8")
    assert old in text, f"{path.name} no longer has {old!r}"
    path.write_text(text.replace(old, new, 1), encoding="utf-8")


def broken_conf(dst: Path) -> Path:
    """asterisk_conf/ with one mistake of each kind check-config --pbx must find."""
    shutil.copytree(REPO / "asterisk_conf", dst)
    _edit(dst / "manager.conf", "timestampevents = yes", "timestampevents = no")
    _edit(dst / "manager.conf", "read = call,agent,dialplan,user", "read = call,agent,user")  # no dialplan
    with (dst / "manager.conf").open("a") as f:  # a user who may not read configuration
        f.write("\n[acdpoor]\nsecret = acdpoor-secret\npermit = 127.0.0.1/255.255.255.255\n"
                "read = call,agent,dialplan\nwrite = agent,reporting\n")  # fmt: skip
    text = (dst / "queues.conf").read_text(encoding="utf-8")  # the water_es skill group's queue: gone
    (dst / "queues.conf").write_text(re.sub(r"\n\[water_es\][^\[]*", "\n", text), encoding="utf-8")
    _edit(
        dst / "queues.conf",
        "[broadband](hotline-defaults)\nwrapuptime = 10",
        "[broadband](hotline-defaults)\nwrapuptime = 0",
    )
    _edit(dst / "pjsip.conf", "[1005](agent-endpoint)", "[1005x](agent-endpoint)")  # Chen Li's phone
    _edit(
        dst / "extensions.conf",
        " same => n,Goto(acd-greeting,complaints,1)",
        " same => n,Goto(queue-entry,complaints,1)",
    )
    _edit(dst / "queuerules.conf", "[widen-fast]", "[widen-slowly]")
    return dst


def _own_root(shared: pbx.LabSettings) -> None:
    """A copy of the shared lab's chroot (built by the `lab` fixture), without its mounts."""
    if (BROKEN_DIR / "root/usr/sbin/asterisk").exists():
        return
    partial = BROKEN_DIR / "root.partial"
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    tar = "tar -C {} --exclude=./proc --exclude=./dev --exclude=./sys -cf - . | tar -C {} -xf -"
    subprocess.run(["sh", "-c", tar.format(shared.root, partial)], check=True, timeout=300)
    for mount_point in ("proc", "dev", "sys"):
        (partial / mount_point).mkdir(exist_ok=True)
    partial.rename(BROKEN_DIR / "root")


@pytest.fixture
def broken_lab(lab: pbx.LabSettings, tmp_path: Path) -> Iterator[pbx.LabSettings]:
    _own_root(lab)
    settings = pbx.LabSettings(dir=BROKEN_DIR, ami_port=BROKEN_AMI, ami_tls_port=25139, sip_port=25160,
                               rtp_first=32000, rtp_last=32999,
                               conf_dir=broken_conf(tmp_path / "asterisk_conf"))  # fmt: skip
    pbx.down(settings, print)  # a run that died half-way may have left it up
    pbx.up(settings, print)
    try:
        yield settings
    finally:
        pbx.down(settings, print)


def test_every_mistake_of_a_broken_pbx_is_reported(broken_lab: pbx.LabSettings, tmp_path: Path) -> None:
    text = (REPO / "examples/acdbridge-lab.toml").read_text(encoding="utf-8")
    text = text.replace("port = 25038", f"port = {BROKEN_AMI}").replace("[queues.", "[queues.")
    config = tmp_path / "acd.toml"
    config.write_text(text + "\n[queues.broadband]\nwrapup_s = 10\n", encoding="utf-8")
    run = check_config(config)
    assert run.returncode == 2, run.stdout + run.stderr
    errors = [line for line in run.stdout.splitlines() if ": warning: " not in line]
    c = str(config)
    assert errors == [
        f"{c}: ami: timestampevents is off in the PBX's manager.conf [general]: every duration comes from "
        "event Timestamps; set timestampevents = yes",
        f"{c}: ami.username: the manager user acdbridge lacks read class dialplan (manager.conf: read = "
        "agent,call,user)",
        f"{c}: queues.broadband.wrapup_s: set, but the PBX's queues.conf has no wrapuptime for broadband: "
        "agents get no after-call work",
        f"{c}: routing.groups.water_es: no queue 'water_es' in the PBX's queues.conf (it has broadband, "
        "complaints, fixed_line, water)",
        f"{c}: routing.groups.broadband.rule: no rule 'widen-fast' in the PBX's queuerules.conf",
        f"{c}: agents.\"Chen Li\".interface: PJSIP/1005: no PJSIP endpoint '1005' in the PBX's pjsip.conf",
        f"{c}: hotlines.complaints.dids: '6200' does not reach the FastAGI greeting "
        "(agi://...:24573/hotline/...) in the PBX's dialplan (it reaches agi://127.0.0.1:24573/survey)",
        f"{c}: 7 errors, 1 warning",
    ]


def test_what_a_user_may_not_read_is_a_warning_naming_the_class(
    broken_lab: pbx.LabSettings, tmp_path: Path
) -> None:
    text = (REPO / "examples/acdbridge-lab.toml").read_text(encoding="utf-8")
    text = text.replace("port = 25038", f"port = {BROKEN_AMI}").replace(
        'username = "acdbridge"', 'username = "acdpoor"'
    )
    config = tmp_path / "acd.toml"
    config.write_text(
        text.replace('secret = "acdbridge-change-me"', 'secret = "acdpoor-secret"'), encoding="utf-8"
    )
    run = check_config(config)
    assert run.returncode == 2, run.stdout + run.stderr  # the DID 6200 is still not routed
    c = str(config)
    lines = run.stdout.splitlines()
    assert any(line.startswith(f"{c}: hotlines.complaints.dids: '6200' does not reach") for line in lines)
    refused = [line for line in lines if "lacks write class config" in line]
    assert [line.split(": ")[1] for line in refused] == ["ami", "ami", 'agents."Chen Li".interface']
    assert refused[0].startswith(f"{c}: ami: warning: cannot check timestampevents and the user's classes: "
                                 "GetConfig manager.conf refused (")  # fmt: skip
    login = check_config(tmp_path / "acd.toml")  # and a wrong secret: one line, no traceback
    assert login.returncode == 2 and "Traceback" not in login.stderr
    config.write_text(text.replace('secret = "acdbridge-change-me"', 'secret = "wrong"'), encoding="utf-8")
    refused_login = check_config(config)
    assert refused_login.returncode == 2
    assert f"{c}: ami: login as 'acdpoor' refused: Authentication failed" in refused_login.stdout.splitlines()
