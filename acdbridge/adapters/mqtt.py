"""The wallboard on MQTT: the latest queue and agent boards as retained messages, for LED signs
and dashboards that subscribe to a broker (topic tree and payloads: docs/mqtt.md).

- `update()` is cheap and synchronous: it renders the boards to payloads and keeps only the
  latest payload per topic, so memory stays bounded however long the broker is away.
- `run()` stays connected: changes go out as soon as `update()` reports them, everything is
  republished every `republish_s` and after every (re)connect (a broker restarted without
  persistence has lost the retained messages), reconnects use capped, jittered backoff, and no
  network error ever leaves `run()`: the daemon keeps working without its signs.
- `{prefix}/status` is "online" while connected; the broker publishes the last will "offline"
  when the link dies, and an orderly stop publishes it itself (a clean DISCONNECT cancels the will).
"""

from __future__ import annotations

import asyncio
import json
import ssl
from collections.abc import Awaitable
from dataclasses import dataclass

import aiomqtt
import structlog

from acdbridge.adapters.reconnect import keep_connected
from acdbridge.core.board import AgentBoard, QueueBoard
from acdbridge.settings.mqttconf import MqttConfig

log = structlog.get_logger("acdbridge.mqtt")
TIMEOUT_S = 5.0  # CONNACK, each PUBACK and the DISCONNECT; the TCP connect has paho's own 5 s


@dataclass
class MqttStats:
    connected: bool = False
    published: int = 0
    reconnects: int = 0
    last_error: str = ""


def topic_level(name: str) -> str:
    """A queue or agent name as one topic level. '/', '+', '#' would split the level or be
    wildcards, and mosquitto drops a client that sends NUL or control characters, so these are
    percent-encoded (with '%' itself, so two names never collide); other UTF-8 stays as it is."""
    return "".join(f"%{ord(c):02X}" if c in "%/+#" or ord(c) < 0x20 or 0x7F <= ord(c) <= 0x9F else c
                   for c in name)  # fmt: skip


