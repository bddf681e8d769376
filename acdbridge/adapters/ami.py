"""The live AMI connection, on panoramisk, with the guards panoramisk lacks.

- Every read is appended to the journal (adapters/journal.py) before anything parses it, with
  its receive time; a new connection is a CONNECT record. When the checkpointer wants one, a
  Mark (how far the journal has been handed on) follows the next read that ends a frame.
- Bytes go through acdbridge's own core parser (the one replay uses), via a protocol subclass:
  no second parser, and no UTF-8 character lost at a TCP chunk boundary. Parsed messages go to
  `on_message` (the daemon puts them in a bounded queue); replies to our own actions are also
  handed to panoramisk so its action futures resolve.
- A ping watchdog: a Ping every ping_interval_s must be answered within action_timeout_s, or
  the PBX is taken as hung and the connection is dropped.
- Every action has a timeout, and `as_list` is always explicit (panoramisk guesses it from the
  reply's text and can wait forever).
- TLS (manager.conf tlsenable) when `[ami] tls`: the context and the words for a failed
  handshake come from settings/amitls.py, shared with check-config --pbx.
- Reconnect with capped, jittered exponential backoff (panoramisk's own is a fixed 2 s and
  re-sends unanswered actions); after every login a resync: GetConfig queues.conf (wrapuptime is
  in no event), QueueStatus and CoreShowChannels, whose replies the trackers use to pick up calls
  in progress without counting any twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import structlog
from panoramisk import Manager
from panoramisk.ami_protocol import AMIProtocol
from panoramisk.message import Message

from acdbridge.adapters.journal import CONNECT, Journal, Mark, mark_in
from acdbridge.adapters.reconnect import keep_connected
from acdbridge.core.ami import AmiMessage, FrameParser
from acdbridge.settings import amitls
from acdbridge.settings.amiconf import AmiConfig

log = structlog.get_logger("acdbridge.ami")
OnMessage = Callable[[AmiMessage, float], None]
OnMark = Callable[[Mark], None]


class MarkWanted(Protocol):
    """Set by the checkpointer when it wants a mark; cleared here once one is sent."""

    wanted: bool


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

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        if self.session.journal is not None:
            self.session.journal.append(b"", time.time(), CONNECT)
        super().connection_made(transport)

    def data_received(self, data: bytes) -> None:
        now = time.time()
        session = self.session
        at = session.journal.append(data, now) if session.journal is not None else None
        for msg in session.parser.feed(data):
            action_id = msg.headers.get("ActionID")
            if action_id is not None and action_id in self.responses:
                self.handle_message(Message(dict(msg.headers)))
            session.on_message(msg, now)
        wants = session.wants
        if wants is not None and wants.wanted and at is not None and session.journal is not None:
            mark = mark_in(data, at, session.journal.position)
            if mark is not None and session.on_mark is not None:
                wants.wanted = False
                session.on_mark(mark)


class _Manager(Manager):  # type: ignore[misc]
    def __init__(self, lost: asyncio.Event, tls: ssl.SSLContext | None, server_name: str | None,
                 **config: Any) -> None:  # fmt: skip
        super().__init__(**config)
        self.lost, self.tls, self.server_name = lost, tls, server_name
        self.refused = asyncio.Event()
        self.refusal = "refused"

    def connect(self, *_args: Any) -> asyncio.Task[Any]:
        # panoramisk's connect passes `ssl` but not server_hostname (tls_server_name); the rest
        # is its own: the done callback sets up the protocol and sends the Login
        self.loop = asyncio.get_running_loop()
        task = asyncio.ensure_future(self.loop.create_connection(
            self.config["protocol_factory"], self.config["host"], self.config["port"], ssl=self.tls,
            server_hostname=self.server_name,
        ))  # fmt: skip
        task.add_done_callback(self._made)
        return task

    def _made(self, task: asyncio.Future[Any]) -> None:
        # a failed or timed-out connect is ours to report (_connect); panoramisk's handler would
        # schedule a reconnect of its own on the loop, one more timer per failed attempt
        if not task.cancelled() and task.exception() is None:
            self.connection_made(task)

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
    def __init__(self, client: AmiClient) -> None:
        self.on_message = client._count_and_forward
        self.journal, self.on_mark, self.wants = client.journal, client.on_mark, client.wants
        self.parser = FrameParser(count=client._parse_problem)


class AmiClient:
    def __init__(self, cfg: AmiConfig, on_message: OnMessage, journal: Journal | None = None,
                 on_mark: OnMark | None = None, wants: MarkWanted | None = None,
                 count: Callable[[str, str], None] | None = None) -> None:  # fmt: skip
        self.cfg = cfg
        self.count = count  # the core's problem counter: a bad frame is counted like a bad value
        self.on_message = on_message
        self.journal, self.on_mark, self.wants = journal, on_mark, wants
        self.stats = AmiStats()
        self.tls = amitls.client_context(cfg)  # built once: tls_ca is read at start
        self._manager: Manager | None = None  # while logged in

    async def send(self, fields: dict[str, str]) -> Any:
        """An action from another task (membership sync, feature codes); ConnectionError when the
        link is down, TimeoutError when the PBX does not answer in time."""
        if self._manager is None:
            raise ConnectionError("the AMI link is down")
        as_list = fields.get("Action") in ("QueueStatus", "CoreShowChannels")
        return await self.action(self._manager, fields, as_list=as_list)

    def _parse_problem(self, kind: str, detail: str) -> None:
        """A frame the parser skipped. With the core's counter (the daemon) it is counted by kind
        and reported once per kind there; without, logged: a storm of garbage is never a storm
        of log lines in the daemon."""
        self.stats.malformed += 1
        if self.count is not None:
            self.count(kind, detail)
        else:
            log.warning("ami_malformed", problem=detail)

    async def run(self, stop: asyncio.Event) -> None:
        """Stay connected until `stop` is set."""
        await keep_connected(
            "ami", lambda: self._session(stop), stop,
            (OSError, TimeoutError, ConnectionError, AmiLoginError, AmiTlsError), self.stats,
            self.cfg.reconnect_min_s, self.cfg.reconnect_max_s, level="error", host=self.cfg.host,
            port=self.cfg.port,
        )  # fmt: skip

    async def _session(self, stop: asyncio.Event) -> None:
        cfg = self.cfg
        lost = asyncio.Event()
        logged_in = asyncio.Event()
        session = _Session(self)
        manager = _Manager(
            lost, self.tls, amitls.server_name(cfg), host=cfg.host, port=cfg.port, username=cfg.username,
            secret=cfg.secret,
            protocol_factory=lambda: _Protocol(session), ping_delay=NO_AUTO, reconnect_timeout=NO_AUTO,
            on_login=lambda _m: logged_in.set(), on_disconnect=lambda _m, _e: lost.set(),
            forgetable_actions=(*tuple(a["Action"].lower() for a, _ in RESYNC_ACTIONS), "ping", "login"),
        )  # fmt: skip
        try:
            await self._connect(manager)
            await self._login(manager, logged_in)
            self.stats.connected = True
            self.stats.connections += 1
            log.info("ami_connected", host=cfg.host, port=cfg.port, tls=cfg.tls)
            for fields, as_list in RESYNC_ACTIONS:
                await self.action(manager, fields, as_list=as_list)
            self._manager = manager
            await self._watch(manager, stop, lost)
        finally:
            self._manager = None
            self.stats.connected = False
            manager.close()

    async def _connect(self, manager: _Manager) -> None:
        try:
            await asyncio.wait_for(manager.connect(), self.cfg.action_timeout_s)
        except (OSError, EOFError) as exc:
            said = amitls.describe_failure(self.cfg, exc) if self.cfg.tls else None
            if said is None:
                raise
            raise AmiTlsError(said) from None
        except TimeoutError:
            if self.cfg.tls:  # e.g. a PBX that takes TCP but never answers the ClientHello
                raise AmiTlsError(
                    f"TLS: no handshake with {self.cfg.host}:{self.cfg.port} within "
                    f"{self.cfg.action_timeout_s:g} s (unreachable, or not a TLS port?)"
                ) from None
            raise

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


def succeeded(response: Any) -> bool:
    """An action's reply says Response: Success."""
    return str(response.get("Response", "")).lower() == "success"


class AmiLoginError(Exception):
    pass


class AmiTlsError(Exception):
    """The TLS handshake failed: an untrusted certificate, a plain-TCP port, a broken peer."""
