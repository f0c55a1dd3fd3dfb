"""The operators' WebSocket against the outside probe (issue 16): a deeply nested frame
gets an error and the socket lives on; a flood is closed 1008; the path's operator_id is
the token's user; a foreign browser Origin is refused."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator

import aiohttp
import pytest

from smartpbx_ari.ai.rag import RAGEngine
from smartpbx_ari.config import Settings
from tests.fixtures.web_app import WebUnderTest, make_engine, running_web
from tests.integration.test_api import token
from tests.integration.test_websocket import next_of, ws_url

pytestmark = [pytest.mark.integration, pytest.mark.ws]


@pytest.fixture(scope="module")
def hostile_engine(tmp_path_factory: pytest.TempPathFactory) -> tuple[Settings, RAGEngine]:
    return make_engine(tmp_path_factory.mktemp("ws-hostile"))


@pytest.fixture
async def web(hostile_engine: tuple[Settings, RAGEngine]) -> AsyncIterator[WebUnderTest]:
    async with running_web(*hostile_engine) as under_test:
        yield under_test


def configure(web: WebUnderTest, **changes: object) -> None:
    settings = web.context.settings
    web.context.settings = dataclasses.replace(
        settings, web=dataclasses.replace(settings.web, **changes))


async def refused(http: aiohttp.ClientSession, url: str, **kwargs: object) -> int:
    with pytest.raises(aiohttp.WSServerHandshakeError) as err:
        async with http.ws_connect(url, **kwargs):  # type: ignore[arg-type]
            pass
    return err.value.status


async def test_a_deeply_nested_frame_is_an_error_and_the_socket_lives_on(
        web: WebUnderTest, http: aiohttp.ClientSession) -> None:
    otto = await token(web, http, "otto")
    async with http.ws_connect(ws_url(web, "otto", otto)) as ws:
        await next_of(ws, "hello")
        await ws.send_str("[" * 8000 + "]" * 8000)
        assert (await next_of(ws, "error"))["message"] == "message: nested too deeply"
        await ws.send_str('{"type": "answer", "alert_id": "a1", "text": "\\ud800"}')
        assert (await next_of(ws, "error"))["message"] == ("text: not valid Unicode "
                                                           "(a lone surrogate)")
        await ws.send_str('{"type": ' + "[" * 500 + "]" * 500 + "}")
        assert (await next_of(ws, "error"))["message"] == "type: unknown list"
        await ws.send_str('{"type": "accept", "alert_id": ' + "[" * 900 + "]" * 900 + "}")
        assert (await next_of(ws, "error"))["message"] == "alert_id: expected a string"
        await ws.send_str('{"type": "ping"}')
        assert (await next_of(ws, "pong"))["type"] == "pong"


async def test_a_flood_of_messages_closes_the_socket_with_policy_violation(
        web: WebUnderTest, http: aiohttp.ClientSession) -> None:
    configure(web, ws_messages_per_s=5.0)
    otto = await token(web, http, "otto")
    async with http.ws_connect(ws_url(web, "otto", otto)) as ws:
        await next_of(ws, "hello")
        for _ in range(200):
            await ws.send_str('{"type": "ping"}')
        pongs = 0
        async with asyncio.timeout(5):
            while (msg := await ws.receive()).type == aiohttp.WSMsgType.TEXT:
                pongs += 1
        assert (msg.type, msg.data) == (aiohttp.WSMsgType.CLOSE,
                                        aiohttp.WSCloseCode.POLICY_VIOLATION)
        assert 1 <= pongs <= 10 + 2  # the burst (twice the rate), then closed
    async with http.get(f"{web.url}/healthz") as r:
        assert r.status == 200


async def test_the_path_names_the_tokens_own_user(web: WebUnderTest,
                                                  http: aiohttp.ClientSession) -> None:
    otto = await token(web, http, "otto")
    assert await refused(http, ws_url(web, "olga", otto)) == 403
    assert await refused(http, ws_url(web, "op001", otto)) == 403
    bad_since = ws_url(web, "otto", otto).replace("since=0", "since=%C2%B3")
    assert await refused(http, bad_since) == 400


async def test_only_this_consoles_origin_or_a_configured_one_may_connect(
        web: WebUnderTest, http: aiohttp.ClientSession) -> None:
    otto = await token(web, http, "otto")
    url = ws_url(web, "otto", otto)
    assert await refused(http, url, origin="https://evil.example") == 403
    assert await refused(http, url, origin="null") == 403
    async with http.ws_connect(url, origin=web.url) as ws:  # the console's own page
        await next_of(ws, "hello")
    configure(web, allowed_origins="https://console.example.com, https://ops.example.com")
    async with http.ws_connect(url, origin="https://ops.example.com") as ws:
        await next_of(ws, "hello")
    assert await refused(http, url, origin="https://evil.example") == 403
