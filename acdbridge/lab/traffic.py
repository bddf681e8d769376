"""The lab's traffic generator: places a scenario's calls into the real Asterisk over AMI and
plays its Local-channel agents (SIPp plays the SIP ones).

Callers are Originates of Local/<number>@lab-callers/n into the hotline's DID: the ;1 half
waits in Queue(), the ;2 half is the caller's phone. Agents are queue members added with
QueueAdd. The generator watches AMI events and acts as the people would: a caller whose
patience runs out hangs up (ABANDON), an agent ends the call, or transfers it blind
(BlindTransfer) or attended (Atxfer, then the agent hangs up once the target answered).
Ring delays and ring-no-answer are dialplan ([lab-agents]) driven by LAB_RING_<id> globals.

This module runs a scenario; the people's behaviour is lab/driver.py, the AMI link and the
recorder lab/amilink.py, the run's report lab/trafficreport.py.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from acdbridge.errors import LabError
from acdbridge.lab import queuelog
from acdbridge.lab.amilink import AmiLink, AmiRecorder, phone_of
from acdbridge.lab.driver import Printer, TrafficDriver
from acdbridge.lab.pbx import AMI_USERS, LabSettings, running_state
from acdbridge.lab.scenario import Scenario
from acdbridge.lab.trafficreport import TrafficReport
from acdbridge.privatefile import private_file


def _write_private(path: Path, data: bytes) -> None:
    with private_file(path) as f:
        f.write(data)


__all__ = ["AmiLink", "TrafficDriver", "TrafficReport", "phone_of", "run_async", "run_scenario"]
RECORD_TAIL_S = 12.0  # longer than the sample config's longest wrapuptime (10 s)
LAB_USER = "acdlab"


async def run_async(
    scn: Scenario, settings: LabSettings, say: Printer, record: Path | None = None
) -> TrafficReport:
    """Run a scenario. With `record`, the raw AMI stream goes to that file and the run's
    queue_log lines to the same name with .queue_log added: a replay fixture and its truth."""
    if running_state(settings) is None:
        raise LabError("lab is not running", detail="start it with: acdbridge lab up")
    recorder = AmiRecorder(settings.host, settings.ami_port, record) if record else None
    if recorder:
        await recorder.start()
    ami = AmiLink(settings.host, settings.ami_port, LAB_USER, AMI_USERS[LAB_USER])
    await ami.connect()
    try:
        report = await TrafficDriver(scn, settings, say, ami).run()
    finally:
        ami.close()
        # let Asterisk write the last queue_log lines; a recording also waits out the last wrap-up
        await asyncio.sleep(RECORD_TAIL_S if record else 1.5)
        if recorder:
            await recorder.stop()
    lines = queuelog.read_lines(settings.queue_log, since=report.started_at)
    report.queue_log = queuelog.event_counts(queuelog.parse_lines(lines))
    if record:
        text = "".join(f"{line}\n" for line in lines)
        await asyncio.to_thread(_write_private, Path(f"{record}.queue_log"), text.encode())
    return report


def run_scenario(
    scn: Scenario, settings: LabSettings, say: Printer, record: Path | None = None
) -> TrafficReport:
    say(f"scenario {scn.name}: {len(scn.calls)} calls, {len(scn.agents)} agents, "
        f"at most {scn.max_duration_s:g}s")  # fmt: skip
    return asyncio.run(run_async(scn, settings, say, record))
