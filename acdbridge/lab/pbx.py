"""The real-Asterisk lab: a Debian sid chroot with Asterisk 22, run as the lab's own user.

Debian 12 has no Asterisk package and sid's binaries need a newer libc, so the lab builds a sid
chroot with mmdebstrap once and reuses it. Everything the lab owns lives under one directory:
  root/               the chroot (built once, reused)
  lab.json            the running instance: pid, ports, what we mounted
  asterisk-console.log  Asterisk's own foreground output
  build.log           mmdebstrap's output from the build
  sources.txt         the apt sources the chroot was built from (lab/build.py)
  tls/ami.crt, ami.key  the AMI TLS listener's self-signed pair (key 0600; lab/tlscert.py)
Asterisk runs as the host's own `acdbridge-lab` user (lab/identity.py), never a uid that is
some host service's.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from acdbridge.errors import LabError
from acdbridge.lab import identity, tlscert
from acdbridge.lab.build import build_root, built_from
from acdbridge.lab.confrender import Override, install

Printer = Callable[[str], None]

DEFAULT_DIR = Path(os.environ.get("ACDBRIDGE_LAB_DIR", "/var/tmp/acdbridge-lab"))
# Directories Asterisk writes to; it refuses to run as root, so its user must own them.
ASTERISK_DIRS = (
    "var/lib/asterisk",
    "var/log/asterisk",
    "var/spool/asterisk",
    "run/asterisk",
    "var/cache/asterisk",
)
# The AMI users the sample manager.conf defines (loopback only).
AMI_USERS = {"acdbridge": "acdbridge-change-me", "acdlab": "acdlab-change-me"}
READY_TIMEOUT_S = 60.0
CHROOT_KEYS = "etc/asterisk/keys"  # where the chroot's Asterisk reads the TLS pair


def default_conf_dir() -> Path:
    return Path(__file__).resolve().parents[2] / "asterisk_conf"


@dataclass(frozen=True)
class LabSettings:
    dir: Path = DEFAULT_DIR
    host: str = "127.0.0.1"
    ami_port: int = 25038
    ami_tls_port: int = 25039  # manager.conf tlsbindaddr, with the lab's own cert (lab/tlscert.py)
    sip_port: int = 25060
    rtp_first: int = 31000
    rtp_last: int = 31999
    mirror: str | None = None  # None: ACDBRIDGE_LAB_MIRROR, else the host's apt sources (lab/build.py)
    conf_dir: Path = field(default_factory=default_conf_dir)

    @property
    def root(self) -> Path:
        return self.dir / "root"

    @property
    def state_file(self) -> Path:
        return self.dir / "lab.json"

    @property
    def console_log(self) -> Path:
        return self.dir / "asterisk-console.log"

    @property
    def tls_cert(self) -> Path:
        """The lab's AMI certificate: what a client names as `[ami] tls_ca`."""
        return self.dir / "tls/ami.crt"

    @property
    def tls_key(self) -> Path:
        return self.dir / "tls/ami.key"

    @property
    def queue_log(self) -> Path:
        return self.root / "var/log/asterisk/queue_log"

    @property
    def messages_log(self) -> Path:
        return self.root / "var/log/asterisk/messages.log"

    def overrides(self) -> list[Override]:
        return [
            Override("manager.conf", "general", "port", str(self.ami_port)),
            Override("manager.conf", "general", "bindaddr", self.host),
            Override("manager.conf", "general", "tlsenable", "yes"),
            Override("manager.conf", "general", "tlsbindaddr", f"{self.host}:{self.ami_tls_port}"),
            Override("manager.conf", "general", "tlscertfile", f"/{CHROOT_KEYS}/ami.crt"),
            Override("manager.conf", "general", "tlsprivatekey", f"/{CHROOT_KEYS}/ami.key"),
            Override("pjsip.conf", "transport-udp", "bind", f"{self.host}:{self.sip_port}"),
            Override("rtp.conf", "general", "rtpstart", str(self.rtp_first)),
            Override("rtp.conf", "general", "rtpend", str(self.rtp_last)),
        ]


