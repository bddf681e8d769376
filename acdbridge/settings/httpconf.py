"""The `[http]` table: the web server's address, who may see what, and HTTPS (adapters/web/).

    [http]
    listen = "127.0.0.1:9108"
    board_public = false         # true: the wallboard without sign-in (a closed network's screens)
    token = "..."                # optional: a kiosk's key, ?token=... opens the wallboard
    metrics_token_file = "/etc/acdbridge/metrics-token"   # /metrics: Authorization: Bearer ...
    metrics_user = "prometheus"  # and/or basic auth, with metrics_password_file (or _password)
    tls_cert = "/etc/acdbridge/https.crt"   # HTTPS, with tls_key
    tls_key = "/etc/acdbridge/https.key"
    trusted_proxies = ["127.0.0.1"]          # whose X-Forwarded-For names the client (lockout)

/healthz is always open (probes). The cert and key are loaded here, so check-config names a
missing, unreadable or mismatched pair; the daemon loads them again when it starts."""

from __future__ import annotations

import ipaddress
import ssl
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from acdbridge.settings.problems import Problems, get, known, listen
from acdbridge.settings.secrets import secret

KEYS = {"listen", "token", "board_public", "metrics_token", "metrics_token_file", "metrics_user",
        "metrics_password", "metrics_password_file", "tls_cert", "tls_key", "trusted_proxies"}  # fmt: skip


@dataclass(frozen=True)
class HttpConfig:
    host: str = "127.0.0.1"
    port: int = 9108
    token: str | None = field(default=None, repr=False)  # a kiosk's key: ?token=... opens the wallboard
    board_public: bool = False  # the wallboard without sign-in
    metrics_token: str | None = field(default=None, repr=False)  # /metrics: Authorization: Bearer
    metrics_user: str | None = None  # /metrics: basic auth, with metrics_password
    metrics_password: str | None = field(default=None, repr=False)
    tls_cert: Path | None = None  # HTTPS, with tls_key
    tls_key: Path | None = None
    trusted_proxies: tuple[str, ...] = ()  # addresses or networks whose X-Forwarded-For is believed

    @property
    def tls(self) -> bool:
        return self.tls_cert is not None and self.tls_key is not None


def parse_http(p: Problems, t: dict[str, Any], env: Mapping[str, str]) -> HttpConfig:
    w = "http"
    known(p, t, w, KEYS)
    host, port = listen(p, t, w, "127.0.0.1:9108")
    token = get(p, t, "token", w, str, None, secret=True)
    if token is not None and not token.strip():
        p.error("http.token", "is empty, which would turn the token off: remove the key for no token")
        token = None
    metrics_token = secret(p, t, w, "metrics_token", "metrics-token", env)
    user = get(p, t, "metrics_user", w, str, None, empty=False)
    password = secret(p, t, w, "metrics_password", "metrics-password", env)
    if (user is None) != (password is None):
        p.error("http.metrics_user", "basic auth needs both metrics_user and metrics_password(_file)")
        user = password = None
    cert = _path(p, t, "tls_cert")
    key = _path(p, t, "tls_key")
    if (cert is None) != (key is None):
        p.error("http.tls_cert", "HTTPS needs both tls_cert and tls_key")
    elif cert is not None and key is not None:
        check_tls(p, cert, key)
    proxies = _proxies(p, t)
    board_public = get(p, t, "board_public", w, bool, False)
    return HttpConfig(host, port, token, board_public, metrics_token, user, password, cert, key, proxies)


def _path(p: Problems, t: dict[str, Any], key: str) -> Path | None:
    value = get(p, t, key, "http", str, None, empty=False)
    return None if value is None else Path(value)


def tls_context(cert: Path, key: Path) -> ssl.SSLContext:
    """The server's context: TLS 1.2 at least, Python's default ciphers."""
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(cert, key)
    return ctx


def check_tls(p: Problems, cert: Path, key: Path) -> None:
    """A missing or unreadable file, a file that is not PEM, a key not the cert's: each named."""
    for what, path in (("tls_cert", cert), ("tls_key", key)):
        try:
            path.read_bytes()
        except OSError as exc:
            p.error(f"http.{what}", f"cannot read {path}: {exc.strerror or exc}")
            return
    try:
        tls_context(cert, key)
    except ssl.SSLError as exc:
        why = "the key does not match the certificate" if "KEY_VALUES_MISMATCH" in str(exc) else (
            f"not a PEM certificate and key ({exc.reason or exc})")  # fmt: skip
        p.error("http.tls_cert", f"{cert} / {key}: {why}")


def _proxies(p: Problems, t: dict[str, Any]) -> tuple[str, ...]:
    values = get(p, t, "trusted_proxies", "http", list, [])
    out = []
    for value in values:
        try:
            out.append(str(ipaddress.ip_network(value, strict=False)))
        except (ValueError, TypeError):
            p.error("http.trusted_proxies", f"{value!r} is not an IP address or network (e.g. 10.0.0.0/8)")
    return tuple(out)
