"""The recording indexer (docs/recording.md): every `[recording] scan_s` it looks at the PBX's
monitor directory, and each complete `acdbridge-<uniqueid>.wav` (MixMonitor's, started by the
dialplan when the caller consented) it has not seen becomes one `recordings` row -- its size,
duration (the WAV header's) and SHA-256 -- written once by key, so a restart or a second scan
never doubles it. Files recorded before `[privacy] retain_days` are deleted and their rows
marked. Off the event loop (a worker thread per scan); a missing directory is logged, not fatal.

Why files, not AMI: MixMonitor's own events need the `call` read class and carry no duration or
checksum; the file is the record, and a scan also catches files written while the daemon was down."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import struct
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import structlog

from acdbridge.adapters.store.recordings import Recording
from acdbridge.errors import StoreUnusable
from acdbridge.settings.recordconf import RecordingConfig

log = structlog.get_logger("acdbridge.recordings")
PREFIX, SUFFIX = "acdbridge-", ".wav"
SETTLE_S = 5.0  # a file untouched this long is complete (MixMonitor writes it until the hang-up)
ABANDONED_S = 3600.0  # a header unfinished this long will never be: index what the file holds
WAV_HEADER = 44  # format_wav's header: RIFF, fmt and data chunk heads, nothing else
MAX_PER_SCAN = 1000


class RecordingStore(Protocol):
    def put_recording(self, r: Recording) -> bool: ...
    def recorded_files(self) -> set[str]: ...
    def recordings_before(self, ts: float, limit: int = 1000) -> list[Recording]: ...
    def recording_deleted(self, uniqueid: str, ts: float) -> None: ...


def uniqueid_of(name: str) -> str | None:
    """The caller's uniqueid from the dialplan's file name, None for any other file."""
    if not (name.startswith(PREFIX) and name.endswith(SUFFIX)) or len(name) <= len(PREFIX) + len(SUFFIX):
        return None
    return name[len(PREFIX) : -len(SUFFIX)]


def describe(path: Path, now: float) -> Recording | None:
    """A complete recording's row; None while it is still written or when it is no WAV file.

    Complete = settled and its header's data size covers the file: Asterisk's format_wav writes
    the sizes only when MixMonitor closes the file at the caller's hang-up, and the file can sit
    untouched for a while before that (the survey after the agent's hang-up, stdio buffering).
    A header never finished (Asterisk killed) is taken as it is after ABANDONED_S."""
    uid = uniqueid_of(path.name)
    st = path.stat()
    if uid is None or now - st.st_mtime < SETTLE_S:
        return None
    duration, finished = _wav_length(path, st.st_size)
    if not finished and now - st.st_mtime < ABANDONED_S:
        return None
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return Recording(uid, path.name, st.st_size, round(duration, 3), digest.hexdigest(), st.st_mtime, now)


def _wav_length(path: Path, size: int) -> tuple[float, bool]:
    """(seconds of audio, header finished?); a file that is no WAV is finished with 0 s (logged).

    Read by hand, not with the stdlib's `wave`: that refuses a header whose sizes are not yet
    written (a recording in progress), which is exactly the case to tell apart."""
    with path.open("rb") as f:
        head = f.read(WAV_HEADER)
    if len(head) < WAV_HEADER or head[:4] != b"RIFF" or head[8:16] != b"WAVEfmt " or head[36:40] != b"data":
        log.warning("recording_unreadable", file=path.name, error="no 44-byte PCM WAV header")
        return 0.0, True
    rate, _byte_rate, block = struct.unpack_from("<IIH", head, 24)
    data_size = struct.unpack_from("<I", head, 40)[0]
    on_disk = max(0, size - WAV_HEADER)
    seconds = on_disk / max(1, block) / float(rate or 1)
    return seconds, 0 < data_size <= on_disk < data_size + max(2, block)  # a pad byte at most


@dataclass
class ScanReport:
    indexed: int = 0
    deleted: int = 0


class RecordingIndexer:
    def __init__(
        self, cfg: RecordingConfig, store: RecordingStore, retain_s: float | None,
        clock: Callable[[], float] = time.time,
    ) -> None:  # fmt: skip
        self.cfg, self.store, self.retain_s, self.clock = cfg, store, retain_s, clock
        self.seen: set[str] | None = None  # file names indexed (loaded from the store once)
        self.totals = ScanReport()
        self.missing_dir_logged = False

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                await asyncio.to_thread(self.scan_once)
            except StoreUnusable as exc:  # PostgreSQL away: the next scan tries again
                log.warning("recording_scan_failed", error=str(exc))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self.cfg.scan_s)

    def scan_once(self) -> ScanReport:
        now, report = self.clock(), ScanReport()
        if self.seen is None:
            self.seen = self.store.recorded_files()
        try:
            names = sorted(p.name for p in self.cfg.dir.iterdir() if uniqueid_of(p.name))
        except OSError as exc:
            if not self.missing_dir_logged:
                log.warning("recording_dir_unreadable", dir=str(self.cfg.dir), error=str(exc))
                self.missing_dir_logged = True
            names = []
        for name in [n for n in names if n not in self.seen][:MAX_PER_SCAN]:
            try:
                row = describe(self.cfg.dir / name, now)
            except OSError:  # gone (deleted by hand) between the listing and now
                continue
            if row is not None:
                report.indexed += self.store.put_recording(row)
                self.seen.add(name)
        report.deleted = self._expire(now)
        self.totals.indexed += report.indexed
        self.totals.deleted += report.deleted
        return report

    def _expire(self, now: float) -> int:
        if self.retain_s is None:
            return 0
        gone = 0
        for r in self.store.recordings_before(now - self.retain_s):
            with contextlib.suppress(FileNotFoundError):
                (self.cfg.dir / r.file).unlink()
            self.store.recording_deleted(r.uniqueid, now)
            log.info("recording_deleted", uniqueid=r.uniqueid, recorded_at=r.recorded_at)
            gone += 1
        return gone
