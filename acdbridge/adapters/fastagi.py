"""A small FastAGI server on asyncio streams: Asterisk's AGI(agi://host:port/script) connects,
sends its agi_* header block, and a handler chosen by the script's first path segment drives the
call one command at a time; closing the socket hands the call back to the dialplan.

Hand-written because panoramisk.fast_agi is broken on Python 3.11 (it needs asyncio.coroutine,
a bare connect-and-close makes it spin on reader.read at EOF and freeze the loop, a hang-up during
a command gives ValueError, and it swallows CancelledError), and pyst2's fastagi is Python 2.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import structlog
from structlog.contextvars import bound_contextvars

from acdbridge.adapters import listening
from acdbridge.adapters.agi_protocol import (
    MAX_LINE,
    MAX_PROVISIONAL,
    MAX_REPLY_LINES,
    AgiCommandError,
    AgiHangup,
    AgiOversized,
    AgiProtocolError,
    AgiReply,
    AgiRequest,
    EnvBlock,
    _q,
    quote,
    reply_code,
)

__all__ = ["AgiCommandError", "AgiHangup", "AgiProtocolError", "AgiReply", "AgiRequest", "AgiSession",
           "AgiStats", "FastAgiServer", "Handler", "quote"]  # fmt: skip
log = structlog.get_logger("acdbridge.fastagi")
PLAYBACK_S = 120.0  # default allowance for a prompt to play (STREAM FILE, GET DATA)
LOG_EVERY_S = 60.0  # refusals before a session exists: one log line per kind per minute


@dataclass
class AgiStats:
    sessions: int = 0  # accepted (not rejected) connections
    completed: int = 0  # handler returned
    hangups: int = 0  # handler ended by AgiHangup
    failed: int = 0  # malformed line, timeout or handler exception (the next three are among them)
    malformed: int = 0  # a header or reply line that is not AGI
    oversized: int = 0  # a line, header block or reply over its limit (agi_protocol.py)
    timeouts: int = 0  # the header block not complete in time, or a command without its reply
    probes: int = 0  # closed before a complete header block, or silent until the header deadline
    rejected: int = 0  # over max_sessions, or arriving while closing
    unknown_script: int = 0
    commands: int = 0
    in_flight: int = 0


async def _readline(reader: asyncio.StreamReader) -> str | None:
    """One line without its end, or None at EOF (a reset is an EOF too: Asterisk is gone)."""
    try:
        raw = await reader.readuntil(b"\n")
    except (asyncio.IncompleteReadError, ConnectionError):
        return None
    except asyncio.LimitOverrunError:
        head = await reader.read(80)  # still buffered: returns at once
        raise AgiOversized(f"line over {MAX_LINE} bytes: {_q(head.decode(errors='replace'))}") from None
    return raw.decode(errors="replace").rstrip("\r\n")


class AgiSession:
    """One call. Commands run one at a time: AGI has no way to match replies to commands."""

    def __init__(self, request: AgiRequest, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                 stats: AgiStats, read_timeout_s: float) -> None:  # fmt: skip
        self.request = request
        self._reader, self._writer, self._stats = reader, writer, stats
        self._read_timeout_s = read_timeout_s
        self._hung_up = ""  # why, once the channel is gone
        self._broken = ""  # why, once a reply may be left unread

    def _gone(self, why: str) -> AgiHangup:
        self._hung_up = self._hung_up or why
        return AgiHangup(why)

    # The deadline is ours, not the caller's asyncio.timeout: a reply left unread must mark the session
    async def command(self, line: str, *, timeout: float | None = None) -> AgiReply:  # noqa: ASYNC109
        """Send one command line and read its reply; timeout defaults to read_timeout_s."""
        return await self._send(line, self._read_timeout_s if timeout is None else timeout)

    async def _send(self, line: str, limit: float | None) -> AgiReply:  # None: no time limit
        if "\n" in line or "\r" in line:
            raise ValueError(f"newline in AGI command {_q(line)}")
        if self._hung_up:
            raise AgiHangup(f"{self._hung_up}; not sending {_q(line)}")
        if self._broken:
            raise AgiProtocolError(f"session out of step after {self._broken}; not sending {_q(line)}")
        self._stats.commands += 1
        try:
            async with asyncio.timeout(limit):
                self._writer.write(line.encode() + b"\n")
                await self._writer.drain()
                code, raw = await self._read_reply(line)
        except TimeoutError:
            self._broken = f"no reply to {_q(line)}"  # a late reply would answer the next command
            raise TimeoutError(f"no reply to {_q(line)} within {limit} s") from None
        except ConnectionError as e:
            raise self._gone(f"connection lost during {_q(line)}: {e}") from None
        except AgiProtocolError as e:
            self._broken = str(e)
            raise
        if code == 511:
            raise self._gone(f"{_q(line)} refused on a dead channel: {_q(raw)}")
        if code != 200:
            raise AgiCommandError(f"{_q(line)} rejected: {_q(raw)}")
        return AgiReply.parse(code, raw)

    async def _read_reply(self, line: str) -> tuple[int, str]:
        provisional = 0
        while True:
            reply = await _readline(self._reader)
            if reply is None:
                raise self._gone(f"connection closed during {_q(line)}")
            if reply.strip() == "HANGUP":  # sent whenever the caller goes; the reply may follow
                raise self._gone(f"HANGUP during {_q(line)}")
            if (parsed := reply_code(reply)) is None:
                raise AgiProtocolError(f"reply to {_q(line)} does not start with a code: {_q(reply)}")
            (code, more), lines = parsed, [reply]
            while more and not lines[-1].startswith(f"{code} "):  # 520-usage ... 520 End
                if len(lines) >= MAX_REPLY_LINES:
                    raise AgiOversized(f"reply to {_q(line)} over {MAX_REPLY_LINES} lines")
                if (next_line := await _readline(self._reader)) is None:
                    raise self._gone(f"connection closed during {_q(line)}")
                lines.append(next_line)
            if code >= 200:  # 1xx is provisional: EXEC Gosub sends "100 Trying..." then its 200
                return code, "\n".join(lines)
            provisional += 1
            if provisional > MAX_PROVISIONAL:
                raise AgiOversized(f"reply to {_q(line)}: over {MAX_PROVISIONAL} provisional lines")

    async def _digit(self, line: str, limit: float | None) -> str | None:
        reply = await self._send(line, limit)
        if (n := reply.result_int) is None:
            raise AgiProtocolError(f"no digit code in the reply to {_q(line)}: {_q(reply.raw)}")
        if n < 0:
            raise self._gone(f"{_q(line)} ended with {_q(reply.raw)}")
        return chr(n) if n else None

    async def answer(self) -> None:
        if (await self.command("ANSWER")).result_int == -1:
            raise self._gone("ANSWER failed")

    async def stream_file(
        self,
        name: str,
        escape_digits: str = "",
        *,
        timeout: float = PLAYBACK_S,  # noqa: ASYNC109 (see command)
    ) -> str | None:
        """Play a prompt; the digit that interrupted it, or None when it played to the end."""
        return await self._digit(f"STREAM FILE {quote(name)} {quote(escape_digits)}", timeout)

    async def wait_for_digit(self, timeout_ms: int) -> str | None:
        """The digit pressed, or None; timeout_ms < 0 waits for ever (or until the hang-up)."""
        limit = None if timeout_ms < 0 else timeout_ms / 1000 + self._read_timeout_s
        return await self._digit(f"WAIT FOR DIGIT {int(timeout_ms)}", limit)

    async def get_data(self, prompt: str, timeout_ms: int, max_digits: int) -> str | None:
        """Digits entered ("" when # or nothing was pressed), None on a timeout without any."""
        limit = PLAYBACK_S + max(timeout_ms, 0) / 1000 * max(max_digits, 1) + self._read_timeout_s
        reply = await self._send(f"GET DATA {quote(prompt)} {int(timeout_ms)} {int(max_digits)}", limit)
        if reply.result == "-1":
            raise self._gone(f"GET DATA {_q(prompt)} ended with {_q(reply.raw)}")
        return None if reply.result == "" and reply.data == "timeout" else reply.result

    async def set_variable(self, name: str, value: str) -> None:
        await self.command(f"SET VARIABLE {quote(name)} {quote(value)}")

    async def get_variable(self, name: str) -> str | None:
        reply = await self.command(f"GET VARIABLE {quote(name)}")
        return reply.data if reply.result == "1" else None

    async def exec(self, app: str, args: str = "") -> AgiReply:
        return await self.command(f"EXEC {quote(app)}" + (f" {quote(args)}" if args else ""))

    async def verbose(self, text: str, level: int = 1) -> None:
        await self.command(f"VERBOSE {quote(text)} {int(level)}")

    async def hangup(self) -> None:
        """Hang the channel up; a no-op once it is gone. Later commands raise AgiHangup."""
        with contextlib.suppress(AgiHangup):  # Asterisk may write HANGUP before the reply
            await self.command("HANGUP")
        self._hung_up = self._hung_up or "hung up by the handler"


Handler = Callable[[AgiSession], Awaitable[None]]


async def _close(writer: asyncio.StreamWriter) -> None:
    writer.close()
    with contextlib.suppress(OSError, TimeoutError):
        async with asyncio.timeout(1.0):  # a peer that never acknowledges must not hold us
            await writer.wait_closed()


class FastAgiServer:
    """Routes each connection to handlers[first segment of its script]; one task per session."""

    def __init__(self, handlers: dict[str, Handler], host: str, port: int, *, read_timeout_s: float = 10.0,
                 header_timeout_s: float = 5.0, max_sessions: int = 200) -> None:  # fmt: skip
        self.handlers, self.host, self._bind_port = handlers, host, port
        self.read_timeout_s, self.header_timeout_s = read_timeout_s, header_timeout_s
        self.max_sessions = max_sessions
        self.stats = AgiStats()
        self._server: asyncio.Server | None = None
        self._port: int | None = None  # the bound one, still known after close()
        self._tasks: set[asyncio.Task[Any]] = set()
        self._closing = False
        self._logged: dict[str, float] = {}  # kind -> when it was last logged

    async def start(self) -> None:
        # a burst of calls up to max_sessions is queued by the kernel, never dropped (listening.py)
        self._server = await listening.start_server(
            self._on_connect,
            self.host,
            self._bind_port,
            limit=MAX_LINE,
            queue=max(256, self.max_sessions + 56),
        )
        self._port = int(self._server.sockets[0].getsockname()[1])
        log.info("fastagi_listening", host=self.host, port=self._port, scripts=sorted(self.handlers))

    @property
    def port(self) -> int:
        if self._port is None:
            raise RuntimeError("FastAgiServer.start() has not run")
        return self._port

    async def close(self) -> None:
        """Stop accepting, cancel the running sessions (their sockets close) and wait for them."""
        self._closing = True
        if self._server is not None:
            self._server.close()
        for task in self._tasks:
            task.cancel()
        if self._tasks:
            _, stuck = await asyncio.wait(set(self._tasks), timeout=5.0)
            if stuck:
                log.warning("fastagi sessions ignored cancellation", count=len(stuck))
        if self._server is not None:  # 3.12+ waits here for every connection's socket to close
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(1.0):
                    await self._server.wait_closed()

    async def serve_forever(self, stop: asyncio.Event) -> None:
        await self.start()
        try:
            await stop.wait()
        finally:
            await self.close()

    async def _on_connect(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self._closing or self.stats.in_flight >= self.max_sessions:
            self.stats.rejected += 1
            self._log_once("rejected", "fastagi connection rejected", in_flight=self.stats.in_flight,
                           max_sessions=self.max_sessions)  # fmt: skip
            await _close(writer)  # the dialplan goes on with AGISTATUS=FAILURE
            return
        self.stats.sessions += 1
        self.stats.in_flight += 1  # before any await, so that max_sessions holds exactly
        # A task of our own, for close() to cancel: 3.11's stream callback logs a cancelled task as an error
        task = asyncio.create_task(self._serve(reader, writer))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await self._session(reader, writer)
        finally:
            self.stats.in_flight -= 1
            await _close(writer)

    async def _read_headers(self, reader: asyncio.StreamReader) -> dict[str, str] | None:
        """The header block, or None for a probe: EOF before its blank line, or nothing sent."""
        block = EnvBlock()
        try:
            # one deadline for the whole block: a byte-a-second peer gains nothing over a fast one
            async with asyncio.timeout(self.header_timeout_s):
                while (line := await _readline(reader)) is not None:
                    if block.feed(line):
                        return block.env
                return None
        except TimeoutError:
            if block.lines or await _peek(reader):
                raise TimeoutError(f"header block incomplete after {self.header_timeout_s} s") from None
            return None

    def _failed(self, exc: BaseException) -> None:
        """Count a failure with its kind (the kinds are part of failed)."""
        self.stats.failed += 1
        if isinstance(exc, AgiOversized):
            self.stats.oversized += 1
        elif isinstance(exc, AgiProtocolError) and not isinstance(exc, AgiCommandError):
            self.stats.malformed += 1
        elif isinstance(exc, TimeoutError):
            self.stats.timeouts += 1

    async def _session(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            env = await self._read_headers(reader)
        except (AgiProtocolError, TimeoutError) as e:
            self._failed(e)
            kind = "oversized" if isinstance(e, AgiOversized) else type(e).__name__
            self._log_once(kind, "fastagi header block rejected", error=str(e), level="error")
            return
        if env is None:
            self.stats.probes += 1
            log.debug("fastagi probe: no complete header block")
            return
        request = AgiRequest.from_env(env)
        with bound_contextvars(script=request.script, channel=request.channel, uniqueid=request.uniqueid):
            handler = self.handlers.get(request.script.partition("/")[0])
            if handler is None:
                self.stats.unknown_script += 1
                self._log_once("unknown_script", "fastagi unknown script", known=sorted(self.handlers),
                               level="error")  # fmt: skip
                return
            try:
                await handler(AgiSession(request, reader, writer, self.stats, self.read_timeout_s))
            except AgiHangup as e:
                self.stats.hangups += 1
                log.info("fastagi caller hung up", reason=str(e))
            except (AgiProtocolError, TimeoutError) as e:
                self._failed(e)
                log.error("fastagi session failed", error=str(e))
            except Exception as e:  # CancelledError is a BaseException and goes through
                self._failed(e)
                log.exception("fastagi handler failed")
            else:
                self.stats.completed += 1

    def _log_once(self, kind: str, event: str, *, level: str = "warning", **fields: object) -> None:
        """Refusals before a session exists come in storms (a scanner, a flood): one line per kind
        per minute, with the running count, rather than one per connection."""
        now = time.monotonic()
        if now - self._logged.get(kind, -LOG_EVERY_S) >= LOG_EVERY_S:
            self._logged[kind] = now
            log.log(logging.ERROR if level == "error" else logging.WARNING, event, **fields)


async def _peek(reader: asyncio.StreamReader) -> bytes:
    """What is buffered now, without waiting: read() returns at once when there is any."""
    try:
        async with asyncio.timeout(0):
            return await reader.read(80)
    except TimeoutError:
        return b""
