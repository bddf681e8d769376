"""A hotline's urgent call types and its on-call rota (docs/config.md, "Urgent calls"):

    [hotlines.water]
    urgent = ["leak"]
    [[hotlines.water.oncall]]
    days = "mon-fri"            # the days a shift starts on: mon, mon-fri, fri-mon
    from = "18:00"
    to = "08:00"                # not after `from`: the shift ends the next morning
    numbers = ["PJSIP/9301", "Local/9302@oncall/n"]   # Dial strings, tried in order
    ring_s = 20                 # each one rings this long

Every problem names its key (hotlines.water.oncall[0].numbers) and parsing goes on."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from acdbridge.core.ivr import WEEKDAYS
from acdbridge.core.oncall import DEFAULT_RING_S, OncallShift
from acdbridge.settings.problems import Problems, dotted, get, known, str_list, table

SHIFT_KEYS = {"days", "from", "to", "numbers", "ring_s"}
_DAYS = re.compile(r"^(?P<first>[a-z]{3})(?:-(?P<last>[a-z]{3}))?$")
_CLOCK = re.compile(r"^(?P<h>[01]\d|2[0-4]):(?P<m>[0-5]\d)$")
# TECH/resource, as Dial takes it: no blanks, no "," (Dial's next argument), no "^" (ACD_ONCALL's
# separator); "&" is allowed: PJSIP/9301&PJSIP/9302 rings both at once
_DIAL = re.compile(r"^[A-Za-z][A-Za-z0-9]*/[^\s,^]+$")


def _days(p: Problems, text: str, where: str) -> frozenset[int]:
    m = _DAYS.match(text.strip().lower())
    if not m or m["first"] not in WEEKDAYS or (m["last"] or m["first"]) not in WEEKDAYS:
        p.error(where, f"{text!r}: a day or a range of days, e.g. 'mon-fri'; days are {', '.join(WEEKDAYS)}")
        return frozenset()
    a, b = WEEKDAYS.index(m["first"]), WEEKDAYS.index(m["last"] or m["first"])
    return frozenset(range(a, b + 1)) if a <= b else frozenset((*range(a, 7), *range(0, b + 1)))


def _minutes(p: Problems, s: dict[str, Any], key: str, where: str) -> int | None:
    text = get(p, s, key, where, str, None)
    if text is None:
        if key not in s:
            p.error(where, f"{key} is required (a local time, e.g. '18:00')")
        return None
    m = _CLOCK.match(text.strip())
    minutes = int(m["h"]) * 60 + int(m["m"]) if m else -1
    if not 0 <= minutes <= 24 * 60:
        p.error(dotted(where, key), f"{text!r}: expected a local time HH:MM, 00:00-24:00")
        return None
    return minutes


def _shift(p: Problems, value: Any, where: str) -> OncallShift | None:
    s = table(p, value, where)
    known(p, s, where, SHIFT_KEYS)
    days = _days(p, get(p, s, "days", where, str, "mon-sun"), dotted(where, "days"))
    start, end = _minutes(p, s, "from", where), _minutes(p, s, "to", where)
    if start == 24 * 60:
        p.error(dotted(where, "from"), "24:00 is the end of a day: a shift starts by 23:59")
        start = None
    if start is not None and start == end:
        p.error(dotted(where, "to"), "must differ from `from` (a whole day: from 00:00 to 24:00)")
        return None
    numbers = str_list(p, s, "numbers", where)
    for number in numbers:
        if not _DIAL.match(number):
            p.error(dotted(where, "numbers"), f"{number!r}: a Dial string TECH/resource, e.g. 'PJSIP/9301'")
    if not numbers and "numbers" not in s:
        p.error(where, "numbers is required (the on-call engineer's Dial strings, tried in order)")
    ring_s = get(p, s, "ring_s", where, int, DEFAULT_RING_S, lo=5, hi=300)
    if start is None or end is None or not days or not numbers:
        return None
    return OncallShift(days, start, end, numbers, ring_s)


def parse_urgent(
    p: Problems, t: dict[str, Any], where: str, menu: Mapping[str, str], default_call_type: str
) -> tuple[frozenset[str], tuple[OncallShift, ...]]:
    """`urgent` (call types of the hotline's menu) and the `oncall` rota of hotline table `t`."""
    types = set(menu.values()) | ({default_call_type} if default_call_type else set())
    urgent = str_list(p, t, "urgent", where)
    for call_type in urgent:
        if call_type not in types:
            p.error(dotted(where, "urgent"), f"{call_type!r} is not a call type of the menu {sorted(types)}")
    items = t.get("oncall", [])
    if not isinstance(items, list):
        p.error(dotted(where, "oncall"), f"expected [[{dotted(where, 'oncall')}]] tables")
        items = []
    rota = [_shift(p, item, dotted(where, "oncall", i)) for i, item in enumerate(items)]
    if items and not urgent:
        p.warn(dotted(where, "oncall"), "ignored without `urgent` call types: no call reaches it")
    return frozenset(c for c in urgent if c in types), tuple(s for s in rota if s is not None)
