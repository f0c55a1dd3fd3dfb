"""AMI, through panoramisk behind this thin wrapper: operators' presence, queue events and
call-detail records.

The panoramisk Manager is created inside the running loop (``start``). After a login
(the first, or after a reconnect: panoramisk retries every ``reconnect_s``), the state of
every endpoint is asked for again (``PJSIPShowEndpoints``), so nothing missed while the
connection was down stays wrong; ``DeviceStateChange`` events keep it current.
Presence of an operator = the state of ``PJSIP/<ext>``: NOT_INUSE -> available; INUSE,
BUSY, RINGING, ONHOLD -> busy; UNAVAILABLE, INVALID -> unavailable (no registered phone).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

from panoramisk import Manager

from smartpbx_ari.call.control import Presence
from smartpbx_ari.errors import UserFacingError

log = logging.getLogger(__name__)
DEVICE_STATES = {
    "NOT_INUSE": "available", "INUSE": "busy", "BUSY": "busy", "RINGING": "busy",
    "RINGINUSE": "busy", "ONHOLD": "busy", "UNAVAILABLE": "unavailable",
    "INVALID": "unavailable", "UNKNOWN": "unknown",
    # the same states as PJSIPShowEndpoints spells them
    "NOT_IN_USE": "available", "IN_USE": "busy", "RINGING_IN_USE": "busy", "ON_HOLD": "busy",
}
QUEUE_EVENTS = ("QueueCallerJoin", "QueueCallerLeave", "QueueCallerAbandon",
                "AgentCalled", "AgentConnect", "AgentComplete")


class AmiError(UserFacingError):
    code = "ami-failed"


PresenceSink = Callable[[Presence], None]
EventSink = Callable[[str, dict[str, str]], None]  # (kind, fields): queue events, CDRs


class _Manager(Manager):  # type: ignore[misc]
    """panoramisk's Manager, but closed means closed: its reconnect timer (which it keeps
    no handle of) and a connection still being made are dropped after ``close()``."""

    closed = False

    def connect(self, *args: Any, **kwargs: Any) -> Any:
        return None if self.closed else super().connect(*args, **kwargs)

    def connection_made(self, f: asyncio.Future[Any]) -> None:
        if not self.closed:
            super().connection_made(f)
        elif not f.cancelled() and f.exception() is None:
            f.result()[0].close()

    def close(self) -> None:
        self.closed = True
        super().close()


class AmiClient:
    def __init__(self, host: str, port: int, user: str, secret: str, *,
                 on_presence: PresenceSink | None = None, on_event: EventSink | None = None,
                 reconnect_s: int = 1) -> None:
        self.host, self.port, self.user, self._secret = host, port, user, secret
        self.on_presence = on_presence or (lambda p: None)
        self.on_event = on_event or (lambda kind, fields: None)
        self.reconnect_s = reconnect_s
        self.presence: dict[str, Presence] = {}
        self.logins = 0  # successful logins (a reconnect adds one)
        self.logged_in = asyncio.Event()
        self._manager: Any = None
        self._tasks: set[asyncio.Future[None]] = set()

    async def start(self, timeout: float = 10.0) -> AmiClient:
        self._manager = _Manager(
            loop=asyncio.get_running_loop(), host=self.host, port=self.port,
            username=self.user, secret=self._secret, reconnect_timeout=self.reconnect_s,
            ping_delay=10, on_login=self._on_login, on_disconnect=self._on_disconnect,
            log=log)
        self._manager.register_event("DeviceStateChange", self._on_device)
        for name in (*QUEUE_EVENTS, "Cdr"):
            self._manager.register_event(name, self._on_other)
        self._manager.connect()
        try:
            await asyncio.wait_for(self.logged_in.wait(), timeout)
        except TimeoutError:
            self.close()
            raise AmiError(f"ami: no login at {self.host}:{self.port} within {timeout:.0f} s "
                           f"(user {self.user!r})") from None
        return self

    def close(self) -> None:
        if self._manager is not None:
            self._manager.close()
            self._manager = None

    def available(self, endpoint: str) -> bool:
        found = self.presence.get(endpoint)
        return found is not None and found.state == "available"

    async def action(self, action: dict[str, str]) -> Any:
        """Send an AMI action; the response (a list for list actions)."""
        if self._manager is None:
            raise AmiError("ami: not connected")
        return await self._manager.send_action(action)

    # ---- panoramisk callbacks (on the loop) ---------------------------------------
    def _on_login(self, manager: Any) -> None:
        self.logins += 1
        log.info("AMI logged in at %s:%s (login %d)", self.host, self.port, self.logins)
        task = asyncio.ensure_future(self._read_endpoints(manager))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _read_endpoints(self, manager: Any) -> None:
        try:
            listing = await manager.send_action({"Action": "PJSIPShowEndpoints"})
        except Exception as err:  # the connection dropped again: the next login retries
            log.warning("AMI: cannot list endpoints: %s", err)
            return
        for item in listing if isinstance(listing, list) else []:
            if item.get("Event") == "EndpointList":
                state = str(item.get("DeviceState", "")).upper().replace(" ", "_")
                self._set(str(item.get("ObjectName", "")), state)
        self.logged_in.set()

    def _on_disconnect(self, manager: Any, exc: BaseException | None) -> None:
        self.logged_in.clear()
        log.warning("AMI connection lost (%s); reconnecting every %d s", exc, self.reconnect_s)

    def _on_device(self, manager: Any, event: Any) -> None:
        device, state = str(event.get("Device", "")), str(event.get("State", ""))
        tech, _, endpoint = device.partition("/")
        if tech == "PJSIP" and endpoint:
            self._set(endpoint, state)

    def _set(self, endpoint: str, state: str) -> None:
        presence = Presence(endpoint, DEVICE_STATES.get(state, "unknown"), state)
        if self.presence.get(endpoint) != presence:
            self.presence[endpoint] = presence
            self.on_presence(presence)

    def _on_other(self, manager: Any, event: Any) -> None:
        self.on_event(str(event.event), {str(k): str(v) for k, v in event.items()})
