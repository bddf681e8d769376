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
    assert args.ami_tls_port == 25039


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


# --- check-config ---------------------------------------------------------------------------------


def test_check_config_on_a_good_file_prints_a_summary(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "acd.toml"
    config.write_text(
        f'[ami]\nsecret_file = "{tmp_path / "secret"}"\n[store]\npath = "{tmp_path / "s.sqlite"}"\n'
        '[http]\nlisten = "0.0.0.0:9200"\n'
    )
    (tmp_path / "secret").write_text("pw\n")
    (tmp_path / "secret").chmod(0o600)
    assert main(["check-config", "--config", str(config)]) == 0
    assert capsys.readouterr().out.splitlines() == [
        f"{config}: http.listen: warning: 0.0.0.0 is off loopback without tls_cert/tls_key: passwords and "
        "session cookies cross the network in clear; set them, or keep a TLS proxy in front, the port "
        "firewalled",
        f"{config}: OK (1 warning)",
        "  ami: acdbridge@127.0.0.1:5038",
        "  listeners: http 0.0.0.0:9200",
        f"  store: {tmp_path / 's.sqlite'}, journal {tmp_path / 's.journal'}",
        "  privacy: callers' data pseudonymised after 90 days (daily at 03:30 UTC), logs masked",
        "  call flow: none (no [agi] section: the daemon only watches)",
    ]


def test_check_config_of_the_lab_example(repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check-config", "--config", str(repo / "examples/acdbridge-lab.toml")]) == 0
    out = capsys.readouterr().out.splitlines()
    assert "  listeners: http 127.0.0.1:29108, agi 127.0.0.1:24573" in out
    assert (
        "  agents (5): Wang Fang 9101, Zhou Min 9102, Lucía Vega 9103, Ana Torres 9104, Chen Li 1005" in out
    )


def test_check_config_lists_every_error_and_exits_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "acd.toml"
    config.write_text(
        '[ami]\nsecret = 42\nping_interval_s = 0\n[http]\ntoken = ""\n[agi]\nmax_sessions = 0\n'
    )
    assert main(["check-config", "--config", str(config)]) == 2
    assert capsys.readouterr().out.splitlines() == [
        f"{config}: ami.secret: expected str, got an integer",
        f"{config}: ami.ping_interval_s: must be a positive number (1-3600), got 0.0",
        f"{config}: http.token: is empty, which would turn the token off: remove the key for no token",
        f"{config}: agi.max_sessions: must be a positive number (1-100000), got 0",
        f"{config}: ami.secret: warning: inline in {config}, which others may read: "
        "use ami.secret_file (chmod 600)",
        f"{config}: 4 errors, 1 warning",
    ]


@pytest.mark.parametrize(("raw", "expected"), [(b"\xff", "not UTF-8 text"), (b"[ami", "not valid TOML")])
def test_check_config_of_a_file_that_is_not_toml(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                 raw: bytes, expected: str) -> None:  # fmt: skip
    config = tmp_path / "acd.toml"
    config.write_bytes(raw)
    assert main(["check-config", "--config", str(config)]) == 2
    out = capsys.readouterr().out
    assert out.startswith(f"{config}: {expected}") and out.count("\n") == 1
    assert main(["check-config", "--config", str(tmp_path / "none.toml")]) == 2
    assert capsys.readouterr().out.startswith("cannot read config")


def test_check_config_pbx_stops_at_a_bad_ami_section(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "acd.toml"
    config.write_text("[ami]\nport = 0\n")
    assert main(["check-config", "--config", str(config), "--pbx"]) == 2
    assert f"{config}: ami: not compared with the PBX: fix the ami settings first" in capsys.readouterr().out


def test_check_config_pbx_names_an_unreachable_pbx(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import socket

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    config = tmp_path / "acd.toml"
    config.write_text(
        f'[ami]\nport = {port}\nsecret = "x"\naction_timeout_s = 1\n[store]\npath = "{tmp_path / "s"}"\n'
    )
    assert main(["check-config", "--config", str(config), "--pbx"]) == 2
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith(f"{config}: ami: cannot connect to AMI at 127.0.0.1:{port}: ")


def test_run_refuses_a_config_with_problems_listing_them_all(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("CREDENTIALS_DIRECTORY", raising=False)
    config = tmp_path / "acd.toml"  # the same checks as check-config, before anything starts
    config.write_text('[ami]\nping_interval_s = 1e-9\n[http]\ntoken = ""\n')
    assert main(["run", "--config", str(config)]) == 2
    assert capsys.readouterr().err.splitlines() == [
        "acdbridge: config error: 3 problems:",
        f"{config}: ami.secret: missing: set ami.secret_file (chmod 600), ami.secret, or the systemd "
        "credential ami-secret (LoadCredential=ami-secret:/path)",
        f"{config}: ami.ping_interval_s: out of range 1-3600: 1e-09",
        f"{config}: http.token: is empty, which would turn the token off: remove the key for no token",
    ]
