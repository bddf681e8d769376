"""The FastAGI server against a fake Asterisk on loopback: header parsing, the command helpers and
their quoting, hang-ups in every form, probes, malformed input, limits and shutdown."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import pytest
import structlog
from structlog.testing import capture_logs

from acdbridge.adapters.fastagi import (
    AgiCommandError,
    AgiHangup,
    AgiProtocolError,
    AgiReply,
    AgiRequest,
    AgiSession,
    FastAgiServer,
    Handler,
    quote,
)

pytestmark = pytest.mark.timeout(30)
T = TypeVar("T")
CLOSE = None  # in a reply script: Asterisk drops the connection instead of replying
HEADERS = {
    "agi_network": "yes",
    "agi_network_script": "hotline/water?x=1",
    "agi_request": "agi://127.0.0.1:4573/hotline/water?x=1",
    "agi_channel": "PJSIP/alice-00000001",
    "agi_language": "en",
    "agi_type": "PJSIP",
    "agi_uniqueid": "1700000000.42",
    "agi_version": "22.1.0",
    "agi_callerid": "unknown",
    "agi_calleridname": "Alice",
    "agi_callingpres": "0",
    "agi_dnid": "800",
    "agi_rdnis": "unknown",
    "agi_context": "ivr",
    "agi_extension": "800",
    "agi_priority": "2",
    "agi_enhanced": "0.0",
    "agi_accountcode": "",
    "agi_threadid": "140234",
    "agi_arg_1": "sales queue",
    "agi_arg_2": "",
    "agi_arg_3": "x=1,y=2",
}


def run(coro: Coroutine[Any, Any, T], timeout: float = 20.0) -> T:
    async def bounded() -> T:
        async with asyncio.timeout(timeout):
            return await coro

    return asyncio.run(bounded())


def header_block(script: str = "hotline/water?x=1", **extra: str) -> bytes:
    env = HEADERS | {"agi_network_script": script} | extra
    return "".join(f"{k}: {v}\n" for k, v in env.items()).encode() + b"\n"


@dataclass
class Call:
    commands: list[str]  # as the server wrote them
    server_closed: bool  # the server ended the session (EOF or reset) after the last scripted reply


async def fake_asterisk(
    port: int, replies: Sequence[str | None] = (), *, headers: bytes | None = None
) -> Call:
    """Sends a header block, then answers each command line with the next reply (which may hold
    several lines, e.g. "HANGUP\\n200 result=-1"); CLOSE drops the connection instead."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    commands: list[str] = []
    try:
        writer.write(header_block() if headers is None else headers)
        await writer.drain()
        for reply in replies:
            line = await reader.readline()
            if not line:
                return Call(commands, server_closed=True)
            commands.append(line.decode().rstrip("\n"))
            if reply is CLOSE:
                return Call(commands, server_closed=False)
            writer.write(reply.encode() + b"\n")
            await writer.drain()
        try:
            extra = await reader.readline()
        except ConnectionResetError:  # closed with our last reply unread
            extra = b""
        if extra:
            commands.append(extra.decode().rstrip("\n"))
        return Call(commands, server_closed=not extra)
    except ConnectionResetError:
        return Call(commands, server_closed=True)
    finally:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()


@contextlib.asynccontextmanager
async def serving(handlers: dict[str, Handler], **kw: Any) -> AsyncIterator[FastAgiServer]:
    kw.setdefault("read_timeout_s", 3.0)
    server = FastAgiServer(handlers, "127.0.0.1", 0, **kw)
    await server.start()
    try:
        yield server
    finally:
        await server.close()


async def wait_until(check: Callable[[], bool], within_s: float = 5.0) -> None:
    async with asyncio.timeout(within_s):
        while not check():  # noqa: ASYNC110 (polls the server's plain counters)
            await asyncio.sleep(0.01)


def only(script: Callable[[AgiSession], Awaitable[None]]) -> dict[str, Handler]:
    return {"hotline": script}


async def noop(session: AgiSession) -> None:
    await session.verbose("hi")


# --- pure parts ---


def test_reply_parsing() -> None:
    assert AgiReply.parse(200, "200 result=0 endpos=1234") == AgiReply(
        200, "0", "endpos=1234", "200 result=0 endpos=1234"
    )
    assert AgiReply.parse(200, "200 result=1 (a (b) c)").data == "a (b) c"
    timeout = AgiReply.parse(200, "200 result= (timeout)")
    assert (timeout.result, timeout.data, timeout.result_int) == ("", "timeout", None)
    assert AgiReply.parse(200, "200 result=-1").result_int == -1
    assert AgiReply.parse(510, "510 Invalid or unknown command").data == "Invalid or unknown command"