@dataclass
class LabState:
    pid: int
    ami_port: int
    sip_port: int
    started_at: float
    mounts: list[str]
    uid: int = -1  # the uid Asterisk runs as: the host's acdbridge-lab (lab/identity.py)

    def save(self, path: Path) -> None:
        path.write_text(json.dumps(self.__dict__, indent=2) + "\n", encoding="utf-8")

    @classmethod
    def load(cls, path: Path) -> LabState | None:
        try:
            return cls(**json.loads(path.read_text(encoding="utf-8")))
        except (OSError, ValueError, TypeError):
            return None


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie child of ours is not alive
        with open(f"/proc/{pid}/stat", encoding="ascii") as f:
            return f.read().split(") ", 1)[1][0] != "Z"
    except OSError:
        return False


def require_root() -> None:
    if os.geteuid() != 0:
        raise LabError(
            "the lab needs root: it builds a chroot with mmdebstrap, mounts /proc and /dev in it, "
            "and starts Asterisk as the chroot's asterisk user",
            detail="run it as root (sudo acdbridge lab ...)",
        )


def check_port_free(host: str, port: int, kind: int, what: str) -> None:
    with socket.socket(socket.AF_INET, kind) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError as exc:
            proto = "TCP" if kind == socket.SOCK_STREAM else "UDP"
            raise LabError(
                f"port already taken: {host}:{port}/{proto} ({what}) is in use by another program",
                detail="stop that program or choose other lab ports (see 'acdbridge lab up --help')",
            ) from exc


def _mount(root: Path) -> list[str]:
    mounted: list[str] = []
    for target, args in (("proc", ["-t", "proc", "proc"]), ("dev", ["--bind", "/dev"])):
        path = root / target
        if subprocess.run(["mountpoint", "-q", str(path)], check=False).returncode != 0:
            subprocess.run(["mount", *args, str(path)], check=True)
            mounted.append(str(path))
    return mounted


def _unmount(paths: list[str]) -> None:
    for path in reversed(paths):
        if subprocess.run(["mountpoint", "-q", path], check=False).returncode == 0:
            res = subprocess.run(["umount", path], check=False, capture_output=True)
            if res.returncode != 0:  # still busy: detach now, kernel frees it when unused
                subprocess.run(["umount", "-l", path], check=False)


def _chown_asterisk_dirs(root: Path) -> None:
    for rel in ASTERISK_DIRS:
        (root / rel).mkdir(parents=True, exist_ok=True)
    # chown inside the chroot so the chroot's own asterisk uid/gid are used
    subprocess.run(
        [
            "chroot",
            str(root),
            "chown",
            "-R",
            "asterisk:asterisk",
            *("/" + d for d in ASTERISK_DIRS),
            "/etc/asterisk",
        ],
        check=True,
    )


def asterisk_cli(root: Path, command: str, timeout: float = 15.0) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["chroot", str(root), "asterisk", "-rx", command],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def running_state(settings: LabSettings) -> LabState | None:
    state = LabState.load(settings.state_file)
    if state is None or not _pid_alive(state.pid):
        return None
    return state


def _log_tail(settings: LabSettings, lines: int = 20) -> str:
    parts = []
    for path in (settings.console_log, settings.messages_log):
        with contextlib.suppress(OSError):
            text = path.read_text(encoding="utf-8", errors="replace").splitlines()[-lines:]
            parts.append(f"--- {path} ---\n" + "\n".join(text))
    return "\n".join(parts)


