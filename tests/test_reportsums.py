"""core/reportsums.py's one-pass queue figures equal kpis_over's (the reference) on random visits,
feedback and intervals: the same records left out, the same floats to the last bit, for every
queue-section grouping of a report (queue, pbx, call_type, hotline) and with a cost rate."""

from __future__ import annotations

import dataclasses
import json
import math
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from acdbridge.core.kpi import KpiConfig, kpis_over
from acdbridge.core.kpibase import Record
from acdbridge.core.report import Data, ReportConfig, interval_rows
from acdbridge.core.reportsums import queue_section
from tests.test_kpiwindows import BASES, CFG, SETTINGS, feedback, offsets, visits

# a stored row from before values were checked: kpis_over leaves it out, so must the sums
BAD = st.sampled_from([math.nan, math.inf, -math.inf, 1e20, "12"])


@st.composite
def cases(draw: st.DrawFn) -> tuple[list[Record], list[Record], Data, float, float]:
    base = draw(st.sampled_from(BASES))
    vs: list[Record] = []
    for i in range(draw(st.integers(0, 40))):
        v = dict(draw(visits(base, i)), pbx=draw(st.sampled_from(["", "b"])))
        if draw(st.booleans()):  # a wait on a threshold of CFG (15 s, 3 s) or the defaults (20 s, 5 s)
            v["wait_s"] = draw(st.sampled_from([3.0, 5, 15.0, 20, math.nextafter(20.0, 0.0)]))
        if draw(st.integers(0, 9)) == 0:
            v[draw(st.sampled_from(["wait_s", "talk_s", "hold_s"]))] = draw(BAD)
        if draw(st.integers(0, 19)) == 0:  # a string end_ts fails kpis_over itself: numbers only
            v["end_ts"] = draw(st.sampled_from([math.nan, math.inf, 1e20]))
        vs.append(v)
    fs: list[Record] = [
        dict(draw(feedback(base, i)), uniqueid=f"u{i}") for i in range(draw(st.integers(0, 10)))
    ]
    legs = {("", f"u{i}"): {"call_type": draw(st.sampled_from(["", "billing", "repair", None])),
                            "hotline": draw(st.sampled_from(["0800", "", 7]))}
            for i in range(40) if draw(st.booleans())}  # fmt: skip
    lo, hi = sorted((base + draw(offsets), base + draw(offsets)))
    return vs, fs, Data(vs, (), fs, legs), lo, hi


def same(a: Any, b: Any) -> bool:
    return json.dumps(a, sort_keys=False) == json.dumps(b, sort_keys=False)


@SETTINGS
@given(cases(), st.sampled_from([CFG, dataclasses.replace(CFG, cost_per_hour=None), KpiConfig()]))
def test_queue_section_is_kpis_over(case: Any, cfg: KpiConfig) -> None:
    vs, fs, _, lo, hi = case
    assert same(queue_section(vs, fs, cfg, lo, hi), kpis_over(vs, [], cfg, lo, hi, fs)["queues"])


@SETTINGS
@given(cases(), st.sampled_from(["queue", "pbx", "call_type", "hotline"]))
def test_report_rows_are_the_scans(case: Any, by: str) -> None:
    *_, data, lo, hi = case
    rcfg = ReportConfig()
    fast = interval_rows(data, lo, hi, by, CFG, rcfg)
    assert same(fast, interval_rows(data, lo, hi, by, CFG, rcfg, scan=True))
