"""Files holding callers' data are made 0600 whatever the umask (docs/privacy.md): captures,
exports. The store, journal, checkpoint and key make their own the same way."""

from __future__ import annotations

import io
import os
import sys
from pathlib import Path
from typing import BinaryIO, TextIO


def private_file(path: Path) -> BinaryIO:
    """`path` opened for writing (truncated), owner-only; an older file made 0644 becomes 0600."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.fchmod(fd, 0o600)
    except OSError:
        os.close(fd)
        raise
    return os.fdopen(fd, "wb")


def text_output(path: Path | None) -> TextIO:
    """`acdbridge export --output`: a private text file (UTF-8, newlines as written); else stdout."""
    if path is None:
        return sys.stdout
    return io.TextIOWrapper(private_file(path), encoding="utf-8", newline="")
