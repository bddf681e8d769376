"""The lab's AMI TLS certificate, made with openssl: self-signed (it is its own CA, so a client
trusts it with `[ami] tls_ca = <the cert>`), for 127.0.0.1 and the name `acdbridge-lab`. The key
is 0600; only the lab's Asterisk user gets a copy it can read (lab/pbx.py)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from acdbridge.errors import LabError

SERVER_NAME = "acdbridge-lab"
DAYS = 3650


def make_self_signed(cert: Path, key: Path, name: str = SERVER_NAME, ip: str = "127.0.0.1") -> None:
    """Write a new key (0600) and certificate for `name` and `ip`; LabError naming openssl's
    complaint when it fails."""
    cert.parent.mkdir(parents=True, exist_ok=True)
    key.unlink(missing_ok=True)
    old = os.umask(0o077)  # the key is never readable by others, not even for an instant
    try:
        res = subprocess.run(
            ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
             "-nodes", "-days", str(DAYS), "-subj", f"/CN={name}",
             "-addext", f"subjectAltName=DNS:{name},IP:{ip}", "-keyout", str(key), "-out", str(cert)],
            capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise LabError(f"cannot run openssl to make the lab's AMI certificate: {exc}") from exc
    finally:
        os.umask(old)
    if res.returncode != 0:
        raise LabError(f"openssl could not make the lab's AMI certificate {cert}", detail=res.stderr[-1500:])
    cert.chmod(0o644)  # the certificate is public: clients trust it


def ensure(cert: Path, key: Path) -> bool:
    """Make the pair unless both exist; True if made now (reused across lab up/down)."""
    if cert.is_file() and key.is_file():
        return False
    make_self_signed(cert, key)
    return True
