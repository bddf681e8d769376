"""`acdbridge run` with its journal and `ami.queue_log`, SIGKILLed mid-traffic on the real lab and
restarted 2 s later, at the moments the issue names: a caller waiting, an agent's phone ringing, a
call in talk, a call on hold (a SIPp softphone), a call in wrap-up, and a transfer. What it
stores is checked against Asterisk's queue_log visit by visit (outcome, wait, talk+hold, agent,
ring-no-answer count, transfer): all match, none twice, none left out.

Two promises meet here. The journal and its checkpoint carry everything heard before a kill
across it (calls in progress keep their exact times); the queue_log backfill (core/gap.py) makes
whole what happened while the daemon was dead: a call answered, ended or transferred in the gap
comes from queue_log, a caller transferred in the gap and still waiting is tracked in the new
queue (core/resync.py)."""

from __future__ import annotations

import asyncio
import json
import re
import signal
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import pytest

from acdbridge.adapters.journal import segments
from acdbridge.lab import pbx, queuelog, scenario, traffic
from tests.truth import compare, truth_visits

from .daemon_harness import DaemonProcess, free_port

RESTART_AFTER_S = 2.0
SETTLE_S = 3.0  # since the last start: checkpoints (every 1 s) have been written
WAITING = r'acd_queue_calls_waiting\{queue="[^"]+"\}'


def agent_in(state: str) -> str:
    return rf'acd_agent_state\{{agent="[^"]+",state="{state}"\}}'


@dataclass(frozen=True)
class Moment:
    name: str
    metric: str | None = None  # a /metrics sample that is >= 1 at this moment
    log: str | None = None  # or a line of the traffic driver's (e.g. the transfer it starts)


# Each group's moments in the order they come (whichever is reached first); the groups in turn.
# The transfers come once, when the first calls' talk ends (13 s in, or much later when the
# caller first rings the agent who never answers): that kill comes first, the others after it.
PLANS = {
    "mixed": [
        [Moment("a transfer", log="transfer to")],
        [
            Moment("an agent's phone ringing", agent_in("ringing")),
            Moment("a call in talk", agent_in("talking")),
            Moment("a caller waiting", WAITING),
            Moment("a call in wrap-up", agent_in("wrapup")),
        ],
    ],
    "edge": [[Moment("a caller waiting", WAITING), Moment("a call in talk", agent_in("talking"))]],
    "sip_hold": [[Moment("a call on hold", agent_in("on_hold"))]],
}


def metric(port: int, pattern: str) -> float:
    """The sum of the /metrics samples matching `pattern` (0 when the daemon does not answer)."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as r:
            text = r.read().decode()
    except OSError:
        return 0.0
    return sum(float(m.group(1)) for m in re.finditer(pattern + r" ([0-9.e+-]+)$", text, re.M))


class Killer:
    """SIGKILLs the daemon at each moment in turn and starts it again RESTART_AFTER_S later; a
    gap runs from the kill to the new login."""

    def __init__(self, daemon: DaemonProcess, port: int) -> None:
        self.daemon, self.port = daemon, port
        self.lines: list[str] = []
        self.gaps: list[tuple[float, float]] = []
        self.killed_at: list[str] = []

    def log(self, line: str) -> None:
        self.lines.append(line)

    async def reached(self, moments: list[Moment], since: int) -> Moment | None:
        for moment in moments:
            if moment.log is not None:
                if any(moment.log in line for line in self.lines[since:]):
                    return moment
            elif await asyncio.to_thread(metric, self.port, moment.metric or "") >= 1:
                return moment
        return None

    async def kill_at_each(self, moments: list[Moment]) -> None:
        left = list(moments)
        while left:
            await asyncio.sleep(SETTLE_S)
            since = len(self.lines)  # a log line counts from now on, not one from before
            deadline = time.monotonic() + 120
            while (moment := await self.reached(left, since)) is None:
                assert time.monotonic() < deadline, f"never saw {[m.name for m in left]}"
                await asyncio.sleep(0.05)
            await self.kill_and_restart()
            self.killed_at.append(moment.name)
            left.remove(moment)

    async def kill_and_restart(self) -> None:
        assert self.daemon.proc is not None
        killed = time.time()
        self.daemon.proc.send_signal(signal.SIGKILL)
        await asyncio.to_thread(self.daemon.proc.wait)
        await asyncio.sleep(RESTART_AFTER_S)
        await asyncio.to_thread(self.daemon.start)  # returns once it has logged in again
        self.gaps.append((killed, time.time()))


def inside_gaps(
    entries: list[queuelog.QueueLogEntry], gaps: list[tuple[float, float]]
) -> set[tuple[str, str]]:
    """The visits with a queue_log event inside a gap (times floored: t in [a, b] is a - 1 < t <= b)."""
    return {(e.callid, e.queue) for e in entries if any(a - 1 < e.time <= b for a, b in gaps)}


@pytest.mark.parametrize("name", list(PLANS))
def test_sigkill_at_every_moment_of_a_call_loses_nothing_and_stores_nothing_twice(
    lab: pbx.LabSettings, tmp_path: Path, name: str
) -> None:
    port = free_port()
    daemon = DaemonProcess(tmp_path, lab.ami_port, http_port=port, extra="[journal]\ncheckpoint_s = 1\n",
                           ami_extra=f'queue_log = "{lab.queue_log}"\n')  # fmt: skip
    daemon.start()
    started = time.time()
    killer = Killer(daemon, port)

    async def traffic_with_kills() -> traffic.TrafficReport:
        run = asyncio.create_task(traffic.run_async(scenario.load(name), lab, killer.log))
        for group in PLANS[name]:
            await killer.kill_at_each(group)
        return await run

    report = asyncio.run(traffic_with_kills())
    assert report.ok, report.summary()
    time.sleep(13)  # the last wrap-ups (10 s at most in the sample config) end before the stop
    assert daemon.stop() == 0, daemon.log_text()[-3000:]
    log = daemon.log_text()
    assert log.count('"event": "recovered"') == len(killer.gaps), log[-3000:]  # each start replayed
    entries = queuelog.read(lab.queue_log, since=started)
    (tmp_path / "gaps.json").write_text(json.dumps(killer.gaps))  # for a look after a failure
    truth = truth_visits(entries)
    stored = daemon.stored_visits()
    keys = [(v["uniqueid"], v["queue"], v["enter_ts"]) for v in stored]
    assert len(keys) == len(set(keys))  # none twice
    touched = inside_gaps(entries, killer.gaps)
    assert compare(truth, stored) == [], (killer.killed_at, touched)
    assert len(truth) >= {"mixed": 12, "edge": 5, "sip_hold": 2}[name], len(truth)
    if name == "mixed":  # the gaps had something in them: the backfill was put to work
        assert touched and '"event": "gap_backfilled"' in log, log[-3000:]
    assert segments(daemon.capture), "the journal (ami.capture names its directory) was written"
