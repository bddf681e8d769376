"""The systemd unit, its hardening and `make install` (docs/install.md), checked with systemd's own
tools and no running systemd: `systemd-analyze security --offline=yes` (exposure at most 2.0),
`systemd-analyze verify` (no warning) on the unit as installed into a scratch root by
`make install DESTDIR=...`, the installed tree, the user and modes that systemd-sysusers and
systemd-tmpfiles make from it, that the installed venv works at its final path, also with
writable-executable memory refused as MemoryDenyWriteExecute= does, and that the installed daemon
runs, notifies and stops cleanly under as much of the unit's sandbox as can be had without systemd.

Needs root (as `make test`): private mount and PID namespaces put the staged venv at its final
path and play systemd's part; nothing on the host changes.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import socket
import stat
import subprocess
import sys
import textwrap
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from acdbridge import __version__

REPO = Path(__file__).resolve().parents[1]
UNIT = REPO / "systemd" / "acdbridge.service"
PREFIX = "/opt/acdbridge"
EXPOSURE_GOAL = 2.0
# What the unit deliberately leaves open (each is explained in the unit and docs/install.md): it
# must reach the PBX, the broker and its scrapers over TCP, notify systemd over AF_UNIX, run in the
# host's root, and ProtectClock= itself leaves a read-only rtc entry in the device list.
ACCEPTED_OPEN = {
    "PrivateNetwork=",
    "IPAddressDeny=",
    "RestrictAddressFamilies=~AF_(INET|INET6)",
    "RestrictAddressFamilies=~AF_UNIX",
    "RootDirectory=/RootImage=",
    "DeviceAllow=",
}


def _tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        package = "util-linux" if name in ("unshare", "setpriv") else "systemd (DEBS in the Makefile)"
        pytest.fail(f"{name} not found: it comes with Debian's {package} package")
    return path


def _run(*cmd: str | Path, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(c) for c in cmd], capture_output=True, text=True, timeout=timeout, check=False)


def _in_final_place(root: Path, script: str) -> subprocess.CompletedProcess[str]:
    """Run `script` (sh) in a private mount namespace where the staged venv root/opt/acdbridge is
    mounted at /opt/acdbridge (over a private tmpfs on /opt: nothing on the host changes)."""
    if os.geteuid() != 0:
        pytest.fail("needs root (as `make test`): a private mount namespace puts the venv at /opt/acdbridge")
    setup = (
        "set -e; mount --make-rprivate /; mount -t tmpfs -o mode=0755 acdbridge-test /opt; "
        f"mkdir {PREFIX}; mount --bind '{root}{PREFIX}' {PREFIX}; "
    )
    return _run(_tool("unshare"), "--mount", "--", "sh", "-c", setup + script)


@dataclass
class Installed:
    root: Path
    seconds: float
    output: str


def _make_install(root: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    return _run("make", "-C", REPO, "--no-print-directory", "install", f"DESTDIR={root}", *extra, timeout=300)


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Installed:
    root = tmp_path_factory.mktemp("root")
    started = time.monotonic()
    done = _make_install(root)
    seconds = time.monotonic() - started
    assert done.returncode == 0, f"make install DESTDIR={root} failed:\n{done.stdout}\n{done.stderr}"
    print(f"make install DESTDIR={root}: {seconds:.1f} s")
    return Installed(root, seconds, done.stdout)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


# ---- the hardening score ----


def test_the_exposure_is_at_most_the_goal() -> None:
    analyze = _tool("systemd-analyze")
    table = _run(analyze, "security", "--offline=yes", "--no-pager", UNIT)
    found = re.search(r"Overall exposure level for acdbridge\.service: (\d+\.\d+) (\w+)", table.stdout)
    assert found, f"no overall exposure line in:\n{table.stdout}\n{table.stderr}"
    exposure = float(found[1])
    print(f"systemd-analyze security --offline=yes: exposure {exposure} {found[2]}")
    assert exposure <= EXPOSURE_GOAL, table.stdout

    # Every check but the deliberate few passes: removing an option fails here even under the goal.
    rows = json.loads(_run(analyze, "security", "--offline=yes", "--json=short", UNIT).stdout)
    still_open = {row["name"]: row["description"] for row in rows if row["set"] is False}
    assert set(still_open) == ACCEPTED_OPEN, still_open


def test_the_unit_is_a_notifying_watched_service_with_credentials() -> None:
    text = UNIT.read_text()
    for line in (
        "Type=notify",
        "NotifyAccess=main",
        "WatchdogSec=30s",
        "Restart=on-failure",
        "User=acdbridge",
        "LoadCredential=ami-secret:/etc/acdbridge/ami-secret",
        "LoadCredential=mqtt-password:acdbridge-mqtt-password",
        "StateDirectory=acdbridge",
        "StateDirectoryMode=0700",
        "UMask=0077",
        f"ExecStartPre={PREFIX}/bin/acdbridge check-config --config /etc/acdbridge/acdbridge.toml",
        f"ExecStart={PREFIX}/bin/acdbridge run --config /etc/acdbridge/acdbridge.toml",
    ):
        assert f"\n{line}\n" in text, line
    # the config is checked before the daemon is signalled to reload it
    reload = re.findall(r"^ExecReload=(.*)$", text, re.MULTILINE)
    assert reload == [
        f"{PREFIX}/bin/acdbridge check-config --config /etc/acdbridge/acdbridge.toml",
        "/bin/kill -HUP $MAINPID",
    ]


# ---- systemd-analyze verify, on the unit as installed ----


def test_verify_passes_on_the_installed_unit(installed: Installed) -> None:
    analyze = _tool("systemd-analyze")
    unit = installed.root / "etc/systemd/system/acdbridge.service"
    # The installed binary must exist at its final path for verify: the namespace puts it there.
    done = _in_final_place(
        installed.root,
        f"{analyze} verify --man=no '{unit}' 2>&1; echo verify-exit=$?; {PREFIX}/bin/acdbridge version",
    )
    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    assert lines[-1] == f"acdbridge {__version__}", lines  # the relocated #! line works
    assert lines[-2] == "verify-exit=0", lines
    # every warning about this unit names it (or its file); the host's other units are not ours
    ours = [line for line in lines[:-2] if "acdbridge" in line]
    others = [line for line in lines[:-2] if "acdbridge" not in line]
    if others:
        print("systemd-analyze verify, about other units:", *others, sep="\n")
    assert ours == [], "systemd-analyze verify warned:\n" + "\n".join(ours)


def test_verify_does_catch_a_broken_unit(installed: Installed, tmp_path: Path) -> None:
    """The check above can fail: a misspelt option and a missing binary are reported."""
    analyze = _tool("systemd-analyze")
    broken = tmp_path / "acdbridge.service"
    text = UNIT.read_text().replace("ProtectSystem=strict", "ProtectSytem=strict")
    broken.write_text(
        text.replace(f"ExecStart={PREFIX}/bin/acdbridge run", f"ExecStart={PREFIX}/bin/acdbrige run")
    )
    done = _in_final_place(installed.root, f"{analyze} verify --man=no '{broken}' 2>&1")
    assert "Unknown key 'ProtectSytem' in section [Service]" in done.stdout, done.stdout
    assert f"{PREFIX}/bin/acdbrige is not executable" in done.stdout, done.stdout
    assert done.returncode != 0


# ---- make install into a scratch root ----


def test_make_install_lays_out_the_tree(installed: Installed) -> None:
    root = installed.root
    assert installed.seconds < 120, f"make install took {installed.seconds:.0f} s"
    unit = root / "etc/systemd/system/acdbridge.service"
    assert unit.read_text() == UNIT.read_text() and _mode(unit) == 0o644
    sysusers = root / "etc/sysusers.d/acdbridge.conf"
    tmpfiles = root / "etc/tmpfiles.d/acdbridge.conf"
    assert (
        sysusers.read_bytes() == (REPO / "systemd/acdbridge.sysusers").read_bytes()
        and _mode(sysusers) == 0o644
    )
    assert (
        tmpfiles.read_bytes() == (REPO / "systemd/acdbridge.tmpfiles").read_bytes()
        and _mode(tmpfiles) == 0o644
    )
    config = root / "etc/acdbridge/acdbridge.toml"
    assert config.read_bytes() == (REPO / "examples/acdbridge.toml").read_bytes()
    assert _mode(config) == 0o640 and _mode(config.parent) == 0o750
    assert (root / PREFIX.lstrip("/") / "share/doc/acdbridge/install.md").is_file()
    # nothing else: no secret, no state, no stray files outside the venv
    outside = sorted(
        str(p.relative_to(root))
        for p in root.rglob("*")
        if p.is_file() and not str(p).startswith(f"{root}{PREFIX}/")
    )
    assert outside == [
        "etc/acdbridge/acdbridge.toml",
        "etc/systemd/system/acdbridge.service",
        "etc/sysusers.d/acdbridge.conf",
        "etc/tmpfiles.d/acdbridge.conf",
    ]
    assert "systemctl daemon-reload && systemctl enable --now acdbridge" in installed.output
    assert "systemd-sysusers acdbridge.conf" in installed.output


def test_the_venv_names_only_its_final_path(installed: Installed) -> None:
    venv = installed.root / PREFIX.lstrip("/")
    script = venv / "bin/acdbridge"
    assert script.read_text().splitlines()[0] == f"#!{PREFIX}/bin/python"
    # Debian's python (ProtectHome= hides any python under /root or /home from the service)
    assert os.readlink(venv / "bin/python3").startswith("/usr/bin/"), os.readlink(venv / "bin/python3")
    assert "home = /usr/bin" in (venv / "pyvenv.cfg").read_text()
    staged = str(installed.root).encode()
    for path in [*(venv / "bin").iterdir(), venv / "pyvenv.cfg"]:
        if path.is_file() and not path.is_symlink():
            assert staged not in path.read_bytes(), path
    # byte code is there already: the service cannot write under /opt
    assert list((venv / "lib").glob("python3*/site-packages/acdbridge/__pycache__/cli.*.pyc"))
    # from the staging root it runs through its own interpreter
    done = _run(venv / "bin/python", script, "version")
    assert (done.returncode, done.stdout) == (0, f"acdbridge {__version__}\n"), done.stderr


def test_sysusers_and_tmpfiles_make_the_user_and_the_modes(installed: Installed, tmp_path: Path) -> None:
    root = tmp_path / "root"
    shutil.copytree(installed.root / "etc", root / "etc", symlinks=True)
    done = _run(_tool("systemd-sysusers"), f"--root={root}")
    assert done.returncode == 0, done.stderr
    users = {line.split(":")[0]: line.split(":") for line in (root / "etc/passwd").read_text().splitlines()}
    _, _, uid, gid, _, home, shell = users["acdbridge"]
    assert int(uid) < 1000 and home == "/var/lib/acdbridge" and shell.endswith("/nologin"), users["acdbridge"]
    groups = {
        line.split(":")[0]: int(line.split(":")[2]) for line in (root / "etc/group").read_text().splitlines()
    }
    assert groups["acdbridge"] == int(gid)

    # A secret written with a careless umask is made root-only by the next tmpfiles run (or boot).
    secret = root / "etc/acdbridge/ami-secret"
    secret.write_text("s3cret")
    secret.chmod(0o644)
    done = _run(_tool("systemd-tmpfiles"), f"--root={root}", "--create")
    assert done.returncode == 0, done.stderr

    def owner(path: str) -> tuple[int, int, int]:
        st = (root / path).stat()
        return st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)

    assert owner("etc/acdbridge") == (0, int(gid), 0o750)
    assert owner("etc/acdbridge/acdbridge.toml") == (0, int(gid), 0o640)
    assert owner("etc/acdbridge/ami-secret") == (0, 0, 0o600)
    assert owner("etc/credstore") == (0, 0, 0o700)
    assert owner("var/lib/acdbridge") == (int(uid), int(gid), 0o700)


def test_a_second_install_keeps_the_config_and_follows_prefix(installed: Installed, tmp_path: Path) -> None:
    root = tmp_path / "root"
    (root / "etc/acdbridge").mkdir(parents=True)
    mine = root / "etc/acdbridge/acdbridge.toml"
    mine.write_text("# the site's own config\n")
    done = _make_install(root, "PREFIX=/srv/acd")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "kept the existing" in done.stdout
    assert mine.read_text() == "# the site's own config\n"
    unit = (root / "etc/systemd/system/acdbridge.service").read_text()
    assert "ExecStart=/srv/acd/bin/acdbridge run --config /etc/acdbridge/acdbridge.toml" in unit
    assert "/opt/acdbridge" not in unit
    assert (root / "srv/acd/bin/acdbridge").read_text().startswith("#!/srv/acd/bin/python\n")


def test_systemd_tools_are_in_the_debs() -> None:
    debs = re.search(r"^DEBS := (.*)$", (REPO / "Makefile").read_text(), re.MULTILINE)
    assert debs and {"systemd", "python3-venv"} <= set(debs[1].split())
    assert sys.version_info >= (3, 11)


# ---- the daemon itself, in the unit's sandbox ----

# Run by the daemon's own interpreter once setpriv has dropped to an unprivileged user with
# no_new_privs, then exec'd into the program to test. It loads the unit's seccomp filters as
# systemd 252 builds them, each a filter of its own (the kernel applies the strictest answer),
# the allow-list last:
# SystemCallFilter= (an allow-list, EPERM for the rest, SystemCallErrorNumber=; native ABI only),
# MemoryDenyWriteExecute= (mmap with PROT_WRITE|PROT_EXEC, mprotect/pkey_mprotect adding PROT_EXEC
# and shmat with SHM_EXEC fail with EPERM) and RestrictAddressFamilies= (socket() of another family
# fails with EAFNOSUPPORT). Then it checks that they are in force and no privilege is left.
SANDBOX_LAUNCHER = r"""
import ctypes, errno, mmap, os, socket, sys

