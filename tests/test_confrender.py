from __future__ import annotations

from pathlib import Path

import pytest

from acdbridge.lab.confrender import Override, install, rewrite
from acdbridge.lab.pbx import LabSettings


def test_rewrite_changes_only_the_key_in_its_section() -> None:
    text = "[general]\nport = 5038 ; standard\nbindaddr = 127.0.0.1\n[other]\nport = 1\n"
    out, n = rewrite(text, "general", "port", "25038")
    assert n == 1
    assert out == "[general]\nport = 25038 ; standard\nbindaddr = 127.0.0.1\n[other]\nport = 1\n"


def test_rewrite_handles_template_sections_and_arrow_syntax() -> None:
    out, n = rewrite(
        "[transport-udp](!)\nbind => 127.0.0.1:5060\n", "transport-udp", "bind", "127.0.0.1:25060"
    )
    assert (out, n) == ("[transport-udp](!)\nbind => 127.0.0.1:25060\n", 1)


def test_the_sample_config_takes_every_lab_override(tmp_path: Path, repo: Path) -> None:
    settings = LabSettings(conf_dir=repo / "asterisk_conf", ami_port=26038, sip_port=26060)
    install(settings.conf_dir, tmp_path / "etc", settings.overrides())
    manager = (tmp_path / "etc/manager.conf").read_text()
    assert "port = 26038" in manager and "timestampevents = yes" in manager
    assert "tlsenable = yes" in manager and "tlsbindaddr = 127.0.0.1:25039" in manager
    assert "tlsprivatekey = /etc/asterisk/keys/ami.key" in manager
    assert "bind = 127.0.0.1:26060" in (tmp_path / "etc/pjsip.conf").read_text()
    # the shipped files keep the standard ports an operator expects
    shipped = (repo / "asterisk_conf/manager.conf").read_text()
    assert "port = 5038" in shipped and "tlsenable = no" in shipped


def test_an_override_that_matches_nothing_is_an_error(tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    (src / "rtp.conf").write_text("[general]\nrtpstart = 10000\n")
    with pytest.raises(ValueError, match="no key 'rtpend' in section"):
        install(src, tmp_path / "dst", [Override("rtp.conf", "general", "rtpend", "1")])
    with pytest.raises(ValueError, match="missing files"):
        install(src, tmp_path / "dst", [Override("nope.conf", "general", "x", "1")])
