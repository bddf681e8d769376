"""Traffic through the real lab, checked against Asterisk's own queue_log and AMI events."""

from __future__ import annotations

import asyncio
import time

from acdbridge.lab import pbx, queuelog, scenario, traffic

from .helpers import TERMINAL, acdbridge, visits


def test_mixed_scenario_gives_every_queue_outcome_in_queue_log(lab: pbx.LabSettings) -> None:
    started = time.time()
    run = acdbridge("lab", "traffic", "--scenario", "mixed", timeout=300)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr
    planned = len(scenario.load("mixed").calls)
    assert f"{planned}/{planned} calls placed, {planned} ended" in run.stdout

    entries = queuelog.read(lab.queue_log, since=started)
    events = queuelog.event_counts(entries)
    for expected in ("ENTERQUEUE", "CONNECT", "COMPLETEAGENT", "COMPLETECALLER", "ABANDON", "RINGNOANSWER",
                     "EXITWITHTIMEOUT", "BLINDTRANSFER", "ATTENDEDTRANSFER"):  # fmt: skip
        assert events[expected] > 0, f"no {expected} in queue_log: {events}"

    by_visit = visits(entries)
    callers = {callid for callid, _ in by_visit}
    assert len(callers) >= 20
    for (callid, queue), evs in by_visit.items():
        assert evs[0] == "ENTERQUEUE", (callid, queue, evs)
        ends = [e for e in evs if e in TERMINAL]
        assert len(ends) == 1, f"visit {callid} in {queue} must end exactly once: {evs}"
        if ends[0].startswith("COMPLETE") or ends[0].endswith("TRANSFER"):
            assert "CONNECT" in evs, (callid, queue, evs)
    # the blind transfer moves the same caller channel (same uniqueid) into the broadband queue
    blind = next(callid for (callid, _), evs in by_visit.items() if "BLINDTRANSFER" in evs)
    assert (blind, "broadband") in by_visit


def test_sipp_agent_hold_raises_hold_and_unhold_on_the_agent_channel(lab: pbx.LabSettings) -> None:
    async def run() -> tuple[traffic.TrafficReport, list[dict[str, str]]]:
        watcher = traffic.AmiLink(lab.host, lab.ami_port, "acdbridge", pbx.AMI_USERS["acdbridge"])
        await watcher.connect()
        try:
            report = await traffic.run_async(scenario.load("sip_hold"), lab, print)
        finally:
            watcher.close()
        seen = []
        while not watcher.events.empty():
            seen.append(watcher.events.get_nowait())
        return report, seen

    started = time.time()
    report, events = asyncio.run(run())
    assert report.ok, report.summary()
    connects = [e for e in events if e["event"] == "AgentConnect" and e["interface"] == "PJSIP/1001"]
    holds = [e for e in events if e["event"] == "Hold"]
    unholds = [e for e in events if e["event"] == "Unhold"]
    assert len(connects) == 2 and len(holds) == 2 and len(unholds) == 2, report.summary()
    for connect in connects:
        agent_channel, caller = connect["destchannel"], connect["uniqueid"]
        assert agent_channel.startswith("PJSIP/1001-")
        hold = next(e for e in holds if e["linkedid"] == caller)
        unhold = next(e for e in unholds if e["linkedid"] == caller)
        # the trap: hold is raised on the channel that pressed hold -- the agent's, not the caller's
        assert hold["channel"] == agent_channel and unhold["channel"] == agent_channel
        assert 2.5 < float(unhold["timestamp"]) - float(hold["timestamp"]) < 4.0  # the softphone holds 3 s
    log = queuelog.read(lab.queue_log, since=started)
    assert queuelog.event_counts(log)["COMPLETEAGENT"] == 2  # the softphone hung up both calls
