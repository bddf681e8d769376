"""Callers' personal data in records: pseudonyms and erasure (docs/privacy.md). Sans-IO.

A pseudonym is HMAC-SHA256 under the site's key (adapters/privacykey.py) of the caller's number
as the repeat-caller rule compares it (digits only, no leading + or 00), shown as "p:" and 16 hex
digits: the same number always gives the same pseudonym, so repeat callers and per-caller counts
still add up after the job, while nobody without the key can go back from one to the number.
Names are keyed apart ("name:" vs "number:"), so a name and a number never share a pseudonym.
Erasure (an erasure request) blanks the fields: the visit stays, anonymous, for the KPIs."""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Callable
from typing import Any

Record = dict[str, Any]
PREFIX = "p:"
# the caller fields of each stored record kind: (number fields, name fields)
FIELDS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "visits": (("caller",), ("caller_name",)),
    "ivr_legs": (("caller",), ()),
}


def normalise(number: str) -> str:
    """Digits only, without a leading + or 00 (adapters/directory.py's rule, which the
    repeat-caller priority uses), so "+86 10 1234" and "0086101234" are one caller."""
    digits = "".join(c for c in number if c.isdigit())
    return digits[2:] if digits.startswith("00") else digits


def _mac(key: bytes, kind: str, text: str) -> str:
    digest = hmac.new(key, f"{kind}:{text}".encode(), hashlib.sha256).hexdigest()
    return PREFIX + digest[:16]


def number_pseudonym(key: bytes, number: str) -> str:
    """The pseudonym of a caller number; "" stays "" (no caller ID is nobody's data)."""
    if not number or number.startswith(PREFIX):
        return number
    return _mac(key, "number", normalise(number) or number.strip())


def name_pseudonym(key: bytes, name: str) -> str:
    if not name or name.startswith(PREFIX):
        return name
    return _mac(key, "name", " ".join(name.split()).casefold())


def pseudonymised(kind: str, record: Record, key: bytes) -> Record:
    """The record with its caller fields pseudonymised (already pseudonymised ones unchanged);
    every other field, the durations and outcome first of all, as it was."""
    numbers, names = FIELDS[kind]
    out = dict(record)
    for name in numbers:
        if isinstance(out.get(name), str):
            out[name] = number_pseudonym(key, out[name])
    for name in names:
        if isinstance(out.get(name), str):
            out[name] = name_pseudonym(key, out[name])
    return out


def erased(kind: str, record: Record) -> Record:
    """The record with its caller fields blanked, as for a caller who sent no caller ID."""
    numbers, names = FIELDS[kind]
    return record | {f: "" for f in (*numbers, *names) if f in record}


def caller_matcher(number: str, key: bytes | None) -> Callable[[object], bool]:
    """Is a stored value this caller's number: the same digits, or its pseudonym (a pseudonym
    is still personal data while the key exists, so an erasure takes it too)."""
    target = normalise(number)
    pseudonym = number_pseudonym(key, number) if key is not None else None
    if not target:
        raise ValueError(f"not a caller number (no digits): {number!r}")

    def match(value: object) -> bool:
        if not isinstance(value, str) or not value:
            return False
        if value.startswith(PREFIX):
            return value == pseudonym
        return normalise(value) == target

    return match


def record_matches(kind: str, record: Record, match: Callable[[object], bool]) -> bool:
    return any(match(record.get(f)) for f in FIELDS[kind][0])


def number_pattern(number: str) -> re.Pattern[str]:
    """The number in free text (a quarantined row, a saved state, AMI bytes decoded as latin-1):
    its digits, maybe after + or 00, not inside a longer run of digits."""
    digits = normalise(number)
    if not digits:
        raise ValueError(f"not a caller number (no digits): {number!r}")
    return re.compile(rf"(?<![0-9])(?:\+|00)?{digits}(?![0-9])")


def erase_in(data: Any, match: Callable[[object], bool]) -> tuple[Any, int]:
    """A JSON value (a saved tracker state) with every record-like dict whose `caller` matches
    blanked (caller and caller_name), and how many were."""
    if isinstance(data, list):
        pairs = [erase_in(v, match) for v in data]
        return [v for v, _ in pairs], sum(n for _, n in pairs)
    if not isinstance(data, dict):
        return data, 0
    out, count = {}, 0
    for k, v in data.items():
        out[k], n = erase_in(v, match)
        count += n
    if match(out.get("caller")):
        out["caller"] = ""
        if "caller_name" in out:
            out["caller_name"] = ""
        count += 1
    return out, count
