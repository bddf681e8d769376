"""A fake Asterisk 22 AMI server on loopback, for the benchmarks that run the real daemon
(ami_load.py, recovery_bench.py): Asterisk's banner, the Login accepted, the daemon's resync
answered the way Asterisk 22 does (GetConfig of queues.conf from asterisk_conf/queues.conf,
QueueStatus and CoreShowChannels as lists with their "...Complete" event, Ping; anything else:
Response: Error), and event frames streamed at a fixed rate or at a trace's own pace."""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import fcntl
import re
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LAB_LOCK = "/tmp/acdbridge-lab.lock"
QUEUES_CONF = ROOT / "asterisk_conf" / "queues.conf"
BANNER = b"Asterisk Call Manager/11.0.0\r\n"  # what Asterisk 22 sends
SEP = b"\r\n\r\n"
TIMESTAMP = re.compile(rb"(?<=\r\nTimestamp: )\d+(?:\.\d+)?")
TICK_S = 0.01  # fixed-rate mode: a batch of frames every 10 ms


def getconfig_reply(action_id: str) -> bytes:
    """GetConfig queues.conf as Asterisk 22 answers it: each category with its template's lines
    first, then its own; templates themselves are not listed."""
    cats: list[tuple[str, list[str], list[str]]] = []  # (name, templates, lines)
    templates: dict[str, list[str]] = {}
    lines: list[str] | None = None
    for raw in QUEUES_CONF.read_text(encoding="utf-8").splitlines():
        text = raw.split(";", 1)[0].strip()
        if m := re.fullmatch(r"\[([^\]]+)\](?:\(([^)]*)\))?", text):
            name, opts = m[1], [o.strip() for o in (m[2] or "").split(",") if o.strip()]
            lines = [line for o in opts if o != "!" for line in templates.get(o, [])]
            if "!" in opts:
                templates[name] = lines
            else:
                cats.append((name, [o for o in opts if o != "!"], lines))
        elif lines is not None and "=" in text:
            key, _, value = text.partition("=")
            lines.append(f"{key.strip()}={value.strip()}")
    out = [f"Response: Success\r\nActionID: {action_id}\r\n"]
    for c, (name, parents, body) in enumerate(cats):
        out.append(f"Category-{c:06d}: {name}\r\n")
        if parents:
            out.append(f"Templates-{c:06d}: {','.join(parents)}\r\n")
        out += [f"Line-{c:06d}-{n:06d}: {line}\r\n" for n, line in enumerate(body)]
    return ("".join(out) + "\r\n").encode()


def longest_wrapup() -> float:
    reply = getconfig_reply("x").decode()
    return max((float(v) for v in re.findall(r"wrapuptime=(\d+(?:\.\d+)?)", reply)), default=0.0)


# -- the fake PBX ----------------------------------------------------------------------------------
@dataclass
class Session:
    """One AMI connection: everything written to it, in order, and how far the daemon got."""

    writer: asyncio.StreamWriter
    sent: list[bytes] = field(default_factory=list)
    resynced: asyncio.Event = field(default_factory=asyncio.Event)
    actions: dict[str, int] = field(default_factory=dict)

    def write(self, data: bytes) -> None:
        self.sent.append(data)
        self.writer.write(data)


