"""systemd's notify protocol, with the test playing systemd's side of NOTIFY_SOCKET (no systemd
needed). The live daemon's READY/WATCHDOG/STATUS/STOPPING: tests/integration/test_operations.py."""

from __future__ import annotations

import asyncio
import itertools
import os
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from acdbridge.adapters.systemd import Notifier, watchdog_period


class FakeSystemd:
    """A datagram socket that records every message with its arrival time, in a thread."""

    def __init__(self, address: str) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(address)
        self.sock.settimeout(0.1)
        self.messages: list[tuple[float, str]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        while not self._stop.is_set():
            try:
                data = self.sock.recv(4096)
            except TimeoutError:
                continue
            self.messages.append((time.monotonic(), data.decode()))

    def times(self, message: str) -> list[float]:
        return [t for t, m in self.messages if m == message]

    def close(self) -> None:
        self._stop.set()
        self._thread.join(2)
        self.sock.close()


@pytest.fixture
def systemd(tmp_path: Path) -> Iterator[tuple[FakeSystemd, str]]:
    path = str(tmp_path / "notify")
    fake = FakeSystemd(path)
    yield fake, path
    fake.close()


def _until(predicate: object, seconds: float = 3.0) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and not predicate():  # type: ignore[operator]
        time.sleep(0.01)


def test_nothing_is_sent_without_notify_socket() -> None:
    notifier = Notifier({})
    assert not notifier.enabled
    notifier.ready()
    notifier.status("AMI connected")
    asyncio.run(notifier.run(asyncio.Event(), lambda: "x"))  # returns at once
    assert notifier.sent == 0


def test_messages_reach_an_abstract_namespace_socket() -> None:
    name = f"acdbridge-test-{os.getpid()}"
    fake = FakeSystemd("\0" + name)
    try:
        notifier = Notifier({"NOTIFY_SOCKET": "@" + name})
        notifier.ready()
        notifier.status("AMI down (connecting)")
        notifier.status("AMI down (connecting)")  # unchanged: not sent again
        notifier.status("AMI connected")
        notifier.stopping()
        _until(lambda: len(fake.messages) >= 4)
        assert [m for _, m in fake.messages] == [
            "READY=1", "STATUS=AMI down (connecting)", "STATUS=AMI connected", "STOPPING=1"
        ]  # fmt: skip
    finally:
        fake.close()


def test_the_watchdog_period_is_half_of_watchdog_usec() -> None:
    assert watchdog_period({"WATCHDOG_USEC": "30000000"}) == 15.0
    assert watchdog_period({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": str(os.getpid())}) == 15.0
    assert watchdog_period({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "1"}) is None  # meant for another
    assert watchdog_period({"WATCHDOG_USEC": "0"}) is None and watchdog_period({}) is None


def test_a_blocked_event_loop_stops_the_watchdog_pings(systemd: tuple[FakeSystemd, str]) -> None:
    fake, path = systemd
    notifier = Notifier({"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "100000"})  # a ping every 50 ms

    async def scenario() -> tuple[float, float]:
        stop = asyncio.Event()
        task = asyncio.create_task(notifier.run(stop, lambda: "ok"))
        await asyncio.sleep(0.5)
        blocked_at = time.monotonic()
        time.sleep(1.0)  # noqa: ASYNC251 -- the point: block the loop; no task runs, no ping goes out
        unblocked_at = time.monotonic()
        await asyncio.sleep(0.5)
        stop.set()
        await task
        return blocked_at, unblocked_at

    blocked_at, unblocked_at = asyncio.run(scenario())
    time.sleep(0.1)
    pings = fake.times("WATCHDOG=1")
    before = [t for t in pings if t < blocked_at]
    during = [t for t in pings if blocked_at + 0.02 < t < unblocked_at - 0.02]
    after = [t for t in pings if t > unblocked_at]
    assert during == [], "a blocked loop must send no WATCHDOG=1"
    assert len(before) >= 7 and len(after) >= 7  # ~10 per 0.5 s while the loop turns
    gaps = [b - a for a, b in itertools.pairwise(before)]
    assert max(gaps) < 0.3 and sum(gaps) / len(gaps) == pytest.approx(0.05, abs=0.02)
    notifier.close()
