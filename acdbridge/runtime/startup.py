"""What `acdbridge run` checks and opens before it serves: each failure is one AcdError with its
own code and exit status (acdbridge/errors.py, docs/daemon.md), printed as one line by the CLI,
never a traceback."""

from __future__ import annotations

import contextlib
import errno
import sqlite3
from collections.abc import Awaitable, Callable
from pathlib import Path

from acdbridge.adapters.store import SqliteStore
from acdbridge.errors import DirectoryUnreadable, StartupError
from acdbridge.flowconfig import FlowConfig


def open_store(path: Path) -> SqliteStore:
    """The daemon's store, locked against a second daemon (StoreUnusable / StoreLocked)."""
    return SqliteStore(path, exclusive=True)


def check_directory(flow: FlowConfig | None) -> None:
    """The caller directory must be readable now: at the first call would be too late to say so."""
    path = flow.directory if flow is not None else None
    if path is None:
        return
    try:
        if path.suffix.lower() == ".csv":
            with path.open(encoding="utf-8-sig", newline="") as f:
                f.readline()
        else:
            uri = f"{path.resolve().as_uri()}?mode=ro"
            with contextlib.closing(sqlite3.connect(uri, uri=True, timeout=0.5)) as db:
                db.execute("SELECT count(*) FROM callers").fetchone()
    except (OSError, UnicodeDecodeError, sqlite3.Error) as exc:
        raise DirectoryUnreadable(f"caller directory {path} is unreadable: {exc}") from None


async def listen(what: str, address: str, start: Callable[[], Awaitable[None]],
                 in_use: type[StartupError]) -> None:  # fmt: skip
    try:
        await start()
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            raise in_use(f"{what} port {address} is already in use (another daemon?)") from None
        raise StartupError(f"{what} cannot listen on {address}: {exc.strerror or exc}") from None