class Cmp(ctypes.Structure):
    _fields_ = [("arg", ctypes.c_uint), ("op", ctypes.c_int), ("a", ctypes.c_uint64), ("b", ctypes.c_uint64)]

LT, EQ, GT, MASKED_EQ = 2, 4, 6, 7
ALLOW = 0x7FFF0000
def ERRNO(e): return 0x00050000 | e
sc = ctypes.CDLL("libseccomp.so.2")
sc.seccomp_init.restype = ctypes.c_void_p
sc.seccomp_init.argtypes = [ctypes.c_uint32]
sc.seccomp_syscall_resolve_name.argtypes = [ctypes.c_char_p]
sc.seccomp_rule_add_array.argtypes = [ctypes.c_void_p, ctypes.c_uint32, ctypes.c_int, ctypes.c_uint,
                                      ctypes.POINTER(Cmp)]
sc.seccomp_load.argtypes = [ctypes.c_void_p]

def nr(name):
    return sc.seccomp_syscall_resolve_name(name.encode())

def rule(ctx, action, name, cmp=None):
    assert sc.seccomp_rule_add_array(ctx, action, nr(name), 0 if cmp is None else 1,
                                     None if cmp is None else ctypes.byref(cmp)) == 0, name

def load(ctx):
    if sc.seccomp_load(ctx) != 0:
        raise SystemExit("seccomp_load failed")

