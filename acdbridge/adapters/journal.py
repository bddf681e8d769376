"""The AMI journal: every byte received from the PBX, on disk, before the core sees it.

A journal is a directory of segments (`000000000001.journal`, ...), each a header line and then
framed records:

    magic b"AJ" | version u8 | kind u8 | length u32 | received_at f64 | crc32 u32 | payload

little-endian, the CRC over version..received_at and the payload. `kind` is DATA (bytes as read
from the socket, with the host's receive time, so a PBX without `timestampevents` replays to the
same times), CONNECT (a new AMI connection starts: a replay starts a fresh parser there) or
QUEUE_LOG (the queue_log lines read for a gap's backfill, core/gap.py: an input of the core too).

Writing (`Journal`): `append` is called on the event loop and only frames the record into a
bounded in-memory buffer; a writer thread writes the buffer out and fsyncs at most every
`fsync_interval_s` (group commit: one fsync for all the records of an interval, never one per
event), so the loop never waits for the disk. A buffer beyond `max_buffer_bytes` (a disk that
cannot keep up) drops the record, counts it and logs: never silently. Positions (segment, offset)
are assigned at append time, so the daemon can name the journal position its state covers.

Reading (`read_records`, `iter_chunks`): a record cut short by a crash (a truncated header or
payload, a bad magic or CRC) ends its segment; it is reported as a `TornTail`, never raised.
A new writer never appends after a torn tail: every start opens a new segment."""

from __future__ import annotations

import asyncio
import gzip
import os
import struct
import threading
import time
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

import structlog

log = structlog.get_logger("acdbridge.journal")
SEGMENT_HEADER = b"acdbridge-journal 1\n"
SUFFIX = ".journal"
MAGIC = b"AJ"
VERSION = 1
DATA, CONNECT, QUEUE_LOG = 0, 1, 2
RECORD = struct.Struct("<2sBBIdI")  # magic, version, kind, length, received_at, crc32
SPAN = struct.Struct("<BBId")  # version..received_at: a flipped length or time fails the CRC too
MAX_PAYLOAD = 1 << 24  # a length beyond this is damage, not a record
CHUNK = 1 << 16  # plain captures are read in pieces of this size
SEP = b"\r\n\r\n"  # the end of an AMI frame
IOV_MAX = 1024  # pieces per writev (Linux's limit)


class Position(NamedTuple):
    """Where a record starts (or the journal ends): segment number and byte offset in it. A
    tuple, not a dataclass: one is made per read on the event loop, and tuples order."""

    segment: int
    offset: int


@dataclass(frozen=True, slots=True)
class Chunk:
    kind: int
    data: bytes
    received_at: float
    at: Position  # where the record starts
    end: Position  # where the next one starts


@dataclass(frozen=True, slots=True)
class TornTail:
    path: Path
    offset: int
    reason: str


def header(data: bytes, received_at: float, kind: int = DATA) -> bytes:
    """A record's header; the payload follows it."""
    crc = zlib.crc32(data, zlib.crc32(SPAN.pack(VERSION, kind, len(data), received_at)))
    return RECORD.pack(MAGIC, VERSION, kind, len(data), received_at, crc)


def encode(data: bytes, received_at: float, kind: int = DATA) -> bytes:
    return header(data, received_at, kind) + data


def segment_path(directory: Path, seq: int) -> Path:
    return directory / f"{seq:012d}{SUFFIX}"


def segments(directory: Path) -> list[tuple[int, Path]]:
    """The directory's segments in order (other files are ignored)."""
    out = []
    for path in directory.glob(f"*{SUFFIX}"):
        stem = path.name[: -len(SUFFIX)]
        if stem.isdigit():
            out.append((int(stem), path))
    return sorted(out)


