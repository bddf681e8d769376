"""The caller directory: caller number -> account, name, address, area, VIP flag, language.

A CSV file (header: number,account,name,address,area,vip,language) is read into memory and read
again when its modification time changes; an SQLite file (table `callers` with those columns) is
queried per call. Either way a lookup never raises: a broken directory logs an error and the
caller is treated as unknown, so the greeting goes on."""

from __future__ import annotations

import contextlib
import csv
import sqlite3
from pathlib import Path

import structlog

from acdbridge.core.ivr import Caller

log = structlog.get_logger("acdbridge.directory")
COLUMNS = ("number", "account", "name", "address", "area", "vip", "language")
TRUE = {"1", "yes", "true", "y", "vip"}


def normalise(number: str) -> str:
    """Digits only, without a leading + or 00, so "+86 10 1234" and "0086101234" meet."""
    digits = "".join(c for c in number if c.isdigit())
    return digits[2:] if digits.startswith("00") else digits


def _caller(row: dict[str, str]) -> Caller:
    return Caller(
        number=row.get("number", ""), account=row.get("account") or "", name=row.get("name") or "",
        address=row.get("address") or "", area=row.get("area") or "",
        vip=(row.get("vip") or "").strip().lower() in TRUE, language=(row.get("language") or "").strip(),
    )  # fmt: skip


class Directory:
    def __init__(self, path: Path | None) -> None:
        self.path = path
        self._rows: dict[str, Caller] = {}
        self._mtime: float | None = None
        self.errors = 0

    def lookup(self, number: str) -> Caller | None:
        key = normalise(number)
        if self.path is None or not key:
            return None
        try:
            if self.path.suffix.lower() == ".csv":
                self._reload_csv()
                return self._rows.get(key)
            return self._query(key)
        except (OSError, sqlite3.Error, csv.Error, UnicodeDecodeError) as exc:
            self.errors += 1
            log.error("directory_unreadable", path=str(self.path), problem=str(exc))
            return None

    def _reload_csv(self) -> None:
        assert self.path is not None
        mtime = self.path.stat().st_mtime
        if mtime == self._mtime:
            return
        with self.path.open(encoding="utf-8-sig", newline="") as f:  # -sig: Excel's "CSV UTF-8" has a BOM
            reader = csv.DictReader(f)
            missing = {"number"} - set(reader.fieldnames or ())
            if missing:
                raise csv.Error(f"no {sorted(missing)} column in the header {reader.fieldnames}")
            self._rows = {normalise(r["number"]): _caller(r) for r in reader if r.get("number")}
        self._mtime = mtime
        log.info("directory_loaded", path=str(self.path), callers=len(self._rows))

    def _query(self, key: str) -> Caller | None:
        assert self.path is not None
        # read-only, a short timeout: a locked directory must not hold the greeting up
        uri = f"{self.path.resolve().as_uri()}?mode=ro"
        with contextlib.closing(sqlite3.connect(uri, uri=True, timeout=0.5)) as db:
            db.row_factory = sqlite3.Row
            # numbers stored as typed ("+86 138 ...") match like the CSV's: the index serves the
            # exact match, the normalised comparison the rest
            db.create_function("acd_norm", 1, normalise, deterministic=True)
            sql = f"SELECT {', '.join(COLUMNS)} FROM callers WHERE number = ? OR acd_norm(number) = ? LIMIT 1"
            row = db.execute(sql, (key, key)).fetchone()
        return _caller({k: str(row[k]) if row[k] is not None else "" for k in COLUMNS}) if row else None
