"""The lab's chroot sources (the host's apt sources, the override, the record) and its own
identity's file handling, on files made here: no mmdebstrap, no useradd."""

from __future__ import annotations

from pathlib import Path

import pytest

from acdbridge.errors import LabError
from acdbridge.lab import build, identity

DEB822 = """\
Types: deb
# http://snapshot.debian.org/archive/debian/20250520T000000Z
URIs: http://mirror.example/debian
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: http://mirror.example/debian-security
Suites: bookworm-security
Components: main
"""


def apt(tmp_path: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    return tmp_path


def test_the_hosts_deb822_archive_is_found(tmp_path: Path) -> None:
    d = apt(tmp_path, {"sources.list.d/debian.sources": DEB822})
    assert build.host_archive(d, "bookworm") == (
        "http://mirror.example/debian",
        d / "sources.list.d/debian.sources",
    )


def test_security_updates_vendors_and_disabled_entries_are_not_the_archive(tmp_path: Path) -> None:
    d822 = "Types: {}\nURIs: {}\nSuites: {}\n"
    d = apt(
        tmp_path,
        {
            "sources.list": "# deb http://commented.example/debian bookworm main\n"
            "deb http://mirror.example/debian-security bookworm-security main\n",
            "sources.list.d/a-node.sources": d822.format(
                "deb", "https://deb.nodesource.com/node", "nodistro"
            ),
            "sources.list.d/b-off.sources": d822.format("deb", "http://off.example/d", "bookworm")
            + "Enabled: no\n",
            "sources.list.d/c-src.sources": d822.format("deb-src", "http://src.example/debian", "bookworm"),
            "sources.list.d/d.list.disabled": "deb http://disabled.example/debian bookworm main\n",
            "sources.list.d/e-cdrom.list": "deb cdrom:[Debian]/ bookworm main\n",
            "sources.list.d/f-site.list": "deb [arch=amd64] http://proxy.example:3142/debian/ stable",
        },
    )
    assert build.host_archive(d, "bookworm") == (
        "http://proxy.example:3142/debian",
        d / "sources.list.d/f-site.list",
    )
    assert build.host_archive(apt(tmp_path / "empty", {"sources.list": "\n"}), "bookworm") is None


def test_the_override_wins_and_deb_debian_org_is_the_last_resort(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    d = apt(tmp_path, {"sources.list.d/debian.sources": DEB822.replace("bookworm", "sid")})
    monkeypatch.delenv("ACDBRIDGE_LAB_MIRROR", raising=False)
    found = build.choose_sources(apt_dir=d)
    assert found.mirror == "http://mirror.example/debian" and "the host's apt sources" in found.origin
    monkeypatch.setenv("ACDBRIDGE_LAB_MIRROR", "http://site.example/debian/")
    assert build.choose_sources(apt_dir=d).mirror == "http://site.example/debian"
    assert build.choose_sources(apt_dir=d).origin == "ACDBRIDGE_LAB_MIRROR"
    monkeypatch.delenv("ACDBRIDGE_LAB_MIRROR")
    none = build.choose_sources(apt_dir=tmp_path / "nothing")
    assert (
        none.mirror == build.FALLBACK_MIRROR and "no Debian archive in the host's apt sources" in none.origin
    )


def test_a_built_chroot_is_reused_and_its_sources_recorded_once(tmp_path: Path) -> None:
    root = tmp_path / "root"
    apt(
        root, {"usr/sbin/asterisk": "", "etc/apt/sources.list": "deb http://deb.debian.org/debian sid main\n"}
    )
    # no mmdebstrap needed (nor run): an existing chroot is never rebuilt
    assert build.build_root(root, tmp_path, print, mirror="http://127.0.0.1:9/unused") is False
    text = (tmp_path / "sources.txt").read_text()
    assert (
        "built before the lab kept this file" in text and "deb http://deb.debian.org/debian sid main" in text
    )
    build.record(tmp_path, root, build.Sources("http://m.example/debian", "ACDBRIDGE_LAB_MIRROR"))
    assert (
        build.built_from(tmp_path) == "built from: http://m.example/debian (suite sid; ACDBRIDGE_LAB_MIRROR)"
    )
    build.build_root(root, tmp_path, print)
    assert "m.example" in build.built_from(tmp_path)  # an existing record is kept


def chroot(tmp_path: Path, asterisk_uid: int) -> Path:
    return apt(tmp_path, {
        "etc/passwd": f"root:x:0:0:root:/root:/bin/bash\nasterisk:x:{asterisk_uid}:{asterisk_uid}:Asterisk:"
                      "/var/lib/asterisk:/usr/sbin/nologin\n_apt:x:42:65534::/nonexistent:/usr/sbin/nologin\n",
        "etc/group": f"root:x:0:\nasterisk:x:{asterisk_uid}:\naudio:x:29:asterisk\n",
    })  # fmt: skip


def test_the_chroots_asterisk_takes_the_lab_ids(tmp_path: Path) -> None:
    root = chroot(tmp_path, 101)
    assert identity.adopt(root, identity.Identity(990, 991)) is True
    assert (
        "asterisk:x:990:991:Asterisk:/var/lib/asterisk:/usr/sbin/nologin\n"
        in (root / "etc/passwd").read_text()
    )
    group = (root / "etc/group").read_text()
    assert "asterisk:x:991:\n" in group and "audio:x:29:asterisk\n" in group
    assert identity.adopt(root, identity.Identity(990, 991)) is False  # the second up changes nothing
    with pytest.raises(LabError, match="uid 42 of the host's acdbridge-lab is the chroot's '_apt' too"):
        identity.adopt(root, identity.Identity(42, 42))


def test_a_uid_that_is_another_host_accounts_is_refused(tmp_path: Path) -> None:
    with pytest.raises(LabError) as err:
        identity.check_alone(chroot(tmp_path, 0))
    assert "would run as uid 0 gid 0, which on this host is user root and group root" in str(err.value)
    assert "not acdbridge-lab alone" in str(err.value)
