"""No secret value in the logs of a full call plus an API workout: `smartpbx serve` as its
own process (its log, at the product's level, from start to a clean stop) and what
Asterisk logged meanwhile. The secrets: every value of the credentials (secrets.toml: ARI,
AMI, the SIP peers', the JWT secret, the first admin's), ARI's Basic credentials as sent,
a console user's password and its stored hash, and every access token issued."""

from __future__ import annotations

import asyncio
import base64
import secrets
import signal
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest
from sqlalchemy import select

from smartpbx_ari.config import Settings
from smartpbx_ari.credentials import Credentials
from smartpbx_ari.sipcaller.caller import Dial, SyntheticCaller
from smartpbx_ari.store.migrate import open_database
from smartpbx_ari.store.models import User
from smartpbx_ari.store.users import add_user, remove_user
from smartpbx_ari.telephony.pbx import LocalPbx
from tests.e2e.test_serve import start_serve, stop

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


class LogTail:
    """What a log file gets from now on."""

    def __init__(self, path: Path) -> None:
        self.path, self.start = path, path.stat().st_size if path.exists() else 0

    def text(self) -> str:
        if not self.path.exists():
            return ""
        with self.path.open("rb") as fh:
            fh.seek(self.start)
            return fh.read().decode("utf-8", "replace")


@pytest.fixture
def console_user(settings: Settings) -> Iterator[tuple[str, str, str]]:
    """(e-mail, password, stored hash) of an admin made for this test, removed after."""
    db = open_database(settings)
    name, password = f"logcheck-{secrets.token_hex(4)}", secrets.token_urlsafe(18)
    add_user(db, name, password, "admin", f"{name}@example.com")
    with db.session() as session:
        stored = session.scalars(select(User.password_hash).where(User.name == name)).one()
    yield f"{name}@example.com", password, stored
    remove_user(db, name)
    db.engine.dispose()


async def api_workout(url: str, email: str, password: str) -> list[str]:
    """Log in (wrongly, then rightly), read and change, err, and use the socket; the
    access tokens issued."""
    api = f"{url}/api/v1"
    async with aiohttp.ClientSession() as http:
        async with http.post(f"{api}/auth/login",
                             json={"email": email, "password": password + "x"}) as r:
            assert r.status == 401
        async with http.post(f"{api}/auth/login",
                             json={"email": email, "password": password, "extra": password}
                             ) as r:
            assert r.status == 400  # an unknown field, refused naming it
        async with http.post(f"{api}/auth/login",
                             json={"email": email, "password": password}) as r:
            assert r.status == 200, await r.text()
            token = str((await r.json())["access_token"])
        auth = {"Authorization": f"Bearer {token}"}
        for path in ("/calls", "/alerts", "/knowledge?query=refund", "/operators", "/rules",
                     "/audit", "/metrics/performance?period=1h", "/calls/nope"):
            async with http.get(api + path, headers=auth) as r:
                assert r.status in (200, 404), (path, r.status)
        entry = {"question": "Do you keep my card number?", "answer": "Never in full."}
        async with http.post(f"{api}/knowledge", headers=auth, json=entry) as r:
            assert r.status == 201, await r.text()
            created = (await r.json())["id"]
        async with http.delete(f"{api}/knowledge/{created}", headers=auth) as r:
            assert r.status == 200
        async with http.get(f"{api}/calls", headers={"Authorization": f"Bearer {token}x"}
                            ) as r:
            assert r.status == 401
        name = email.split("@")[0]
        async with http.ws_connect(f"{url}/ws/operator/{name}?token={token}") as ws:
            await ws.send_json({"type": "ping"})
            seen = [(await ws.receive_json())["type"]]
            while seen[-1] != "pong":
                seen.append((await ws.receive_json())["type"])
            assert "hello" in seen
        with pytest.raises(aiohttp.WSServerHandshakeError):
            await http.ws_connect(f"{url}/ws/operator/someone-else?token={token}")
    return [token]


async def full_call(settings: Settings, dial: Dial) -> None:
    """A caller hears the greeting, asks, hears the answer, hangs up."""
    caller = SyntheticCaller(settings, transcribe=False)
    async with caller.dial(dial) as line:
        await line.wait_quiet(await line.wait_voice(line.answered_at, 10) or 0)
        asked = await line.say("How do I get a refund?")
        assert await line.wait_voice(asked, 20) is not None  # answered
        await line.wait_quiet(asked)


async def test_no_secret_appears_in_the_logs_of_a_call_and_the_api(
        pbx: LocalPbx, settings: Settings, credentials: Credentials, dial: Dial,
        console_user: tuple[str, str, str], tmp_path: Path) -> None:
    email, password, stored_hash = console_user
    asterisk_logs = [LogTail(pbx.logfile),
                     LogTail(pbx.root / "var/log/asterisk/messages.log")]
    log = tmp_path / "serve.log"
    proc = await asyncio.to_thread(start_serve, log)
    try:
        url = f"http://{settings.web.host}:{settings.web.port}"
        tokens = await api_workout(url, email, password)
        await full_call(settings, dial)
        async with asyncio.timeout(15):
            while "event=ended" not in log.read_text():  # noqa: ASYNC110 (another process)
                await asyncio.sleep(0.1)
        proc.send_signal(signal.SIGTERM)  # a clean stop: its shutdown is logged too
        assert await asyncio.to_thread(proc.wait, 20) == 0
    finally:
        await asyncio.to_thread(stop, proc)
    served = log.read_text()
    assert "event=started" in served and "event=said" in served  # the call was logged
    ari_basic = base64.b64encode(
        f"{settings.ari.user}:{credentials.ari_password}".encode()).decode()
    secret_values = {**credentials.as_template_values(), "ari basic auth": ari_basic,
                     "console password": password, "password hash": stored_hash,
                     **{f"access token {n}": t for n, t in enumerate(tokens)}}
    assert all(len(v) >= 16 for v in secret_values.values())  # none found by chance
    logs = {"serve": served, **{str(t.path): t.text() for t in asterisk_logs}}
    leaks = [f"{name} in {where}" for name, value in secret_values.items()
             for where, text in logs.items() if value in text]
    assert leaks == []
