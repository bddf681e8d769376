from __future__ import annotations

import os
from pathlib import Path

import pytest

from acdbridge import __version__
from acdbridge.cli import build_parser, main
from acdbridge.errors import LabError
from acdbridge.lab import pbx, sipp
from acdbridge.lab.traffic import phone_of


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["version"]) == 0
    assert capsys.readouterr().out == f"acdbridge {__version__}\n"


def test_lab_options_parse_with_their_defaults() -> None:
    args = build_parser().parse_args(["lab", "up", "--ami-port", "26038"])
    assert args.ami_port == 26038 and args.sip_port == 25060 and args.dir == pbx.DEFAULT_DIR


@pytest.mark.parametrize("port", ["0", "70000", "abc"])
def test_a_bad_port_is_refused_by_name(port: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["lab", "up", "--ami-port", port])
    assert exit_.value.code == 2
    assert "--ami-port" in capsys.readouterr().err


def test_a_missing_subcommand_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["lab"])
    assert "LAB_COMMAND" in capsys.readouterr().err


def test_status_of_a_lab_that_is_not_running_exits_3(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["lab", "status", "--dir", str(tmp_path)]) == 3
    assert "lab is not running (chroot not built" in capsys.readouterr().out


def test_cli_and_traffic_need_a_running_lab(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["lab", "cli", "--dir", str(tmp_path), "queue show"]) == 1
    assert "lab error: lab is not running" in capsys.readouterr().err
    assert main(["lab", "traffic", "--dir", str(tmp_path), "--scenario", "smoke"]) == 1
    assert "start it with: acdbridge lab up" in capsys.readouterr().err


def test_a_bad_scenario_exits_2_naming_it(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text('[queues.water]\ndial = "x"\n')
    assert main(["lab", "traffic", "--dir", str(tmp_path), "--scenario", str(bad)]) == 2
    assert f"{bad}: queues.water.dial: expected digits" in capsys.readouterr().err


def test_the_lab_refuses_to_run_without_root(monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:  # fmt: skip
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    assert main(["lab", "up", "--dir", str(tmp_path)]) == 1
    assert "the lab needs root" in capsys.readouterr().err
    assert not any(tmp_path.iterdir())  # nothing was attempted


def test_missing_sipp_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(LabError, match="SIPp missing") as err:
        sipp.require_sipp()
    assert "apt-get install sip-tester" in str(err.value)


def test_endpoint_passwords_come_from_the_shipped_pjsip_conf(repo: Path) -> None:
    conf = repo / "asterisk_conf/pjsip.conf"
    assert sipp.endpoint_password(conf, "1001") == "agent1001-change-me"
    with pytest.raises(LabError, match="no password for endpoint 2001"):
        sipp.endpoint_password(conf, "2001")


def test_phone_of_is_the_far_half_of_a_local_channel() -> None:
    assert phone_of("Local/9001@lab-agents-0000008b;1") == "Local/9001@lab-agents-0000008b;2"
    assert phone_of("PJSIP/1001-00000002") == "PJSIP/1001-00000002"