# MemoryDenyWriteExecute=
PROT_WRITE, PROT_EXEC, SHM_EXEC = 0x2, 0x4, 0o100000
ctx = sc.seccomp_init(ALLOW)
rule(ctx, ERRNO(errno.EPERM), "mmap", Cmp(2, MASKED_EQ, PROT_WRITE | PROT_EXEC, PROT_WRITE | PROT_EXEC))
rule(ctx, ERRNO(errno.EPERM), "mprotect", Cmp(2, MASKED_EQ, PROT_EXEC, PROT_EXEC))
rule(ctx, ERRNO(errno.EPERM), "pkey_mprotect", Cmp(2, MASKED_EQ, PROT_EXEC, PROT_EXEC))
rule(ctx, ERRNO(errno.EPERM), "shmat", Cmp(2, MASKED_EQ, SHM_EXEC, SHM_EXEC))
load(ctx)

# RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX (2, 10, 1)
ctx = sc.seccomp_init(ALLOW)
rule(ctx, ERRNO(errno.EAFNOSUPPORT), "socket", Cmp(0, LT, 1, 0))
rule(ctx, ERRNO(errno.EAFNOSUPPORT), "socket", Cmp(0, GT, 10, 0))
for family in range(3, 10):
    rule(ctx, ERRNO(errno.EAFNOSUPPORT), "socket", Cmp(0, EQ, family, 0))
