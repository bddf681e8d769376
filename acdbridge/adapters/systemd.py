"""systemd's notify protocol with stdlib sockets (sd_notify(3)): one datagram per message to
$NOTIFY_SOCKET. Nothing is sent, and nothing fails, when the variable is unset (not under
systemd, or Type=simple).

- READY=1 once the listeners are up and the store is open;
- STATUS=... (the AMI link and calls in progress) whenever it changes;
- WATCHDOG=1 every WATCHDOG_USEC/2, sent by a task on the event loop itself: a blocked loop
  sends none, and systemd kills and restarts the daemon after WatchdogSec=;
- STOPPING=1 when an orderly stop begins."""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
from collections.abc import Callable, Mapping

import structlog

log = structlog.get_logger("acdbridge.systemd")
STATUS_PERIOD_S = 1.0


def _address(path: str) -> str:
    """'@name' is the abstract namespace: a leading NUL byte on the wire."""
    return "\0" + path[1:] if path.startswith("@") else path


def watchdog_period(env: Mapping[str, str]) -> float | None:
    """Half of WATCHDOG_USEC in seconds, or None when no watchdog is asked of this process."""
    try:
        usec = int(env.get("WATCHDOG_USEC", ""))
    except ValueError:
        return None
    pid = env.get("WATCHDOG_PID")
    if usec <= 0 or (pid and pid.isdigit() and int(pid) != os.getpid()):
        return None
    return usec / 2e6


class Notifier:
    def __init__(self, env: Mapping[str, str] | None = None) -> None:
        env = os.environ if env is None else env
        path = env.get("NOTIFY_SOCKET", "")
        self.address = _address(path) if path else None
        self.watchdog_s = watchdog_period(env) if path else None
        self.sent = 0
        self._status = ""
        self._failed = False
        self._stopping = False
        self._sock: socket.socket | None = None
        if self.address is not None:
            self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
            self._sock.setblocking(False)  # a full receive queue must never block the event loop

    @property
    def enabled(self) -> bool:
        return self._sock is not None

    def send(self, message: str) -> None:
        if self._sock is None or self.address is None:
            return
        try:
            self._sock.sendto(message.encode(), self.address)
            self.sent += 1
            self._failed = False
        except OSError as exc:  # systemd gone or the socket full: say so once, keep running
            if not self._failed:
                log.warning("systemd_notify_failed", error=str(exc))
            self._failed = True

    def ready(self) -> None:
        self.send("READY=1")

    def stopping(self) -> None:
        """Once: the signal handler says it first, the end of run() makes sure."""
        if not self._stopping:
            self._stopping = True
            self.send("STOPPING=1")

    def status(self, text: str) -> None:
        """Sent only when it changed."""
        if text != self._status:
            self._status = text
            self.send(f"STATUS={text}")

    async def run(self, stop: asyncio.Event, status: Callable[[], str]) -> None:
        """The watchdog and status task: must run on the daemon's own loop (see above)."""
        if self._sock is None:
            return
        loop = asyncio.get_running_loop()
        period = min(self.watchdog_s or STATUS_PERIOD_S, STATUS_PERIOD_S)
        next_ping = loop.time()
        while not stop.is_set():
            self.status(status())
            if self.watchdog_s is not None and loop.time() >= next_ping:
                self.send("WATCHDOG=1")
                next_ping = loop.time() + self.watchdog_s
            wait = period if self.watchdog_s is None else min(period, max(0.0, next_ping - loop.time()))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), wait)

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None
