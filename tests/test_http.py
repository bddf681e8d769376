"""The web server's limits (adapters/web/guard.py, server.py), in process over real loopback
sockets (small limits, so each is quick to reach): the connection and stream caps, the
whole-request deadline, the write deadline, a view that raises, the shared /metrics render, and
the counters /metrics exports from HttpStats.
tests/test_surfaces.py runs the same kind of input against the daemon process."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import pytest

from acdbridge.adapters.web.guard import HttpLimits, HttpStats
from acdbridge.adapters.web.server import WebServer
from acdbridge.adapters.web.site import build_site

pytestmark = pytest.mark.timeout(30)
HOST = "127.0.0.1"


@asynccontextmanager
async def serving(
    metrics: Callable[[], bytes] = lambda: b"acd_up 1\n",
    health: Callable[[], tuple[bool, dict[str, object]]] = lambda: (True, {}),
    **limits: Any,
) -> AsyncIterator[WebServer]:
    server = build_site(
        HOST, 0, metrics, health, board=lambda: b'{"queues": {}}', limits=HttpLimits(**limits)
    )
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


async def ask(port: int, data: bytes, *, eof: bool = True) -> bytes:
    reader, writer = await asyncio.open_connection(HOST, port)
    writer.write(data)
    if eof:
        writer.write_eof()
    try:
        return await asyncio.wait_for(reader.read(), 10)
    except ConnectionError:
        return b""
    finally:
        writer.close()


def status(answer: bytes) -> int:
    """The status; 0 for no answer. A head that could not be parsed is answered as HTTP/1.0."""
    return int(answer[9:12]) if answer[:9] in (b"HTTP/1.1 ", b"HTTP/1.0 ") else 0


GET = b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"
TWO_HEADERS = b"GET / HTTP/1.1\r\nHost: x\r\nA: " + b"b" * 1000 + b"\r\nB: " + b"c" * 1100 + b"\r\n\r\n"
EVENTS = b"GET /events HTTP/1.1\r\nHost: x\r\n\r\n"


def test_each_refusal_is_named_and_counted_by_kind() -> None:
    cases = {
        b"nonsense\r\n\r\n": (400, "malformed", b"bad request line"),
        b"GET /x HTTP/1.1\r\nno colon\r\n\r\n": (400, "malformed", b"Invalid header token"),
        b"GET / HTTP/3.0\r\nHost: x\r\n\r\n": (505, "malformed", b"not supported"),
        b"GET /" + b"a" * 600 + b" HTTP/1.1\r\n\r\n": (414, "too_large", b"request line over 512 bytes"),
        b"GET / HTTP/1.1\r\nHost: x\r\n" + b"A: b\r\n" * 9 + b"\r\n": (431, "too_large", b"the limit is 8"),
        b"GET / HTTP/1.1\r\nA: " + b"b" * 3000 + b"\r\n\r\n": (431, "too_large", b"over 2048 bytes"),
        TWO_HEADERS: (431, "too_large", b"request head over 2048"),
        b"PUT / HTTP/1.1\r\nHost: x\r\nContent-Length: 101\r\n\r\n": (413, "too_large", b"the limit is 100"),
        b"PUT / HTTP/1.1\r\nHost: x\r\n\r\n": (405, "method_not_allowed", b"use GET"),
        b"GET /nope HTTP/1.1\r\nHost: x\r\n\r\n": (404, "not_found", b"try /, /metrics or /healthz"),
        b"GET /healthz HTTP/1.1\r\n\r\n": (400, "malformed", b"Missing 'Host' header"),
        b"GET /healthz HTTP/1.1\r\nHost: x\r\n": (400, "malformed", b"incomplete request head"),
    }

    async def main() -> tuple[list[bytes], HttpStats]:
        async with serving(
            max_request_line=512, max_headers=8, max_header_bytes=2048, max_body_bytes=100
        ) as s:
            answers = [await ask(s.port, data) for data in cases]
            assert status(await ask(s.port, GET)) == 200  # still serving
            await ask(s.port, b"")  # a bare connect and close: a probe, no answer
            return answers, s.stats

    answers, stats = asyncio.run(main())
    for (data, (code, _, words)), answer in zip(cases.items(), answers, strict=True):
        assert status(answer) == code and words in answer, (data[:40], answer)
    assert (stats.malformed, stats.too_large, stats.method_not_allowed, stats.not_found) == (5, 5, 1, 1)
    assert (stats.requests, stats.probes, stats.open, stats.connections) == (4, 1, 0, 14)


def test_one_deadline_for_the_whole_request_cuts_a_byte_a_second_client() -> None:
    async def trickle(port: int) -> tuple[bytes, float]:
        started = time.monotonic()
        reader, writer = await asyncio.open_connection(HOST, port)
        answer = asyncio.ensure_future(reader.read())
        for byte in GET:
            if answer.done():
                break
            writer.write(bytes([byte]))
            await asyncio.wait([answer], timeout=0.1)  # ten bytes a second: each read is quick
        writer.close()
        return await answer, time.monotonic() - started

    async def main() -> tuple[bytes, float, bytes, HttpStats]:
        async with serving(request_timeout_s=0.5) as s:
            (answer, took), silent = await asyncio.gather(trickle(s.port), ask(s.port, b"", eof=False))
            return answer, took, silent, s.stats

    answer, took, silent, stats = asyncio.run(main())
    assert status(answer) == 408 and b"not complete within 0.5 s" in answer and took < 1.0
    assert silent == b""  # nothing sent: closed at the deadline without an answer
    assert (stats.timeouts, stats.probes) == (1, 1)


def test_connections_past_the_cap_get_503_at_once_and_streams_have_their_own_cap() -> None:
    async def main() -> tuple[bytes, bytes, bytes, bytes, HttpStats]:
        async with serving(max_connections=3, max_streams=1) as s:
            r1, w1 = await asyncio.open_connection(HOST, s.port)
            w1.write(EVENTS)
            assert b"text/event-stream" in await r1.readuntil(b"\r\n\r\n")
            second_stream = await ask(s.port, EVENTS)
            idle = [await asyncio.open_connection(HOST, s.port) for _ in range(2)]
            await asyncio.sleep(0.1)
            started = time.monotonic()
            over = await ask(s.port, GET, eof=False)
            assert time.monotonic() - started < 0.5  # refused at once, nothing read
            s.broadcast(b'{"queues": {"a": 1}}')
            update = await r1.readuntil(b'{"queues": {"a": 1}}')
            for _, w in idle:
                w.close()
            w1.close()
            await asyncio.sleep(0.2)
            return second_stream, over, update, await ask(s.port, GET), s.stats

    second_stream, over, update, after, stats = asyncio.run(main())
    assert status(second_stream) == 503 and b"too many event streams (limit 1)" in second_stream
    assert status(over) == 503 and b"too many connections" in over
    assert update.endswith(b'data: {"queues": {"a": 1}}') and status(after) == 200
    assert (stats.refused, stats.streams_refused, stats.open, stats.streams) == (1, 1, 0, 0)


def test_a_client_that_stops_reading_is_dropped_at_the_write_deadline() -> None:
    big = b"acd_big 1\n" * 3_000_000  # 30 MB: far more than the socket buffers take

    async def main() -> tuple[HttpStats, bytes]:
        async with serving(lambda: big, write_timeout_s=0.3) as s:
            _, writer = await asyncio.open_connection(HOST, s.port)
            writer.write(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
            await asyncio.sleep(1.0)  # read nothing
            still = await ask(s.port, GET)
            writer.close()
            return s.stats, still

    stats, still = asyncio.run(main())
    assert stats.write_timeouts == 1 and status(still) == 200 and stats.open == 0


def test_a_failing_view_costs_one_500_and_scrapes_share_one_render() -> None:
    renders: list[int] = []
    gate = threading.Event()

    def slow_metrics() -> bytes:
        renders.append(1)
        gate.wait(2)
        return b"acd_up 1\n"

    def broken() -> tuple[bool, dict[str, object]]:
        raise ValueError("boom")

    health: list[Callable[[], tuple[bool, dict[str, object]]]] = [lambda: (True, {})]

    async def main() -> tuple[list[bytes], bytes, HttpStats]:
        async with serving(slow_metrics, lambda: health[0]()) as s:
            scrapes = [
                asyncio.ensure_future(ask(s.port, b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n"))
                for _ in range(20)
            ]
            await asyncio.sleep(0.3)
            gate.set()
            answers = await asyncio.gather(*scrapes)
            health[0] = broken
            return list(answers), await ask(s.port, GET), s.stats

    answers, failed, stats = asyncio.run(main())
    assert all(status(a) == 200 and a.endswith(b"acd_up 1\n") for a in answers)
    assert len(renders) == 1  # 20 scrapes during one render share it
    assert status(failed) == 500 and stats.errors == 1


def test_stop_ends_streams_and_trickling_clients_promptly() -> None:
    async def main() -> float:
        async with serving() as s:
            reader, writer = await asyncio.open_connection(HOST, s.port)
            writer.write(EVENTS)
            await reader.readuntil(b"\r\n\r\n")
            _, slow = await asyncio.open_connection(HOST, s.port)
            slow.write(b"GET /hea")
            await asyncio.sleep(0.1)
            started = time.monotonic()
        took = time.monotonic() - started
        writer.close()
        slow.close()
        return took

    assert asyncio.run(main()) < 2.5