def test_quote_escapes_and_rejects_newlines() -> None:
    assert quote('say "hi" \\ bye') == '"say \\"hi\\" \\\\ bye"'
    assert quote("") == '""'
    for bad in ("a\nb", "a\rb"):
        with pytest.raises(ValueError, match="newline"):
            quote(bad)


def test_request_from_env() -> None:
    env = dict(HEADERS, agi_network_script="/hotline/water/?x=1&y=2", agi_callerid="+34911")
    request = AgiRequest.from_env(env)
    assert request.script == "hotline/water"
    assert request.args == ("sales queue", "", "x=1,y=2")
    assert (request.caller, request.dnid, request.context, request.extension) == (
        "+34911",
        "800",
        "ivr",
        "800",
    )
    assert AgiRequest.from_env(HEADERS).caller == ""  # "unknown"


# --- sessions ---


def test_full_session_parses_headers_and_runs_commands() -> None:
    seen: list[Any] = []

    async def hotline(s: AgiSession) -> None:
        seen.append(s.request)
        await s.answer()
        seen.append(await s.exec("Playback", "tt-monkeys"))
        await s.exec("Wait")
        await s.verbose("caller in")
        await s.hangup()
        with pytest.raises(AgiHangup):  # hung up by us: nothing more is written
            await s.verbose("too late")

    async def other(s: AgiSession) -> None:
        raise AssertionError("wrong route")

    async def main() -> tuple[Call, FastAgiServer]:
        async with serving({"hotline": hotline, "other": other}) as server:
            replies = ["200 result=0", "200 result=0", "200 result=0", "200 result=1", "HANGUP\n200 result=1"]
            return await fake_asterisk(server.port, replies), server

    call, server = run(main())
    request = seen[0]
    assert request.env == HEADERS
    assert (request.script, request.args) == ("hotline/water", ("sales queue", "", "x=1,y=2"))
    assert (request.uniqueid, request.channel, request.caller) == (
        "1700000000.42",
        "PJSIP/alice-00000001",
        "",
    )
    assert seen[1] == AgiReply(200, "0", "", "200 result=0")
    assert call.commands == [
        "ANSWER",
        'EXEC "Playback" "tt-monkeys"',
        'EXEC "Wait"',
        'VERBOSE "caller in" 1',
        "HANGUP",
    ]
    assert call.server_closed
    assert (server.stats.sessions, server.stats.completed, server.stats.commands) == (1, 1, 5)
    assert server.stats.failed == server.stats.hangups == server.stats.in_flight == 0


def test_get_data_and_digits() -> None:
    got: list[str | None] = []

    async def hotline(s: AgiSession) -> None:
        got.append(await s.get_data("enter-account", 3000, 4))
        got.append(await s.get_data("enter-account", 3000, 4))
        got.append(await s.get_data("enter-account", 3000, 4))
        got.append(await s.get_data("enter-account", 3000, 4))
        got.append(await s.stream_file("welcome", "12"))
        got.append(await s.stream_file("welcome"))
        got.append(await s.wait_for_digit(5000))
        got.append(await s.wait_for_digit(-1))
        await s.stream_file("welcome", "12")  # result=-1: hung up during playback

    replies = [
        "200 result=1234",
        "200 result=12 (timeout)",  # some digits, then the inter-digit timeout
        "200 result= (timeout)",  # nothing at all
        "200 result=",  # only # pressed
        "200 result=49 endpos=1234",
        "200 result=0 endpos=8000",
        "200 result=35",
        "200 result=0",
        "200 result=-1 endpos=100",
    ]

    async def main() -> tuple[Call, FastAgiServer]:
        async with serving(only(hotline)) as server:
            return await fake_asterisk(server.port, replies), server

    call, server = run(main())
    assert got == ["1234", "12", None, "", "1", None, "#", None]
    assert call.commands[0] == 'GET DATA "enter-account" 3000 4'
    assert call.commands[4:8] == [
        'STREAM FILE "welcome" "12"',
        'STREAM FILE "welcome" ""',
        "WAIT FOR DIGIT 5000",
        "WAIT FOR DIGIT -1",
    ]
    assert call.server_closed and server.stats.hangups == 1 and server.stats.completed == 0