class FakePbx:
    def __init__(self) -> None:
        self.session: Session | None = None
        self.connected = asyncio.Event()
        self.server: asyncio.Server | None = None
        self.port = 0

    async def start(self) -> None:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = int(self.server.sockets[0].getsockname()[1])

    async def resynced(self) -> Session:
        """The daemon's session once it has logged in and sent its resync (no timeout: wrap it)."""
        await self.connected.wait()
        assert self.session is not None
        await self.session.resynced.wait()
        return self.session

    async def close(self) -> None:
        if self.session is not None:
            self.session.writer.close()
        if self.server is not None:
            self.server.close()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.server.wait_closed(), 5)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.session is not None:  # one daemon, one connection: a reconnect would spoil the count
            print("  !! a second AMI connection (the daemon reconnected); refused")
            writer.close()
            return
        session = self.session = Session(writer)
        session.write(BANNER)
        self.connected.set()
        try:
            while frame := await reader.readuntil(SEP):
                self._answer(session, frame)
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.LimitOverrunError):
            pass
        finally:
            writer.close()

    def _answer(self, s: Session, frame: bytes) -> None:
        headers = dict(
            (k.strip().lower(), v.strip())
            for k, _, v in (line.partition(":") for line in frame.decode(errors="replace").split("\r\n"))
            if k
        )
        action, aid = headers.get("action", "").lower(), headers.get("actionid", "")
        s.actions[action] = s.actions.get(action, 0) + 1
        ok = f"Response: Success\r\nActionID: {aid}\r\n"
        if action == "login":
            s.write(f"{ok}Message: Authentication accepted\r\n\r\n".encode())
            # no FullyBooted: the acdbridge user of asterisk_conf/manager.conf has no `system` read
        elif action == "getconfig":
            s.write(getconfig_reply(aid))
        elif action in ("queuestatus", "coreshowchannels"):
            what = "Queue status" if action == "queuestatus" else "Channels"
            done = "QueueStatusComplete" if action == "queuestatus" else "CoreShowChannelsComplete"
            s.write(f"{ok}EventList: start\r\nMessage: {what} will follow\r\n\r\n"
                    f"Event: {done}\r\nActionID: {aid}\r\nEventList: Complete\r\nListItems: 0\r\n\r\n"
                    .encode())  # fmt: skip
            if action == "coreshowchannels":
                s.resynced.set()  # the daemon's last resync action
        elif action == "ping":
            s.write(f"{ok}Ping: Pong\r\nTimestamp: {time.time():.6f}\r\n\r\n".encode())
        elif action == "logoff":
            s.write(
                f"Response: Goodbye\r\nActionID: {aid}\r\nMessage: Thanks for all the fish.\r\n\r\n".encode()
            )
        else:
            s.write(
                f"Response: Error\r\nActionID: {aid}\r\nMessage: Invalid/unknown command\r\n\r\n".encode()
            )


async def stream(s: Session, frames: list[bytes], rate: float, times: list[float]) -> float:
    """Every frame, its Timestamp the send time: at `rate` frames/s, or at the trace's pace
    (`times`, seconds from the first frame) when rate is 0. The seconds it took."""
    started = time.time()
    i, n = 0, len(frames)
    deadline = time.monotonic() + (n / rate if rate else times[-1]) * 3 + 60  # never forever
    while i < n and time.monotonic() < deadline:
        now = time.time() - started
        due = min(n, int(now * rate) + 1) if rate else bisect.bisect_right(times, now, lo=i)
        batch = []
        for j in range(i, due):
            at = b"%.6f" % (started + (j / rate if rate else times[j]))
            batch.append(TIMESTAMP.sub(at, frames[j], count=1))
        if batch:
            s.write(b"".join(batch))
            await s.writer.drain()  # a daemon that cannot keep up slows the load down: the rate shows it
        i = due
        if i < n:
            wake = (i / rate) if rate else times[i]
            await asyncio.sleep(max(0.0, min(TICK_S if rate else 1.0, wake - (time.time() - started))))
    return time.time() - started


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def lab_lock(take: bool) -> Iterator[None]:
    """The lab's lock for one pair: no lab traffic from another helper while it is measured."""
    if not take:
        yield
        return
    with open(LAB_LOCK, "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def daemon_toml(work: Path, ami_port: int, http_port: int) -> str:
    """The [ami], [store] and [http] sections of a daemon under test against a FakePbx on
    `ami_port`: quick pings and reconnects, its store in `work`."""
    return (
        f'[ami]\nhost = "127.0.0.1"\nport = {ami_port}\nusername = "acdbridge"\nsecret = "x"\n'
        f"ping_interval_s = 2\naction_timeout_s = 5\nreconnect_min_s = 0.2\nreconnect_max_s = 2\n"
        f'[store]\npath = "{work / "store.sqlite"}"\n'
        f'[http]\nlisten = "127.0.0.1:{http_port}"\n'
    )
