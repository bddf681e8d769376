"""The live AMI connection, on panoramisk, with the guards panoramisk lacks.

- Bytes go through acdbridge's own core parser (the one replay uses), via a protocol subclass:
  no second parser, and no UTF-8 character lost at a TCP chunk boundary. Parsed messages go to
  `on_message` (the daemon puts them in a bounded queue); replies to our own actions are also
  handed to panoramisk so its action futures resolve.
- A ping watchdog: a Ping every ping_interval_s must be answered within action_timeout_s, or
  the PBX is taken as hung and the connection is dropped.
- Every action has a timeout, and `as_list` is always explicit (panoramisk guesses it from the
  reply's text and can wait forever).
- Reconnect with capped, jittered exponential backoff (panoramisk's own is a fixed 2 s and
  re-sends unanswered actions); after every login a resync: GetConfig queues.conf (wrapuptime is
  in no event), QueueStatus and CoreShowChannels, whose replies the trackers use to pick up calls
  in progress without counting any twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import structlog
from panoramisk import Manager
from panoramisk.ami_protocol import AMIProtocol
from panoramisk.message import Message

from acdbridge.adapters.reconnect import keep_connected
from acdbridge.config import AmiConfig
from acdbridge.core.ami import AmiMessage, FrameParser

log = structlog.get_logger("acdbridge.ami")
OnMessage = Callable[[AmiMessage, float], None]
NO_AUTO = 10.0**9  # seconds: disables panoramisk's own pinger and reconnect
RESYNC_ACTIONS: tuple[tuple[dict[str, str], bool], ...] = (
    ({"Action": "GetConfig", "Filename": "queues.conf", "ActionID": "acdbridge-getconfig-queues"}, False),
    ({"Action": "QueueStatus"}, True),
    ({"Action": "CoreShowChannels"}, True),
)


@dataclass
class AmiStats:
    connected: bool = False
    messages: int = 0
    reconnects: int = 0
    connections: int = 0  # successful logins
    malformed: int = 0
    last_error: str = ""


class _Protocol(AMIProtocol):  # type: ignore[misc]
    """panoramisk's protocol, reading with acdbridge's parser."""

    def __init__(self, session: _Session) -> None:
        super().__init__()
        self.session = session

    def data_received(self, data: bytes) -> None:
        now = time.time()
        if self.session.capture is not None:
            self.session.capture.write(data)
        for msg in self.session.parser.feed(data):
            action_id = msg.headers.get("ActionID")
            if action_id is not None and action_id in self.responses:
                self.handle_message(Message(dict(msg.headers)))
            self.session.on_message(msg, now)


class _Manager(Manager):  # type: ignore[misc]
    def __init__(self, lost: asyncio.Event, **config: Any) -> None:
        super().__init__(**config)
        self.lost = lost
        self.refused = asyncio.Event()
        self.refusal = "refused"

    def connection_lost(self, exc: Exception | None) -> None:  # no panoramisk reconnect
        self.lost.set()

    def login(self, future: asyncio.Future[Any]) -> bool:
        # panoramisk only calls on_login on success; a refusal would look like a silent PBX
        ok = bool(super().login(future))
        if not ok:
            with contextlib.suppress(Exception):
                self.refusal = str(future.result().get("Message", "")) or "refused"
            self.refused.set()
        return ok


class _Session:
    def __init__(
        self, on_message: OnMessage, capture: BinaryIO | None, on_error: Callable[[str], None]
    ) -> None:
        self.on_message = on_message
        self.capture = capture
        self.parser = FrameParser(on_error=on_error)


class AmiClient:
    def __init__(self, cfg: AmiConfig, on_message: OnMessage) -> None:
        self.cfg = cfg
        self.on_message = on_message
        self.stats = AmiStats()
        self._manager: Manager | None = None  # while logged in

    async def send(self, fields: dict[str, str]) -> Any:
        """An action from another task (membership sync, feature codes); ConnectionError when the
        link is down, TimeoutError when the PBX does not answer in time."""
        if self._manager is None:
            raise ConnectionError("the AMI link is down")
        as_list = fields.get("Action") in ("QueueStatus", "CoreShowChannels")
        return await self.action(self._manager, fields, as_list=as_list)

    def _parse_error(self, text: str) -> None:
        self.stats.malformed += 1
        log.warning("ami_malformed", problem=text)

    async def run(self, stop: asyncio.Event) -> None:
        """Stay connected until `stop` is set."""
        capture = open_private(self.cfg.capture) if self.cfg.capture else None
        try:
            await keep_connected(
                "ami", lambda: self._session(stop, capture), stop,
                (OSError, TimeoutError, ConnectionError, AmiLoginError), self.stats,
                self.cfg.reconnect_min_s, self.cfg.reconnect_max_s, level="error", host=self.cfg.host,
                port=self.cfg.port,
            )  # fmt: skip
        finally:
            if capture is not None:
                capture.close()

    async def _session(self, stop: asyncio.Event, capture: BinaryIO | None) -> None:
        cfg = self.cfg
        lost = asyncio.Event()
        logged_in = asyncio.Event()
        session = _Session(self._count_and_forward, capture, self._parse_error)
        manager = _Manager(
            lost, host=cfg.host, port=cfg.port, username=cfg.username, secret=cfg.secret,
            protocol_factory=lambda: _Protocol(session), ping_delay=NO_AUTO, reconnect_timeout=NO_AUTO,
            on_login=lambda _m: logged_in.set(), on_disconnect=lambda _m, _e: lost.set(),
            forgetable_actions=(*tuple(a["Action"].lower() for a, _ in RESYNC_ACTIONS), "ping", "login"),
        )  # fmt: skip
        try:
            await asyncio.wait_for(manager.connect(), cfg.action_timeout_s)
            await self._login(manager, logged_in)
            self.stats.connected = True
            self.stats.connections += 1
            log.info("ami_connected", host=cfg.host, port=cfg.port)
            for fields, as_list in RESYNC_ACTIONS:
                await self.action(manager, fields, as_list=as_list)
            self._manager = manager
            await self._watch(manager, stop, lost)
        finally:
            self._manager = None
            self.stats.connected = False
            manager.close()

    async def _login(self, manager: _Manager, logged_in: asyncio.Event) -> None:
        waits = {asyncio.ensure_future(logged_in.wait()), asyncio.ensure_future(manager.refused.wait())}
        try:
            await asyncio.wait(waits, timeout=self.cfg.action_timeout_s, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in waits:
                task.cancel()
        if manager.refused.is_set():
            raise AmiLoginError(f"login as {self.cfg.username!r} refused: {manager.refusal}")
        if not logged_in.is_set():
            raise AmiLoginError(f"login as {self.cfg.username!r} unanswered")

    def _count_and_forward(self, msg: AmiMessage, received_at: float) -> None:
        self.stats.messages += 1
        self.on_message(msg, received_at)

    async def action(self, manager: Manager, fields: dict[str, str], *, as_list: bool = False) -> Any:
        return await asyncio.wait_for(
            manager.send_action(dict(fields), as_list=as_list), self.cfg.action_timeout_s
        )

    async def _watch(self, manager: Manager, stop: asyncio.Event, lost: asyncio.Event) -> None:
        """Ping until stopped or lost; an unanswered ping means a hung PBX: drop the link."""
        while not stop.is_set() and not lost.is_set():
            waiters = {asyncio.ensure_future(stop.wait()), asyncio.ensure_future(lost.wait())}
            done, pending = await asyncio.wait(waiters, timeout=self.cfg.ping_interval_s,
                                               return_when=asyncio.FIRST_COMPLETED)  # fmt: skip
            for task in pending:
                task.cancel()
            if done:
                break
            try:
                await self.action(manager, {"Action": "Ping"})
            except TimeoutError:
                log.warning("ami_ping_timeout", seconds=self.cfg.action_timeout_s)
                raise TimeoutError("the PBX did not answer a Ping") from None
        if lost.is_set() and not stop.is_set():
            raise ConnectionError("AMI connection lost")


def open_private(path: Path) -> BinaryIO:
    """Append to a capture, created 0600: it holds callers' numbers and names."""
    return os.fdopen(os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600), "ab")


def succeeded(response: Any) -> bool:
    """An action's reply says Response: Success."""
    return str(response.get("Response", "")).lower() == "success"


class AmiLoginError(Exception):
    pass
