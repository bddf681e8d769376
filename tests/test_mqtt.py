"""The MQTT wallboard publisher against a real mosquitto (Debian's, started per test on a free
loopback port): retained state, change detection, the periodic republish, the last will, a broker
that is down or restarts, passwords and TLS."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import dataclasses
import hashlib
import json
import os
import pwd
import shutil
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import aiomqtt
import pytest
from structlog.testing import capture_logs

from acdbridge.adapters.mqtt import MqttPublisher, topic_level
from acdbridge.core.board import AgentBoard, QueueBoard
from acdbridge.settings.mqttconf import MqttConfig, parse_mqtt

pytestmark = pytest.mark.timeout(60)
MOSQUITTO = Path("/usr/sbin/mosquitto")
REPO = Path(__file__).resolve().parents[1]
FAST_RETRY: dict[str, Any] = {"reconnect_min_s": 0.05, "reconnect_max_s": 0.2}


def qboard(queue: str, waiting: int = 3, longest: float = 45.0, sl: float | None = 0.82) -> QueueBoard:
    return QueueBoard(queue=queue, calls_waiting=waiting, longest_wait_s=longest, avg_wait_today_s=12.5,
                      service_level=sl, abandon_rate=0.05, offered_today=120, agents_ready=2,
                      agents_talking=3, agents_paused=1, sl_target=0.8, sl_threshold_s=20.0, window="15m",
                      status="ok")  # fmt: skip


QUEUES = {"ventas/españa": qboard("ventas/españa"), "售后+#": qboard("售后+#", 0, 0.0, None)}
AGENTS = {"Ana Torres": AgentBoard("Ana Torres", "talking"), "李明": AgentBoard("李明", "ready")}


def expected(prefix: str, queues: dict[str, QueueBoard], agents: dict[str, AgentBoard]) -> dict[str, str]:
    topics = {}
    for name, board in queues.items():
        topics[f"{prefix}/queue/{topic_level(name)}"] = json.dumps(board.as_dict(), ensure_ascii=False)
        topics[f"{prefix}/queue/{topic_level(name)}/led"] = board.led
    for name, agent in agents.items():
        topics[f"{prefix}/agent/{topic_level(name)}/state"] = agent.state
    return topics


def same(topic: str, got: str | None, want: str) -> bool:
    if got is None:
        return False
    if "/queue/" in topic and not topic.endswith("/led"):
        return bool(json.loads(got) == json.loads(want))  # the JSON, whatever its spacing
    return got == want


# --- a real broker ----------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class Brokers:
    """Starts mosquitto processes from a conf in tmp_path; all are stopped at the end."""

    def __init__(self, tmp_path: Path) -> None:
        if not MOSQUITTO.exists():
            pytest.fail("mosquitto is missing: install Debian's mosquitto package: apt-get install mosquitto")
        self.dir = tmp_path
        self.procs: dict[int, subprocess.Popen[bytes]] = {}

    def start(self, port: int | None = None, settings: str = "allow_anonymous true") -> int:
        port = port or free_port()
        log = self.dir / f"mosquitto-{port}.log"
        conf = self.dir / f"mosquitto-{port}.conf"
        # as root mosquitto switches to the "mosquitto" user, which cannot read tmp_path: stay who we are
        user = pwd.getpwuid(os.geteuid()).pw_name
        conf.write_text(f"listener {port} 127.0.0.1\n{settings}\npersistence false\nuser {user}\n"
                        f"log_dest file {log}\nlog_type all\n")  # fmt: skip
        proc = subprocess.Popen([str(MOSQUITTO), "-c", str(conf)], stdin=subprocess.DEVNULL)
        self.procs[port] = proc
        deadline = time.monotonic() + 5
        while True:
            if proc.poll() is not None:
                text = log.read_text() if log.exists() else ""
                pytest.fail(f"mosquitto exited with {proc.returncode}:\n{text}")
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", port)) == 0:
                    return port
            if time.monotonic() > deadline:
                pytest.fail(f"mosquitto does not accept on port {port}")
            time.sleep(0.02)

    def stop(self, port: int) -> None:
        proc = self.procs.pop(port)
        proc.terminate()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


@pytest.fixture
def brokers(tmp_path: Path) -> Iterator[Brokers]:
    b = Brokers(tmp_path)
    try:
        yield b
    finally:
        for port in list(b.procs):
            b.stop(port)


# --- an observer and a running publisher --------------------------------------------------------


class Observer:
    def __init__(self) -> None:
        self.got: list[tuple[str, str, bool]] = []  # topic, payload, retain flag
        self.arrived = asyncio.Event()

    def latest(self) -> dict[str, str]:
        return {topic: payload for topic, payload, _ in self.got}

    def count(self, topic: str) -> int:
        return sum(1 for t, _, _ in self.got if t == topic)

    async def until(self, cond: Callable[[], bool], what: str, seconds: float = 5.0) -> None:
        try:
            async with asyncio.timeout(seconds):
                while not cond():
                    self.arrived.clear()
                    await self.arrived.wait()
        except TimeoutError:
            pytest.fail(f"{what}: not seen in {seconds} s; got {self.got}")

    async def has(self, want: dict[str, str], seconds: float = 5.0) -> None:
        def ok() -> bool:
            latest = self.latest()
            return all(same(t, latest.get(t), p) for t, p in want.items())

        await self.until(ok, f"topics {sorted(want)}", seconds)


@contextlib.asynccontextmanager
async def observe(port: int, topic: str, **client_kw: Any) -> AsyncIterator[Observer]:
    obs = Observer()
    client = aiomqtt.Client("127.0.0.1", port, identifier=f"observer-{time.monotonic_ns()}", timeout=5,
                            **client_kw)  # fmt: skip
    async with client:
        await client.subscribe(f"{topic}/#", qos=1)

        async def read() -> None:
            async for m in client.messages:
                assert isinstance(m.payload, bytes)
                obs.got.append((m.topic.value, m.payload.decode(), m.retain))
                obs.arrived.set()

        reader = asyncio.create_task(read())
        try:
            yield obs
        finally:
            reader.cancel()


@contextlib.asynccontextmanager
async def running(pub: MqttPublisher) -> AsyncIterator[asyncio.Task[None]]:
    stop = asyncio.Event()
    task = asyncio.create_task(pub.run(stop))
    try:
        yield task
    finally:
        stop.set()
        async with asyncio.timeout(10):
            await task  # run() must end, and without raising


def connected(pub: MqttPublisher) -> bool:  # a call, so mypy does not narrow it for the rest of a test
    return pub.stats.connected


async def until(cond: Callable[[], bool], what: str, seconds: float = 5.0) -> None:
    """Poll the publisher's stats, which have no event to wait on."""
    try:
        async with asyncio.timeout(seconds):
            while not cond():  # noqa: ASYNC110
                await asyncio.sleep(0.02)
    except TimeoutError:
        pytest.fail(f"{what}: not within {seconds} s")


