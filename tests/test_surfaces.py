"""The daemon's listening surfaces under hostile input, black-box: a real `acdbridge run` process
with its HTTP listener and a FastAGI listener on free loopback ports, and [ami] aimed at a port
where nothing listens (the daemon keeps retrying AMI and must serve HTTP and FastAGI meanwhile).

Malformed, oversized, random and byte-a-second requests, 500 concurrent connections and
connect-and-close storms on both ports, while a probe in its own process asks /healthz every
20 ms: it must answer every time (its latency is printed; benchmarks/surface_load.py reports the
figures under bigger loads), the daemon's RSS must stay flat after warm-up,
and a well-formed AGI session and a /metrics scrape must still work during and after. Only
sockets are used, so these tests hold whatever serves HTTP. benchmarks/surface_load.py runs the
same drivers at bigger volumes and prints the figures."""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import random
import re
import signal
import socket
import statistics
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Awaitable, Iterator
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[1]
HOST = "127.0.0.1"
PROBE_EVERY_S = 0.02
HEAD_DEADLINE_S = 5.0  # both servers' whole-request deadline (HttpLimits, FastAgiServer)
AGI_MAX_SESSIONS = 200
AGI_HEADERS = (
    "agi_network: yes\nagi_network_script: hotline/water\nagi_request: agi://127.0.0.1/hotline/water\n"
    "agi_channel: PJSIP/trunk-0000{n:04x}\nagi_language: zh\nagi_type: PJSIP\nagi_uniqueid: 1800000000.{n}\n"
    "agi_version: 22.1.0\nagi_callerid: 1380000{n:04d}\nagi_calleridname: unknown\nagi_dnid: 6000\n"
    "agi_context: from-trunk\nagi_extension: 6000\nagi_priority: 2\nagi_enhanced: 0.0\n"
    "agi_accountcode: \nagi_threadid: 1402{n}\n\n"
)


# ---- the daemon under test ---------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


def flow_sections(agi_port: int) -> str:
    """The lab example's call-flow sections ([kpi] onwards), the AGI listener on agi_port."""
    text = (REPO / "examples/acdbridge-lab.toml").read_text(encoding="utf-8")
    text = text[text.index("[kpi]") :].replace('"examples/callers.csv"', f'"{REPO / "examples/callers.csv"}"')
    text, n = re.subn(r'(?m)^listen = "127\.0\.0\.1:\d+"', f'listen = "{HOST}:{agi_port}"', text)
    assert n == 1, "the example's [agi] listen line moved"
    return text


@dataclass
class Daemon:
    workdir: Path
    http_port: int = field(default_factory=free_port)
    agi_port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None

    @property
    def log_path(self) -> Path:
        return self.workdir / "daemon.log"

    def start(self) -> None:
        dead_ami = free_port()  # bound then released: nothing listens there
        config = self.workdir / "acdbridge.toml"
        config.write_text(
            f'[ami]\nhost = "{HOST}"\nport = {dead_ami}\nusername = "acdbridge"\nsecret = "surface-test"\n'
            f'reconnect_min_s = 0.5\nreconnect_max_s = 2\n[store]\npath = "{self.workdir / "store.sqlite"}"\n'
            f'[http]\nlisten = "{HOST}:{self.http_port}"\nboard_public = true\n'
            + flow_sections(self.agi_port),
            encoding="utf-8",
        )
        with self.log_path.open("wb") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "acdbridge", "run", "--config", str(config)],
                stdout=log, stderr=subprocess.STDOUT, env={**os.environ, "PYTHONUNBUFFERED": "1"},
            )  # fmt: skip
        deadline = time.monotonic() + 15
        while not (_accepts(self.http_port) and _accepts(self.agi_port)):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the daemon did not start:\n{self.log_path.read_text()}")
            time.sleep(0.05)

    def rss_kib(self) -> int:
        assert self.proc is not None
        status = Path(f"/proc/{self.proc.pid}/status").read_text()
        return int(re.search(r"VmRSS:\s+(\d+) kB", status)[1])  # type: ignore[index]

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self) -> int | None:
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        return self.proc.wait()


