"""Our ARI client on aiohttp: typed REST calls and a WebSocket that survives drops.

The third-party ARI clients fail when the WebSocket drops (see the voice-loop issue);
this one reconnects with capped exponential backoff and jitter and yields a
:class:`Connected` event (first connection too) so the app can reconcile (``GET /ari/channels``).
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import random
from collections.abc import AsyncIterator, Iterator
from typing import Any

import aiohttp

from smartpbx_ari.call.control import TelephonyError
from smartpbx_ari.telephony.ari_events import (
    AriEvent,
    AriEventError,
    Bridge,
    Channel,
    Connected,
    Disconnected,
    parse_message,
)

log = logging.getLogger(__name__)
RECORDING_TIMEOUT_S = 300.0


class AriError(TelephonyError):
    """A REST call failed: carries the HTTP status and Asterisk's own message."""

    code = "ari-error"

    def __init__(self, status: int, message: str, method: str = "", path: str = "") -> None:
        super().__init__(status, message)
        self.args = (f"ARI {method} {path} -> {status}: {message}",)  # str(): the whole call


def backoff_delays(base: float = 0.2, cap: float = 10.0) -> Iterator[float]:
    """Full-jitter exponential backoff: 0..base*2^n, capped."""
    attempt = 0
    while True:
        yield random.uniform(0, min(cap, base * 2**attempt))
        attempt += 1


