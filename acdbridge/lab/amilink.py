"""The lab's AMI connections: the traffic generator's own link (a panoramisk Manager with a bounded
event queue and timed actions) and the recorder of what acdbridge's AMI user receives.

panoramisk is used with the guards our libraries notes call for: its callback only puts the
event into a bounded queue (drops counted), every action has a timeout, and a lost connection
ends the run with an error instead of panoramisk's silent re-send of unanswered actions.
"""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path
from typing import Any

from panoramisk import Manager

from acdbridge.errors import LabError
from acdbridge.lab.pbx import AMI_USERS
from acdbridge.privatefile import private_file

ACTION_TIMEOUT_S = 5.0
LOGIN_TIMEOUT_S = 10.0
EVENT_QUEUE_SIZE = 10_000


def phone_of(channel: str) -> str:
    """The far half of a Local channel: the person's phone. Hanging up there, not the half in the
    queue, is what a person does; it also makes app_queue attribute the hang-up correctly (an AMI
    Hangup of the queue-side half publishes no hangup request, so app_queue would log
    COMPLETECALLER even when the agent's side was hung up)."""
    return channel[:-2] + ";2" if channel.startswith("Local/") and channel.endswith(";1") else channel


class AmiRecorder:
    """Records the raw AMI bytes acdbridge's own AMI user receives during a run -- the same
    bytes panoramisk's save_stream writes -- for replay fixtures. At login it asks for
    queues.conf with GetConfig, as the daemon does, so the capture holds the wrapuptimes."""

    def __init__(self, host: str, port: int, out: Path) -> None:
        self.host, self.port, self.out = host, port, out
        self._task: asyncio.Task[None] | None = None
        self._writer: asyncio.StreamWriter | None = None

    async def start(self) -> None:
        reader, writer = await asyncio.wait_for(asyncio.open_connection(self.host, self.port), 5)
        secret = AMI_USERS["acdbridge"]
        login = (
            f"Action: Login\r\nActionID: acdbridge-login\r\nUsername: acdbridge\r\nSecret: {secret}\r\n\r\n"
        )
        getconfig = (
            "Action: GetConfig\r\nActionID: acdbridge-getconfig-queues\r\nFilename: queues.conf\r\n\r\n"
        )
        writer.write((login + getconfig).encode())
        self._writer = writer
        self._task = asyncio.create_task(self._copy(reader), name="ami-recorder")

    async def _copy(self, reader: asyncio.StreamReader) -> None:
        with private_file(self.out) as f:  # 0600: callers' numbers
            while chunk := await reader.read(65536):
                f.write(chunk)

    async def stop(self) -> None:
        if self._writer is not None:
            self._writer.write(b"Action: Logoff\r\n\r\n")
            await asyncio.sleep(0.2)
            self._writer.close()
        if self._task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.wait_for(self._task, 5)


class AmiLink:
    """A panoramisk Manager with a bounded event queue and timed actions."""

    def __init__(self, host: str, port: int, user: str, secret: str) -> None:
        self.events: asyncio.Queue[dict[str, str]] = asyncio.Queue(EVENT_QUEUE_SIZE)
        self.dropped = 0
        self.lost = asyncio.Event()
        self._logged_in = asyncio.Event()
        self.manager = Manager(
            host=host, port=port, username=user, secret=secret,
            ping_delay=3600, reconnect_timeout=3600,  # no auto-reconnect: a lost link ends the run
            forgetable_actions=("ping", "login", "originate", "hangup", "blindtransfer", "atxfer"),
            on_login=lambda _m: self._logged_in.set(),
            on_disconnect=lambda _m, _exc: self.lost.set(),
        )  # fmt: skip
        self.manager.register_event("*", self._on_event)

    def _on_event(self, _manager: Any, message: Any) -> None:
        # never raise here: an exception in a panoramisk callback closes the connection
        try:
            self.events.put_nowait({str(k).lower(): str(v) for k, v in message.items()})
        except asyncio.QueueFull:
            self.dropped += 1

    async def connect(self) -> None:
        try:
            await asyncio.wait_for(self.manager.connect(), LOGIN_TIMEOUT_S)
            await asyncio.wait_for(self._logged_in.wait(), LOGIN_TIMEOUT_S)
        except (TimeoutError, OSError) as exc:
            self.manager.close()
            raise LabError(
                f"cannot log in to AMI at {self.manager.config['host']}:{self.manager.config['port']}"
                f" as {self.manager.config['username']}: {exc or 'timed out'}"
            ) from exc

    async def action(self, fields: dict[str, str], *, as_list: bool = False) -> Any:
        """Send an action; returns its response, or all its messages with as_list=True (list
        actions such as QueueStatus). Raises TimeoutError. as_list is always explicit because
        panoramisk otherwise guesses from the message text and waits forever on single replies
        such as QueueAdd's "Added interface to queue"."""
        future = self.manager.send_action(dict(fields), as_list=as_list)
        return await asyncio.wait_for(future, ACTION_TIMEOUT_S)

    def close(self) -> None:
        self.manager.close()
