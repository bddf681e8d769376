"""Listening sockets for the daemon's servers (HTTP on aiohttp's protocol, FastAGI on streams): a
deep kernel queue, accepted in small batches.

asyncio ties two things to start_server's `backlog`: the kernel's accept queue (listen()) and how
many connections one loop turn accepts. Both servers want them apart. The queue must hold a
burst (500 connections at once, a PBX's calls arriving together): a connection the kernel drops
waits a 1 s SYN retry, and /healthz with it. But one turn accepting hundreds at once lets a
flood fill the connection cap in a single turn, before any of those connections has been read
and closed, and the probe behind them is then refused. So asyncio gets the small batch and the
socket is re-listened with the deep queue (listen() on a listening socket only resizes its
queue)."""

from __future__ import annotations

import asyncio
import os
import socket
from collections.abc import Awaitable, Callable
from typing import Any

ACCEPT_BATCH = 64  # connections accepted per loop turn
Callback = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None] | None]


async def start_server(callback: Callback, host: str, port: int, *, limit: int, queue: int) -> asyncio.Server:
    """asyncio.start_server with a kernel accept queue of `queue` and ACCEPT_BATCH per turn."""
    server = await asyncio.start_server(callback, host, port, limit=limit, backlog=ACCEPT_BATCH)
    _relisten(server, queue)
    return server


async def create_server(
    factory: Callable[[], asyncio.BaseProtocol], host: str, port: int, *, queue: int, ssl: Any = None
) -> asyncio.Server:
    """loop.create_server for a protocol factory (aiohttp's), with the same two queues."""
    loop = asyncio.get_running_loop()
    server = await loop.create_server(factory, host, port, backlog=ACCEPT_BATCH, ssl=ssl)
    _relisten(server, queue)
    return server


def _relisten(server: asyncio.Server, queue: int) -> None:
    for sock in server.sockets:
        with socket.socket(fileno=os.dup(sock.fileno())) as same:  # the same socket, closed alone
            same.listen(max(queue, ACCEPT_BATCH))
