"""The `[ami]` table: how to reach and watch the PBX's Asterisk Manager Interface
(adapters/ami.py connects with it)."""

from __future__ import annotations

import ssl
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from acdbridge.settings.problems import Problems, get, known
from acdbridge.settings.secrets import secret


@dataclass(frozen=True)
class AmiConfig:
    host: str = "127.0.0.1"
    port: int = 5038
    username: str = "acdbridge"
    secret: str = field(default="", repr=False)  # no default: the file, secret_file or a credential
    ping_interval_s: float = 10.0
    action_timeout_s: float = 5.0
    reconnect_min_s: float = 0.5
    reconnect_max_s: float = 30.0
    capture: Path | None = None
    queue_log: Path | None = None  # Asterisk's queue_log: visits that ended in a gap (core/gap.py)
    tls: bool = False  # manager.conf tlsenable: port is then the tlsbindaddr port (settings/amitls.py)
    tls_ca: Path | None = None  # trust this CA (or the PBX's own cert) instead of the system's
    tls_server_name: str | None = None  # the name the PBX's cert carries, when host is not it
    tls_verify: bool = True


def parse_ami(p: Problems, t: dict[str, Any], env: Mapping[str, str], require_secret: bool) -> AmiConfig:
    w, d = "ami", AmiConfig()
    known(p, t, w, (set(AmiConfig.__dataclass_fields__) | {"secret_file"}))
    the_secret = secret(p, t, w, "secret", "ami-secret", env)
    if require_secret and the_secret is None and not {"secret", "secret_file"} & set(t):
        p.error(
            "ami.secret",
            "missing: set ami.secret_file (chmod 600), ami.secret, or the systemd "
            "credential ami-secret (LoadCredential=ami-secret:/path)",
        )
    low = get(p, t, "reconnect_min_s", w, float, d.reconnect_min_s, lo=0.05, hi=3600)
    high = get(p, t, "reconnect_max_s", w, float, d.reconnect_max_s, lo=0.05, hi=3600)
    if high < low:
        p.error("ami.reconnect_max_s", f"smaller than ami.reconnect_min_s ({high:g} < {low:g})")
    capture = get(p, t, "capture", w, str, None, empty=False)
    queue_log = get(p, t, "queue_log", w, str, None, empty=False)
    tls = _tls(p, t, w)
    return AmiConfig(
        host=get(p, t, "host", w, str, d.host, empty=False),
        port=get(p, t, "port", w, int, d.port, lo=1, hi=65535),
        username=get(p, t, "username", w, str, d.username, empty=False), secret=the_secret or "",
        ping_interval_s=get(p, t, "ping_interval_s", w, float, d.ping_interval_s, lo=1, hi=3600),
        action_timeout_s=get(p, t, "action_timeout_s", w, float, d.action_timeout_s, lo=0.5, hi=300),
        reconnect_min_s=low, reconnect_max_s=high, capture=Path(capture) if capture else None,
        queue_log=Path(queue_log) if queue_log else None, **tls,
    )  # fmt: skip


def _tls(p: Problems, t: dict[str, Any], w: str) -> dict[str, Any]:
    """The tls keys; the others only mean something with tls = true, so alone they are errors
    (a CA given to a plain link would look like protection that is not there)."""
    d = AmiConfig()
    tls = get(p, t, "tls", w, bool, d.tls)
    ca = get(p, t, "tls_ca", w, str, None, empty=False)
    name = get(p, t, "tls_server_name", w, str, None, empty=False)
    verify = get(p, t, "tls_verify", w, bool, d.tls_verify)
    for key in ("tls_ca", "tls_server_name", "tls_verify"):
        if key in t and not tls:
            p.error(f"ami.{key}", "given but ami.tls is not true")
    if ca is not None and not Path(ca).is_file():
        p.error("ami.tls_ca", f"no such file: {ca} (a PEM CA or the PBX's own certificate)")
    elif ca is not None and not _pem(Path(ca)):
        p.error("ami.tls_ca", f"{ca} is not readable PEM certificates")
    if tls and not verify:
        p.warn(
            "ami.tls_verify", "false: the PBX's certificate is not checked (anyone on the path can read AMI)"
        )
    return {"tls": tls, "tls_ca": Path(ca) if ca else None, "tls_server_name": name, "tls_verify": verify}


def _pem(path: Path) -> bool:
    try:
        ssl.create_default_context(cafile=str(path))
    except (OSError, ssl.SSLError):
        return False
    return True
