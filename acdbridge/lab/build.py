"""Building the lab's Debian sid chroot with mmdebstrap, from the host's own apt sources.

mmdebstrap given no mirror does not read the host's sources: it uses deb.debian.org. Sites and
CI machines often have their own mirror or caching proxy, so the lab picks the host's Debian
archive entry (sources.list, *.list, deb822 *.sources) and asks it for sid instead of the host's
suite; ACDBRIDGE_LAB_MIRROR overrides that, and deb.debian.org is the last resort. The host's
apt proxy (Acquire::http::Proxy) is passed on. What was used is printed and kept in
`sources.txt` in the lab directory."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from acdbridge.errors import LabError

Printer = Callable[[str], None]
FALLBACK_MIRROR = "http://deb.debian.org/debian"
PACKAGES = ("asterisk", "asterisk-core-sounds-en-gsm", "asterisk-moh-opsound-gsm")
SUITE = "sid"
# the suites that name a Debian release archive (not -security, -updates or a vendor's repository)
_ALIASES = {"oldstable", "stable", "testing", "unstable", "sid"}
_ONE_LINE = re.compile(r"^deb\s+(?:\[[^\]]*\]\s+)?(\S+)\s+(\S+)")


@dataclass(frozen=True)
class Sources:
    mirror: str
    origin: str  # where the mirror came from, in words
    proxy: str | None = None

    def describe(self) -> str:
        via = f", through the proxy {self.proxy}" if self.proxy else ""
        return f"{self.mirror} (suite {SUITE}; {self.origin}{via})"


def _deb822(text: str) -> list[tuple[str, str]]:
    """(uri, suite) of each enabled `Types: deb` stanza of a .sources file."""
    out: list[tuple[str, str]] = []
    for stanza in re.split(r"\n\s*\n", text):
        fields: dict[str, str] = {}
        key = ""
        for line in stanza.splitlines():
            if line.startswith("#") or not line.strip():
                continue
            if line[0].isspace() and key:  # a continuation line
                fields[key] += " " + line.strip()
                continue
            key, _, value = line.partition(":")
            key = key.strip().lower()
            fields[key] = value.strip()
        if "deb" in fields.get("types", "").split() and fields.get("enabled", "yes").lower() != "no":
            out += [(u, s) for u in fields.get("uris", "").split() for s in fields.get("suites", "").split()]
    return out


def _one_line(text: str) -> list[tuple[str, str]]:
    return [(m[1], m[2]) for line in text.splitlines() if (m := _ONE_LINE.match(line.strip()))]


def host_codename(os_release: Path = Path("/etc/os-release")) -> str:
    try:
        text = os_release.read_text(encoding="utf-8")
    except OSError:
        return ""
    m = re.search(r"^VERSION_CODENAME=\"?([^\"\n]*)", text, re.MULTILINE)
    return m[1] if m else ""


def host_archive(apt_dir: Path = Path("/etc/apt"), codename: str | None = None) -> tuple[str, Path] | None:
    """(URI, file) of the host's first Debian release archive entry over http(s), or None."""
    release = {*_ALIASES, codename if codename is not None else host_codename()} - {""}
    files = [apt_dir / "sources.list"] if (apt_dir / "sources.list").is_file() else []
    parts = apt_dir / "sources.list.d"
    files += sorted(p for p in parts.glob("*") if p.suffix in (".list", ".sources")) if parts.is_dir() else []
    for path in files:
        try:
            text = path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            continue
        for uri, suite in _deb822(text) if path.suffix == ".sources" else _one_line(text):
            if suite in release and uri.startswith(("http://", "https://")):
                return uri.rstrip("/"), path
    return None


def host_proxy() -> str | None:
    """The host apt's Acquire::http::Proxy, if set (mmdebstrap's apt does not read the host's
    apt.conf)."""
    try:
        out = subprocess.run(["apt-config", "shell", "P", "Acquire::http::Proxy"], capture_output=True,
                             text=True, timeout=10, check=False).stdout  # fmt: skip
    except (OSError, subprocess.TimeoutExpired):
        return None
    m = re.match(r"P='([^']*)'", out.strip())
    return m[1] if m and m[1] and m[1].upper() != "DIRECT" else None


