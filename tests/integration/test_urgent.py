"""Urgent calls around the clock on the real lab (docs/callflow.md, "Urgent calls"): the lab
example's water hotline with `urgent = ["leak"]`, today a holiday and an on-call rota of two lab
engineers ([lab-oncall] in asterisk_conf/extensions.conf: 9301 never answers, 9302 answers). A
leak report rings 9301 for ring_s, then the fallback 9302 answers; its IVR leg is stored as
oncall_answered by 9302 and /metrics counts it. A repair call at the same time hears the holiday
prompt and ends closed. Asterisk's queue_log shows neither caller in a queue."""

from __future__ import annotations

import json
import time
import urllib.request
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from acdbridge.adapters.store import SqliteStore
from acdbridge.lab import pbx, queuelog

from .daemon_harness import DaemonProcess, flow_config, free_port
from .phones import Event, LabPhones, event
from .test_callflow import GREETING_S, callflow_lab, run

__all__ = ["callflow_lab"]  # the fixture: the lab with the example's prompts built
LEAK, REPAIR = "13900000071", "13900000072"
NEVER, FALLBACK = "Local/9301@lab-oncall/n", "Local/9302@lab-oncall/n"
RING_S = 5


def urgent_config() -> str:
    """The lab example with water's leaks urgent, a holiday today (and the days beside it, so the
    centre's midnight during the test changes nothing) and a round-the-clock rota."""
    today = datetime.now(ZoneInfo("Asia/Shanghai")).date()  # the example's kpi.timezone
    days = json.dumps([(today + timedelta(days=d)).isoformat() for d in (-1, 0, 1)])
    text = flow_config()
    water = text.index("[hotlines.water]")
    head, tail = text[:water], text[water:]
    assert "holidays = []" in tail and "[hotlines.water.prompts.zh]" in tail
    tail = tail.replace("holidays = []", f'holidays = {days}\nurgent = ["leak"]', 1)
    rota = (f'[[hotlines.water.oncall]]\ndays = "mon-sun"\nfrom = "00:00"\nto = "24:00"\n'
            f'numbers = ["{NEVER}", "{FALLBACK}"]\nring_s = {RING_S}\n')  # fmt: skip
    return head + tail.replace("[hotlines.water.prompts.zh]", rota + "[hotlines.water.prompts.zh]", 1)


def start(tmp_path: Path, lab: pbx.LabSettings) -> DaemonProcess:
    daemon = DaemonProcess(tmp_path, lab.ami_port, free_port(), extra=urgent_config())
    daemon.start()
    deadline = time.monotonic() + 10
    while "fastagi_listening" not in daemon.log_text():
        assert time.monotonic() < deadline, f"FastAGI did not start:\n{daemon.log_text()[-3000:]}"
        time.sleep(0.1)
    return daemon


def varset(variable: str, **headers: str) -> Callable[[Event], bool]:
    return event("VarSet", variable=variable, **headers)


def legs_by_caller(daemon: DaemonProcess) -> dict[str, dict[str, object]]:
    store = SqliteStore(daemon.store_path)
    try:
        return {str(leg["caller"]): leg for leg in store.ivr_legs(0, 1e12)}
    finally:
        store.close()


def test_an_urgent_call_on_a_holiday_reaches_the_fallback_oncall_number_and_a_repair_is_closed(
    callflow_lab: pbx.LabSettings, tmp_path: Path
) -> None:
    daemon = start(tmp_path, callflow_lab)
    started = time.time()

    async def scenario(phones: LabPhones) -> None:
        phones.keys[(LEAK, "menu1")] = "3"  # leak report: urgent
        phones.keys[(REPAIR, "menu1")] = "2"  # repair request: not urgent
        await phones.call(LEAK, "6000")
        await phones.call(REPAIR, "6000")
        ans = await phones.wait_for(varset("ACD_ONCALL_ANSWERED"), GREETING_S + 3 * RING_S, "the answer")
        closed = await phones.wait_for(varset("ACD_IVR", calleridnum=REPAIR), GREETING_S, "repair ends")
        assert closed["value"] == "closed"
        await phones.wait_for(event("Hangup", calleridnum=REPAIR), 30, "the repair caller is let go")
        tries = phones.find(
            lambda ev: ev.get("variable") == "ACD_ONCALL_AT" and ev.get("calleridnum") == LEAK
        )
        assert [ev["value"] for ev in tries] == [NEVER, FALLBACK]
        waited = float(tries[1]["timestamp"]) - float(tries[0]["timestamp"])
        assert RING_S - 0.5 <= waited <= RING_S + 3, f"the fallback was dialled after {waited:.1f} s"
        assert ans["value"] == tries[0]["uniqueid"]  # the answering channel names the caller's
        assert not phones.find(event("QueueCallerJoin", calleridnum=LEAK))
        assert not phones.find(event("QueueCallerJoin", calleridnum=REPAIR))

    run(scenario, callflow_lab)
    deadline = time.monotonic() + 15
    while {LEAK, REPAIR} - set(legs := legs_by_caller(daemon)):
        assert time.monotonic() < deadline, f"legs not stored: {legs}\n{daemon.log_text()[-3000:]}"
        time.sleep(0.5)
    leak, repair = legs[LEAK], legs[REPAIR]
    assert (leak["outcome"], leak["oncall"], leak["urgent"], leak["call_type"]) == (
        "oncall_answered", FALLBACK, True, "leak",
    )  # fmt: skip
    assert (repair["outcome"], repair["oncall"], repair["urgent"], repair["call_type"]) == (
        "closed", "", False, "repair",
    )  # fmt: skip
    greetings = [json.loads(line) for line in daemon.log_text().splitlines() if '"greeting"' in line]
    said = {
        g["uniqueid"]: (g.get("outcome"), g.get("oncall")) for g in greetings if g.get("event") == "greeting"
    }
    assert said == {leak["uniqueid"]: ("oncall", "holiday"), repair["uniqueid"]: ("holiday", None)}
    entered = {
        e.callid for e in queuelog.read(callflow_lab.queue_log, since=started) if e.event == "ENTERQUEUE"
    }
    assert not entered & {leak["uniqueid"], repair["uniqueid"]}  # the independent record agrees

    deadline = time.monotonic() + 15
    want = ('acd_oncall_calls_total{hotline="water",outcome="answered"} 1.0',
            'acd_oncall_calls_total{hotline="water",outcome="unanswered"} 0.0',
            'acd_ivr_calls_total{hotline="water",outcome="oncall_answered"} 1.0')  # fmt: skip
    while not all(line in (text := scrape(daemon.http_port)) for line in want):
        assert time.monotonic() < deadline, [line for line in text.splitlines() if "oncall" in line]
        time.sleep(0.5)
    assert daemon.stop() == 0


def scrape(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
        return str(r.read().decode())