def _parse(buf: bytes, seq: int, path: Path, start: int, torn: list[TornTail]) -> Iterator[Chunk]:
    """The records of one segment's bytes from `start`; stops at the first damaged one."""
    pos, size = start, len(buf)
    while pos < size:
        if size - pos < RECORD.size:
            torn.append(TornTail(path, pos, f"truncated header ({size - pos} of {RECORD.size} bytes)"))
            return
        magic, version, kind, length, received_at, crc = RECORD.unpack_from(buf, pos)
        if magic != MAGIC or version != VERSION or length > MAX_PAYLOAD:
            torn.append(TornTail(path, pos, "bad record header"))
            return
        end = pos + RECORD.size + length
        if end > size:
            got = size - pos - RECORD.size
            torn.append(TornTail(path, pos, f"truncated payload ({got} of {length} bytes)"))
            return
        data = buf[pos + RECORD.size : end]
        if zlib.crc32(data, zlib.crc32(buf[pos + 2 : pos + 16])) != crc:
            torn.append(TornTail(path, pos, "CRC mismatch"))
            return
        yield Chunk(kind, data, received_at, Position(seq, pos), Position(seq, end))
        pos = end


def read_segment(
    path: Path, seq: int = 0, start: int = 0, torn: list[TornTail] | None = None
) -> Iterator[Chunk]:
    """One segment file's records from offset `start` (0: just after its header)."""
    torn = torn if torn is not None else []
    buf = path.read_bytes()
    if not buf.startswith(SEGMENT_HEADER):
        if len(buf) < len(SEGMENT_HEADER) and SEGMENT_HEADER.startswith(buf):
            torn.append(TornTail(path, 0, "truncated segment header"))  # died while creating it
            return
        raise ValueError(f"{path} is not an acdbridge journal segment")
    yield from _parse(buf, seq, path, max(start, len(SEGMENT_HEADER)), torn)


def read_records(
    directory: Path, start: Position | None = None, torn: list[TornTail] | None = None
) -> Iterator[Chunk]:
    """Every record of the journal from `start` on, across segments."""
    for seq, path in segments(directory):
        if start is not None and seq < start.segment:
            continue
        offset = start.offset if start is not None and seq == start.segment else 0
        yield from read_segment(path, seq, offset, torn)


def is_journal(path: Path) -> bool:
    if path.is_dir():
        return True
    with path.open("rb") as f:
        return f.read(len(SEGMENT_HEADER)) == SEGMENT_HEADER


def iter_inputs(path: Path, torn: list[TornTail] | None = None) -> Iterator[tuple[int, bytes, float | None]]:
    """What `acdbridge replay` feeds: (kind, bytes, receive time) per record of a journal (a
    directory or one segment), or (DATA, bytes, None) pieces of a plain capture (.gz
    decompressed). A torn tail ends the journal quietly; pass `torn` to hear about it."""
    if is_journal(path):
        records = read_records(path, torn=torn) if path.is_dir() else read_segment(path, torn=torn)
        for chunk in records:
            yield chunk.kind, chunk.data, chunk.received_at
        return
    with gzip.open(path, "rb") if path.suffix == ".gz" else path.open("rb") as f:
        while piece := f.read(CHUNK):
            yield DATA, piece, None


def iter_chunks(path: Path, torn: list[TornTail] | None = None) -> Iterator[tuple[bytes, float | None]]:
    """The AMI bytes of iter_inputs: (bytes, receive time), b"" marking a new AMI connection."""
    for kind, data, received_at in iter_inputs(path, torn):
        if kind != QUEUE_LOG:
            yield (data if kind == DATA else b""), received_at


class Mark(NamedTuple):
    """The journal up to `end` has been fed to the core. A replay that rebuilds the state at
    `end` starts at record `resume`, `skip` bytes into it: where the frame still unfinished at
    `end` begins (the parser's buffer is not part of the trackers' snapshot)."""

    end: Position
    resume: Position
    skip: int