# --- 1. publish on change, retained, periodic republish -----------------------------------------


def test_changes_are_published_retained_and_unchanged_boards_are_not(brokers: Brokers) -> None:
    port = brokers.start()
    prefix = "site1/wall"  # a prefix may have several levels
    pub = MqttPublisher(MqttConfig(port=port, client_id="t-change", topic_prefix=prefix))
    ventas = f"{prefix}/queue/ventas%2Fespaña"
    li = f"{prefix}/agent/李明/state"
    want = expected(prefix, QUEUES, AGENTS)
    shou = f"{prefix}/queue/售后%2B%23"
    assert set(want) == {ventas, f"{ventas}/led", shou, f"{shou}/led", f"{prefix}/agent/Ana Torres/state", li}
    assert want[f"{ventas}/led"] == "WAIT 3 LONG 0:45 SL 82%"

    async def scenario() -> None:
        async with observe(port, "site1") as obs, running(pub):
            await obs.until(lambda: obs.latest().get(f"{prefix}/status") == "online", "status online")
            pub.update(QUEUES, AGENTS)
            await obs.has(want)
            assert json.loads(obs.latest()[ventas])["queue"] == "ventas/españa"  # the real name in the JSON
            seen = len(obs.got)
            pub.update(QUEUES, AGENTS)  # the same boards: nothing to say before republish_s (10 s)
            await asyncio.sleep(0.5)
            assert obs.got[seen:] == []
            changed = {**QUEUES, "ventas/españa": qboard("ventas/españa", waiting=4, longest=61.0)}
            pub.update(changed, AGENTS)
            await obs.has({f"{ventas}/led": "WAIT 4 LONG 1:01 SL 82%"})
            await asyncio.sleep(0.2)
            assert {t for t, _, _ in obs.got[seen:]} == {ventas, f"{ventas}/led"}  # only what changed
            # 李明 logs off: his retained state is cleared (an empty retained message)
            pub.update(changed, {"Ana Torres": AGENTS["Ana Torres"]})
            await obs.until(lambda: obs.latest().get(li) == "", "the cleared agent topic")
        assert pub.stats.published >= 10 and not pub.stats.connected and pub.stats.reconnects == 0
        async with observe(port, "site1") as late:  # a later subscriber gets the retained state
            after = expected(prefix, changed, {"Ana Torres": AGENTS["Ana Torres"]})
            after[f"{prefix}/status"] = "offline"
            await late.has(after)
            await asyncio.sleep(0.2)
            assert all(retain for _, _, retain in late.got) and li not in late.latest()
            assert set(late.latest()) == set(after)

    asyncio.run(scenario())


