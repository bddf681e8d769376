"""TLS to the PBX's manager interface (manager.conf `tlsenable`): the client context built from
`[ami]`, and one place that turns a failed handshake into a sentence naming the cause. Both the
daemon's link (adapters/ami.py) and `check-config --pbx` (amisession.py) use it, so they fail
with the same words."""

from __future__ import annotations

import ssl

from acdbridge.settings.amiconf import AmiConfig


def client_context(cfg: AmiConfig) -> ssl.SSLContext | None:
    """None for plain TCP. With tls_verify (the default) the chain is checked against tls_ca (or
    the system's CAs) and the name against tls_server_name (or host; an IP matches an IP SAN)."""
    if not cfg.tls:
        return None
    ctx = ssl.create_default_context(cafile=str(cfg.tls_ca) if cfg.tls_ca else None)
    if not cfg.tls_verify:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    return ctx


def server_name(cfg: AmiConfig) -> str | None:
    """The name the certificate must carry (and the SNI sent); None without TLS."""
    return (cfg.tls_server_name or cfg.host) if cfg.tls else None


def describe_failure(cfg: AmiConfig, exc: BaseException) -> str | None:
    """A handshake failure in words, or None when `exc` is not one (a refused TCP connection is
    said by the caller as for plain TCP)."""
    where = f"{cfg.host}:{cfg.port}"
    if isinstance(exc, ssl.SSLCertVerificationError):
        trust = f"ami.tls_ca = {cfg.tls_ca}" if cfg.tls_ca else "the system's CAs (set ami.tls_ca)"
        return (
            f"TLS: the PBX's certificate at {where} is not trusted ({exc.verify_message}): checked "
            f"against {trust} for the name {server_name(cfg)!r} (ami.tls_server_name)"
        )
    if isinstance(exc, ssl.SSLError):
        reason = exc.reason or str(exc)
        if reason in ("WRONG_VERSION_NUMBER", "RECORD_LAYER_FAILURE", "PACKET_LENGTH_TOO_LONG",
                      "HTTP_REQUEST", "UNKNOWN_PROTOCOL"):  # fmt: skip
            return (
                f"TLS: {where} does not speak TLS ({reason}): a plain-TCP AMI port? the TLS listener "
                "is manager.conf's tlsbindaddr; or set ami.tls = false"
            )
        return f"TLS: the handshake with {where} failed: {reason}"
    if isinstance(exc, (ConnectionResetError, EOFError, ssl.SSLEOFError)):
        return f"TLS: {where} closed the connection during the handshake ({exc or type(exc).__name__})"
    return None