load(ctx)

# SystemCallFilter=, loaded last as systemd does (the allow-list may not include seccomp())
ctx = sc.seccomp_init(ERRNO(errno.EPERM))
added = 0
for name in open(sys.argv[1]).read().split():
    if nr(name) != -1 and sc.seccomp_rule_add_array(ctx, ALLOW, nr(name), 0, None) == 0:
        added += 1
assert added > 300, added
load(ctx)

def refused(call, code):
    try:
        call()
    except OSError as exc:
        assert exc.errno == code, (call, exc)
    else:
        raise AssertionError(f"{call} was allowed")
# each of these is allowed to any unprivileged process: only the filters refuse them
refused(lambda: socket.socket(socket.AF_NETLINK, socket.SOCK_RAW), errno.EAFNOSUPPORT)
refused(lambda: os.setpriority(os.PRIO_PROCESS, 0, 5), errno.EPERM)  # @resources
r, w = os.pipe()
refused(lambda: os.fchown(r, -1, -1), errno.EPERM)  # @privileged (@chown)
refused(lambda: mmap.mmap(-1, 4096, prot=mmap.PROT_READ | mmap.PROT_WRITE | mmap.PROT_EXEC), errno.EPERM)
status = dict(line.split(":\t", 1) for line in open("/proc/self/status").read().splitlines() if ":\t" in line)
assert status["CapEff"].strip("0\n ") == "" and status["CapBnd"].strip("0\n ") == "", status
assert status["NoNewPrivs"].strip() == "1" and status["Seccomp"].strip() == "2", status
assert os.getuid() != 0 and not os.access("/etc", os.W_OK) and not os.access("/opt/acdbridge", os.W_OK)
assert os.access("/var/lib/acdbridge", os.W_OK) and os.listdir("/root") == [] and os.umask(0o077) == 0o077
assert all(p in ("self", "thread-self") or p.isdigit() for p in os.listdir("/proc")), os.listdir("/proc")
os.execv(sys.argv[2], sys.argv[2:])
"""
NOBODY = 65534


def _syscall_groups(analyze: str) -> dict[str, list[str]]:
    groups: dict[str, list[str]] = {}
    current: list[str] | None = None
    for line in _run(analyze, "syscall-filter", "--no-pager").stdout.splitlines():
        if line.startswith("@"):
            current = groups.setdefault(line.strip(), [])
        elif not line.strip():
            current = None
        elif current is not None and line.startswith("    ") and not line.strip().startswith("#"):
            current.append(line.strip())
    return groups


def _expand(groups: dict[str, list[str]], names: list[str]) -> set[str]:
    out: set[str] = set()
    for name in names:
        out |= _expand(groups, groups[name]) if name.startswith("@") else {name}
    return out


def _unit_allow_list(analyze: str) -> set[str]:
    """The unit's SystemCallFilter= lines as one allow-list, as systemd computes it."""
    groups = _syscall_groups(analyze)
    allowed: set[str] = set()
    for value in re.findall(r"^SystemCallFilter=(.*)$", UNIT.read_text(), re.MULTILINE):
        if value.startswith("~"):
            allowed -= _expand(groups, value[1:].split())
        else:
            allowed |= _expand(groups, value.split())
    return allowed


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Sandbox:
    etc: Path  # read-only at /opt/etc, root:acdbridge 0640 files in a 0750 directory
    state: Path  # /var/lib/acdbridge: StateDirectory=acdbridge, StateDirectoryMode=0700
    log: Path