def test_set_and_get_variable_quoting() -> None:
    got: list[str | None] = []
    value = 'Ana "la jefa" Torres \\ ventas'

    async def hotline(s: AgiSession) -> None:
        await s.set_variable("CUSTOMER NAME", value)
        got.append(await s.get_variable("CUSTOMER NAME"))
        got.append(await s.get_variable("NOPE"))
        got.append(await s.get_variable("EMPTY"))

    replies = ["200 result=1", f"200 result=1 ({value})", "200 result=0", "200 result=1 ()"]

    async def main() -> Call:
        async with serving(only(hotline)) as server:
            return await fake_asterisk(server.port, replies)

    call = run(main())
    assert call.commands[0] == 'SET VARIABLE "CUSTOMER NAME" "Ana \\"la jefa\\" Torres \\\\ ventas"'
    assert call.commands[1:] == [
        'GET VARIABLE "CUSTOMER NAME"',
        'GET VARIABLE "NOPE"',
        'GET VARIABLE "EMPTY"',
    ]
    assert got == [value, None, ""]


def test_hangup_line_mid_command_ends_session() -> None:
    events: list[str] = []

    async def hotline(s: AgiSession) -> None:
        try:
            await s.stream_file("welcome", "12")
        except AgiHangup as e:
            events.append(str(e))
        await s.set_variable("X", "1")  # raises at once, without writing

    async def main() -> tuple[Call, FastAgiServer]:
        async with serving(only(hotline)) as server:
            return await fake_asterisk(server.port, ["HANGUP\n200 result=-1 endpos=0"]), server

    with capture_logs() as logs:
        call, server = run(main())
    assert len(events) == 1 and "HANGUP" in events[0] and "STREAM FILE" in events[0]
    assert call.commands == ['STREAM FILE "welcome" "12"'] and call.server_closed
    assert (server.stats.hangups, server.stats.commands, server.stats.failed) == (1, 1, 0)
    assert [e["log_level"] for e in logs if e["event"] == "fastagi caller hung up"] == ["info"]


@pytest.mark.parametrize(
    ("reply", "why"),
    [
        (CLOSE, "connection closed"),
        ("511 Command Not Permitted on a dead channel or intercepted", "dead channel"),
    ],
)
def test_eof_or_511_mid_command_is_a_hangup(reply: str | None, why: str) -> None:
    errors: list[str] = []

    async def hotline(s: AgiSession) -> None:
        try:
            await s.get_data("enter-account", 2000, 4)
        except AgiHangup as e:
            errors.append(str(e))
            raise

    async def main() -> tuple[Call, FastAgiServer]:
        async with serving(only(hotline)) as server:
            call = await fake_asterisk(server.port, [reply])
            await wait_until(lambda: server.stats.in_flight == 0)
            return call, server

    call, server = run(main())
    assert call.commands == ['GET DATA "enter-account" 2000 4']
    assert len(errors) == 1 and why in errors[0]
    assert (server.stats.hangups, server.stats.failed, server.stats.completed) == (1, 0, 0)


def test_probes_do_not_block_concurrent_sessions() -> None:
    async def hotline(s: AgiSession) -> None:
        await s.answer()
        await asyncio.sleep(0.01)
        await s.set_variable("QUEUE", s.request.args[0])

    async def bare(port: int) -> None:
        _, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.close()

    async def partial(port: int) -> None:  # headers, but EOF before the blank line
        _, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(header_block()[:100])
        await writer.drain()
        writer.close()

    async def main() -> tuple[list[Call], FastAgiServer, float]:
        async with serving(only(hotline), header_timeout_s=2.0) as server:
            silent_reader, silent_writer = await asyncio.open_connection("127.0.0.1", server.port)
            await bare(server.port)
            await partial(server.port)
            calls = await asyncio.gather(
                *(fake_asterisk(server.port, ["200 result=0"] * 2) for _ in range(20))
            )
            await wait_until(lambda: server.stats.probes == 2)
            assert server.stats.in_flight == 1  # the silent one is still waiting for its headers
            started = time.monotonic()
            assert await silent_reader.read() == b""  # then the header timeout closes it
            silent_writer.close()
            return list(calls), server, time.monotonic() - started

    calls, server, waited = run(main())
    assert all(
        c.server_closed and c.commands == ["ANSWER", 'SET VARIABLE "QUEUE" "sales queue"'] for c in calls
    )
    assert waited < 2.5  # closed by the header timeout, not by the end of the test
    assert (server.stats.completed, server.stats.probes, server.stats.sessions) == (20, 3, 23)
    assert server.stats.failed == server.stats.in_flight == 0


