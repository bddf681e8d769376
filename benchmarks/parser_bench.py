"""The AMI parser's buffering, before and after it became linear, and the live-gauge pass with
the trackers' state at its caps. Prints figures; asserts nothing about timing.

    .venv/bin/python benchmarks/parser_bench.py

The "before" parser is the old algorithm kept here as the baseline: it joined the buffer with
each read (`self._buf + data`) and split the whole buffer again, so one large frame arriving in
TCP-sized segments cost time quadratic in its size."""

from __future__ import annotations

import gzip
import sys
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # `import acdbridge` even without the editable install

from acdbridge.core.ami import _EVENT_PREFIX, BANNER_PREFIX, AmiMessage, FrameParser, _wanted_event  # noqa: E402
from acdbridge.core.limits import Limits  # noqa: E402
from acdbridge.core.pipeline import Pipeline  # noqa: E402
from acdbridge.core.tallies import live_gauges  # noqa: E402

TRACES = ROOT / "tests" / "fixtures" / "traces"
BANNER = b"Asterisk Call Manager/11.0.0\r\n"
SEGMENT = 1460  # one TCP segment's payload on Ethernet


class OldParser(FrameParser):
    """The quadratic buffering of acdbridge before issue 11 (same frame parsing)."""

    _buf = b""

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
        if len(self._buf) > 1 << 20:
            self._buf = b""
        for frame in frames:
            if not frame:
                continue
            if (
                self.wanted is not None
                and frame.startswith(_EVENT_PREFIX)
                and not _wanted_event(frame, self.wanted)
            ):
                continue
            message = self._parse(frame.lstrip(b"\r\n"))
            if message is not None:
                out.append(message)
        return out


def timed(make: Callable[[], FrameParser], data: bytes, segment: int, runs: int = 3) -> tuple[float, int]:
    best, messages = float("inf"), 0
    for _ in range(runs):
        parser = make()
        started = time.perf_counter()
        n = 0
        for at in range(0, len(data), segment):
            n += len(parser.feed(data[at : at + segment]))
        best, messages = min(best, time.perf_counter() - started), n
    return best, messages


def traffic() -> bytes:
    parts = []
    for name in ("mixed.ami.gz", "edge.ami", "smoke.ami", "sip_hold.ami"):
        raw = (TRACES / name).read_bytes()
        raw = gzip.decompress(raw) if name.endswith(".gz") else raw
        parts.append(raw.partition(b"\r\n")[2])
    return BANNER + b"".join(parts) * 10


def compare(label: str, data: bytes, segment: int) -> None:
    old, n_old = timed(OldParser, data, segment)
    new, n_new = timed(FrameParser, data, segment)
    assert n_old == n_new or "too large" in label, (n_old, n_new)
    print(
        f"{label:<46} before {old * 1000:8.1f} ms   after {new * 1000:8.1f} ms   x{old / new:6.1f}"
        f"   ({n_new} messages)"
    )


def gauges_at_caps() -> None:
    lim = Limits()
    p = Pipeline()
    t0 = 1_795_395_500.0
    for i in range(lim.max_callers):
        h = {
            "Event": "QueueCallerJoin",
            "Timestamp": f"{t0 + i / 100:.6f}",
            "Queue": f"q{i % lim.max_queues}",
            "Uniqueid": f"c{i}",
            "Linkedid": f"c{i}",
            "CallerIDNum": "555",
            "Position": "1",
            "Count": "1",
        }
        p.feed(AmiMessage("event", "QueueCallerJoin", h))
    for i in range(lim.max_agents):
        for q in range(3):
            h = {
                "Event": "QueueMemberAdded",
                "Timestamp": f"{t0 + 200:.6f}",
                "Queue": f"q{(i + q) % lim.max_queues}",
                "Interface": f"PJSIP/a{i}",
                "MemberName": f"Agent {i}",
                "Paused": str(q % 2),
                "Penalty": "0",
            }
            p.feed(AmiMessage("event", "QueueMemberAdded", h))
    runs = []
    for _ in range(5):
        started = time.perf_counter()
        live = live_gauges(p.calls, p.agents, t0 + 300)
        runs.append(time.perf_counter() - started)
    print(
        f"live_gauges at the caps ({len(p.calls.active)} callers, {len(p.agents.agents)} agents x 3 queues, "
        f"{len(p.calls.known_queues)} queues): {min(runs) * 1000:.1f} ms"
        f" ({len(live.agent_state)} agent-state series)"
    )


def main() -> int:
    big = b"Event: Hangup\r\nUniqueid: 1.1\r\nCallerIDName: " + b"x" * 1_000_000 + b"\r\n\r\n"
    compare("1 MB frame in 1,460-byte segments", BANNER + big, SEGMENT)
    huge = b"Event: Hangup\r\nX: " + b"x" * 4_000_000 + b"\r\n\r\nEvent: Hangup\r\nUniqueid: 2.2\r\n\r\n"
    compare("4 MB frame (too large) in 1,460-byte segments", BANNER + huge, SEGMENT)
    normal = traffic()
    compare(f"normal traffic ({len(normal) >> 20} MB) in 64 KiB reads", normal, 1 << 16)
    compare(f"normal traffic ({len(normal) >> 20} MB) in 1,460-byte segments", normal, SEGMENT)
    gauges_at_caps()
    return 0


if __name__ == "__main__":
    sys.exit(main())