def _sandbox(tmp_path: Path, files: dict[str, str]) -> Sandbox:
    analyze = _tool("systemd-analyze")
    etc, state, creds = tmp_path / "etc", tmp_path / "state", tmp_path / "credentials"
    etc.mkdir()
    files = {
        **files,
        "allowed-syscalls": "\n".join(sorted(_unit_allow_list(analyze))) + "\n",
        "sandbox.py": SANDBOX_LAUNCHER,
    }
    for name, text in files.items():
        (etc / name).write_text(text)
        os.chown(etc / name, 0, NOBODY)
        (etc / name).chmod(0o640)
    os.chown(etc, 0, NOBODY)
    etc.chmod(0o750)
    state.mkdir(mode=0o700)
    os.chown(state, NOBODY, NOBODY)
    creds.mkdir()  # what systemd makes of LoadCredential=: read-only, the service user's
    (creds / "ami-secret").write_text("the-secret")
    for path, mode in ((creds / "ami-secret", 0o400), (creds, 0o500)):
        os.chown(path, NOBODY, NOBODY)
        path.chmod(mode)
    return Sandbox(etc, state, tmp_path / "sandboxed.log")


def _start_sandboxed(
    installed: Installed, box: Sandbox, argv: str, env: dict[str, str]
) -> subprocess.Popen[bytes]:
    """`argv` (a shell word list) as the unit would run it, with what can be had without systemd:
    the service user (here nobody) without capabilities and with no_new_privs, the seccomp filters,
    umask 077, no core dumps, a read-only root with only the state directory writable, private
    /tmp and /var/tmp, empty /root and /home, /proc with only its own processes (ProtectProc=,
    ProcSubset=), and the AMI secret in $CREDENTIALS_DIRECTORY. (PrivateUsers=, PrivateDevices=
    and the kernel-tunable, clock and namespace options are systemd's alone.) In its own mount and
    PID namespaces: the host is untouched; the process is the one child of the returned one."""
    if os.geteuid() != 0:
        pytest.fail("needs root (as `make test`): namespaces and setpriv play systemd's part")
    home = "mount -t tmpfs -o ro,mode=0755 acdbridge-home /home; " if Path("/home").is_dir() else ""
    script = (
        "set -e; mount --make-rprivate /; "
        "mount -t tmpfs -o mode=0755 acdbridge-opt /opt; mkdir /opt/acdbridge /opt/etc /opt/credentials; "
        f"mount --bind '{installed.root}{PREFIX}' {PREFIX}; mount -o remount,bind,ro {PREFIX}; "
        f"mount --bind '{box.etc}' /opt/etc; mount -o remount,bind,ro /opt/etc; "
        f"mount --bind '{box.etc.parent}/credentials' /opt/credentials; "
        "mount -o remount,bind,ro /opt/credentials; mount -o remount,ro /opt; "
        "mount -t tmpfs -o mode=0755 acdbridge-state /var/lib; mkdir /var/lib/acdbridge; "
        f"mount --bind '{box.state}' /var/lib/acdbridge; "
        "mount -t tmpfs acdbridge-tmp /tmp; mount -t tmpfs acdbridge-vartmp /var/tmp; "
        f"mount -t tmpfs -o ro,mode=0755 acdbridge-root /root; {home}"
        "mount -t proc -o hidepid=invisible,subset=pid acdbridge-proc /proc; "
        "mount -o remount,bind,ro /; "
        "umask 077; ulimit -c 0; cd /; "
        f"exec {_tool('setpriv')} --reuid={NOBODY} --regid={NOBODY} --clear-groups --inh-caps=-all "
        f"--bounding-set=-all --no-new-privs -- {PREFIX}/bin/python /opt/etc/sandbox.py "
        f"/opt/etc/allowed-syscalls {argv}"
    )
    env = {
        "PATH": "/usr/bin:/bin",
        "CREDENTIALS_DIRECTORY": "/opt/credentials",
        "PYTHONFAULTHANDLER": "1",
        **env,
    }
    with box.log.open("w") as out:
        return subprocess.Popen(
            [_tool("unshare"), "--mount", "--pid", "--fork", "--", "sh", "-c", script],
            stdout=out, stderr=subprocess.STDOUT, env=env,
        )  # fmt: skip


