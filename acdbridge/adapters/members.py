"""Keeps app_queue's membership in step with who is logged in and their skill profiles.

Desired membership comes from core/routing.py (logged-in agents x profiles); the actual one from
the MemberBook the pipeline keeps from AMI. Any difference becomes QueueAdd / QueueRemove /
QueuePenalty. It reconciles on login/logout, on a profile reload (SIGHUP), whenever the book
changes (a member removed by hand, a fresh QueueStatus after a reconnect) and every
REFRESH_S, when it asks for a QueueStatus so an Asterisk reload that lost members is noticed."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable
from typing import Any

import structlog

from acdbridge.adapters.ami import succeeded
from acdbridge.adapters.store import Store
from acdbridge.core.routing import AgentProfile, MemberAction, MemberBook, desired_members, plan_sync
from acdbridge.flowconfig import FlowConfig

log = structlog.get_logger("acdbridge.members")
Send = Callable[[dict[str, str]], Awaitable[Any]]
REFRESH_S = 60.0
SETTLE_S = 0.5  # let a burst of member events settle before comparing


def _fields(a: MemberAction) -> dict[str, str]:
    if a.kind == "add":
        return {"Action": "QueueAdd", "Queue": a.queue, "Interface": a.interface,
                "Penalty": str(a.penalty), "MemberName": a.member_name}  # fmt: skip
    if a.kind == "penalty":
        return {
            "Action": "QueuePenalty",
            "Queue": a.queue,
            "Interface": a.interface,
            "Penalty": str(a.penalty),
        }
    return {"Action": "QueueRemove", "Queue": a.queue, "Interface": a.interface}


class MembershipSync:
    def __init__(self, flow: FlowConfig, book: MemberBook, send: Send, store: Store) -> None:
        self.flow, self.book, self.send, self.store = flow, book, send, store
        self.logged_in: dict[str, float] = {}
        self.wake = asyncio.Event()
        self._lock = asyncio.Lock()

    async def load(self) -> None:
        self.logged_in = await asyncio.to_thread(self.store.logins)

    async def login(self, profile: AgentProfile) -> list[MemberAction]:
        self.logged_in[profile.name] = time.time()
        await asyncio.to_thread(self.store.save_login, profile.name, self.logged_in[profile.name])
        return await self.reconcile()

    async def logout(self, profile: AgentProfile) -> list[MemberAction]:
        self.logged_in.pop(profile.name, None)
        await asyncio.to_thread(self.store.save_login, profile.name, None)
        return await self.reconcile()

    def reload(self, flow: FlowConfig) -> None:
        """New profiles apply at once: penalties change, memberships come and go."""
        self.flow = flow
        self.wake.set()

    async def reconcile(self) -> list[MemberAction]:
        async with self._lock:
            if not self.book.synced:
                return []  # the book is being rebuilt; run() comes back when it is complete
            profiles = [self.flow.profiles[n] for n in self.logged_in if n in self.flow.profiles]
            desired = desired_members(profiles, self.flow.routing)
            managed = {p.interface for p in self.flow.profiles.values()}
            queues = {g.queue for g in self.flow.routing.groups}
            actions = plan_sync(desired, self.book.penalty, managed, queues)
            for action in actions:
                await self._apply(action)
            return actions

    async def _apply(self, a: MemberAction) -> None:
        try:
            resp = await self.send(_fields(a))
        except (ConnectionError, TimeoutError) as exc:
            log.warning(
                "member_action_failed", action=a.kind, queue=a.queue, interface=a.interface, error=str(exc)
            )
            return
        ok = succeeded(resp)
        log.info("member_sync", action=a.kind, queue=a.queue, interface=a.interface, penalty=a.penalty, ok=ok)
        if not ok:
            return
        key = (a.queue, a.interface)  # the AMI events follow; meanwhile do not send it twice
        if a.kind == "remove":
            self.book.penalty.pop(key, None)
        else:
            self.book.penalty[key] = a.penalty

    async def run(self, stop: asyncio.Event) -> None:
        seen, refreshed = -1, time.monotonic()
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.wake.wait(), 1.0)
            woken = self.wake.is_set()
            self.wake.clear()
            if time.monotonic() - refreshed >= REFRESH_S:
                refreshed = time.monotonic()
                with contextlib.suppress(ConnectionError, TimeoutError):
                    await self.send({"Action": "QueueStatus"})  # the answer rebuilds the book
            if woken or self.book.changes != seen:
                await asyncio.sleep(SETTLE_S)
                seen = self.book.changes
                await self.reconcile()
