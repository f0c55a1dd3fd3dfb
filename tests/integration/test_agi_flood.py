"""The FastAGI port against 1,000 hostile connections (issue 16): random bytes, lines
without the closing blank line, connections opened and never written, slow writers. Each
is closed by the server within its bounds; afterwards a real AGI request from the real
Asterisk (a call into the dialplan's AI extension) is answered, and the server holds no
more tasks or file descriptors than before."""

from __future__ import annotations

import asyncio
import logging
import os
import random
import time
from collections.abc import AsyncIterator

import pytest

from smartpbx_ari.call.routing import Rule
from smartpbx_ari.config import Settings
from smartpbx_ari.telephony import agi
from smartpbx_ari.telephony.agi import AgiServer
from smartpbx_ari.telephony.ari import AriClient

pytestmark = [pytest.mark.integration, pytest.mark.slow]
CONNECTIONS = 1000
AT_ONCE = 200  # below agi.MAX_CONNECTIONS: every one is read, none refused unread
BLOCKED = "5550001"


@pytest.fixture
async def server(settings: Settings) -> AsyncIterator[AgiServer]:
    async def rules() -> list[Rule]:
        return [Rule("block", BLOCKED)]

    agi_server = await AgiServer(rules, settings.agi.host, settings.agi.port).start()
    yield agi_server
    await agi_server.close()


async def hostile(port: int, kind: int, rng: random.Random) -> float:
    """One hostile connection; how long until the server closed it."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    started = time.monotonic()  # connected: the server's bound runs from here, not our own
    # loop's lateness in opening 200 at once
    closed = asyncio.create_task(_closed(reader))
    try:
        if kind == 0:  # random bytes (no blank line: a bare \n\n would be a request)
            writer.write(rng.randbytes(rng.randrange(1, 20_000)).replace(b"\n\n", b"\n"))
        elif kind == 1:  # an endless line
            writer.write(b"agi_callerid: " + b"9" * 50_000)
        elif kind == 2:  # lines and lines, never the blank one
            writer.write(b"agi_network: yes\n" * 2_000)
        elif kind == 4:  # a slow writer: a valid variable a byte at a time
            for byte in b"agi_network_script: route\nagi_callerid: 1\n" * 4:
                if closed.done():
                    break
                writer.write(bytes([byte]))
                await asyncio.sleep(0.25)
        # kind 3: opened and never written
        return await asyncio.wait_for(closed, agi.READ_TIMEOUT_S * 3) - started
    finally:
        writer.transport.abort()


async def _closed(reader: asyncio.StreamReader) -> float:
    """When the server closed the connection (EOF or a reset)."""
    try:
        while await reader.read(65536):
            pass
    except ConnectionError:
        pass
    return time.monotonic()


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


async def test_a_thousand_hostile_connections_leave_routing_working_and_nothing_held(
        server: AgiServer, ari: AriClient, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, "smartpbx_ari.telephony.agi")
    rng = random.Random(20261128)
    fds, tasks = open_fds(), len(asyncio.all_tasks())
    held: list[float] = []
    for start in range(0, CONNECTIONS, AT_ONCE):
        held += await asyncio.gather(*(hostile(server.port, n % 5, rng)
                                       for n in range(start, start + AT_ONCE)))
    assert len(held) == CONNECTIONS
    assert max(held) < agi.READ_TIMEOUT_S + 2, max(held)  # no one outlived the bound
    await asyncio.sleep(0.2)
    assert (server.handled, server.refused, server.open) == (CONNECTIONS, 0, 0)
    assert open_fds() <= fds + 2, (fds, open_fds())
    assert len(asyncio.all_tasks()) <= tasks, [t.get_name() for t in asyncio.all_tasks()]
    assert not any(r.levelno >= logging.ERROR for r in caplog.records)

    # a real request: Asterisk runs the AI extension's dialplan, which asks us first
    caplog.clear()
    await ari.request("POST", "/channels", {
        "endpoint": "Local/1000@from-callers", "extension": "600", "context": "from-callers",
        "priority": 1, "callerId": f"Fuzz <{BLOCKED}>", "timeout": 10})
    async with asyncio.timeout(10):
        while server.handled == CONNECTIONS:  # noqa: ASYNC110 (Asterisk connects)
            await asyncio.sleep(0.05)
    answered = [r.getMessage() for r in caplog.records if "-> blocked" in r.getMessage()]
    assert answered and BLOCKED in answered[0], [r.getMessage() for r in caplog.records]
    async with asyncio.timeout(10):  # the dialplan took the answer: the call is refused
        while await ari.channels():  # noqa: ASYNC110 (polls Asterisk)
            await asyncio.sleep(0.1)
