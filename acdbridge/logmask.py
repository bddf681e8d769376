"""A structlog processor that masks callers' numbers and names in every log line (docs/privacy.md).

On by default (`[privacy] mask_logs`): the journal of a host is read by more people, and kept
longer, than the store. A number keeps its last 4 digits ("+49 30 1234567" -> "+** ** ***4567"),
enough to tell two calls apart while answering a ticket; a name becomes "***". Pseudonyms
("p:...") are no number and stay. The fields are found by name, at any depth (a logged record or
list of them too): adding a log line with `caller=` needs no change here."""

from __future__ import annotations

from typing import Any

from structlog.typing import EventDict, WrappedLogger

KEEP = 4
NUMBER_KEYS = frozenset({"caller", "caller_number", "callerid", "calleridnum", "connectedlinenum", "number"})
NAME_KEYS = frozenset({"caller_name", "calleridname", "connectedlinename"})
MAX_DEPTH = 4  # a deeper value is not walked (a log line is no place for deep data)


def mask_number(text: str) -> str:
    """Every digit but the last KEEP ones becomes '*'; the rest of the text stays."""
    if text.startswith("p:"):
        return text
    digits = sum(c.isdigit() for c in text)
    out, seen = [], 0
    for c in text:
        if c.isdigit():
            seen += 1
            out.append(c if seen > digits - KEEP else "*")
        else:
            out.append(c)
    return "".join(out)


def _masked(key: str, value: Any, depth: int) -> Any:
    name = key.lower()
    if isinstance(value, str):
        if name in NUMBER_KEYS:
            return mask_number(value)
        if name in NAME_KEYS and value and not value.startswith("p:"):
            return "***"
        return value
    if depth >= MAX_DEPTH:
        return value
    if isinstance(value, dict):
        return {k: _masked(str(k), v, depth + 1) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_masked(key, v, depth + 1) for v in value]
    return value


def mask_callers(logger: WrappedLogger, method_name: str, event_dict: EventDict) -> EventDict:
    """The processor: a new dict (the caller's own objects are never changed)."""
    return {k: v if k == "event" else _masked(k, v, 0) for k, v in event_dict.items()}
