"""The supervisor grid at a large centre: 50 queues, 500 agents (each a member of 5 queues), a
synthetic AMI feed through the real engine (no PBX needed). One admin stream (the whole grid) is
driven through the real SupervisorApi stream code (adapters/web/supervisor.py `_push`) at the
daemon's board cadence (a tick every 0.1 s), and compared in the same run with the baseline a
full redraw would cost: the whole grid's JSON at every tick that changed anything.

Printed: calls per second, row changes per second, bytes per second to one browser (changed
rows vs. the whole grid), and server CPU per update (one grid computed + the diff + its JSON).
Run: .venv/bin/python benchmarks/supervisor_grid.py [--seconds 60] [--calls-per-s 2]"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import time
from types import SimpleNamespace
from typing import Any, cast

from acdbridge.adapters.web.supervisor import SupervisorApi, _Stream
from acdbridge.core.kpi import KpiConfig
from acdbridge.core.routing import AgentProfile, RoutingConfig, SkillGroup
from acdbridge.core.supgrid import TimeLimits
from acdbridge.flowconfig import FlowConfig
from acdbridge.runtime.engine import Engine
from acdbridge.runtime.supervisor import SupervisorFeed
from acdbridge.runtime.views import Views

T0 = 1_795_305_600.0 + 9 * 3600  # 09:00 UTC on a day
QUEUES = [f"q{i:02d}" for i in range(50)]


def ami(name: str, ts: float, **headers: str) -> bytes:
    lines = [f"Event: {name}", f"Timestamp: {ts:.6f}", *(f"{k}: {v}" for k, v in headers.items())]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def centre() -> tuple[FlowConfig, list[AgentProfile]]:
    profiles = []
    for i in range(500):
        skills = {QUEUES[(i + k * 10) % 50]: 3 for k in range(5)}
        profiles.append(AgentProfile(f"Agent {i:03d}", str(9000 + i), f"PJSIP/{9000 + i}", skills))
    groups = tuple(SkillGroup(q, q) for q in QUEUES)
    return FlowConfig(profiles={p.name: p for p in profiles}, routing=RoutingConfig(groups=groups)), profiles


def members(profiles: list[AgentProfile]) -> bytes:
    out = [b"Asterisk Call Manager/5.0.0\r\n"]
    for p in profiles:
        for q in p.skills:
            out.append(ami("QueueMemberAdded", T0, Queue=q, Interface=p.interface, MemberName=p.name,
                           Paused="0", Penalty="2"))  # fmt: skip
    return b"".join(out)


class Traffic:
    """Calls arriving at `rate` a second: join, ring 3 s, talk 60-240 s, hang up; pauses now and then."""

    def __init__(self, profiles: list[AgentProfile], rate: float) -> None:
        self.rng, self.profiles, self.rate = random.Random(1), profiles, rate
        self.free = list(profiles)
        self.due: list[tuple[float, bytes, AgentProfile | None]] = []
        self.n = 0

    def until(self, now: float, step: float) -> bytes:
        out = []
        for _ in range(self._arrivals(step)):
            out.append(self._call(now))
        if self.rng.random() < step * 0.2:  # a pause or unpause every ~5 s
            p = self.rng.choice(self.profiles)
            paused = self.rng.choice("01")
            out.append(ami("QueueMemberPause", now, Queue=next(iter(p.skills)), Interface=p.interface,
                           MemberName=p.name, Paused=paused, PausedReason="break"))  # fmt: skip
        keep = []
        for ts, data, agent in self.due:
            if ts <= now:
                out.append(data)
                if agent is not None:
                    self.free.append(agent)
            else:
                keep.append((ts, data, agent))
        self.due = keep
        return b"".join(out)

    def _arrivals(self, step: float) -> int:
        expected = self.rate * step
        return int(expected) + (1 if self.rng.random() < expected - int(expected) else 0)

    def _call(self, now: float) -> bytes:
        self.n += 1
        uid, queue = f"c{self.n}", self.rng.choice(QUEUES)
        c = {"Uniqueid": uid, "Linkedid": uid, "CallerIDNum": f"1390000{self.n:04d}", "CallerIDName": ""}
        join = ami("QueueCallerJoin", now, Queue=queue, Position="1", Count="1", **c)
        if not self.free:
            gone = ami("QueueCallerAbandon", now + 30, Queue=queue, Position="1", OriginalPosition="1",
                       HoldTime="30", **c)  # fmt: skip
            self.due.append((now + 30, gone + ami("Hangup", now + 30, **c), None))
            return join
        agent = self.free.pop(self.rng.randrange(len(self.free)))
        a = {"Queue": queue, "Interface": agent.interface, "MemberName": agent.name,
             "DestUniqueid": f"a{self.n}", "DestChannel": f"{agent.interface}-{self.n:08x}", **c}  # fmt: skip
        talk = self.rng.uniform(60, 240)
        self.due.append((now + 3, ami("AgentCalled", now + 3, **a), None))
        self.due.append((now + 6, ami("AgentConnect", now + 6, HoldTime="6", RingTime="3", **a), None))
        end = now + 6 + talk
        done = ami("AgentComplete", end, TalkTime=f"{talk:.0f}", HoldTime="6", Reason="caller", **a)
        self.due.append((end, done + ami("Hangup", end, **c), agent))
        return join


def run(seconds: float, rate: float) -> dict[str, float]:
    flow, profiles = centre()
    engine = Engine(KpiConfig(), {q: 10.0 for q in QUEUES})
    engine.feed_bytes(members(profiles), 0.0)
    views = Views(engine, KpiConfig())
    feed = SupervisorFeed(engine, views, lambda: flow, TimeLimits({"break": 900.0, "wrapup": 60.0}))
    stats = SimpleNamespace(sse_dropped=0)
    web = cast(Any, SimpleNamespace(guard=SimpleNamespace(stats=stats)))
    now = T0
    api = SupervisorApi(web, feed, None, {}, lambda: now)
    stream = _Stream(None, asyncio.Queue())
    traffic = Traffic(profiles, rate)
    views.refresh_windows(now)
    api._push(stream, feed.grid(now, None))
    first = len(stream.queue.get_nowait())
    sent = full = updates = rows = 0
    cpu = full_cpu = 0.0
    by_part = dict.fromkeys(("rows", "queues", "abandons"), 0)
    for step in range(int(seconds / 0.1)):
        now = T0 + (step + 1) * 0.1
        engine.feed_bytes(traffic.until(now, 0.1), now)
        engine.advance(now)
        if step % 100 == 0:
            views.refresh_windows(now)  # the daemon's 10 s KPI refresh
        t = time.process_time()
        grid = feed.grid(now, None)
        api._push(stream, grid)
        cpu += time.process_time() - t
        if not stream.queue.empty():
            data = stream.queue.get_nowait()
            updates += 1
            sent += len(data)
            rows += len(json.loads(data).get("rows", {}))
            parts = json.loads(data)
            for part in ("rows", "queues", "abandons"):
                by_part[part] += len(json.dumps(parts.get(part, {}), ensure_ascii=False).encode())
            t = time.process_time()
            whole = json.dumps({"rows": grid.rows, "queues": grid.queues, "abandons": grid.abandons},
                               ensure_ascii=False, sort_keys=True, allow_nan=False).encode()  # fmt: skip
            full_cpu += time.process_time() - t
            full += len(whole)
    return {"first_kb": first / 1024, "calls_per_s": traffic.n / seconds, "updates_per_s": updates / seconds,
            "rows_per_update": rows / max(updates, 1), "diff_kb_s": sent / seconds / 1024,
            "full_kb_s": full / seconds / 1024, "cpu_ms_per_tick": cpu / (seconds / 0.1) * 1000,
            "ticks": seconds / 0.1, "full_json_ms": full_cpu / max(updates, 1) * 1000,
            **{f"{k}_kb_s": v / seconds / 1024 for k, v in by_part.items()}}  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=60.0)
    ap.add_argument("--calls-per-s", type=float, default=2.0)
    args = ap.parse_args()
    r = run(args.seconds, args.calls_per_s)
    print(
        f"500 agents, 50 queues, {r['calls_per_s']:.2f} calls/s over {args.seconds:g} s, a tick every 0.1 s"
    )
    print(f"first message (the whole grid): {r['first_kb']:.1f} KiB")
    print(f"updates sent: {r['updates_per_s']:.2f}/s, {r['rows_per_update']:.2f} rows each")
    print(f"bytes to one browser: changed rows {r['diff_kb_s']:.1f} KiB/s, whole grid at each change "
          f"{r['full_kb_s']:.1f} KiB/s ({r['full_kb_s'] / max(r['diff_kb_s'], 1e-9):.0f}x)")  # fmt: skip
    print(f"  of which rows {r['rows_kb_s']:.1f}, queue panels {r['queues_kb_s']:.1f}, "
          f"abandons {r['abandons_kb_s']:.1f} KiB/s")  # fmt: skip
    print(
        f"server CPU per tick (grid + diff + JSON, one scope): {r['cpu_ms_per_tick']:.2f} ms; "
        f"the whole grid's JSON alone (baseline, per update): {r['full_json_ms']:.2f} ms"
    )


if __name__ == "__main__":
    main()