def test_everything_is_republished_every_republish_s(brokers: Brokers) -> None:
    port = brokers.start()
    pub = MqttPublisher(MqttConfig(port=port, client_id="t-periodic", topic_prefix="per", republish_s=0.5))
    led = "per/queue/ventas%2Fespaña/led"

    async def scenario() -> None:
        async with observe(port, "per") as obs, running(pub):
            pub.update(QUEUES, AGENTS)
            await obs.has(expected("per", QUEUES, AGENTS))
            first = obs.count(led)
            await asyncio.sleep(1.3)  # no update at all: two or three republishes of the same state
            assert 2 <= obs.count(led) - first <= 4
            assert obs.count("per/agent/李明/state") - obs.count(led) in (-1, 0, 1)
            assert obs.latest()[led] == "WAIT 3 LONG 0:45 SL 82%"

    asyncio.run(scenario())


# --- 2. status and the last will ----------------------------------------------------------------

CHILD = """
import asyncio, sys
from acdbridge.adapters.mqtt import MqttPublisher
from acdbridge.settings.mqttconf import MqttConfig
from acdbridge.core.board import AgentBoard

async def main() -> None:
    pub = MqttPublisher(MqttConfig(port=int(sys.argv[1]), client_id="child", topic_prefix="child"))
    pub.update({}, {"Ana": AgentBoard("Ana", "ready")})
    await pub.run(asyncio.Event())

asyncio.run(main())
"""


def test_status_online_offline_and_the_last_will(brokers: Brokers) -> None:
    port = brokers.start()
    pub = MqttPublisher(MqttConfig(port=port, client_id="t-status", topic_prefix="st"))

    async def orderly() -> None:
        async with observe(port, "st") as obs:
            async with running(pub):
                await obs.until(lambda: obs.latest().get("st/status") == "online", "online")
                async with observe(port, "st") as late:
                    await late.until(lambda: ("st/status", "online", True) in late.got, "retained online")
            await obs.until(lambda: obs.latest().get("st/status") == "offline", "offline on an orderly stop")

    async def killed() -> None:
        async with observe(port, "child") as obs:
            child = await asyncio.create_subprocess_exec(sys.executable, "-c", CHILD, str(port), cwd=REPO)
            try:
                await obs.has({"child/status": "online", "child/agent/Ana/state": "ready"}, seconds=10)
                child.kill()  # SIGKILL: no goodbye; the OS closes the socket, the broker sends the will
                async with asyncio.timeout(5):
                    await child.wait()
                await obs.until(lambda: obs.latest().get("child/status") == "offline", "the will", seconds=3)
            finally:
                if child.returncode is None:
                    child.kill()
                    async with asyncio.timeout(5):
                        await child.wait()
        async with observe(port, "child") as late:
            await late.until(lambda: ("child/status", "offline", True) in late.got, "the will, retained")

    asyncio.run(orderly())
    asyncio.run(killed())


# --- 3. the broker down, then up; the broker restarting ----------------------------------------


