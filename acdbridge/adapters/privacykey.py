"""The site's pseudonym key (docs/privacy.md): 32 random bytes, hex, in a file made 0600 on first
use (`[privacy] key_file`, default beside the store). Whoever holds it can test a guessed number
against a pseudonym, so it is as private as the store; whoever loses it loses only the link from
new pseudonyms to old ones (a new key is made, and repeat callers across the change are two)."""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from acdbridge.errors import AcdError

KEY_BYTES = 32


class KeyUnusable(AcdError):
    """The key file exists but cannot be read or is not a key: never replaced silently, as a
    new key would cut every old pseudonym off from new ones."""

    code = "privacy"
    exit_status = 2


def read_key(path: Path) -> bytes | None:
    """The key, or None when there is no key file yet."""
    try:
        text = path.read_text(encoding="ascii").strip()
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as exc:
        raise KeyUnusable(f"pseudonym key {path} cannot be read: {exc}") from None
    try:
        key = bytes.fromhex(text)
    except ValueError:
        key = b""
    if len(key) < KEY_BYTES:
        raise KeyUnusable(f"pseudonym key {path} is not {KEY_BYTES * 2} hex digits: restore the site's "
                          "key file (a new one would make new pseudonyms unlike the old)")  # fmt: skip
    return key


def load_or_create(path: Path) -> bytes:
    """The key, made (0600, atomically: O_EXCL, so two processes never make two) if missing."""
    key = read_key(path)
    if key is not None:
        return key
    path.parent.mkdir(parents=True, exist_ok=True)
    key = secrets.token_bytes(KEY_BYTES)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:  # made meanwhile by another process: that one is the key
        return read_key(path) or key
    except OSError as exc:
        raise KeyUnusable(f"pseudonym key {path} cannot be created: {exc.strerror or exc}") from None
    try:
        os.write(fd, key.hex().encode() + b"\n")
        os.fsync(fd)
    finally:
        os.close(fd)
    return key
