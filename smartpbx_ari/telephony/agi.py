"""FastAGI: the dialplan asks us where a call goes before it reaches the AI.

``AGI(agi://127.0.0.1:4573/route)`` -> we read the AGI variables, load the routing rules
(from the database, in a thread), decide (telephony/routing.py) and answer with two
channel variables: ``SMARTPBX_ROUTE`` (ai | operators | closed | blocked) and
``SMARTPBX_LANGUAGE``. Commands go through panoramisk's FastAGI ``Request``; reading the
request is ours, because panoramisk's reader spins forever on a connection closed before
its blank line. Anything odd (no variables, garbage, an early hang-up, the database down)
gets the safe default (the AI path) and one log line.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime
from zoneinfo import ZoneInfo

from panoramisk.fast_agi import Request

from smartpbx_ari.call.routing import Decision, RuleLike, decide

log = logging.getLogger(__name__)
HEADER_LIMIT = 16 * 1024
READ_TIMEOUT_S = 5.0
ROUTE_SCRIPT = "route"

RuleLoader = Callable[[], Awaitable[Sequence[RuleLike]]]


class AgiServer:
    def __init__(self, rules: RuleLoader, host: str = "127.0.0.1", port: int = 4573,
                 timezone: str = "", clock: Callable[[], datetime] | None = None) -> None:
        self.rules, self.host, self.port = rules, host, port
        zone = ZoneInfo(timezone) if timezone else None
        self.clock = clock or (lambda: datetime.now(zone).astimezone(zone))
        self.server: asyncio.Server | None = None
        self.handled = 0

    async def start(self) -> AgiServer:
        self.server = await asyncio.start_server(self._handle, self.host, self.port,
                                                 limit=HEADER_LIMIT)
        self.port = int(self.server.sockets[0].getsockname()[1])
        log.info("FastAGI listening on %s:%d", self.host, self.port)
        return self

    async def close(self) -> None:
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()
            self.server = None

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = writer.get_extra_info("peername")
        try:
            headers = await asyncio.wait_for(read_headers(reader), READ_TIMEOUT_S)
            decision = await self._decide(headers)
            request = Request(None, headers, reader, writer)
            for name, value in (("SMARTPBX_ROUTE", decision.route),
                                ("SMARTPBX_LANGUAGE", decision.language)):
                await asyncio.wait_for(
                    request.send_command(f'SET VARIABLE {name} "{value}"'), READ_TIMEOUT_S)
            log.info("agi: caller %r dialled %r -> %s (%s)", headers.get("agi_callerid"),
                     headers.get("agi_extension"), decision.route, decision.reason)
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError,
                ConnectionError, TimeoutError) as err:
            log.warning("agi: request from %s ended early or was unreadable (%s); "
                        "the dialplan keeps its default route", peer, type(err).__name__)
        finally:
            self.handled += 1
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()

    async def _decide(self, headers: dict[str, str]) -> Decision:
        script = headers.get("agi_network_script", "").split("?")[0].strip("/")
        if script != ROUTE_SCRIPT:
            return Decision("ai", reason=f"unknown script {script!r}")
        caller = _number(headers.get("agi_callerid", ""))
        dialled = _number(headers.get("agi_extension", ""))
        try:
            rules = await self.rules()
        except Exception as err:  # the database is down: calls still go to the AI
            log.warning("agi: routing rules unavailable (%s); default route", err)
            return Decision("ai", reason="rules unavailable")
        return decide(caller, dialled, rules, self.clock())


async def read_headers(reader: asyncio.StreamReader) -> dict[str, str]:
    """The ``agi_*: value`` lines up to the blank line; EOF before it raises."""
    raw = await reader.readuntil(b"\n\n")
    headers: dict[str, str] = {}
    for line in raw.decode("utf-8", "replace").splitlines():
        name, sep, value = line.partition(": ")
        if sep and name.startswith("agi_"):
            headers[name] = value.strip()
    if not headers:
        raise ValueError("no AGI variables")
    return headers


def _number(value: str) -> str:
    """A caller id or extension (a number or a SIP user); "unknown" and garbage -> ""."""
    kept = "".join(c for c in value if c.isalnum() or c in "+*#-_.@")
    return kept if kept.lower() != "unknown" and len(kept) <= 64 else ""
