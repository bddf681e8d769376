"""The lab's own identity on the host: Asterisk in the chroot runs as the chroot's `asterisk`
user, and a uid means the same account inside and outside a chroot. Debian gives that user
whatever system uid is free *in the chroot* (101 on this project's machine, where the host's
101 is `postgres`: the PBX could then read and write PostgreSQL's files). So the lab makes a
system user of its own on the host, `acdbridge-lab`, with a uid/gid free in both places, and
gives the chroot's asterisk user that uid/gid; `lab up` refuses when the uid Asterisk would run
with belongs to any other host account."""

from __future__ import annotations

import grp
import os
import pwd
import subprocess
from dataclasses import dataclass
from pathlib import Path

from acdbridge.errors import LabError

LAB_USER = "acdbridge-lab"
COMMENT = "acdbridge lab, Asterisk in the lab chroot"  # how the lab knows the account is its own
CHROOT_USER = "asterisk"
_SYSTEM_IDS = range(999, 99, -1)  # Debian's dynamic system range, from the top like useradd


@dataclass(frozen=True)
class Identity:
    uid: int
    gid: int


def _table(path: Path) -> list[list[str]]:
    return [line.split(":") for line in path.read_text(encoding="utf-8").splitlines() if line.count(":") >= 2]


def ensure_host_user(root: Path) -> Identity:
    """The host's acdbridge-lab user (made now if missing), with an id free in the chroot."""
    try:
        entry = pwd.getpwnam(LAB_USER)
    except KeyError:
        return _create(root)
    if entry.pw_gecos != COMMENT:
        raise LabError(
            f"the host has a user {LAB_USER!r} that the lab did not make (comment {entry.pw_gecos!r})",
            detail=f"remove or rename it, or give it the comment {COMMENT!r} if it is the lab's",
        )
    return Identity(entry.pw_uid, entry.pw_gid)


def _create(root: Path) -> Identity:
    chroot_uids = {int(f[2]) for f in _table(root / "etc/passwd") if f[0] != CHROOT_USER}
    chroot_gids = {int(f[2]) for f in _table(root / "etc/group") if f[0] != CHROOT_USER}
    host_uids = {e.pw_uid for e in pwd.getpwall()}
    host_gids = {g.gr_gid for g in grp.getgrall()}
    try:  # a group left by an earlier try (or a user removed by hand): keep it, and its number
        gid: int | None = grp.getgrnam(LAB_USER).gr_gid
    except KeyError:
        gid = None
    taken_uids, taken_gids = host_uids | chroot_uids, host_gids | chroot_gids
    free = [i for i in _SYSTEM_IDS if i not in taken_uids and (gid is not None or i not in taken_gids)]
    if not free:
        raise LabError("no system uid/gid (100-999) is free on both the host and in the lab chroot")
    uid = gid if gid is not None and gid in free else free[0]
    if gid is None:
        _run(["groupadd", "--system", "--gid", str(uid), LAB_USER], f"the host group {LAB_USER}")
    _run(["useradd", "--system", "--uid", str(uid), "--gid", LAB_USER, "--no-create-home", "--home-dir",
          "/nonexistent", "--shell", "/usr/sbin/nologin", "--comment", COMMENT, LAB_USER],
         f"the host user {LAB_USER} (uid {uid})")  # fmt: skip
    entry = pwd.getpwnam(LAB_USER)
    return Identity(entry.pw_uid, entry.pw_gid)


def _run(cmd: list[str], what: str) -> None:
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=30, check=False)
    if res.returncode != 0:
        raise LabError(f"cannot create {what}: {res.stderr.strip() or f'{cmd[0]} exit {res.returncode}'}")


def _rewrite(path: Path, name: str, fields: dict[int, str]) -> bool:
    """Set `name`'s fields (index -> value) in a passwd/group file; True if anything changed."""
    lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
    changed = False
    for i, line in enumerate(lines):
        parts = line.rstrip("\n").split(":")
        if parts[0] == name and any(parts[k] != v for k, v in fields.items()):
            for k, v in fields.items():
                parts[k] = v
            lines[i] = ":".join(parts) + "\n"
            changed = True
    if changed:
        path.write_text("".join(lines), encoding="utf-8")
    return changed


def adopt(root: Path, ident: Identity) -> bool:
    """Give the chroot's asterisk user and group the lab's uid/gid, and move every file the old
    ids owned in the chroot to the new ones. True if anything changed (the first run only)."""
    passwd = {f[0]: f for f in _table(root / "etc/passwd")}
    if CHROOT_USER not in passwd:
        raise LabError(f"the chroot {root} has no {CHROOT_USER} user: is Asterisk installed in it?")
    old_uid, old_gid = int(passwd[CHROOT_USER][2]), int(passwd[CHROOT_USER][3])
    for name, f in passwd.items():
        if name != CHROOT_USER and int(f[2]) == ident.uid:
            raise LabError(f"uid {ident.uid} of the host's {LAB_USER} is the chroot's {name!r} too")
    for f in _table(root / "etc/group"):
        if f[0] != CHROOT_USER and int(f[2]) == ident.gid:
            raise LabError(f"gid {ident.gid} of the host's {LAB_USER} is the chroot's group {f[0]!r} too")
    changed = _rewrite(root / "etc/passwd", CHROOT_USER, {2: str(ident.uid), 3: str(ident.gid)})
    changed |= _rewrite(root / "etc/group", CHROOT_USER, {2: str(ident.gid)})
    if (old_uid, old_gid) != (ident.uid, ident.gid):
        _chown_tree(root, {old_uid: ident.uid}, {old_gid: ident.gid})
    return changed


def _chown_tree(root: Path, uids: dict[int, int], gids: dict[int, int]) -> None:
    for top, dirs, files in os.walk(root):
        dirs[:] = [d for d in dirs if not os.path.ismount(os.path.join(top, d))]  # not /proc, /dev
        for name in (top, *(os.path.join(top, f) for f in files + dirs)):
            st = os.lstat(name)
            if st.st_uid in uids or st.st_gid in gids:
                os.lchown(name, uids.get(st.st_uid, st.st_uid), gids.get(st.st_gid, st.st_gid))


def check_alone(root: Path) -> Identity:
    """The uid/gid Asterisk will run with (the chroot's asterisk) must be the lab's host user
    and group and nobody else's on the host."""
    f = next((f for f in _table(root / "etc/passwd") if f[0] == CHROOT_USER), None)
    if f is None:
        raise LabError(f"the chroot {root} has no {CHROOT_USER} user")
    ident = Identity(int(f[2]), int(f[3]))
    users = sorted(e.pw_name for e in pwd.getpwall() if e.pw_uid == ident.uid)
    groups = sorted(g.gr_name for g in grp.getgrall() if g.gr_gid == ident.gid)
    if users != [LAB_USER] or groups != [LAB_USER]:
        raise LabError(
            f"the lab's Asterisk would run as uid {ident.uid} gid {ident.gid}, which on this host is user "
            f"{', '.join(users) or 'nobody'} and group {', '.join(groups) or 'none'}, not {LAB_USER} alone",
            detail="the PBX must not share an identity with a host service; run 'acdbridge lab up' "
            "again to give the chroot's asterisk user the lab's own uid",
        )
    return ident
