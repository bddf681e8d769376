"""The `recordings` rows both backends share (docs/recording.md): one row per call recorded by
the PBX's MixMonitor, written once by the recording indexer (runtime/recordings.py) when the
file is complete -- its name, size, duration and SHA-256 -- and marked deleted when the privacy
retention removes the file. Keyed by (pbx, uniqueid): the caller's channel, as the visit's."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

_COLUMNS = ("uniqueid", "file", "bytes", "duration_s", "sha256", "recorded_at", "indexed_at", "deleted_at")


@dataclass(frozen=True)
class Recording:
    uniqueid: str
    file: str  # the file's name in [recording] dir
    bytes: int
    duration_s: float
    sha256: str
    recorded_at: float  # the file's last write: the call's end
    indexed_at: float
    deleted_at: float | None = None


class RecordingRows:
    pbx: str

    def _select(self, sql: str, args: list[Any]) -> list[Any]:
        raise NotImplementedError

    def _change(self, sql: str, args: list[Any]) -> int:
        raise NotImplementedError

    def _sql(self, sql: str) -> str:
        raise NotImplementedError

    def put_recording(self, r: Recording) -> bool:
        """Insert once; a row already there (an indexer restarted mid-scan) is kept. New?"""
        sql = (f"INSERT INTO recordings (pbx, {', '.join(_COLUMNS)}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) "
               "ON CONFLICT (pbx, uniqueid) DO NOTHING")  # fmt: skip
        values = [self.pbx, r.uniqueid, r.file, r.bytes, r.duration_s, r.sha256, r.recorded_at,
                  r.indexed_at, r.deleted_at]  # fmt: skip
        return self._change(self._sql(sql), values) > 0

    def recording(self, uniqueid: str) -> Recording | None:
        sql = f"SELECT {', '.join(_COLUMNS)} FROM recordings WHERE pbx = ? AND uniqueid = ?"
        rows = self._select(self._sql(sql), [self.pbx, uniqueid])
        return _recording(rows[0]) if rows else None

    def recorded_files(self) -> set[str]:
        """The files indexed already, deleted ones included (a deleted file is never re-indexed)."""
        return {
            r[0] for r in self._select(self._sql("SELECT file FROM recordings WHERE pbx = ?"), [self.pbx])
        }

    def recordings_before(self, ts: float, limit: int = 1000) -> list[Recording]:
        """Files still on disk recorded before `ts`, oldest first: the retention's to delete."""
        sql = (f"SELECT {', '.join(_COLUMNS)} FROM recordings WHERE pbx = ? AND deleted_at IS NULL "
               "AND recorded_at < ? ORDER BY recorded_at LIMIT ?")  # fmt: skip
        return [_recording(r) for r in self._select(self._sql(sql), [self.pbx, ts, limit])]

    def recording_deleted(self, uniqueid: str, ts: float) -> None:
        self.recording_erased(self.pbx, uniqueid, ts)

    def recording_erased(self, pbx: str, uniqueid: str, ts: float) -> None:
        """The file is gone (the retention, an erasure): the row stays, marked, never re-indexed."""
        sql = "UPDATE recordings SET deleted_at = ? WHERE pbx = ? AND uniqueid = ? AND deleted_at IS NULL"
        self._change(self._sql(sql), [ts, pbx, uniqueid])

    def recordings_of(self, calls: Iterable[tuple[str, str]]) -> dict[tuple[str, str], Recording]:
        """The rows of these (pbx, uniqueid) calls, any PBX's, deleted ones too: an erasure's."""
        sql = self._sql(f"SELECT {', '.join(_COLUMNS)} FROM recordings WHERE pbx = ? AND uniqueid = ?")
        found: dict[tuple[str, str], Recording] = {}
        for pbx, uid in calls:  # one caller's calls: a handful of point reads by the primary key
            rows = self._select(sql, [pbx, uid])
            if rows:
                found[(pbx, uid)] = _recording(rows[0])
        return found


def _recording(row: tuple[Any, ...]) -> Recording:
    uid, file, size, duration, sha, recorded, indexed, deleted = row
    return Recording(uid, file, int(size), float(duration), sha, float(recorded), float(indexed),
                     None if deleted is None else float(deleted))  # fmt: skip
