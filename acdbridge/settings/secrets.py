"""Secrets (the AMI secret, the MQTT password) without built-in defaults. In order:
- the key itself in the config (`secret = "..."`: fine for the lab, whose secret is public),
- a file named by `secret_file` / `password_file` (one trailing newline is stripped, as `echo`
  writes it; a warning when the file is readable by group or others),
- a systemd credential: `$CREDENTIALS_DIRECTORY/<name>` (`LoadCredential=ami-secret:/etc/...`).
A secret's value is never put into a message."""

from __future__ import annotations

import os
import stat
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from acdbridge.settings.problems import Problems, dotted, get


def secret(
    p: Problems, t: dict[str, Any], where: str, key: str, credential: str, env: Mapping[str, str]
) -> str | None:
    """The secret from `key`, `<key>_file` or the credential `credential`; None when none is given."""
    file_key = f"{key}_file"
    if key in t and file_key in t:
        p.error(dotted(where, key), f"give either {key} or {file_key}, not both")
    if key in t:
        value = get(p, t, key, where, str, None, secret=True)
        if value is not None and not value:
            p.error(dotted(where, key), "is empty")
        return value or None
    if file_key in t:
        path = get(p, t, file_key, where, str, None, empty=False)
        return None if path is None else _read(p, Path(path), dotted(where, file_key), warn_mode=True)
    directory = env.get("CREDENTIALS_DIRECTORY")
    if directory and (Path(directory) / credential).is_file():
        where_from = f"{dotted(where, key)} (credential {credential} in $CREDENTIALS_DIRECTORY)"
        return _read(p, Path(directory) / credential, where_from, warn_mode=False)
    return None


def _read(p: Problems, path: Path, key: str, *, warn_mode: bool) -> str | None:
    try:
        raw = path.read_bytes()
        mode = path.stat().st_mode
    except OSError as exc:
        p.error(key, f"cannot read {path}: {exc.strerror or exc}")
        return None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        p.error(key, f"{path} is not UTF-8 text")
        return None
    text = text.removesuffix("\n").removesuffix("\r")
    if not text:
        p.error(key, f"{path} is empty")
        return None
    if warn_mode and mode & (stat.S_IRWXG | stat.S_IRWXO):
        p.warn(key, f"{path} is readable by others (mode {stat.S_IMODE(mode):04o}); chmod 600 it")
    return text


def file_readable_by_others(path: Path) -> bool:
    try:
        return bool(os.stat(path).st_mode & (stat.S_IRGRP | stat.S_IROTH))
    except OSError:
        return False