def choose_sources(override: str | None = None, apt_dir: Path = Path("/etc/apt")) -> Sources:
    proxy = host_proxy()
    override = override if override is not None else os.environ.get("ACDBRIDGE_LAB_MIRROR") or None
    if override:
        return Sources(override.rstrip("/"), "ACDBRIDGE_LAB_MIRROR", proxy)
    found = host_archive(apt_dir)
    if found is not None:
        return Sources(found[0], f"the host's apt sources, {found[1]}", proxy)
    return Sources(FALLBACK_MIRROR, f"no Debian archive in the host's apt sources ({apt_dir})", proxy)


def check_mirror(sources: Sources, timeout: float = 15.0) -> None:
    url = f"{sources.mirror}/dists/{SUITE}/Release"
    handlers = [urllib.request.ProxyHandler({"http": sources.proxy})] if sources.proxy else []
    try:
        with urllib.request.build_opener(*handlers).open(
            urllib.request.Request(url, method="HEAD"), timeout=timeout
        ):
            pass
    except (urllib.error.URLError, OSError) as exc:
        raise LabError(
            f"package mirror unreachable: {url} ({exc}); it came from {sources.origin}",
            detail="the first 'lab up' downloads Asterisk from Debian sid; "
            "set ACDBRIDGE_LAB_MIRROR to a reachable mirror that carries sid",
        ) from exc


def record(lab_dir: Path, root: Path, sources: Sources | None) -> Path:
    """sources.txt: what the chroot was built from, and the apt sources it holds now."""
    path = lab_dir / "sources.txt"
    chroot_apt = [root / "etc/apt/sources.list", *sorted((root / "etc/apt/sources.list.d").glob("*"))]
    listed = "".join(
        f"# {p.relative_to(root)}\n{p.read_text(errors='replace')}" for p in chroot_apt if p.is_file()
    )
    said = (
        sources.describe() if sources else "not recorded (the chroot was built before the lab kept this file)"
    )
    path.write_text(f"built from: {said}\n\nthe chroot's apt sources:\n{listed}", encoding="utf-8")
    return path


def built_from(lab_dir: Path) -> str:
    """The first line of sources.txt, for `lab status`."""
    try:
        return (lab_dir / "sources.txt").read_text(encoding="utf-8").splitlines()[0]
    except (OSError, IndexError):
        return "built from: not recorded"


def build_root(root: Path, lab_dir: Path, say: Printer, mirror: str | None = None) -> bool:
    """Build the sid chroot unless it exists (True if it was built now). An existing chroot is
    never rebuilt; it only gets a sources.txt if it has none."""
    if (root / "usr/sbin/asterisk").exists():
        if not (lab_dir / "sources.txt").exists():
            record(lab_dir, root, None)
        return False
    if shutil.which("mmdebstrap") is None:
        raise LabError(
            "mmdebstrap is not installed", detail="apt-get install mmdebstrap (make demo / make test do it)"
        )
    sources = choose_sources(mirror)
    say(f"chroot sources: {sources.describe()}")
    check_mirror(sources)
    lab_dir.mkdir(parents=True, exist_ok=True)
    partial = lab_dir / "root.partial"
    shutil.rmtree(partial, ignore_errors=True)
    cmd = ["mmdebstrap", "--variant=apt",
           # sid's Release file can be older than the clock; apt would refuse it
           '--aptopt=Acquire::Check-Valid-Until "false"',
           *([f'--aptopt=Acquire::http::Proxy "{sources.proxy}"'] if sources.proxy else []),
           "--include=" + ",".join(PACKAGES), SUITE, str(partial), sources.mirror]  # fmt: skip
    say(f"building the Asterisk 22 chroot in {root} (first run only; about 20 s and 340 MB)")
    started = time.monotonic()
    _run_logged(cmd, lab_dir / "build.log", say, started)
    partial.rename(root)
    recorded = record(lab_dir, root, sources)
    say(f"chroot built in {time.monotonic() - started:.1f}s; its sources are in {recorded}")
    return True


def _run_logged(cmd: list[str], build_log: Path, say: Printer, started: float) -> None:
    with build_log.open("w", encoding="utf-8") as log:
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        assert proc.stdout is not None
        for line in proc.stdout:
            log.write(line)
            if line.startswith(("I:", "E:", "W:")):
                say(f"  [{time.monotonic() - started:5.1f}s] {line.rstrip()}")
        rc = proc.wait()
    if rc != 0:
        tail = "".join(build_log.read_text(encoding="utf-8").splitlines(keepends=True)[-15:])
        raise LabError(
            f"building the chroot failed (mmdebstrap exit {rc}); full log in {build_log}", detail=tail
        )
