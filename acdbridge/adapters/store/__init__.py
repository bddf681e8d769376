"""The durable store of finished queue visits, agent state stretches, IVR legs and feedback.

SQLite (sqlite.py) is the embedded default; PostgreSQL (postgres.py) is chosen by `[store] url`
for sites that outgrow one file or run several PBXes. Both implement the `Store` protocol with the
same semantics: idempotent writes (a replayed or re-sent record is stored once), strict JSON, a
quarantine table for what cannot be written or loaded, and forward-only schema migrations
(schema.py) applied whenever a store is opened and by `acdbridge db upgrade`.

Nothing is dropped silently: a record that cannot be written (a NaN time, a value JSON cannot
carry) goes to the `quarantine` table with the error, is logged with its uniqueid and counted;
a stored row the daemon cannot load at start is moved there too (runtime/resume.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

from acdbridge.adapters.store.common import (
    TABLES,
    Record,
    Store,
    StoredRow,
    quarantine_text,
    strict_loads,
)
from acdbridge.adapters.store.postgres import PostgresStore, StoreUnavailable
from acdbridge.adapters.store.schema import LATEST as SCHEMA_VERSION
from acdbridge.adapters.store.sqlite import SqliteStore

__all__ = ["SCHEMA_VERSION", "TABLES", "PostgresStore", "Record", "SqliteStore", "Store", "StoreSettings",
           "StoreUnavailable", "StoredRow", "open_store", "quarantine_text", "strict_loads"]  # fmt: skip


class StoreSettings(Protocol):
    """What opening a store needs from the config (config.StoreConfig has it)."""

    @property
    def path(self) -> Path: ...
    @property
    def url(self) -> str | None: ...
    @property
    def password(self) -> str | None: ...
    @property
    def pbx(self) -> str: ...


def open_store(settings: StoreSettings, *, exclusive: bool = False) -> SqliteStore | PostgresStore:
    """The configured backend: PostgreSQL when a URL is set, else the SQLite file. exclusive=True
    is the daemon's open: a second daemon on the same store (and pbx id) is refused."""
    if settings.url:
        return PostgresStore(settings.url, exclusive=exclusive, pbx=settings.pbx, password=settings.password)
    return SqliteStore(settings.path, exclusive=exclusive, pbx=settings.pbx)
