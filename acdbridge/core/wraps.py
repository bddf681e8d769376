"""The answering agents' after-call work (wrap-up). Sans-IO; core/calls.py's tracker owns one.

A visit ends for the record when its agent's wrap-up does: at the queue's wrapuptime after the
talk, or earlier at the agent's next offer, pause, logout or disposition. The wrapuptime is in no
AMI event: queues.conf (GetConfig) gives it, the config's `queues.*.wrapup_s` stands in; unknown,
the visit is reported at once with no wrap figure rather than a wrong one."""

from __future__ import annotations

import heapq
from collections.abc import Callable, Mapping
from typing import Any

from acdbridge.core.values import parse_seconds
from acdbridge.core.visit import Visit, visit_dict, visit_of

MAX_WRAPUP_S = 86_400.0  # a day at most: a wrap-up due later would hold the agent forever
Key = tuple[str, str, float]


class WrapUps:
    def __init__(
        self,
        wrapup_s: Mapping[str, float] | None,
        on_done: Callable[[Visit], None],
        on_wrap_end: Callable[[str, float], None] | None = None,
        on_problem: Callable[[str], None] | None = None,
    ) -> None:
        self.wrapup_s: dict[str, float] = dict(wrapup_s or {})  # from config; GetConfig overrides
        self.config_wrapup: dict[str, float] = {}
        self.wrapping: dict[str, Visit] = {}  # agent interface -> visit in wrap-up
        self.heap: list[tuple[float, str, Key]] = []  # (due, interface, visit key); stale ones skipped
        self.logged_out: set[tuple[str, str]] = set()  # (interface, queue) removed from the queue
        self._on_done, self._on_wrap_end, self._on_problem = on_done, on_wrap_end, on_problem

    def wrapup_for(self, queue: str) -> float | None:
        if queue in self.config_wrapup:
            return self.config_wrapup[queue]
        return self.wrapup_s.get(queue)

    def read_getconfig(self, headers: Mapping[str, str]) -> set[str]:
        """queues.conf from GetConfig: Category-N: name / Line-N-M: key=value (last one wins).
        Returns the queues it names."""
        names = {k[len("Category-") :]: v for k, v in headers.items() if k.startswith("Category-")}
        for key, value in headers.items():
            if key.startswith("Line-"):
                cat = names.get(key.split("-")[1])
                var, _, val = value.partition("=")
                if cat and cat != "general" and var.strip() == "wrapuptime":
                    wrap = parse_seconds(val.strip())
                    if wrap is None and self._on_problem is not None:
                        self._on_problem(f"queues.conf [{cat}] wrapuptime={val!r} is not a number")
                    elif wrap is not None:
                        self.config_wrapup[cat] = min(wrap, MAX_WRAPUP_S)
        return {n for n in names.values() if n != "general"}

    def start(self, v: Visit, ts: float, now: float) -> None:
        """The agent's talk ended at ts: wrap-up until due (ending the previous one, if any);
        one already due by `now` (a wrapuptime of 0, or a late AgentComplete) ends at once."""
        interface = v.agent_interface or ""
        if interface in self.wrapping:
            self.end(interface, ts)
        wrap = self.wrapup_for(v.queue)
        if (interface, v.queue) in self.logged_out:
            wrap = 0.0  # AgentComplete came after the agent left the queue: no wrap-up to wait for
        if wrap is None:  # wrapuptime unknown: no wrap figure rather than a wrong one
            v.wrap_s = None
            self._on_done(v)
            return
        v.wrap_due = ts + wrap
        self.wrapping[interface] = v
        heapq.heappush(self.heap, (v.wrap_due, interface, v.key))
        self.expire(now)

    def end(self, interface: str, ts: float, known: bool = True) -> None:
        """The agent's wrap-up ends at ts (or at its due time, if that came first); `known`
        False: it ended before its due time, but when is not known (no wrap figure)."""
        v = self.wrapping.pop(interface, None)
        if v is None or v.end_ts is None:
            return
        due = v.wrap_due if v.wrap_due is not None else ts
        v.wrap_s = max(0.0, min(ts, due) - v.end_ts) if known else None
        if self._on_wrap_end is not None:
            self._on_wrap_end(interface, min(ts, due))
        self._on_done(v)

    def expire(self, now: float) -> None:
        heap = self.heap
        while heap and heap[0][0] <= now:
            due, interface, key = heapq.heappop(heap)
            v = self.wrapping.get(interface)
            if v is not None and v.key == key:
                self.end(interface, due)

    def finish(self, now: float) -> None:
        """End of input: every wrap-up runs to its due time."""
        for interface in list(self.wrapping):
            visit = self.wrapping[interface]
            self.end(interface, visit.wrap_due if visit.wrap_due is not None else now)

    def holds(self, key: Key) -> bool:
        return any(w.key == key for w in self.wrapping.values())

    def compact(self) -> None:
        """Drop the heap's stale entries (wrap-ups ended early leave theirs behind)."""
        self.heap = [(v.wrap_due, i, v.key) for i, v in self.wrapping.items() if v.wrap_due is not None]
        heapq.heapify(self.heap)

    def snapshot(self) -> dict[str, Any]:
        wrapping = [visit_dict(v) for v in self.wrapping.values()]
        return {"config_wrapup": self.config_wrapup, "wrapping": wrapping}

    def restore(self, snap: Mapping[str, Any]) -> None:
        self.config_wrapup.update(snap["config_wrapup"])
        for d in snap["wrapping"]:
            v = visit_of(d)
            self.wrapping[v.agent_interface or ""] = v
            if v.wrap_due is not None:
                heapq.heappush(self.heap, (v.wrap_due, v.agent_interface or "", v.key))