def _ns_init(proc: subprocess.Popen[bytes]) -> int | None:
    """The PID (on the host) of unshare's one child: the sandboxed process, init of its PID
    namespace. Killing it ends everything in the namespace; killing unshare would not."""
    for _ in range(100):
        if proc.poll() is not None:
            return None
        with contextlib.suppress(OSError):
            children = Path(f"/proc/{proc.pid}/task/{proc.pid}/children").read_text().split()
            if children:
                return int(children[0])
        time.sleep(0.05)
    return None


@contextlib.contextmanager
def _sandboxed(
    installed: Installed, box: Sandbox, argv: str, env: dict[str, str]
) -> Iterator[subprocess.Popen[bytes]]:
    proc = _start_sandboxed(installed, box, argv, env)
    try:
        yield proc
    finally:
        if proc.poll() is None and (init := _ns_init(proc)) is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(init, signal.SIGKILL)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


def test_the_daemon_needs_no_writable_executable_memory(installed: Installed, tmp_path: Path) -> None:
    """MemoryDenyWriteExecute= and the rest of the sandbox: every acdbridge module is imported
    (all C extensions loaded: a library needing an executable stack or text relocations would
    fail here) and what the daemon's C code does at run time is exercised: TLS, SQLite, asyncio
    TCP, JSON; and a ctypes callback, for libffi closures (cffi callbacks use the same)."""
    probe = textwrap.dedent(
        """
        import asyncio, ctypes, importlib, json, pkgutil, sqlite3, ssl
        import acdbridge
        for mod in pkgutil.walk_packages(acdbridge.__path__, "acdbridge."):
            if not mod.name.endswith(".__main__"):
                importlib.import_module(mod.name)
        con = sqlite3.connect("/var/lib/acdbridge/probe.sqlite")
        con.execute("pragma journal_mode=wal"); con.execute("create table t (x)")
        con.execute("insert into t values (1)"); con.commit(); con.close()
        ssl.create_default_context().load_default_certs()
        json.dumps({"a": [1.5, "b"]})
        async def echo():
            async def handle(r, w):
                w.write(await r.readline()); await w.drain(); w.close()
            server = await asyncio.start_server(handle, "127.0.0.1", 0)
            port = server.sockets[0].getsockname()[1]
            r, w = await asyncio.open_connection("localhost", port)
            w.write(b"ping\\n"); await w.drain()
            assert await r.readline() == b"ping\\n"
            w.close(); server.close()
        asyncio.run(echo())
        libc = ctypes.CDLL(None)
        CMP = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_int), ctypes.POINTER(ctypes.c_int))
        arr = (ctypes.c_int * 3)(3, 1, 2)
        libc.qsort(arr, 3, ctypes.sizeof(ctypes.c_int), CMP(lambda a, b: a[0] - b[0]))
        assert list(arr) == [1, 2, 3]
        print("ok")
        """
    )
    box = _sandbox(tmp_path, {"probe.py": probe})
    with _sandboxed(installed, box, f"{PREFIX}/bin/python /opt/etc/probe.py", {}) as proc:
        assert proc.wait(timeout=60) == 0, box.log.read_text()
    assert box.log.read_text() == "ok\n"
    assert _mode(box.state / "probe.sqlite") == 0o600