def _wait_ready(settings: LabSettings, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + READY_TIMEOUT_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise LabError(f"Asterisk failed to start (exit {proc.returncode})", detail=_log_tail(settings))
        res = asterisk_cli(settings.root, "core waitfullybooted", timeout=10)
        booted = res.returncode == 0 and "fully booted" in res.stdout
        plain = booted and _ami_banner(settings.host, settings.ami_port)
        if plain and _ami_banner(settings.host, settings.ami_tls_port, settings.tls_cert):
            return
        time.sleep(0.2)
    raise LabError(f"Asterisk did not become ready in {READY_TIMEOUT_S:.0f}s", detail=_log_tail(settings))


def _ami_banner(host: str, port: int, tls_ca: Path | None = None) -> bool:
    """The port greets as AMI; with tls_ca, over TLS verified against that cert."""
    try:
        with socket.create_connection((host, port), timeout=2) as raw:
            if tls_ca is None:
                return raw.recv(64).startswith(b"Asterisk Call Manager/")
            ctx = ssl.create_default_context(cafile=str(tls_ca))
            with ctx.wrap_socket(raw, server_hostname=host) as s:
                ok = s.recv(64).startswith(b"Asterisk Call Manager/")
                # a Logoff lets Asterisk end the TLS session itself: a probe that just closes
                # leaves "SSL_shutdown() failed" in its log
                s.sendall(b"Action: Logoff\r\n\r\n")
                while s.recv(4096):
                    pass
                return ok
    except OSError:  # ssl.SSLError too
        return False


def _own_identity(root: Path, say: Printer) -> identity.Identity:
    """The chroot's asterisk user becomes the host's acdbridge-lab (once), then is checked."""
    ident = identity.ensure_host_user(root)
    if identity.adopt(root, ident):
        say(f"the chroot's asterisk user is the host's {identity.LAB_USER} now (ids {ident.uid}/{ident.gid})")
    return identity.check_alone(root)


def _configure(settings: LabSettings, say: Printer) -> None:
    """asterisk_conf/ with the lab's ports, the TLS pair beside it, all owned by Asterisk's user."""
    etc = settings.root / "etc/asterisk"
    debian_samples = settings.root / "etc/asterisk.debian"
    if etc.exists() and not debian_samples.exists():
        etc.rename(debian_samples)  # keep Debian's samples for reference, never load them
    try:
        install(settings.conf_dir, etc, settings.overrides())
    except (OSError, ValueError) as exc:
        raise LabError(f"cannot install the Asterisk configuration from {settings.conf_dir}: {exc}") from exc
    if tlscert.ensure(settings.tls_cert, settings.tls_key):
        say(f"made the lab's AMI TLS certificate {settings.tls_cert} (key {settings.tls_key}, 0600)")
    keys = settings.root / CHROOT_KEYS
    keys.mkdir(parents=True, exist_ok=True)
    shutil.copy2(settings.tls_cert, keys / "ami.crt")
    shutil.copy2(settings.tls_key, keys / "ami.key")  # copy2 keeps the 0600
    _chown_asterisk_dirs(settings.root)


def _installed(etc: Path) -> dict[str, bytes]:
    return {f.name: f.read_bytes() for f in sorted(etc.glob("*.conf"))} if etc.is_dir() else {}


def _reconfigure(settings: LabSettings, say: Printer) -> bool:
    """A running lab gets the checkout's asterisk_conf/ too (a lab left up by an older checkout
    would otherwise test the old dialplan): installed again, and reloaded when it differs."""
    etc = settings.root / "etc/asterisk"
    before = _installed(etc)
    _configure(settings, say)
    if _installed(etc) == before:
        return False
    reloaded = asterisk_cli(settings.root, "core reload")
    if reloaded.returncode != 0:
        raise LabError(f"the running lab did not reload its changed configuration: {reloaded.stderr.strip()}")
    time.sleep(1.0)  # the reload is asynchronous: modules pick up their files after the command returns
    return True


def up(settings: LabSettings, say: Printer) -> LabState:
    """Build (first time), configure and start the lab; a no-op if it is already running."""
    require_root()
    state = running_state(settings)
    if state is not None:
        if _reconfigure(settings, say):
            say(f"lab already running (pid {state.pid}): its configuration changed, reloaded")
        else:
            say(f"lab already running (pid {state.pid})")
        return state
    check_port_free(settings.host, settings.ami_port, socket.SOCK_STREAM, "AMI")
    check_port_free(settings.host, settings.ami_tls_port, socket.SOCK_STREAM, "AMI over TLS")
    check_port_free(settings.host, settings.sip_port, socket.SOCK_DGRAM, "SIP")
    settings.dir.mkdir(parents=True, exist_ok=True)
    build_root(settings.root, settings.dir, say, settings.mirror)
    ident = _own_identity(settings.root, say)
    _configure(settings, say)
    mounts = _mount(settings.root)
    started = time.monotonic()
    with settings.console_log.open("wb") as console:
        proc = subprocess.Popen(
            ["chroot", str(settings.root), "asterisk", "-f", "-n", "-U", "asterisk", "-G", "asterisk"],
            stdin=subprocess.DEVNULL,
            stdout=console,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # outlives this command
        )
    state = LabState(proc.pid, settings.ami_port, settings.sip_port, time.time(), mounts, ident.uid)
    state.save(settings.state_file)
    try:
        _wait_ready(settings, proc)
    except LabError:
        _stop(settings, state)
        raise
    say(f"Asterisk ready in {time.monotonic() - started:.1f}s (pid {proc.pid}, uid {ident.uid})")
    return state


def describe(settings: LabSettings) -> str:
    users = ", ".join(f"{u}/{s}" for u, s in AMI_USERS.items())
    return (
        f"AMI  {settings.host}:{settings.ami_port}  users (user/secret): {users}\n"
        f"AMI over TLS  {settings.host}:{settings.ami_tls_port}  (tls_ca = {settings.tls_cert}, "
        f"server name {settings.host} or {tlscert.SERVER_NAME})\n"
        f"SIP  udp {settings.host}:{settings.sip_port}  (agents 1001-1010, callers from {settings.host})\n"
        f"queue_log  {settings.queue_log}"
    )


def _stop(settings: LabSettings, state: LabState) -> None:
    if _pid_alive(state.pid):
        with contextlib.suppress(subprocess.TimeoutExpired):
            asterisk_cli(settings.root, "core stop now", timeout=10)
        deadline = time.monotonic() + 10
        while _pid_alive(state.pid) and time.monotonic() < deadline:
            time.sleep(0.1)
        for sig in (signal.SIGTERM, signal.SIGKILL):
            if not _pid_alive(state.pid):
                break
            with contextlib.suppress(ProcessLookupError):
                os.kill(state.pid, sig)
            time.sleep(1)
    with contextlib.suppress(ChildProcessError):
        os.waitpid(state.pid, os.WNOHANG)
    _unmount(state.mounts or [str(settings.root / "dev"), str(settings.root / "proc")])
    settings.state_file.unlink(missing_ok=True)


def down(settings: LabSettings, say: Printer) -> None:
    require_root()
    state = LabState.load(settings.state_file)
    if state is None:
        # nothing recorded; still release mounts a crashed run may have left
        _unmount([str(settings.root / "dev"), str(settings.root / "proc")])
        say("lab is not running")
        return
    _stop(settings, state)
    say(f"lab stopped (pid {state.pid})")


def status(settings: LabSettings) -> tuple[bool, str]:
    state = running_state(settings)
    if state is None:
        built = "built" if (settings.root / "usr/sbin/asterisk").exists() else "not built"
        return False, f"lab is not running (chroot {built} in {settings.root})"
    version = asterisk_cli(settings.root, "core show version").stdout.strip()
    uptime = asterisk_cli(settings.root, "core show uptime seconds").stdout.strip().replace("\n", "; ")
    who = f"uid {state.uid} ({identity.LAB_USER})" if state.uid >= 0 else "uid not recorded"
    return True, (
        f"lab running, pid {state.pid}, {who}\n{version}\n{uptime}\n{describe(settings)}\n"
        f"chroot {built_from(settings.dir)}"
    )


def cli(settings: LabSettings, command: str) -> int:
    if running_state(settings) is None:
        raise LabError("lab is not running", detail="start it with: acdbridge lab up")
    res = asterisk_cli(settings.root, command)
    sys.stdout.write(res.stdout)
    sys.stderr.write(res.stderr)
    return res.returncode
