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
MAX_FRAME_BYTES = 1 << 20  # a frame larger than this is garbage, not AMI


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


def _wanted_event(frame: bytes, wanted: frozenset[str]) -> bool:
    end = frame.find(b"\r\n")
    name = frame[len(_EVENT_PREFIX) : end if end >= 0 else len(frame)]
    try:
        text = name.decode("ascii")
    except UnicodeDecodeError:
        return True  # let the full parse report it
    if text in wanted:
        return True
    return text == "VarSet" and any(marker in frame for marker in _VARSET_WANTED)


class FrameParser:
    """Feed raw AMI bytes; get complete messages. One instance per connection (or trace)."""

    def __init__(
        self,
        wanted: frozenset[str] | None = WANTED_EVENTS,
        on_error: Callable[[str], None] | None = None,
    ) -> None:
        self.wanted = wanted
        self.on_error = on_error
        self.stats = ParserStats()
        self._buf = b""
        self._at_start = True

    def feed(self, data: bytes) -> list[AmiMessage]:
        buf = self._buf + data if self._buf else data
        out: list[AmiMessage] = []
        if self._at_start:
            if len(buf) < len(BANNER_PREFIX) and BANNER_PREFIX.startswith(buf):
                self._buf = buf
                return out
            self._at_start = False
            if buf.startswith(BANNER_PREFIX):
                end = buf.find(b"\r\n")
                if end < 0:
                    self._buf, self._at_start = buf, True
                    return out
                out.append(AmiMessage("banner", buf[:end].decode("utf-8", "replace"), {}))
                buf = buf[end + 2 :]
        frames = buf.split(b"\r\n\r\n")
        self._buf = frames.pop()
        if len(self._buf) > MAX_FRAME_BYTES:
            self._report(f"discarded {len(self._buf)} bytes with no end of message")
            self._buf = b""
        wanted = self.wanted
        for frame in frames:
            if not frame:
                continue
            self.stats.frames += 1
            if wanted is not None and frame.startswith(_EVENT_PREFIX) and not _wanted_event(frame, wanted):
                self.stats.dropped += 1
                continue
            message = self._parse(frame.lstrip(b"\r\n"))
            if message is not None:
                out.append(message)
        self.stats.messages += len(out)
        return out

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
        self._report(f"malformed AMI frame skipped ({why}): {text[:80]!r}")

    def _report(self, message: str) -> None:
        if self.on_error is not None:
            self.on_error(message)
