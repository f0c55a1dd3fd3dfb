"""Tokens and sockets end with their user (issue 16's outside probe): a disabled or removed
user's token is refused and their live sockets are closed, also when `smartpbx users
disable/remove` runs in another process; a token for a user id that never existed, signed
with the real secret, reads nothing; the current role applies, not the token's."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator

import aiohttp
import jwt
import pytest
from sqlalchemy import update

from smartpbx_ari.ai.rag import RAGEngine
from smartpbx_ari.config import Settings
from smartpbx_ari.store.models import User
from smartpbx_ari.store.users import add_user
from tests.fixtures.web_app import PASSWORD, WebUnderTest, make_engine, running_web
from tests.integration.test_api import call, token
from tests.integration.test_websocket import next_of, ws_url

pytestmark = [pytest.mark.integration]
CHECK_S = 0.3


@pytest.fixture(scope="module")
def sessions_engine(tmp_path_factory: pytest.TempPathFactory) -> tuple[Settings, RAGEngine]:
    return make_engine(tmp_path_factory.mktemp("sessions"))


@pytest.fixture
async def web(sessions_engine: tuple[Settings, RAGEngine]) -> AsyncIterator[WebUnderTest]:
    async with running_web(*sessions_engine) as under_test:
        under_test.context.accounts.check_s = CHECK_S
        yield under_test


def new_user(web: WebUnderTest, name: str, role: str = "operator") -> str:
    add_user(web.context.db, name, PASSWORD, role, f"{name}@example.com")
    return name


def cli(settings: Settings, *args: str) -> subprocess.CompletedProcess[str]:
    """`smartpbx ...` in a process of its own, on the console's database."""
    env = {**os.environ, "SMARTPBX_DATA_DIR": str(settings.data_dir)}
    return subprocess.run([sys.executable, "-m", "smartpbx_ari", *args], env=env,
                          capture_output=True, text=True, timeout=120, check=False)


async def test_a_token_for_a_user_who_never_existed_reads_nothing(
        web: WebUnderTest, http: aiohttp.ClientSession) -> None:
    forged = web.context.tokens.issue("nobody-999", "admin")  # the real secret
    status, body = await call(http, "GET", f"{web.url}/api/v1/audit", forged)
    assert (status, body["error"]["message"]) == (
        401, "token: its user no longer exists or is disabled")
    with pytest.raises(aiohttp.WSServerHandshakeError) as err:
        async with http.ws_connect(ws_url(web, "nobody-999", forged)):
            pass
    assert err.value.status == 401


async def test_a_disabled_users_token_and_socket_end_from_another_process(
        web: WebUnderTest, http: aiohttp.ClientSession) -> None:
    name = new_user(web, "dora")
    tok = await token(web, http, name)
    url = f"{web.url}/api/v1/knowledge"
    entry = {"question": "Do you sell gift cards?", "answer": "Yes."}
    status, created = await call(http, "POST", url, tok, json=entry)
    assert status == 201
    async with http.ws_connect(ws_url(web, name, tok)) as ws:
        assert (await next_of(ws, "hello"))["user"] == name
        done = cli(web.context.settings, "users", "disable", f"{name}@example.com")
        assert done.returncode == 0, done.stderr
        assert f"disabled {name}" in done.stdout
        disabled_at = time.monotonic()
        async with asyncio.timeout(CHECK_S + 5):
            closing = await ws.receive()
        assert closing.type == aiohttp.WSMsgType.CLOSE, closing
        assert closing.data == aiohttp.WSCloseCode.POLICY_VIOLATION
        assert time.monotonic() - disabled_at < CHECK_S + 2
    await asyncio.sleep(CHECK_S)  # past the cache
    status, body = await call(http, "DELETE", f"{url}/{created['id']}", tok)
    assert (status, body["error"]["code"]) == (401, "unauthorized")
    assert (await call(http, "POST", url, tok, json=entry))[0] == 401
    with pytest.raises(aiohttp.WSServerHandshakeError) as err:
        async with http.ws_connect(ws_url(web, name, tok)):
            pass
    assert err.value.status == 401
    async with http.post(f"{web.url}/api/v1/auth/login",
                         json={"email": f"{name}@example.com", "password": PASSWORD}) as r:
        assert r.status == 401
    assert (await call(http, "DELETE", f"{url}/{created['id']}",
                       await token(web, http, "otto")))[0] == 200


async def test_a_removed_users_token_ends(web: WebUnderTest,
                                          http: aiohttp.ClientSession) -> None:
    name = new_user(web, "remy", "admin")
    tok = await token(web, http, name)
    assert (await call(http, "GET", f"{web.url}/api/v1/audit", tok))[0] == 200
    async with http.ws_connect(ws_url(web, name, tok)) as ws:
        await next_of(ws, "hello")
        done = cli(web.context.settings, "users", "remove", name)
        assert done.returncode == 0 and f"removed {name}" in done.stdout, done.stderr
        async with asyncio.timeout(CHECK_S + 5):
            closing = await ws.receive()
        assert (closing.type, closing.data) == (aiohttp.WSMsgType.CLOSE,
                                                aiohttp.WSCloseCode.POLICY_VIOLATION)
    await asyncio.sleep(CHECK_S)
    assert (await call(http, "GET", f"{web.url}/api/v1/audit", tok))[0] == 401
    again = cli(web.context.settings, "users", "remove", name)
    assert again.returncode != 0 and "no user with e-mail or name 'remy'" in again.stderr


async def test_the_current_role_applies_not_the_tokens(
        web: WebUnderTest, http: aiohttp.ClientSession) -> None:
    name = new_user(web, "rolf", "admin")
    tok = await token(web, http, name)
    assert (await call(http, "GET", f"{web.url}/api/v1/rules", tok))[0] == 200
    with web.context.db.session() as session:
        session.execute(update(User).where(User.name == name).values(role="viewer"))
    await asyncio.sleep(CHECK_S)
    status, body = await call(http, "GET", f"{web.url}/api/v1/rules", tok)
    assert (status, body["error"]["message"]) == (403, "role 'viewer' may not admin")
    async with http.ws_connect(ws_url(web, name, tok)) as ws:
        assert (await next_of(ws, "hello"))["role"] == "viewer"


async def test_a_token_signed_with_another_role_claim_still_needs_its_user(
        web: WebUnderTest, http: aiohttp.ClientSession) -> None:
    secret = web.context.tokens._secret
    raised = jwt.encode({"sub": "vic", "role": "admin", "exp": int(time.time()) + 60},
                        secret, algorithm="HS256")
    status, body = await call(http, "GET", f"{web.url}/api/v1/audit", raised)
    assert (status, body["error"]["message"]) == (403, "role 'viewer' may not admin")