def _accepts(port: int) -> bool:
    try:
        socket.create_connection((HOST, port), timeout=0.5).close()
        return True
    except OSError:
        return False


# ---- the /healthz probe, in a process of its own so the attack's CPU is not in its figures ----


def _probe_main(port: int, every_s: float, stop: Any, out: Connection) -> None:
    samples: list[tuple[float, int]] = []  # (seconds, status; 0 for no answer)
    request = b"GET /healthz HTTP/1.1\r\nHost: probe\r\n\r\n"
    while not stop.is_set():
        started = time.perf_counter()
        status = 0
        try:
            with socket.create_connection((HOST, port), timeout=2.0) as s:
                s.sendall(request)
                data = b""
                while chunk := s.recv(65536):
                    data += chunk
            if data.startswith(b"HTTP/1.1 ") and b'"ok"' in data:
                status = int(data[9:12])
        except OSError:
            pass
        took = time.perf_counter() - started
        samples.append((took, status))
        time.sleep(max(0.0, every_s - took))
    out.send(samples)
    out.close()


class Probe:
    """Ask /healthz every ~20 ms from another process until stopped; latency figures in ms."""

    def __init__(self, port: int, every_s: float = PROBE_EVERY_S) -> None:
        ctx = multiprocessing.get_context("spawn")
        self._stop = ctx.Event()
        self._recv, send = ctx.Pipe(duplex=False)
        self._proc = ctx.Process(target=_probe_main, args=(port, every_s, self._stop, send), daemon=True)
        self.samples: list[tuple[float, int]] = []

    def __enter__(self) -> Probe:
        self._proc.start()
        time.sleep(0.3)  # the spawned interpreter's start-up is not part of the run
        self._started = time.monotonic()
        return self

    def __exit__(self, *_: object) -> None:
        time.sleep(max(0.0, self._started + 1.0 - time.monotonic()))  # at least a second of samples
        self._stop.set()
        if self._recv.poll(10):
            self.samples = self._recv.recv()
        self._proc.join(5)

    @property
    def answered(self) -> list[float]:
        return [t * 1000 for t, status in self.samples if status]

    @property
    def unanswered(self) -> int:
        return sum(1 for _, status in self.samples if not status)

    def figures(self) -> dict[str, float]:
        ms = sorted(self.answered) or [float("nan")]
        return {"n": len(self.samples), "unanswered": self.unanswered, "p50": statistics.median(ms),
                "p99": ms[min(len(ms) - 1, int(len(ms) * 0.99))], "max": ms[-1]}  # fmt: skip


# ---- clients --------------------------------------------------------------------------------


async def exchange(port: int, data: bytes, *, eof: bool = False, within_s: float = 10.0) -> bytes:
    """Send data, read until the server closes; b"" when it closed (or reset) without a word."""
    try:
        async with asyncio.timeout(within_s):
            reader, writer = await asyncio.open_connection(HOST, port)
            try:
                writer.write(data)
                if eof:
                    writer.write_eof()
                await writer.drain()
                return await reader.read()
            finally:
                writer.close()
    except ConnectionError:
        return b""


async def trickle(port: int, data: bytes, every_s: float) -> tuple[bytes, float]:
    """A byte-a-second client: what the server answered, and after how long it closed."""
    started = time.monotonic()
    reader, writer = await asyncio.open_connection(HOST, port)
    answer = asyncio.ensure_future(reader.read())
    try:
        for i in range(len(data)):
            if answer.done():
                break
            writer.write(data[i : i + 1])
            await writer.drain()
            await asyncio.wait([answer], timeout=every_s)
        return await asyncio.wait_for(answer, HEAD_DEADLINE_S * 2), time.monotonic() - started
    except ConnectionError:
        return b"", time.monotonic() - started
    finally:
        writer.close()


