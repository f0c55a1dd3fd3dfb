"""Feed messages between processes (a controller and web nodes) through PostgreSQL
LISTEN/NOTIFY, when ``web.events = "postgres"``. Every node still numbers the messages
of its own feed; a node ignores what it sent itself. A lost connection is retried with
backoff; messages sent while it was down are not replayed across nodes (each node's own
replay buffer still serves its reconnecting operators).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import secrets
from collections.abc import Awaitable, Callable
from typing import Any

import psycopg
from sqlalchemy.engine import make_url

log = logging.getLogger(__name__)
CHANNEL = "smartpbx_feed"
MAX_PAYLOAD = 7900  # PostgreSQL's NOTIFY limit is 8000 bytes


def psycopg_dsn(url: str) -> str:
    """``postgresql+psycopg://...`` (SQLAlchemy) as a libpq connection string."""
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


class PgRelay:
    def __init__(self, url: str) -> None:
        self.dsn = psycopg_dsn(url)
        self.node = secrets.token_hex(6)
        self.received = 0
        self._send: psycopg.AsyncConnection[Any] | None = None
        self._task: asyncio.Task[None] | None = None
        self.listening = asyncio.Event()

    async def start(self, deliver: Callable[[dict[str, Any]], Awaitable[object]]) -> None:
        self._task = asyncio.create_task(self._listen(deliver), name="pg-relay")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._send is not None:
            await self._send.close()

    async def publish(self, message: dict[str, Any]) -> None:
        payload = json.dumps({"node": self.node, "message": message}, ensure_ascii=False)
        if len(payload.encode()) > MAX_PAYLOAD:
            log.warning("relay: a %s message is too large for NOTIFY; not relayed",
                        message.get("type"))
            return
        try:
            if self._send is None or self._send.closed:
                self._send = await psycopg.AsyncConnection.connect(self.dsn, autocommit=True)
            await self._send.execute("SELECT pg_notify(%s, %s)", (CHANNEL, payload))
        except psycopg.Error as err:
            log.warning("relay: cannot notify (%s); other nodes miss this event",
                        type(err).__name__)
            self._send = None

    async def _listen(self, deliver: Callable[[dict[str, Any]], Awaitable[object]]) -> None:
        delay = 0.5
        while True:
            try:
                async with await psycopg.AsyncConnection.connect(
                        self.dsn, autocommit=True) as conn:
                    await conn.execute(f"LISTEN {CHANNEL}")
                    self.listening.set()
                    delay = 0.5
                    async for notify in conn.notifies():
                        data = json.loads(notify.payload)
                        if data.get("node") != self.node:
                            self.received += 1
                            await deliver(data["message"])
            except psycopg.Error as err:
                self.listening.clear()
                log.warning("relay: listening failed (%s); retrying in %.1f s",
                            type(err).__name__, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 10.0)