def test_malformed_header_is_logged_and_the_server_keeps_serving() -> None:
    async def main() -> tuple[Call, Call, Call, FastAgiServer]:
        async with serving(only(noop)) as server:
            bad = await fake_asterisk(server.port, headers=b"agi_network: yes\nagi_channel=PJSIP/x\n\n")
            long = await fake_asterisk(
                server.port, headers=b"agi_network: yes\nagi_x: " + b"x" * 10_000 + b"\n\n"
            )
            good = await fake_asterisk(server.port, ["200 result=1"])
            return bad, long, good, server

    with capture_logs() as logs:
        bad, long, good, server = run(main())
    assert bad.server_closed and bad.commands == [] and long.server_closed and long.commands == []
    assert good.commands == ['VERBOSE "hi" 1']
    assert (server.stats.failed, server.stats.completed) == (2, 1)
    errors = [e for e in logs if e["log_level"] == "error"]
    assert [e["event"] for e in errors] == ["fastagi header block rejected"] * 2
    assert "without ': '" in errors[0]["error"] and "'agi_channel=PJSIP/x'" in errors[0]["error"]
    assert "over 8192 bytes" in errors[1]["error"] and "'agi_x: xxx" in errors[1]["error"]


def test_malformed_reply_is_logged_with_call_context() -> None:
    async def main() -> tuple[Call, Call, FastAgiServer]:
        async with serving(only(noop)) as server:
            bad = await fake_asterisk(server.port, ["OK, fine"])
            good = await fake_asterisk(server.port, ["200 result=1"])
            return bad, good, server

    with capture_logs(processors=[structlog.contextvars.merge_contextvars]) as logs:
        bad, good, server = run(main())
    assert bad.server_closed and good.server_closed and good.commands == ['VERBOSE "hi" 1']
    assert (server.stats.failed, server.stats.completed) == (1, 1)
    [error] = [e for e in logs if e["log_level"] == "error"]
    assert error["event"] == "fastagi session failed"
    assert "does not start with a code" in error["error"] and "'OK, fine'" in error["error"]
    assert (error["script"], error["uniqueid"], error["channel"]) == (
        "hotline/water",
        "1700000000.42",
        "PJSIP/alice-00000001",
    )


def test_command_errors_keep_the_session_in_step() -> None:
    errors: list[str] = []

    async def hotline(s: AgiSession) -> None:
        for line in ("FROB", "GET DATA"):
            with contextlib.suppress(AgiCommandError):
                try:
                    await s.command(line)
                except AgiProtocolError as e:
                    errors.append(str(e))
                    raise
        await s.command("EXEC Gosub sub-ivr,s,1")  # 100 Trying... first
        await s.verbose("still here")

    replies = [
        "510 Invalid or unknown command",
        "520-Invalid command syntax.  Proper usage follows:\n"
        " Usage: GET DATA <file to be streamed> [timeout] [maxdigits]\n"
        "520 End of proper usage.",
        "100 result=0 Trying...\n200 result=0 Gosub complete",
        "200 result=1",
    ]

    async def main() -> tuple[Call, FastAgiServer]:
        async with serving(only(hotline)) as server:
            return await fake_asterisk(server.port, replies), server

    call, server = run(main())
    assert "'FROB'" in errors[0] and "510" in errors[0]
    assert "'GET DATA'" in errors[1] and "520" in errors[1]
    assert call.commands[-1] == 'VERBOSE "still here" 1' and call.server_closed
    assert server.stats.completed == 1


def test_command_timeout() -> None:
    outcome: list[str] = []

    async def hotline(s: AgiSession) -> None:
        try:
            await s.command("NOOP", timeout=0.2)
        except TimeoutError as e:
            outcome.append(str(e))
        with pytest.raises(AgiProtocolError, match="out of step"):  # the late reply is still coming
            await s.verbose("next")
        raise TimeoutError("gave up")

    async def main() -> tuple[Call, FastAgiServer]:
        async with serving(only(hotline)) as server:
            reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
            writer.write(header_block())
            command = await reader.readline()  # and never answer it
            rest = await reader.read()
            writer.close()
            return Call([command.decode().strip()], server_closed=rest == b""), server

    call, server = run(main())
    assert call.commands == ["NOOP"] and call.server_closed
    assert "'NOOP'" in outcome[0] and "0.2 s" in outcome[0]
    assert (server.stats.failed, server.stats.commands) == (1, 1)