def test_broker_down_then_up_gets_the_latest_state_and_memory_stays_bounded(brokers: Brokers) -> None:
    port = free_port()
    pub = MqttPublisher(MqttConfig(port=port, client_id="t-down", topic_prefix="dn", **FAST_RETRY))
    topics = len(expected("dn", QUEUES, AGENTS))

    async def scenario() -> None:
        async with running(pub) as task:
            waiting = 0
            async with asyncio.timeout(10):
                while pub.stats.reconnects < 4:
                    for _ in range(200):  # a busy board while the broker is away
                        waiting += 1
                        queues = {**QUEUES, "ventas/españa": qboard("ventas/españa", waiting=waiting)}
                        pub.update(queues, AGENTS)
                    await asyncio.sleep(0.02)
            assert not task.done() and not connected(pub)
            assert "Connection refused" in pub.stats.last_error
            assert len(pub._pending) == len(pub._latest) == topics  # only the latest state is kept
            brokers.start(port)
            async with observe(port, "dn") as obs:
                await obs.has({**expected("dn", queues, AGENTS), "dn/status": "online"})
                assert f"WAIT {waiting} " in obs.latest()["dn/queue/ventas%2Fespaña/led"]
            assert connected(pub) and not pub._pending
            # the broker dies under us: noticed at once, and the restarted one (no persistence: it
            # kept no retained message) gets the whole state again
            brokers.stop(port)
            await until(lambda: not connected(pub), "the lost connection noticed")
            assert "connection lost" in pub.stats.last_error
            published = pub.stats.published
            brokers.start(port)
            await until(lambda: pub.stats.published > published + topics, "the republish")
            async with observe(port, "dn") as obs:  # subscribed after the republish: all retained
                await obs.has({**expected("dn", queues, AGENTS), "dn/status": "online"})
                assert all(retain for _, _, retain in obs.got)
            assert not task.done()

    asyncio.run(scenario())


# --- 4. username and password --------------------------------------------------------------------


def passwd_line(user: str, password: str) -> str:
    """mosquitto 2.0's password file format ($7$: PBKDF2-SHA512, 101 rounds, 12-byte salt)."""
    salt = os.urandom(12)
    digest = hashlib.pbkdf2_hmac("sha512", password.encode(), salt, 101)
    return f"{user}:$7$101${base64.b64encode(salt).decode()}${base64.b64encode(digest).decode()}\n"


def test_username_and_password(brokers: Brokers, tmp_path: Path) -> None:
    passwords = tmp_path / "passwords"
    tool = shutil.which("mosquitto_passwd")
    if tool:
        subprocess.run([tool, "-b", "-c", str(passwords), "acd", "right"], check=True)
    else:
        passwords.write_text(passwd_line("acd", "right"))
    with passwords.open("a") as f:  # always one line of our own too, to check the format above
        f.write(passwd_line("watcher", "eyes"))
    port = brokers.start(settings=f"allow_anonymous false\npassword_file {passwords}")
    cfg = MqttConfig(port=port, username="acd", password="right", client_id="good", topic_prefix="pw")
    good = MqttPublisher(cfg)
    bad = MqttPublisher(
        dataclasses.replace(cfg, password="wrong", client_id="bad", topic_prefix="pw2", **FAST_RETRY)
    )

    async def scenario() -> None:
        good.update(QUEUES, AGENTS)
        bad.update(QUEUES, AGENTS)
        async with observe(port, "pw", username="watcher", password="eyes") as obs, running(good):
            await obs.has({**expected("pw", QUEUES, AGENTS), "pw/status": "online"})
        with capture_logs() as logs:
            async with running(bad) as task:
                await until(lambda: bad.stats.reconnects >= 3, "retries with wrong credentials")
                assert not task.done() and not connected(bad)
        assert "Not authorized" in bad.stats.last_error
        failures = [e for e in logs if e["event"] == "mqtt_connection_failed"]
        assert len(failures) >= 3 and failures[0]["log_level"] == "warning"

    asyncio.run(scenario())


# --- 5. TLS --------------------------------------------------------------------------------------


def openssl(*args: str | Path) -> None:
    subprocess.run(["openssl", *map(str, args)], check=True, capture_output=True)


def make_ca(d: Path, name: str) -> tuple[Path, Path]:
    crt, key = d / f"{name}.crt", d / f"{name}.key"
    openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
            "-keyout", key, "-out", crt, "-days", "2", "-subj", f"/CN={name}")  # fmt: skip
    return crt, key


def make_server_cert(d: Path, ca: tuple[Path, Path]) -> tuple[Path, Path]:
    crt, key, csr, ext = d / "server.crt", d / "server.key", d / "server.csr", d / "server.ext"
    ext.write_text("subjectAltName = IP:127.0.0.1\nbasicConstraints = CA:FALSE\n"
                   "keyUsage = digitalSignature, keyEncipherment\nextendedKeyUsage = serverAuth\n"
                   "subjectKeyIdentifier = hash\nauthorityKeyIdentifier = keyid\n")  # fmt: skip
    openssl("req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
            "-keyout", key, "-out", csr, "-subj", "/CN=127.0.0.1")  # fmt: skip
    openssl("x509", "-req", "-in", csr, "-CA", ca[0], "-CAkey", ca[1], "-CAcreateserial", "-out", crt,
            "-days", "2", "-extfile", ext)  # fmt: skip
    return crt, key