class AriClient:
    def __init__(self, base_url: str, user: str, password: str, app: str,
                 reconnect_max_s: float = 10.0) -> None:
        self.base_url = base_url.rstrip("/")
        self.app = app
        self._headers = {"Authorization": _basic_auth(user, password)}
        self._reconnect_max_s = reconnect_max_s
        self._session: aiohttp.ClientSession | None = None
        self._ws: aiohttp.ClientWebSocketResponse | None = None
        self.connected = asyncio.Event()

    async def __aenter__(self) -> AriClient:
        timeout = aiohttp.ClientTimeout(total=10)
        self._session = aiohttp.ClientSession(headers=self._headers, timeout=timeout)
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        if self._ws is not None:
            await self._ws.close()
        if self._session is not None:
            await self._session.close()
            self._session = None

    @property
    def session(self) -> aiohttp.ClientSession:
        if self._session is None:
            raise RuntimeError("AriClient used outside 'async with'")
        return self._session

    # ---- REST ---------------------------------------------------------------------
    async def request(self, method: str, path: str, params: dict[str, Any] | None = None,
                      body: Any = None) -> Any:
        url = f"{self.base_url}{path}"
        query = {k: _param(v) for k, v in (params or {}).items() if v is not None}
        async with self.session.request(method, url, params=query, json=body) as resp:
            text = await resp.text()
            if resp.status >= 400:
                raise AriError(resp.status, _message(text), method, path)
            if not text:
                return None
            return json.loads(text)

    async def answer(self, channel_id: str) -> None:
        await self.request("POST", f"/channels/{channel_id}/answer")

    async def hangup(self, channel_id: str, reason: str = "normal") -> None:
        await self.request("DELETE", f"/channels/{channel_id}", {"reason": reason})

    async def channel(self, channel_id: str) -> Channel:
        return Channel.from_json(await self.request("GET", f"/channels/{channel_id}"))

    async def rtp_received(self, channel_id: str) -> int:
        """RTP packets Asterisk has received on the channel from its peer (``rxcount``)."""
        data = await self.request("GET", f"/channels/{channel_id}/rtp_statistics")
        return int(data.get("rxcount", 0)) if isinstance(data, dict) else 0

    async def channels(self) -> list[Channel]:
        return [Channel.from_json(c) for c in await self.request("GET", "/channels")]

    async def bridges(self) -> list[Bridge]:
        return [Bridge.from_json(b) for b in await self.request("GET", "/bridges")]

    async def create_bridge(self, kind: str = "mixing", name: str = "") -> Bridge:
        data = await self.request("POST", "/bridges", {"type": kind, "name": name or None})
        return Bridge.from_json(data)

    async def destroy_bridge(self, bridge_id: str) -> None:
        await self.request("DELETE", f"/bridges/{bridge_id}")

    async def add_channel(self, bridge_id: str, channel_id: str) -> None:
        await self.request("POST", f"/bridges/{bridge_id}/addChannel", {"channel": channel_id})

    async def remove_channel(self, bridge_id: str, channel_id: str) -> None:
        await self.request("POST", f"/bridges/{bridge_id}/removeChannel",
                           {"channel": channel_id})

    async def snoop(self, channel_id: str, snoop_id: str, spy: str = "both",
                    whisper: str = "none") -> Channel:
        """A channel (into this Stasis app) hearing ``channel_id``'s audio: ``spy`` in,
        out or both; ``whisper`` none: nothing said on it reaches the call."""
        params = {"app": self.app, "spy": spy, "whisper": whisper, "snoopId": snoop_id}
        data = await self.request("POST", f"/channels/{channel_id}/snoop", params)
        return Channel.from_json(data)

    async def external_media(self, external_host: str, fmt: str,
                             channel_id: str | None = None) -> Channel:
        params = {"app": self.app, "external_host": external_host, "format": fmt,
                  "channelId": channel_id, "encapsulation": "rtp", "transport": "udp",
                  "direction": "both"}
        return Channel.from_json(await self.request("POST", "/channels/externalMedia", params))

    async def originate(self, endpoint: str, app_args: str, channel_id: str,
                        caller_id: str = "", timeout_s: int = 30) -> Channel:
        """Call ``endpoint`` (e.g. PJSIP/2001) into this Stasis app."""
        params = {"endpoint": endpoint, "app": self.app, "appArgs": app_args,
                  "channelId": channel_id, "callerId": caller_id or None, "timeout": timeout_s}
        return Channel.from_json(await self.request("POST", "/channels", params))

    async def continue_in_dialplan(self, channel_id: str, context: str | None = None,
                                   extension: str | None = None, priority: int | None = None,
                                   label: str | None = None) -> None:
        params = {"context": context, "extension": extension, "priority": priority,
                  "label": label}
        await self.request("POST", f"/channels/{channel_id}/continue", params)

    # ---- recordings (Asterisk's spool: var/spool/asterisk/recording) ----------------
    async def record_bridge(self, bridge_id: str, name: str, fmt: str = "wav") -> None:
        """Record the bridge's mix (every party) into the stored recording ``name``."""
        await self.request("POST", f"/bridges/{bridge_id}/record",
                           {"name": name, "format": fmt, "ifExists": "overwrite"})

    async def stored_recordings(self) -> list[str]:
        return [str(r.get("name", "")) for r in await self.request("GET", "/recordings/stored")]

    async def is_recording(self, name: str) -> bool:
        try:
            await self.request("GET", f"/recordings/live/{name}")
        except AriError as err:
            if err.status == 404:
                return False
            raise
        return True

    async def recording_file(self, name: str) -> bytes:
        """The stored recording's bytes (an hour of 8 kHz WAV is 58 MB: more time)."""
        path = f"/recordings/stored/{name}/file"
        timeout = aiohttp.ClientTimeout(total=RECORDING_TIMEOUT_S, sock_read=30)
        async with self.session.get(f"{self.base_url}{path}", timeout=timeout) as resp:
            if resp.status >= 400:
                raise AriError(resp.status, _message(await resp.text()), "GET", path)
            return await resp.read()

    async def delete_recording(self, name: str) -> None:
        await self.request("DELETE", f"/recordings/stored/{name}")

    async def get_variable(self, channel_id: str, name: str) -> str:
        data = await self.request("GET", f"/channels/{channel_id}/variable", {"variable": name})
        return str(data.get("value", ""))

    async def reachable(self) -> bool:
        """Asterisk answers ARI's REST at all (an error status counts: it is alive)."""
        try:
            await self.request("GET", "/asterisk/ping")
        except AriError:
            return True
        except (aiohttp.ClientError, OSError, TimeoutError):
            return False
        return True

    # ---- WebSocket ----------------------------------------------------------------
    def _ws_url(self) -> str:
        return self.base_url.replace("http", "ws", 1) + "/events"

    async def events(self) -> AsyncIterator[AriEvent]:
        """Yield events forever, each connection opened by a :class:`Connected`."""
        delays = backoff_delays(cap=self._reconnect_max_s)
        first = True
        while True:
            try:
                async for event in self._one_connection(first):
                    delays = backoff_delays(cap=self._reconnect_max_s)
                    yield event
            except (aiohttp.ClientError, OSError, TimeoutError) as err:
                log.warning("ARI WebSocket: %s", err)
            if self.connected.is_set():
                self.connected.clear()
                yield Disconnected(type="Disconnected", application=self.app)
            first = False
            await asyncio.sleep(next(delays))

    async def _one_connection(self, first: bool) -> AsyncIterator[AriEvent]:
        params = {"app": self.app, "subscribeAll": "false"}
        async with self.session.ws_connect(self._ws_url(), params=params, heartbeat=20,
                                           timeout=aiohttp.ClientWSTimeout(ws_close=5)) as ws:
            self._ws = ws
            self.connected.set()
            log.info("ARI WebSocket connected (app %s)", self.app)
            yield Connected(type="Connected", application=self.app, first=first)
            async for msg in ws:
                if msg.type == aiohttp.WSMsgType.TEXT:
                    try:
                        event = parse_message(msg.data)
                    except AriEventError as err:  # one bad frame must not end every call
                        log.warning("ARI WebSocket: event skipped: %s", err)
                        continue
                    yield event
                elif msg.type in (aiohttp.WSMsgType.ERROR, aiohttp.WSMsgType.CLOSED):
                    break
            self._ws = None
        log.warning("ARI WebSocket closed")


def _basic_auth(user: str, password: str) -> str:
    token = base64.b64encode(f"{user}:{password}".encode()).decode("ascii")
    return f"Basic {token}"


def _param(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _message(text: str) -> str:
    try:
        data = json.loads(text)
    except ValueError:
        return text.strip()[:200] or "(no body)"
    if isinstance(data, dict):
        return str(data.get("message") or data.get("error") or data)
    return str(data)