def test_the_daemon_runs_in_the_units_sandbox(installed: Installed, tmp_path: Path) -> None:
    """`acdbridge run` from the installed venv in the sandbox above, with systemd's side of
    $NOTIFY_SOCKET and a watchdog: it must come up (READY=1, /healthz), keep the watchdog fed while
    the PBX is unreachable, and stop cleanly on SIGTERM, its files 0600."""
    http_port = _free_port()
    box = _sandbox(
        tmp_path,
        {
            "acdbridge.toml": (
                f'[ami]\nhost = "127.0.0.1"\nport = {_free_port()}\nusername = "acdbridge"\n'
                "reconnect_min_s = 0.2\nreconnect_max_s = 1\n"
                'capture = "/var/lib/acdbridge/ami-capture.raw"\n'
                '[store]\npath = "/var/lib/acdbridge/acdbridge.sqlite"\n'
                f'[http]\nlisten = "127.0.0.1:{http_port}"\n'
            )
        },
    )
    notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    notify_name = f"@acdbridge-test-{os.getpid()}-{time.monotonic_ns()}"
    notify.bind("\0" + notify_name[1:])
    notify.settimeout(0.2)
    messages: list[tuple[float, str]] = []
    with (
        contextlib.closing(notify),
        _sandboxed(
            installed,
            box,
            # ExecStartPre= then ExecStart=
            f"/bin/sh -c '{PREFIX}/bin/acdbridge check-config --config /opt/etc/acdbridge.toml "
            f"&& exec {PREFIX}/bin/acdbridge run --config /opt/etc/acdbridge.toml'",
            {"NOTIFY_SOCKET": notify_name, "WATCHDOG_USEC": "1000000"},
        ) as proc,
    ):

        def receive_until(done: Callable[[], bool], seconds: float) -> None:
            deadline = time.monotonic() + seconds
            while time.monotonic() < deadline and not done():
                if proc.poll() is not None:
                    return
                with contextlib.suppress(TimeoutError):
                    for line in notify.recv(4096).decode().splitlines():
                        messages.append((time.monotonic(), line))

        receive_until(lambda: any(m == "READY=1" for _, m in messages), 30)
        assert any(m == "READY=1" for _, m in messages), f"no READY=1: {messages}\n{box.log.read_text()}"
        try:  # 503 while the PBX is unreachable, and it is: the answer is what counts
            with urllib.request.urlopen(f"http://127.0.0.1:{http_port}/healthz", timeout=5) as answer:
                health = f"{answer.status} {answer.read().decode()}"
        except urllib.error.HTTPError as unhealthy:
            health = f"{unhealthy.code} {unhealthy.read().decode()}"
        assert health.startswith(("200 ", "503 ")), health
        # systemd's watchdog: WATCHDOG_USEC=1 s, so a ping every 0.5 s, while AMI keeps failing
        ready_at = next(t for t, m in messages if m == "READY=1")
        receive_until(lambda: time.monotonic() > ready_at + 3, 5)
        pings = [t for t, m in messages if m == "WATCHDOG=1" and t > ready_at]
        assert len(pings) >= 4, (messages, box.log.read_text())
        assert any(m.startswith("STATUS=") for _, m in messages), messages

        daemon = _ns_init(proc)
        assert daemon is not None, box.log.read_text()
        os.kill(daemon, signal.SIGTERM)  # systemctl stop
        receive_until(lambda: proc.poll() is not None, 30)
        proc.wait(timeout=5)
    text = box.log.read_text()
    print(f"sandboxed daemon: {len(messages)} notify messages, /healthz {health[:80]!r}")
    assert proc.returncode == 0, text
    assert any(m == "STOPPING=1" for _, m in messages), messages
    for denied in ("Operation not permitted", "Permission denied", "Traceback", "Read-only file system"):
        assert denied not in text, text
    # UMask=0077: the store holds callers' numbers
    # (the AMI journal is a directory of segments: 0700, its segments 0600)
    stored = {p.relative_to(box.state).as_posix(): (p.stat().st_uid, _mode(p)) for p in box.state.rglob("*")}
    assert stored.get("acdbridge.sqlite") == (NOBODY, 0o600), stored
    journal = [p for p in box.state.rglob("*") if p.is_dir()]
    assert journal and all(_mode(d) == 0o700 for d in journal), stored
    assert all(mode == 0o600 for name, (_, mode) in stored.items() if not (box.state / name).is_dir()), stored


def test_the_installed_config_passes_the_units_check_as_shipped(installed: Installed, tmp_path: Path) -> None:
    """The sysadmin's first start: the config `make install` put in /etc/acdbridge, with only the
    AMI secret added as the credential, passes ExecStartPre='s check in the sandbox."""
    shipped = (installed.root / "etc/acdbridge/acdbridge.toml").read_text()
    box = _sandbox(tmp_path, {"acdbridge.toml": shipped})
    argv = f"{PREFIX}/bin/acdbridge check-config --config /opt/etc/acdbridge.toml"
    with _sandboxed(installed, box, argv, {}) as proc:
        assert proc.wait(timeout=60) == 0, box.log.read_text()
    assert "acdbridge.toml: OK" in box.log.read_text(), box.log.read_text()
