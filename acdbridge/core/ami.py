"""Incremental AMI frame parser: bytes in, messages out. No I/O, no clock.

AMI is "Header: value\\r\\n" lines, a blank line ending each message, after a one-line banner.
Frames are split on bytes and decoded whole, so a UTF-8 character split across two TCP reads
is never lost (panoramisk decodes each read on its own and drops such characters). Events the
tracker does not use are dropped by name before any decoding; a malformed frame is counted and
reported, never fatal."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

from acdbridge.core.dialplan import QUEUE_APP_MARKER

# The events acdbridge uses. Everything else is dropped unparsed.
WANTED_EVENTS = frozenset(
    {
        "QueueCallerJoin", "QueueCallerLeave", "QueueCallerAbandon",
        "AgentCalled", "AgentRingNoAnswer", "AgentDump", "AgentConnect", "AgentComplete",
        "Hold", "Unhold", "BlindTransfer", "AttendedTransfer", "Hangup",
        "QueueMemberAdded", "QueueMemberRemoved", "QueueMemberPause", "QueueMemberStatus",
        "QueueMemberPenalty",
        # list events answering the resync actions QueueStatus and CoreShowChannels
        "QueueParams", "QueueMember", "QueueEntry", "QueueStatusComplete",
        "CoreShowChannel", "CoreShowChannelsComplete",
        "FullyBooted", "Shutdown",
    }
)  # fmt: skip
BANNER_PREFIX = b"Asterisk Call Manager/"
_EVENT_PREFIX = b"Event: "
_VARSET_WANTED = (b"\r\nVariable: QUEUESTATUS\r\n", b"\r\nVariable: ACD_", b"\r\nVariable: __ACD_")
DISPOSITION_EVENT = b"\r\nUserEvent: AcdDisposition\r\n"
MAX_FRAME_BYTES = 1 << 20  # a frame larger than this is garbage, not AMI
MAX_BANNER_BYTES = 1024
_SEP = b"\r\n\r\n"


@dataclass(frozen=True, slots=True)
class AmiMessage:
    kind: Literal["event", "response", "banner"]
    name: str  # the event's name, the response's status, or the banner text
    headers: dict[str, str] = field(compare=False)

    def get(self, key: str, default: str = "") -> str:
        return self.headers.get(key, default)


@dataclass
class ParserStats:
    frames: int = 0
    messages: int = 0
    dropped: int = 0
    malformed: int = 0
    too_large: int = 0


def _wanted_event(frame: bytes, wanted: frozenset[str]) -> bool:
    end = frame.find(b"\r\n")
    name = frame[len(_EVENT_PREFIX) : end if end >= 0 else len(frame)]
    try:
        text = name.decode("ascii")
    except UnicodeDecodeError:
        return True  # let the full parse report it
    if text in wanted:
        return True
    if text == "Newexten":
        return QUEUE_APP_MARKER in frame  # the Queue() step only: it names a blocked caller's queue
    if text == "UserEvent":  # the web desk's disposition (core/legs.py), no other user event
        return DISPOSITION_EVENT in frame
    return text == "VarSet" and any(marker in frame for marker in _VARSET_WANTED)


class FrameParser:
    """Feed raw AMI bytes; get complete messages. One instance per connection (or trace).

    Buffering is linear in the frame's size: an unfinished frame is kept as a list of chunks and
    only the new bytes (plus the last 3 buffered ones, where a delimiter may have begun) are
    searched for its end. A frame beyond MAX_FRAME_BYTES is dropped up to its end without being
    kept. Bad frames go to `count(kind, detail)` (kinds frame_too_large, malformed_frame) when
    given, else to `on_error` as text."""

    def __init__(
        self,
        wanted: frozenset[str] | None = WANTED_EVENTS,
        on_error: Callable[[str], None] | None = None,
        count: Callable[[str, str], None] | None = None,
    ) -> None:
        self.wanted = wanted
        self.on_error = on_error
        self.count = count
        self.stats = ParserStats()
        self._head = b""  # the banner line, while it is incomplete
        self._chunks: list[bytes] = []  # the unfinished frame (empty while discarding)
        self._pending = 0  # its size so far
        self._tail = b""  # its last 3 bytes: the start of a delimiter split across reads
        self._discarding = False  # inside a frame too large to keep
        self._at_start = True

    def feed(self, data: bytes) -> list[AmiMessage]:
        out: list[AmiMessage] = []
        if self._at_start:
            data = self._banner(data, out)
            if self._at_start:
                return out
        frames = data.split(_SEP)  # the common case: no copy beyond what split makes
        if self._pending:
            edge = (self._tail + data[:3]).find(_SEP)
            if edge >= 0:  # rare: the delimiter began in the buffered bytes
                cut = edge - len(self._tail)  # < 0: where the frame ends in the buffer
                frames = [b"".join(self._chunks)[:cut], *data[cut + len(_SEP) :].split(_SEP)]
            elif len(frames) == 1:  # still no end: keep it
                self._keep(data, self._tail + data[-3:])
                return out
            else:
                frames[0] = b"".join(self._chunks) + frames[0]
            if self._discarding:
                frames[0] = b""  # the end of a frame too large to keep: dropped
            self._chunks, self._pending, self._tail, self._discarding = [], 0, b"", False
        last = frames.pop()
        if last:
            self._keep(last, last)
        self._frames(frames, out)
        self.stats.messages += len(out)
        return out

    def _banner(self, data: bytes, out: list[AmiMessage]) -> bytes:
        """The one-line banner a connection starts with, if any; returns the bytes after it."""
        buf = self._head + data
        if len(buf) < len(BANNER_PREFIX) and BANNER_PREFIX.startswith(buf):
            self._head = buf
            return b""
        self._head, self._at_start = b"", False
        if not buf.startswith(BANNER_PREFIX):
            return buf
        end = buf.find(b"\r\n")
        if end < 0:
            if len(buf) <= MAX_BANNER_BYTES:
                self._head, self._at_start = buf, True
                return b""
            return buf  # no banner this long: parse it as frames (it will be malformed)
        out.append(AmiMessage("banner", buf[:end].decode("utf-8", "replace"), {}))
        return buf[end + 2 :]

    def _keep(self, data: bytes, probe: bytes) -> None:
        """Buffer bytes of an unfinished frame (or count them away once it is too large)."""
        self._pending += len(data)
        self._tail = probe[-3:]
        if self._discarding:
            return
        self._chunks.append(data)
        if self._pending > MAX_FRAME_BYTES:
            self._chunks, self._discarding = [], True
            self._problem("frame_too_large", f"a frame of more than {MAX_FRAME_BYTES} bytes dropped")

    def _frames(self, frames: list[bytes], out: list[AmiMessage]) -> None:
        wanted = self.wanted
        for frame in frames:
            if not frame:
                continue
            self.stats.frames += 1
            if len(frame) > MAX_FRAME_BYTES:
                self._problem("frame_too_large", f"a frame of {len(frame)} bytes dropped")
                continue
            if wanted is not None and frame.startswith(_EVENT_PREFIX) and not _wanted_event(frame, wanted):
                self.stats.dropped += 1
                continue
            message = self._parse(frame.lstrip(b"\r\n"))
            if message is not None:
                out.append(message)

    def _parse(self, frame: bytes) -> AmiMessage | None:
        text = frame.decode("utf-8", "replace")
        headers: dict[str, str] = {}
        for line in text.split("\r\n"):
            key, sep, value = line.partition(": ")
            if not sep:
                if line.endswith(":"):  # "Header:" with an empty value
                    key, value = line[:-1], ""
                else:
                    self._malformed(text, f"line {line[:60]!r} is not 'Header: value'")
                    return None
            if not key or " " in key:
                self._malformed(text, f"bad header name {key[:40]!r}")
                return None
            headers.setdefault(key, value)  # a repeated header keeps its first value
        if "Event" in headers:
            return AmiMessage("event", headers["Event"], headers)
        if "Response" in headers:
            return AmiMessage("response", headers["Response"], headers)
        self._malformed(text, "neither an Event nor a Response")
        return None

    def _malformed(self, text: str, why: str) -> None:
        self.stats.malformed += 1
        self._problem("malformed_frame", f"malformed AMI frame skipped ({why}): {text[:80]!r}")

    def _problem(self, kind: str, detail: str) -> None:
        if kind == "frame_too_large":
            self.stats.too_large += 1
        if self.count is not None:
            self.count(kind, detail)
        elif self.on_error is not None:
            self.on_error(detail)