def mark_in(data: bytes, at: Position, end: Position) -> Mark | None:
    """A mark after the read `data` (journaled at `at`, the journal now at `end`), if the read
    ends a frame: the unfinished frame then starts after its last blank line. A read without one
    gives None, and the next read is asked (a checkpoint waits a read or two, the live path pays
    nothing per read for it)."""
    i = data.rfind(SEP)
    return Mark(end, at, i + len(SEP)) if i >= 0 else None


@dataclass
class JournalStats:
    records: int = 0
    bytes: int = 0
    dropped_records: int = 0
    dropped_bytes: int = 0
    fsyncs: int = 0
    fsync_seconds: float = 0.0
    write_errors: int = 0
    segments_deleted: int = 0


@dataclass(slots=True)
class _Buffer:
    segment: int
    pieces: list[bytes] = field(default_factory=list)  # header, payload, header, ...: no copy
    records: int = 0
    size: int = 0  # bytes in pieces: a short writev is seen without summing them


class Journal:
    """The writer. `open()` starts a new segment and the writer thread; `close()` flushes,
    fsyncs and stops it. `append` is safe from the event loop (it never touches the disk)."""

    def __init__(
        self, directory: Path, *, fsync_interval_s: float = 0.05, segment_bytes: int = 64 << 20,
        max_buffer_bytes: int = 64 << 20, sync: Callable[[int], None] = os.fsync,
    ) -> None:  # fmt: skip
        self.directory = directory
        self.interval = fsync_interval_s
        self.segment_bytes = segment_bytes
        self.max_buffer = max_buffer_bytes
        self.stats = JournalStats()
        self._sync = sync  # a test counts the calls
        # the loop appends each record's header and payload to the last buffer (one per segment:
        # a rotation starts a new one), copying nothing; the thread takes them all under the lock
        # and hands them to writev 1,024 at a time: no Python work per record there
        self._lock = threading.Lock()
        self._pending: list[_Buffer] = []
        self._size = 0
        self._wake = threading.Lock()  # held while the writer runs; close() releases it
        self._thread: threading.Thread | None = None
        self._fd: int | None = None
        self._fd_seq = 0
        self.first_segment = 0  # the segment this run started
        self.position = Position(0, 0)  # where the next record goes
        self.written = Position(0, 0)  # everything before is in the OS (survives a SIGKILL)
        self.synced = Position(0, 0)  # everything before is on disk (survives a power cut)

    def open(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        existing = segments(self.directory)
        self.first_segment = (existing[-1][0] + 1) if existing else 1
        self.position = self.written = self.synced = Position(self.first_segment, len(SEGMENT_HEADER))
        self._open_segment(self.first_segment)
        self._wake = threading.Lock()
        self._wake.acquire()
        self._thread = threading.Thread(target=self._run, name="journal-writer", daemon=True)
        self._thread.start()

    def append(self, data: bytes, received_at: float, kind: int = DATA) -> Position | None:
        """Buffer one record; its start position, or None when it was dropped (counted). On the
        loop for every read: the header is made inline, and nothing else is allocated."""
        length = len(data)
        crc = zlib.crc32(data, zlib.crc32(SPAN.pack(VERSION, kind, length, received_at)))
        head = RECORD.pack(MAGIC, VERSION, kind, length, received_at, crc)
        size = RECORD.size + length
        at = self.position
        if at.offset + size > self.segment_bytes and at.offset > len(SEGMENT_HEADER):
            at = Position(at.segment + 1, len(SEGMENT_HEADER))  # the writer rotates here
        with self._lock:
            if self._size + size > self.max_buffer:
                self._drop(size)
                return None
            pending = self._pending
            if not pending or pending[-1].segment != at.segment:
                pending.append(_Buffer(at.segment))
            last = pending[-1]
            last.pieces += (head, data)
            last.records += 1
            last.size += size
            self._size += size
            self.position = Position(at.segment, at.offset + size)
        stats = self.stats
        stats.records += 1
        stats.bytes += length
        return at

    def _drop(self, size: int) -> None:
        self.stats.dropped_records += 1
        self.stats.dropped_bytes += size
        if self.stats.dropped_records % 1000 == 1:  # one line per thousand: the disk is the problem
            log.error("journal_buffer_full", dropped=self.stats.dropped_records, buffer_bytes=self.max_buffer)

    def close(self) -> None:
        if self._thread is not None:
            self._wake.release()
            self._thread.join()
            self._thread = None
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def _run(self) -> None:
        """The writer thread: every interval, write what was buffered and fsync it once."""
        while True:
            # a bare lock's timed acquire: the cheapest wait there is (an Event's is a Condition's)
            stopping = self._wake.acquire(timeout=self.interval)
            with self._lock:
                batch, self._pending, self._size = self._pending, [], 0
                target = self.position
            try:
                if batch:
                    self._write(batch)
                    self.written = target
                    self._fsync()
                    self.synced = target
            except Exception as exc:  # disk full, I/O error: counted and logged, the thread goes on
                self.stats.write_errors += 1
                lost = sum(b.records for b in batch)
                self.stats.dropped_records += lost
                log.error("journal_write_failed", error=str(exc), records=lost)
            del batch  # the reads are freed here, not held through the next interval's wait
            if stopping:
                return

    def _write(self, buffers: list[_Buffer]) -> None:
        for buf in buffers:
            if buf.segment != self._fd_seq:
                self._fsync()  # the old segment is complete on disk before the next one starts
                self._open_segment(buf.segment)
            pieces = buf.pieces
            if len(pieces) <= IOV_MAX:  # an interval's reads at a surge: one writev
                self._writev(pieces, buf.size)
                continue
            for i in range(0, len(pieces), IOV_MAX):
                part = pieces[i : i + IOV_MAX]
                self._writev(part, sum(map(len, part)))

    def _writev(self, pieces: list[bytes], size: int) -> None:
        assert self._fd is not None
        written = os.writev(self._fd, pieces)
        if written < size:  # a short write (disk nearly full): the rest, simply
            rest = memoryview(b"".join(pieces))[written:]
            while rest:
                rest = rest[os.write(self._fd, rest) :]

    def _fsync(self) -> None:
        if self._fd is None:
            return
        started = time.perf_counter()
        self._sync(self._fd)
        self.stats.fsyncs += 1
        self.stats.fsync_seconds += time.perf_counter() - started

    def _open_segment(self, seq: int) -> None:
        if self._fd is not None:
            os.close(self._fd)
        path = segment_path(self.directory, seq)
        # 0600: the stream holds callers' numbers and names
        self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND, 0o600)
        self._fd_seq = seq
        os.write(self._fd, SEGMENT_HEADER)
        sync_dir(self.directory)

    async def wait_synced(self, position: Position, timeout_s: float = 5.0) -> bool:
        """Wait (polling at the fsync cadence) until everything before `position` is on disk."""
        deadline = time.monotonic() + timeout_s
        while self.synced < position:
            if time.monotonic() > deadline or self._thread is None:
                return False
            await asyncio.sleep(self.interval)
        return True

    def prune(self, covered: int, retention_s: float, now: float | None = None) -> list[Path]:
        """Delete the segments before segment `covered` (a checkpoint and the store have all they
        hold) once they are older than the retention; never the one being written."""
        now = time.time() if now is None else now
        deleted = []
        for seq, path in segments(self.directory):
            if seq >= min(covered, self._fd_seq or covered):
                break
            try:
                if now - path.stat().st_mtime >= retention_s:
                    path.unlink()
                    deleted.append(path)
            except FileNotFoundError:
                continue
        self.stats.segments_deleted += len(deleted)
        return deleted


def sync_dir(directory: Path) -> None:
    """A new or renamed file's name is durable only once its directory is fsynced."""
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
