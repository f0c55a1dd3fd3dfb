"""AMI through the real Asterisk: operators' presence follows their phones' registration;
the client logs in again after the TCP connection is cut and re-reads every state."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from smartpbx_ari.call.control import Presence
from smartpbx_ari.config import Settings
from smartpbx_ari.credentials import Credentials
from smartpbx_ari.telephony.ami import AmiClient, AmiError
from smartpbx_ari.telephony.pbx import LocalPbx
from tests.fixtures.sipp import register

pytestmark = [pytest.mark.integration]


class CuttableProxy:
    """A loopback TCP proxy whose connections can be cut, as a network would."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.writers: list[asyncio.StreamWriter] = []
        self.server: asyncio.Server | None = None

    async def start(self) -> int:
        self.server = await asyncio.start_server(self._pipe, "127.0.0.1", 0)
        return int(self.server.sockets[0].getsockname()[1])

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection(*self.target)
        self.writers += [writer, up_writer]

        async def copy(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            with contextlib.suppress(ConnectionError):
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            dst.close()

        await asyncio.gather(copy(reader, up_writer), copy(up_reader, writer))

    def cut(self) -> None:
        for writer in self.writers:
            writer.transport.abort()
        self.writers.clear()

    async def close(self) -> None:
        self.cut()
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()


@pytest.fixture
async def ami(pbx: LocalPbx, settings: Settings, credentials: Credentials
              ) -> AsyncIterator[tuple[AmiClient, list[Presence]]]:
    changes: list[Presence] = []
    client = AmiClient(settings.pbx.host, settings.pbx.ami_port, "smartpbx",
                       credentials.ami_secret, on_presence=changes.append)
    await client.start()
    yield client, changes
    client.close()


async def _until(predicate, timeout: float = 10.0) -> None:  # type: ignore[no-untyped-def]
    async with asyncio.timeout(timeout):
        while not predicate():  # noqa: ASYNC110 (state fed by AMI callbacks)
            await asyncio.sleep(0.05)


async def test_presence_follows_registration(ami: tuple[AmiClient, list[Presence]],
                                             credentials: Credentials,
                                             tmp_path: Path) -> None:
    client, changes = ami
    await _until(lambda: "2003" in client.presence)  # every device's state, at login
    assert client.presence["2003"].state == "unavailable"  # no phone registered
    phone = register(tmp_path, "2003", credentials.operator_password, hold_s=30)
    try:
        await _until(lambda: client.available("2003"))
        assert changes[-1] == Presence("2003", "available", "NOT_INUSE")
        gone = register(tmp_path, "2003", credentials.operator_password)
        _, err = await asyncio.to_thread(gone.communicate, timeout=20)
        assert gone.returncode == 0, err
        await _until(lambda: client.presence["2003"].state == "unavailable")
    finally:
        phone.kill()  # our own SIPp, by its PID
        phone.communicate(timeout=10)


async def test_reconnects_after_the_connection_is_cut(pbx: LocalPbx, settings: Settings,
                                                      credentials: Credentials) -> None:
    proxy = CuttableProxy((settings.pbx.host, settings.pbx.ami_port))
    port = await proxy.start()
    client = AmiClient("127.0.0.1", port, "smartpbx", credentials.ami_secret)
    try:
        await client.start()
        await _until(lambda: "2001" in client.presence)
        client.presence.clear()
        proxy.cut()
        await _until(lambda: client.logins == 2)
        await _until(lambda: "2001" in client.presence)  # states read again
        assert (await client.action({"Action": "Ping"})).success
    finally:
        client.close()
        await proxy.close()


async def test_a_wrong_secret_is_one_clear_error(pbx: LocalPbx, settings: Settings) -> None:
    client = AmiClient(settings.pbx.host, settings.pbx.ami_port, "smartpbx", "wrong")
    with pytest.raises(AmiError, match=r"ami: no login at 127.0.0.1:\d+ within 2 s"):
        await client.start(timeout=2)