def test_unknown_script_closes_without_commands() -> None:
    async def main() -> tuple[Call, FastAgiServer]:
        async with serving(only(noop)) as server:
            return await fake_asterisk(server.port, headers=header_block("billing/x")), server

    with capture_logs(processors=[structlog.contextvars.merge_contextvars]) as logs:
        call, server = run(main())
    assert call.server_closed and call.commands == []
    assert (server.stats.unknown_script, server.stats.completed, server.stats.commands) == (1, 0, 0)
    [error] = [e for e in logs if e["log_level"] == "error"]
    assert error["event"] == "fastagi unknown script" and error["script"] == "billing/x"
    assert error["known"] == ["hotline"]


def test_max_sessions_rejects_the_excess() -> None:
    release = asyncio.Event()

    async def hotline(s: AgiSession) -> None:
        await s.answer()
        await release.wait()

    async def main() -> tuple[list[Call], Call, FastAgiServer]:
        async with serving(only(hotline), max_sessions=2) as server:
            held = [asyncio.create_task(fake_asterisk(server.port, ["200 result=0"])) for _ in range(2)]
            await wait_until(lambda: server.stats.commands == 2)
            rejected = await fake_asterisk(server.port, ["200 result=0"])
            assert server.stats.rejected == 1
            release.set()
            return list(await asyncio.gather(*held)), rejected, server

    held, rejected, server = run(main())
    assert rejected.server_closed and rejected.commands == []
    assert all(c.commands == ["ANSWER"] and c.server_closed for c in held)
    assert (server.stats.sessions, server.stats.completed, server.stats.rejected) == (2, 2, 1)


def test_handler_exception_is_logged_and_the_server_keeps_serving() -> None:
    async def hotline(s: AgiSession) -> None:
        if s.request.args[0] == "boom":
            raise KeyError("no such queue")
        await noop(s)

    async def main() -> tuple[Call, Call, FastAgiServer]:
        async with serving(only(hotline)) as server:
            boom = await fake_asterisk(server.port, headers=header_block(agi_arg_1="boom"))
            good = await fake_asterisk(server.port, ["200 result=1"])
            return boom, good, server

    with capture_logs() as logs:
        boom, good, server = run(main())
    assert boom.server_closed and boom.commands == [] and good.commands == ['VERBOSE "hi" 1']
    assert (server.stats.failed, server.stats.completed) == (1, 1)
    [error] = [e for e in logs if e["log_level"] == "error"]
    assert error["event"] == "fastagi handler failed" and error["exc_info"] is True


def test_newline_in_an_argument_is_rejected_before_writing() -> None:
    rejected: list[str] = []

    async def hotline(s: AgiSession) -> None:
        for attempt in (
            lambda: s.set_variable("X", "1\nEXEC System rm"),
            lambda: s.stream_file("welcome\r\nHANGUP"),
            lambda: s.command("NOOP\nHANGUP"),
        ):
            with pytest.raises(ValueError, match="newline") as info:
                await attempt()
            rejected.append(str(info.value))
        await s.set_variable("X", "1")

    async def main() -> tuple[Call, FastAgiServer]:
        async with serving(only(hotline)) as server:
            return await fake_asterisk(server.port, ["200 result=1"]), server

    call, server = run(main())
    assert len(rejected) == 3
    assert call.commands == ['SET VARIABLE "X" "1"'] and call.server_closed
    assert (server.stats.completed, server.stats.commands) == (1, 1)


def test_close_cancels_a_running_session() -> None:
    cancelled = asyncio.Event()

    async def hotline(s: AgiSession) -> None:
        try:
            await s.wait_for_digit(-1)
        except asyncio.CancelledError:
            cancelled.set()
            raise

    async def main() -> tuple[bytes, FastAgiServer, bool]:
        server = FastAgiServer(only(hotline), "127.0.0.1", 0)
        await server.start()
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        writer.write(header_block())
        assert await reader.readline() == b"WAIT FOR DIGIT -1\n"
        await server.close()
        rest = await reader.read()
        writer.close()
        with pytest.raises(ConnectionRefusedError):  # no longer listening
            await asyncio.open_connection("127.0.0.1", server.port)
        return rest, server, cancelled.is_set()

    rest, server, was_cancelled = run(main())
    assert rest == b"" and was_cancelled
    assert server.stats.in_flight == 0 and server.stats.completed == server.stats.failed == 0