async def burst(port: int, count: int, first: bytes, hold_s: float) -> tuple[int, int]:
    """count connections at once, each sending `first`, held hold_s: (closed by the server, open)."""

    async def one() -> bool:
        try:
            reader, writer = await asyncio.open_connection(HOST, port)
        except OSError:
            return True
        try:
            writer.write(first)
            await asyncio.wait_for(reader.read(), hold_s)
            return True
        except TimeoutError:
            return False
        except ConnectionError:
            return True
        finally:
            writer.close()

    closed = sum(await asyncio.gather(*(one() for _ in range(count))))
    return closed, count - closed


async def agi_call(port: int, n: int = 0) -> list[str]:
    """Play Asterisk for one well-formed hotline call: every command gets `200 result=0`
    (GET DATA gets key 1); the commands the daemon sent, until it closed the session."""
    reader, writer = await asyncio.open_connection(HOST, port)
    commands: list[str] = []
    try:
        writer.write(AGI_HEADERS.format(n=n).encode())
        while line := await asyncio.wait_for(reader.readline(), 10):
            commands.append(line.decode().rstrip("\n"))
            writer.write(b"200 result=1\n" if line.startswith(b"GET DATA") else b"200 result=0\n")
            await writer.drain()
    except ConnectionError:
        pass  # refused (over max_sessions) or closed while we answered
    finally:
        writer.close()
    return commands


def routed(commands: list[str]) -> bool:
    return any(c.startswith('SET VARIABLE "ACD_QUEUE"') for c in commands)


async def storm(
    port: int, count: int, *, reset: bool = False, rate: float = 0.0, concurrency: int = 25
) -> int:
    """Connect and close at once (or reset: SO_LINGER 0), count times, at most `rate` a second
    (0: flat out); the connections made."""
    made, started = 0, time.monotonic()
    gate = asyncio.Semaphore(concurrency)

    async def one(i: int) -> None:
        nonlocal made
        if rate:
            await asyncio.sleep(started + i / rate - time.monotonic())
        async with gate:
            try:
                _, writer = await asyncio.open_connection(HOST, port)
            except OSError:
                return
            made += 1
            if reset:
                writer.get_extra_info("socket").setsockopt(
                    socket.SOL_SOCKET, socket.SO_LINGER, b"\1\0\0\0\0\0\0\0"
                )
            writer.close()

    await asyncio.gather(*(one(i) for i in range(count)))
    return made


async def hold_open(port: int, count: int, first: bytes = b"") -> list[bytes]:
    """count connections at once, each sending `first` then nothing: what each got at the end."""
    return list(
        await asyncio.gather(*(exchange(port, first, within_s=HEAD_DEADLINE_S * 3) for _ in range(count)))
    )


def status_of(answer: bytes) -> int:
    """0 for no answer; a head that could not be parsed is answered as HTTP/1.0."""
    return int(answer[9:12]) if answer[:9] in (b"HTTP/1.1 ", b"HTTP/1.0 ") and answer[9:12].isdigit() else 0