class MqttPublisher:
    def __init__(self, cfg: MqttConfig) -> None:
        self.cfg = cfg
        self.stats = MqttStats()
        self.status_topic = f"{cfg.topic_prefix}/status"
        self._latest: dict[str, str] = {}  # topic -> payload: the whole current state
        self._pending: dict[str, str] = {}  # topic -> payload still to publish ("" clears a retained one)
        self._retained: set[str] = set()  # topics the broker may hold a retained message for
        self._wake = asyncio.Event()

    @property
    def backlog(self) -> int:
        """Messages waiting to be published (they pile up while the broker is unreachable)."""
        return len(self._pending)

    def update(self, queues: dict[str, QueueBoard], agents: dict[str, AgentBoard]) -> None:
        """Take the current boards (on the loop); only what differs from the last state is marked."""
        prefix = self.cfg.topic_prefix
        state: dict[str, str] = {}
        for name, board in queues.items():
            topic = f"{prefix}/queue/{topic_level(name)}"
            state[topic] = json.dumps(board.as_dict(), ensure_ascii=False, separators=(",", ":"))
            state[f"{topic}/led"] = board.led
        for name, agent in agents.items():
            state[f"{prefix}/agent/{topic_level(name)}/state"] = agent.state
        for topic in self._latest.keys() - state.keys():
            del self._latest[topic]  # gone (an agent logged off): clear its retained message, if any
            if topic in self._retained:
                self._pending[topic] = ""
            else:
                self._pending.pop(topic, None)
        for topic, payload in state.items():
            if self._latest.get(topic) != payload:
                self._latest[topic] = self._pending[topic] = payload
        if self._pending:
            self._wake.set()

    async def run(self, stop: asyncio.Event) -> None:
        """Stay connected until `stop` is set; network errors are logged and retried, never raised."""
        cfg = self.cfg
        await keep_connected(
            "mqtt", lambda: self._session(stop), stop, (aiomqtt.MqttError, OSError, TimeoutError), self.stats,
            cfg.reconnect_min_s, cfg.reconnect_max_s, host=cfg.host, port=cfg.port,
        )  # fmt: skip

    def _client(self) -> aiomqtt.Client:
        cfg = self.cfg
        tls = None
        if cfg.tls:  # verifies the chain and the host name (an IP address matches an IP SAN)
            tls = ssl.create_default_context(cafile=str(cfg.ca_file) if cfg.ca_file else None)
        will = aiomqtt.Will(topic=self.status_topic, payload="offline", qos=1, retain=True)
        return aiomqtt.Client(cfg.host, cfg.port, identifier=cfg.client_id, username=cfg.username,
                              password=cfg.password, tls_context=tls, will=will, keepalive=cfg.keepalive_s,
                              timeout=TIMEOUT_S)  # fmt: skip

    async def _session(self, stop: asyncio.Event) -> None:
        client = self._client()
        try:
            async with client:
                self.stats.connected = True
                log.info("mqtt_connected", host=self.cfg.host, port=self.cfg.port, tls=self.cfg.tls)
                lost = asyncio.create_task(_until_disconnected(client), name="mqtt-watch")
                lost.add_done_callback(_retrieve)
                try:
                    await self._publish(client, self.status_topic, "online", qos=1)
                    await self._serve(client, stop, lost)
                    await self._flush(client)  # the last changes, then goodbye
                    await self._publish(client, self.status_topic, "offline", qos=1)
                finally:
                    lost.cancel()
        finally:
            self.stats.connected = False

    async def _serve(self, client: aiomqtt.Client, stop: asyncio.Event, lost: asyncio.Task[None]) -> None:
        loop = asyncio.get_running_loop()
        while not stop.is_set():
            self._pending.update(self._latest)  # everything, now and every republish_s
            self._wake.clear()
            deadline = loop.time() + self.cfg.republish_s
            await self._flush(client)
            while not stop.is_set() and (left := deadline - loop.time()) > 0:
                await _wait_any(left, stop.wait(), self._wake.wait(), lost)
                if lost.done():
                    lost.result()  # raises why the link died
                    raise aiomqtt.MqttError("disconnected")
                if self._wake.is_set():
                    self._wake.clear()  # before flushing: an update during the flush wakes us again
                    await self._flush(client)

    async def _flush(self, client: aiomqtt.Client) -> None:
        for topic, payload in list(self._pending.items()):
            await self._publish(client, topic, payload)
            if self._pending.get(topic) == payload:  # unless update() replaced it meanwhile
                del self._pending[topic]
            if payload:
                self._retained.add(topic)
            else:
                self._retained.discard(topic)

    async def _publish(
        self, client: aiomqtt.Client, topic: str, payload: str, qos: int | None = None
    ) -> None:
        await client.publish(topic, payload, qos=self.cfg.qos if qos is None else qos, retain=True)
        self.stats.published += 1


async def _until_disconnected(client: aiomqtt.Client) -> None:
    # nothing is subscribed: the iterator only ends, with MqttError, when the link is lost
    try:
        async for _ in client.messages:
            pass
    except aiomqtt.MqttError as exc:  # its own text is "Disconnected during message iteration"
        raise aiomqtt.MqttError(f"connection lost: {exc.__cause__ or exc}") from exc


def _retrieve(task: asyncio.Task[None]) -> None:
    if not task.cancelled():
        task.exception()  # read, so asyncio does not log "exception was never retrieved"


async def _wait_any(seconds: float, *waits: Awaitable[object]) -> None:
    """Wait until one of the awaitables finishes or `seconds` pass; cancel the others."""
    tasks = [w if isinstance(w, asyncio.Future) else asyncio.ensure_future(w) for w in waits]
    try:
        await asyncio.wait(tasks, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task, w in zip(tasks, waits, strict=True):
            if task is not w:  # ours to cancel; a task passed in belongs to the caller
                task.cancel()