def test_serve_forever_until_stopped() -> None:
    async def main() -> Call:
        stop = asyncio.Event()
        server = FastAgiServer(only(noop), "127.0.0.1", 0)
        serving = asyncio.create_task(server.serve_forever(stop))
        await wait_until(lambda: server._server is not None)
        call = await fake_asterisk(server.port, ["200 result=1"])
        stop.set()
        await serving
        return call

    assert run(main()).commands == ['VERBOSE "hi" 1']


def test_non_utf8_headers_are_replaced_not_fatal() -> None:
    seen: list[AgiRequest] = []

    async def hotline(s: AgiSession) -> None:
        seen.append(s.request)

    async def main() -> Call:
        async with serving(only(hotline)) as server:
            block = header_block().replace(b"agi_calleridname: Alice", b"agi_calleridname: Jos\xe9")
            return await fake_asterisk(server.port, headers=block)

    assert run(main()).server_closed
    assert seen[0].env["agi_calleridname"] == "Jos\ufffd"


# --- limits (docs/security.md) ---


def test_header_block_limits_end_the_session_and_are_counted_by_kind() -> None:
    blocks = [
        b"".join(b"agi_arg_%d: x\n" % i for i in range(1, 300)) + b"\n",  # over MAX_ENV_LINES
        b"".join(b"agi_arg_%d: %s\n" % (i, b"y" * 5000) for i in range(1, 20)) + b"\n",  # over MAX_ENV_BYTES
        b"agi_network: yes\nX-Forwarded-For: 10.0.0.1\n\n",  # not agi_*
        b"agi_network: yes\nAGI_CHANNEL: x\n\n",
        b"agi_network: yes\nagi_channel=x\n\n",
    ]

    async def main() -> tuple[list[Call], Call, FastAgiServer]:
        async with serving(only(noop)) as server:
            bad = [await fake_asterisk(server.port, headers=b) for b in blocks]
            return bad, await fake_asterisk(server.port, ["200 result=1"]), server

    with capture_logs() as logs:
        bad, good, server = run(main())
    assert all(c.server_closed and c.commands == [] for c in bad)
    assert good.commands == ['VERBOSE "hi" 1']
    s = server.stats
    assert (s.failed, s.oversized, s.malformed, s.completed) == (5, 2, 3, 1)
    errors = [e["error"] for e in logs if e["event"] == "fastagi header block rejected"]
    # one line per kind per minute, however many came: a storm does not flood the journal
    assert len(errors) == 2 and "over 256 lines" in errors[0] and "not agi_*" in errors[1]


def test_a_byte_a_second_header_block_is_cut_at_the_deadline_not_per_read() -> None:
    async def trickle(port: int) -> float:
        started = time.monotonic()
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        closed = asyncio.ensure_future(reader.read())
        for byte in header_block():
            if closed.done():
                break
            writer.write(bytes([byte]))
            await asyncio.wait([closed], timeout=0.05)  # every read is far inside any per-read timeout
        writer.close()
        return time.monotonic() - started

    async def main() -> tuple[float, FastAgiServer]:
        async with serving(only(noop), header_timeout_s=0.5) as server:
            _, silent_w = await asyncio.open_connection("127.0.0.1", server.port)
            took = await trickle(server.port)
            await wait_until(lambda: server.stats.probes == 1)
            silent_w.close()
            return took, server

    took, server = run(main())
    assert took < 1.0
    s = server.stats
    assert (s.timeouts, s.failed, s.probes, s.completed) == (1, 1, 1, 0)  # the silent one is a probe


@pytest.mark.parametrize(
    ("reply", "why"),
    [
        (
            "520-Invalid command syntax.\n" + "usage line\n" * 300 + "520 End of proper usage.",
            "over 256 lines",
        ),
        ("100 Trying...\n" * 20 + "200 result=0", "over 16 provisional lines"),
    ],
)
def test_a_flood_of_reply_lines_ends_the_session(reply: str, why: str) -> None:
    async def main() -> tuple[Call, FastAgiServer]:
        async with serving(only(noop)) as server:
            return await fake_asterisk(server.port, [reply]), server

    with capture_logs() as logs:
        call, server = run(main())
    assert call.commands == ['VERBOSE "hi" 1'] and call.server_closed
    assert (server.stats.failed, server.stats.oversized) == (1, 1)
    assert any(why in e.get("error", "") for e in logs)
