"""The operators' WebSocket against malformed frames on a raw socket (issue 16): a reserved
opcode, bad UTF-8 in a text frame, an oversized frame, an unmasked client frame, a binary
frame, a fragment never finished, a close with a bad code. Each socket ends with a close
frame carrying a code (never a hang), and the server stays up: /healthz answers and the
next socket works."""

from __future__ import annotations

import asyncio
import base64
import os
import struct
from collections.abc import AsyncIterator

import aiohttp
import pytest

from smartpbx_ari.ai.rag import RAGEngine
from smartpbx_ari.config import Settings
from smartpbx_ari.web import ws as ws_module
from tests.fixtures.web_app import WebUnderTest, make_engine, running_web
from tests.integration.test_api import token
from tests.integration.test_websocket import next_of, ws_url

pytestmark = [pytest.mark.integration, pytest.mark.ws]
TEXT, BINARY, CLOSE, CONTINUATION = 0x1, 0x2, 0x8, 0x0


@pytest.fixture(scope="module")
def frames_engine(tmp_path_factory: pytest.TempPathFactory) -> tuple[Settings, RAGEngine]:
    return make_engine(tmp_path_factory.mktemp("ws-frames"))


@pytest.fixture
async def web(frames_engine: tuple[Settings, RAGEngine], monkeypatch: pytest.MonkeyPatch
              ) -> AsyncIterator[WebUnderTest]:
    monkeypatch.setattr(ws_module, "HEARTBEAT_S", 1.0)  # a silent peer: closed in ~1.5 s
    async with running_web(*frames_engine) as under_test:
        yield under_test


def frame(opcode: int, payload: bytes, fin: bool = True, masked: bool = True,
          length: int | None = None) -> bytes:
    """One WebSocket frame as a client sends it (``length``: a header that lies)."""
    size = len(payload) if length is None else length
    head = bytes([(0x80 if fin else 0) | opcode])
    mask_bit = 0x80 if masked else 0
    if size < 126:
        head += bytes([mask_bit | size])
    elif size < 2**16:
        head += bytes([mask_bit | 126]) + struct.pack("!H", size)
    else:
        head += bytes([mask_bit | 127]) + struct.pack("!Q", size)
    if not masked:
        return head + payload
    key = os.urandom(4)
    return head + key + bytes(b ^ key[i % 4] for i, b in enumerate(payload))


