"""AMI values checked where they enter the core, and the count of what failed. Sans-IO.

Asterisk's values are ASCII: epoch timestamps with microseconds, whole or decimal seconds, small
integers, names. Python's float() and int() accept far more ('nan', 'inf', '1e20', ' 1_0 ',
Unicode digits such as '٣', and str.isdigit() even '²', which int() then refuses), and such a
value, once in a record, crashed the KPI code or produced invalid JSON. So every value is checked
here first; a value that fails is dropped (the tracker then sees the header as absent, or the
receive time in place of a bad Timestamp), counted by kind and reported once per kind, never
raised. The kinds are a small fixed set: they are metric labels (acd_core_input_problems_total)."""

from __future__ import annotations

import math
from collections.abc import Callable

from acdbridge.core.ami import AmiMessage

# Oldest and newest believable event times. Not negative; 2200-01-01 is far beyond any PBX clock
# and well inside what datetime and the KPI code handle.
MIN_TS = 0.0
MAX_TS = 7_258_118_400.0
# With a receive time (the live daemon), an event's Timestamp more than this from it is a broken
# PBX clock or a forged value: the receive time stands in. One hour keeps a clock that is a few
# minutes off working on its own times, and bounds how far one bad event moves the KPI windows.
RECEIVE_SKEW_S = 3600.0
MAX_DURATION_S = 86_400.0  # a longer wait, talk or ring is not believable: taken as a day
MAX_VALUE_CHARS = 256  # ids, queue, agent and caller names, every header value: truncated beyond
# Numeric headers the core reads or keeps (Priority, Cause, QueueParams' averages... it ignores:
# checking those too would cost every event time for nothing); decimal = seconds
DECIMAL_HEADERS = frozenset({"TalkTime", "HoldTime", "Wait"})
INTEGER_HEADERS = frozenset(
    {
        "RingTime", "Position", "OriginalPosition", "Count", "Paused", "Status", "InCall", "Penalty",
        "CallsTaken", "LastCall", "LastPause", "LoginTime", "Wrapuptime",
    }
)  # fmt: skip
_NUMERIC = DECIMAL_HEADERS | INTEGER_HEADERS

PROBLEM_KINDS = (
    "timestamp_out_of_range", "not_ascii_digits", "value_too_long", "frame_too_large", "malformed_frame",
    "evicted_caller", "evicted_agent", "evicted_member", "evicted_queue", "evicted_channel",
    "queue_log_malformed", "journal_torn_tail", "timestamp_missing",
)  # fmt: skip


class Problems:
    """Counts by kind (`counts` is the dict the metric exports); the first of each kind is reported
    through `on_problem` with an example, later ones only counted, so a flood costs no log storm."""

    def __init__(self, on_problem: Callable[[str], None] | None = None) -> None:
        self.counts: dict[str, int] = {}
        self.on_problem = on_problem

    def count(self, kind: str, detail: str = "", n: int = 1) -> None:
        seen = self.counts.get(kind, 0)
        self.counts[kind] = seen + n
        if not seen and self.on_problem is not None:
            self.on_problem(f"{kind}: {detail} (reported once; further ones are only counted)")


def _decimal_ok(text: str) -> bool:
    """[0-9]{1,12}(.[0-9]{1,9})? without a regex: this runs for several headers of every event."""
    whole, dot, frac = text.partition(".")
    if not (whole.isdigit() and whole.isascii() and len(whole) <= 12):
        return False
    return not dot or (frac.isdigit() and frac.isascii() and len(frac) <= 9)


def _integer_ok(text: str) -> bool:
    digits = text[1:] if text[:1] == "-" else text
    return digits.isdigit() and digits.isascii() and len(digits) <= 12


def is_ascii_digits(text: str) -> bool:
    """str.isdigit() restricted to 0-9 (it also accepts '٣' and '²')."""
    return text.isascii() and text.isdigit()


def parse_seconds(text: str) -> float | None:
    """A non-negative decimal as Asterisk writes it, or None."""
    return float(text) if _decimal_ok(text) else None


def duration(text: str, per_s: float = 1.0) -> float:
    """A HoldTime, TalkTime, RingTime or Wait in seconds (`per_s` 1000 for RingTime's ms): 0 if
    absent or bad, at most MAX_DURATION_S (a time laid out from it stays a believable one)."""
    return min((parse_seconds(text) or 0.0) / per_s, MAX_DURATION_S)


def parse_int(text: str) -> int | None:
    return int(text) if _integer_ok(text) else None


def finite(x: float, default: float = 0.0) -> float:
    return x if math.isfinite(x) else default


def event_time(raw: str, received_at: float) -> float | None:
    """The Timestamp's value when believable, else None (the caller falls back)."""
    whole, dot, frac = raw.partition(".")
    if not (
        raw.isascii()
        and whole.isdigit()
        and len(whole) <= 12
        and (not dot or (frac.isdigit() and len(frac) <= 9))
    ):
        return None
    ts = float(raw)
    if not MIN_TS <= ts <= MAX_TS or (received_at > 0 and abs(ts - received_at) > RECEIVE_SKEW_S):
        return None
    return ts


def checked(msg: AmiMessage, received_at: float, problems: Problems) -> AmiMessage:
    """The message with every failing value dropped (or truncated, for a long one). Returns the
    same object when all is well, which is nearly always: the common path allocates little (it
    runs for every event, so its checks are inlined)."""
    h = msg.headers
    bad: list[str] = []
    raw_ts = h.get("Timestamp")
    if raw_ts is not None and event_time(raw_ts, received_at) is None:
        problems.count("timestamp_out_of_range", f"{msg.name} Timestamp {raw_ts[:40]!r}")
        bad.append("Timestamp")
    for key in h.keys() & _NUMERIC:
        value = h[key]
        if value.isdigit() and value.isascii() and len(value) <= 12:
            continue  # nearly every value: a plain ASCII integer
        if key == "Status" and not msg.name.startswith("QueueMember"):
            continue  # a word elsewhere ("Fully Booted"); the core reads only a member's Status
        ok = _decimal_ok if key in DECIMAL_HEADERS else _integer_ok
        if not ok(value):
            problems.count("not_ascii_digits", f"{msg.name} {key} {value[:40]!r}")
            bad.append(key)
    long = bool(h) and max(map(len, h.values())) > MAX_VALUE_CHARS
    if not bad and not long:
        return msg
    headers = {k: v for k, v in h.items() if k not in bad}
    if long:
        for key, value in headers.items():
            if len(value) > MAX_VALUE_CHARS:
                problems.count("value_too_long", f"{msg.name} {key} of {len(value)} characters")
                headers[key] = value[:MAX_VALUE_CHARS]
    return AmiMessage(msg.kind, msg.name[:MAX_VALUE_CHARS], headers)