# The HTTP cases: each a request and the status it must get (0: closed without an answer).
HTTP_CASES: list[tuple[str, bytes, int]] = [
    ("garbage line", b"nonsense\r\n\r\n", 400),
    ("binary", bytes(range(256)) + b"\r\n\r\n", 400),
    ("no path", b"GET healthz HTTP/1.1\r\n\r\n", 400),
    ("HTTP/2 preface", b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", 400),
    ("version", b"GET /healthz HTTP/3.0\r\n\r\n", 505),
    ("header without colon", b"GET /healthz HTTP/1.1\r\nHost x\r\n\r\n", 400),
    ("long request line", b"GET /" + b"a" * 5000 + b" HTTP/1.1\r\n\r\n", 414),
    ("huge request line", b"GET /" + b"a" * 100_000 + b" HTTP/1.1\r\n\r\n", 414),
    ("many headers", b"GET /healthz HTTP/1.1\r\n" + b"X-A: b\r\n" * 100 + b"\r\n", 431),
    ("huge head", b"GET /healthz HTTP/1.1\r\nX-A: " + b"b" * 20_000 + b"\r\n\r\n", 431),
    ("body too large", b"POST /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 10000000\r\n\r\n", 413),
    ("bad length", b"GET /healthz HTTP/1.1\r\nContent-Length: 12a\r\n\r\n", 400),
    ("two lengths", b"GET /healthz HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab", 400),
    ("chunked", b"POST /metrics HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400),
    ("method", b"DELETE /metrics HTTP/1.1\r\nHost: x\r\n\r\n", 405),
    ("not found", b"GET /../../etc/passwd HTTP/1.1\r\nHost: x\r\n\r\n", 404),
    ("small body", b"GET /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello", 503),  # AMI is down
    ("no Host", b"GET /healthz HTTP/1.1\r\n\r\n", 400),  # HTTP/1.1 requires it
    ("incomplete, then EOF", b"GET /healthz HTTP/1.1\r\nHost: x\r\n", 400),
    ("nothing", b"", 0),
]

# The FastAGI cases: header blocks that must end the session cleanly, without a command sent.
AGI_CASES: list[tuple[str, bytes]] = [
    ("no colon", b"agi_network yes\n\n"),
    ("not agi_", b"agi_network: yes\nX-Forwarded-For: 1.2.3.4\n\n"),
    ("binary", bytes(range(1, 256)) + b"\n\n"),
    ("long line", b"agi_network: " + b"x" * 20_000 + b"\n\n"),
    ("many lines", b"".join(b"agi_arg_%d: x\n" % i for i in range(1, 400)) + b"\n"),
    ("big block", b"".join(b"agi_arg_%d: %s\n" % (i, b"y" * 4000) for i in range(1, 30)) + b"\n"),
    ("unknown script", b"agi_network: yes\nagi_network_script: nosuch/thing\n\n"),
    ("EOF mid-block", b"agi_network: yes\nagi_chan"),
    ("nothing", b""),
]


def random_payloads(rng: random.Random, count: int) -> Iterator[bytes]:
    """Random bytes, and mutations of a valid request (bytes flipped, cut, repeated)."""
    valid = b"GET /healthz HTTP/1.1\r\nHost: x\r\nAccept: */*\r\n\r\n"
    for i in range(count):
        if i % 2:
            yield rng.randbytes(rng.randrange(1, 3000)) + (b"\r\n\r\n" if i % 4 == 1 else b"\n\n")
        else:
            data = bytearray(valid * rng.randrange(1, 3))
            for _ in range(rng.randrange(1, 8)):
                data[rng.randrange(len(data))] = rng.randrange(256)
            yield bytes(data[: rng.randrange(len(data) // 2, len(data) + 1)])


async def metrics_text(port: int) -> str:
    answer = await exchange(port, b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
    assert status_of(answer) == 200, answer[:200]
    return answer.decode()


def fresh_metrics(port: int) -> str:
    """/metrics once the daemon has published what just happened (it publishes once a second)."""
    time.sleep(1.2)
    text: str = run(metrics_text(port))
    return text


def count(metrics: str, family: str, kind: str) -> float:
    m = re.search(rf'^{family}{{kind="{kind}"}} (\S+)$', metrics, re.M)
    return float(m[1]) if m else 0.0


def agi_count(metrics: str, kind: str) -> float:
    return count(metrics, "acd_agi_events_total", kind)


# ---- the tests: one daemon for the module -----------------------------------------------------


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daemon]:
    d = Daemon(tmp_path_factory.mktemp("surfaces"))
    d.start()
    try:
        yield d
    finally:
        code = d.stop()
        log = d.log_path.read_text(errors="replace")
        assert "Traceback" not in log, log[-4000:]
        assert code == 0, log[-2000:]


def run(coro: Awaitable[Any]) -> Any:
    async def bounded() -> Any:
        async with asyncio.timeout(40):
            return await coro

    return asyncio.run(bounded())


def healthy(probe: Probe, daemon: Daemon) -> None:
    figures = probe.figures()
    print(f"/healthz during the attack: {figures}, RSS {daemon.rss_kib()} KiB")  # shown with -s
    assert daemon.alive(), daemon.log_path.read_text()[-2000:]
    # every probe answered; how fast is benchmarks/surface_load.py's figure (timing is no test here)
    assert figures["n"] >= 3 and figures["unanswered"] == 0, figures  # a loaded host probes less often


pytestmark = pytest.mark.timeout(90)


def test_malformed_and_oversized_http_get_a_4xx_naming_the_problem(daemon: Daemon) -> None:
    async def main() -> list[bytes]:
        return list(
            await asyncio.gather(*(exchange(daemon.http_port, data, eof=True) for _, data, _ in HTTP_CASES))
        )

    with Probe(daemon.http_port) as probe:
        answers = run(main())
    after = fresh_metrics(daemon.http_port)
    for (name, _, want), answer in zip(HTTP_CASES, answers, strict=True):
        assert status_of(answer) == want, (name, answer[:300])
        if 400 <= want < 500:  # the body names the problem in words
            assert len(answer.partition(b"\r\n\r\n")[2]) > 10, (name, answer)
    for kind, at_least in (("malformed", 7), ("too_large", 5), ("method_not_allowed", 1), ("probes", 1)):
        assert count(after, "acd_http_events_total", kind) >= at_least, kind  # counted for /metrics
    healthy(probe, daemon)


def test_malformed_agi_ends_the_session_and_real_calls_go_on(daemon: Daemon) -> None:
    async def main() -> tuple[list[bytes], list[list[str]]]:
        bad = asyncio.gather(*(exchange(daemon.agi_port, data, eof=True) for _, data in AGI_CASES))
        good = asyncio.gather(*(agi_call(daemon.agi_port, n) for n in range(5)))
        answers, calls = await asyncio.gather(bad, good)
        return list(answers), list(calls)

    before = run(metrics_text(daemon.http_port))
    with Probe(daemon.http_port) as probe:
        answers, calls = run(main())
    after = fresh_metrics(daemon.http_port)
    assert answers == [b""] * len(AGI_CASES)  # not one command sent to a broken session
    assert all(routed(c) for c in calls), calls
    for kind, at_least in (("malformed", 3), ("oversized", 3), ("unknown_script", 1), ("probes", 2)):
        assert agi_count(after, kind) - agi_count(before, kind) >= at_least, kind
    healthy(probe, daemon)


def test_random_bytes_on_both_ports(daemon: Daemon) -> None:
    rng = random.Random(11)
    payloads = list(random_payloads(rng, 400))

    async def main() -> tuple[list[bytes], list[bytes], list[str]]:
        gate = asyncio.Semaphore(50)

        async def one(port: int, data: bytes) -> bytes:
            async with gate:
                return await exchange(port, data, eof=True)

        http = await asyncio.gather(*(one(daemon.http_port, p) for p in payloads))
        agi = await asyncio.gather(*(one(daemon.agi_port, p) for p in payloads))
        return list(http), list(agi), await agi_call(daemon.agi_port, 99)

    with Probe(daemon.http_port) as probe:
        http, agi, call = run(main())
    statuses = Counter(status_of(a) for a in http)
    assert all(s in (0, 200, 503) or 400 <= s < 500 or s == 505 for s in statuses), statuses  # never a 500
    assert agi == [b""] * len(payloads)  # no random block is a valid header block: no command sent
    assert routed(call)
    healthy(probe, daemon)


def test_500_concurrent_connections_and_byte_a_second_clients(daemon: Daemon) -> None:
    """500 idle HTTP connections and 150 on FastAGI, plus byte-a-second clients on both, held
    until the 5 s deadline cuts each; meanwhile /healthz, /metrics and a real call all work. Then
    500 FastAGI connections at once: agi.max_sessions (200) are taken, the rest refused at once."""

    async def main() -> dict[str, Any]:
        slow_http = [trickle(daemon.http_port, b"GET /healthz HTTP/1.1\r\nX-Slow: " + b"z" * 20, 1.0)
                     for _ in range(5)]  # fmt: skip
        slow_agi = [trickle(daemon.agi_port, AGI_HEADERS.format(n=7).encode(), 1.0) for _ in range(5)]
        held_http = asyncio.gather(
            hold_open(daemon.http_port, 250), hold_open(daemon.http_port, 250, b"GET /")
        )
        held_agi = hold_open(daemon.agi_port, 150, b"agi_network: yes\n")
        tasks = [asyncio.ensure_future(t) for t in (*slow_http, *slow_agi, held_http, held_agi)]
        await asyncio.sleep(1.5)  # everything is connected and waiting now
        during_call = await agi_call(daemon.agi_port, 1)
        during_metrics = await metrics_text(daemon.http_port)
        done = await asyncio.gather(*tasks)
        return {"slow_http": done[:5], "slow_agi": done[5:10], "held_http": done[10], "held_agi": done[11],
                "during_metrics": during_metrics, "during_call": during_call,
                "burst": await burst(daemon.agi_port, 500, b"agi_network: yes\n", 1.0),
                "after_call": await agi_call(daemon.agi_port, 2)}  # fmt: skip

    before = run(metrics_text(daemon.http_port))
    with Probe(daemon.http_port) as probe:
        r = run(main())
    after = fresh_metrics(daemon.http_port)
    for answer, took in r["slow_http"]:
        assert status_of(answer) == 408 and took < HEAD_DEADLINE_S + 2, (answer, took)
    for answer, took in r["slow_agi"]:
        assert answer == b"" and took < HEAD_DEADLINE_S + 2, took
    silent, partial = r["held_http"]
    assert Counter(status_of(a) for a in silent) == {0: 250}  # silent: closed at the deadline
    assert Counter(status_of(a) for a in partial) == {408: 250}
    assert r["held_agi"] == [b""] * 150
    assert "acd_agi_events_total" in r["during_metrics"] and routed(r["during_call"])
    assert r["burst"] == (300, 200), r["burst"]
    assert agi_count(after, "rejected") - agi_count(before, "rejected") >= 300
    assert routed(r["after_call"])
    healthy(probe, daemon)


def test_500_concurrent_requests_are_all_answered(daemon: Daemon) -> None:
    healthz = b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"
    metrics = b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n"

    async def main() -> list[bytes]:
        return list(await asyncio.gather(*(exchange(daemon.http_port, metrics if i % 2 else healthz)
                                           for i in range(500))))  # fmt: skip

    with Probe(daemon.http_port) as probe:
        answers = run(main())
    assert Counter(status_of(a) for a in answers) == {503: 250, 200: 250}  # /healthz: 503 while AMI is down
    healthy(probe, daemon)


def test_connect_and_close_storms_leave_no_task_or_memory_behind(daemon: Daemon) -> None:
    """Connect-and-close and connect-and-reset on both ports, 2,000 connections a second in all
    (benchmarks/surface_load.py runs 4,000/s and flat out, and reports what saturation costs)."""

    async def wave(count: int) -> list[int]:
        ports = (daemon.http_port, daemon.agi_port)
        storms = [storm(p, count, reset=reset, rate=500) for reset in (False, True) for p in ports]
        return list(await asyncio.gather(*storms))

    run(wave(500))  # warm-up: the allocator's arenas and the loop's structures reach their size
    time.sleep(0.5)
    warm = daemon.rss_kib()
    with Probe(daemon.http_port) as probe:
        made = run(wave(2000))
        peak = daemon.rss_kib()
        call = run(agi_call(daemon.agi_port, 3))
    time.sleep(1.0)
    after = daemon.rss_kib()
    metrics = fresh_metrics(daemon.http_port)
    assert made == [2000] * 4
    assert routed(call)
    assert agi_count(metrics, "probes") >= 4000
    # flat: growth after warm-up within a few MiB (no per-connection leak: 8,000 connections here)
    assert after - warm < 8 * 1024, (warm, peak, after)
    healthy(probe, daemon)