async def raw_socket(web: WebUnderTest, tok: str
                     ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """A socket past the handshake, past the server's hello."""
    host, port = web.url.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    key = base64.b64encode(os.urandom(16)).decode()
    path = ws_url(web, "otto", tok).split(port, 1)[1]
    writer.write(f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\n"
                 f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                 "Sec-WebSocket-Version: 13\r\n\r\n".encode())
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
    assert head.startswith(b"HTTP/1.1 101"), head
    opcode, payload = await read_frame(reader)
    assert opcode == TEXT and b'"hello"' in payload
    return reader, writer


async def read_frame(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    b0, b1 = await reader.readexactly(2)
    size = b1 & 0x7F
    if size == 126:
        size = struct.unpack("!H", await reader.readexactly(2))[0]
    elif size == 127:
        size = struct.unpack("!Q", await reader.readexactly(8))[0]
    return b0 & 0x0F, await reader.readexactly(size)


async def close_code(reader: asyncio.StreamReader) -> int:
    """The code of the server's close frame (pings and other frames before it skipped)."""
    async with asyncio.timeout(5):
        while True:
            opcode, payload = await read_frame(reader)
            if opcode == CLOSE:
                assert len(payload) >= 2, payload
                return int(struct.unpack("!H", payload[:2])[0])


MALFORMED = {
    "reserved opcode": (frame(0x3, b"x"), 1002),
    "reserved control opcode": (frame(0xB, b""), 1002),
    "bad UTF-8 in a text frame": (frame(TEXT, b'{"type": "\xff\xfe ping"}'), 1007),
    "a lone surrogate in UTF-8": (frame(TEXT, b'"\xed\xa0\x80"'), 1007),
    "oversized frame": (frame(TEXT, b"[" * (ws_module.MAX_MESSAGE + 1)), 1009),
    "a header claiming 2**62 bytes": (frame(TEXT, b"", length=2**62), 1009),
    "oversized in fragments": (frame(TEXT, b"a" * 10_000, fin=False)
                               + frame(CONTINUATION, b"a" * 10_000), 1009),
    "binary frame": (frame(BINARY, b"\x00\x01\x02"), 1003),
    "continuation without a start": (frame(CONTINUATION, b"x"), 1002),
    "a new message inside a fragmented one": (frame(TEXT, b"ab", fin=False)
                                              + frame(TEXT, b"cd"), 1002),
    "a fragmented control frame": (frame(0x9, b"p", fin=False), 1002),
    "a control frame over 125 bytes": (frame(0x9, b"p" * 126), 1002),
    "close with code 999": (frame(CLOSE, struct.pack("!H", 999)), 1002),
    "close with code 1005 (reserved)": (frame(CLOSE, struct.pack("!H", 1005)), 1002),
    # aiohttp checks no code from 5000 up (it answers 1000): closed either way
    "close with code 5000": (frame(CLOSE, struct.pack("!H", 5000)), None),
    "close with a one-byte body": (frame(CLOSE, b"\x03"), 1002),
    "close with bad UTF-8 reason": (frame(CLOSE, struct.pack("!H", 1000) + b"\xff"), 1007),
    # whatever they decode to: a close code; or (8 of 400 draws) the head of a frame
    # longer than the bytes sent, which waits for the rest until the heartbeat drops the
    # silent peer, as a fragment never finished (below)
    "garbage bytes": (os.urandom(64), None),
}


async def test_each_malformed_frame_ends_its_socket_with_a_close_code(
        web: WebUnderTest, http: aiohttp.ClientSession) -> None:
    otto = await token(web, http, "otto")
    codes: dict[str, int | str] = {}
    for name, (data, _) in MALFORMED.items():
        reader, writer = await raw_socket(web, otto)
        writer.write(data)
        try:
            codes[name] = await close_code(reader)
        except (TimeoutError, asyncio.IncompleteReadError) as err:
            codes[name] = type(err).__name__
        writer.close()
    for name, (_, expected) in MALFORMED.items():
        if expected is not None:
            assert codes[name] == expected, (name, codes)
    unfinished = codes["garbage bytes"] == "IncompleteReadError"  # dropped, never a hang
    assert all(isinstance(code, int) and 1000 <= code < 5000 for name, code in codes.items()
               if not (name == "garbage bytes" and unfinished)), codes
    await _still_serving(web, http, otto)
    await asyncio.sleep(0.1)
    assert web.context.feed.manager.count == 0  # none of them left behind


async def test_an_unmasked_client_frame_is_read_as_any_other(
        web: WebUnderTest, http: aiohttp.ClientSession) -> None:
    """RFC 6455 would have the server close it 1002; aiohttp's reader (shared with its
    client) unmasks only what is masked. Harmless: masking guards proxies against scripts in
    browsers, and browsers always mask. The socket answers and lives on."""
    otto = await token(web, http, "otto")
    reader, writer = await raw_socket(web, otto)
    writer.write(frame(TEXT, b'{"type": "ping"}', masked=False))
    async with asyncio.timeout(5):
        while (answer := await read_frame(reader))[0] != TEXT:
            pass
    assert answer == (TEXT, b'{"type": "pong"}')
    writer.write(frame(CLOSE, struct.pack("!H", 1000)))
    assert await close_code(reader) == 1000
    writer.close()


async def test_a_fragment_never_finished_is_closed_by_the_heartbeat(
        web: WebUnderTest, http: aiohttp.ClientSession) -> None:
    otto = await token(web, http, "otto")
    reader, writer = await raw_socket(web, otto)
    writer.write(frame(TEXT, b'{"type": ', fin=False))  # and then silence, no pong either
    async with asyncio.timeout(5):
        while True:
            try:
                opcode, _ = await read_frame(reader)
            except asyncio.IncompleteReadError:
                break  # the server dropped the dead peer
            if opcode == CLOSE:
                break
    writer.close()
    await _still_serving(web, http, otto)


async def _still_serving(web: WebUnderTest, http: aiohttp.ClientSession, tok: str) -> None:
    async with http.get(f"{web.url}/healthz") as r:
        assert r.status == 200
    async with http.ws_connect(ws_url(web, "otto", tok)) as ws:
        await next_of(ws, "hello")
        await ws.send_str('{"type": "ping"}')
        assert (await next_of(ws, "pong"))["type"] == "pong"