# paho-mqtt 2.2 leaves the socket of a failed TLS handshake to the garbage collector (closed, with a
# ResourceWarning): harmless, but it would fail a run with -W error
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
def test_tls(brokers: Brokers, tmp_path: Path) -> None:
    ca = make_ca(tmp_path, "acdbridge-test-ca")
    other_ca, _ = make_ca(tmp_path, "some-other-ca")
    crt, key = make_server_cert(tmp_path, ca)
    port = brokers.start(settings=f"allow_anonymous true\ncafile {ca[0]}\ncertfile {crt}\nkeyfile {key}")
    cfg = MqttConfig(port=port, tls=True, ca_file=ca[0], client_id="tls", topic_prefix="tls")
    trusting = MqttPublisher(cfg)
    other = dataclasses.replace(cfg, ca_file=other_ca, client_id="tls-other", topic_prefix="tls-other")
    distrusting = MqttPublisher(dataclasses.replace(other, **FAST_RETRY))

    async def scenario() -> None:
        trusting.update(QUEUES, AGENTS)
        distrusting.update(QUEUES, AGENTS)
        ctx = ssl.create_default_context(cafile=str(ca[0]))
        async with observe(port, "tls", tls_context=ctx) as obs, running(trusting):
            await obs.has({**expected("tls", QUEUES, AGENTS), "tls/status": "online"})
        async with running(distrusting) as task:
            await until(lambda: distrusting.stats.reconnects >= 3, "retries against an unknown CA")
            assert not task.done() and not connected(distrusting)
        assert "CERTIFICATE_VERIFY_FAILED" in distrusting.stats.last_error
        assert distrusting.stats.published == 0

    asyncio.run(scenario())


# --- 6. configuration -----------------------------------------------------------------------------


def test_parse_mqtt_defaults_and_values(tmp_path: Path) -> None:
    assert parse_mqtt({}, "f.toml") == MqttConfig()
    ca = tmp_path / "ca.crt"
    ca.write_text("")
    table = {"host": "mqtt.lan", "port": 8883, "username": "u", "password": "p", "tls": True,
             "ca_file": str(ca), "client_id": "acd-1", "topic_prefix": "site/acd", "republish_s": 5,
             "reconnect_min_s": 1, "reconnect_max_s": 60.5, "qos": 0, "keepalive_s": 15}  # fmt: skip
    cfg = parse_mqtt(table, "f.toml")
    assert cfg == MqttConfig("mqtt.lan", 8883, "u", "p", True, ca, "acd-1", "site/acd", 5.0, 1.0, 60.5, 0, 15)


@pytest.mark.parametrize(
    ("table", "key"),
    [
        ({"hots": "x"}, "hots"),
        ({"host": 1}, "host"),
        ({"host": ""}, "host"),
        ({"port": "1883"}, "port"),
        ({"port": 0}, "port"),
        ({"port": True}, "port"),
        ({"tls": "yes"}, "tls"),
        ({"ca_file": "/nonexistent/ca.crt", "tls": True}, "ca_file"),
        ({"ca_file": "/etc/hostname"}, "ca_file"),
        ({"password": "p"}, "password"),
        ({"username": 7}, "username"),
        ({"topic_prefix": "a/#"}, "topic_prefix"),
        ({"topic_prefix": "a/"}, "topic_prefix"),
        ({"topic_prefix": "$SYS"}, "topic_prefix"),
        ({"client_id": ""}, "client_id"),
        ({"republish_s": 0}, "republish_s"),
        ({"republish_s": float("nan")}, "republish_s"),
        ({"reconnect_min_s": -1}, "reconnect_min_s"),
        ({"reconnect_min_s": 5, "reconnect_max_s": 1}, "reconnect_max_s"),
        ({"qos": 3}, "qos"),
        ({"keepalive_s": 1}, "keepalive_s"),
    ],
)
def test_parse_mqtt_errors_name_the_key(table: dict[str, Any], key: str) -> None:
    with pytest.raises(ValueError, match=rf"^f\.toml: mqtt\.{key}: "):
        parse_mqtt(table, "f.toml")


def test_topic_levels_escape_only_what_mqtt_forbids() -> None:
    assert topic_level("售后服务") == "售后服务"
    assert topic_level("Atención al cliente") == "Atención al cliente"
    assert topic_level("a/b+c#d%e") == "a%2Fb%2Bc%23d%25e"
    assert topic_level("tab\there\0") == "tab%09here%00"
    assert topic_level("a/b") != topic_level("a%2Fb")  # no two names share a topic
