"""FastAGI: the dialplan asks us where a call goes, and hands us callback numbers.

``AGI(agi://127.0.0.1:4573/route)`` -> we read the AGI variables, load the routing rules
(from the database, in a thread), decide (telephony/routing.py) and answer with two
channel variables: ``SMARTPBX_ROUTE`` (ai | operators | closed | blocked) and
``SMARTPBX_LANGUAGE``. ``AGI(agi://.../callback,NUMBER)`` (a caller in the operators'
queue keyed a number to be called back on) -> ``on_callback`` gets it (a callback alert
for the operators) and we answer ``SMARTPBX_CALLBACK`` = ok | invalid | failed.
Commands go through panoramisk's FastAGI ``Request``; reading the request is ours,
because panoramisk's reader spins forever on a connection closed before its blank line.
Anything odd (no variables, garbage, an early hang-up, the database down) gets the safe
default (the AI path; for a callback: back into the queue) and one log line. A request is
bounded: lines of at most ``LINE_LIMIT`` bytes, at most ``MAX_HEADERS`` lines, all of it
within ``READ_TIMEOUT_S`` (a silent or slow peer is cut off); and at most
``MAX_CONNECTIONS`` are served at once (more are closed unread), so a flood of garbage or
half-open connections cannot use up the process's file descriptors.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo

from panoramisk.fast_agi import Request

from smartpbx_ari.call.routing import Decision, RuleLike, decide

log = logging.getLogger(__name__)
LINE_LIMIT = 4 * 1024  # one "agi_name: value" line (Asterisk's longest: a few hundred)
MAX_HEADERS = 256  # Asterisk sends ~25 variables, plus one per AGI() argument
READ_TIMEOUT_S = 5.0  # the whole request; then each command's answer
MAX_CONNECTIONS = 256  # served at once (Asterisk's requests take milliseconds)
ROUTE_SCRIPT = "route"
CALLBACK_SCRIPT = "callback"
CALLBACK_DIGITS = (3, 20)  # a number to call back: an extension up to an international one


@dataclass(frozen=True)
class CallbackRequest:
    """A caller waiting for an operator left a number to be called back on."""

    call_id: str  # the caller's channel (Asterisk's uniqueid: the call's id)
    number: str
    caller: str = ""  # the caller id the call came with


RuleLoader = Callable[[], Awaitable[Sequence[RuleLike]]]
CallbackSink = Callable[[CallbackRequest], None]


class AgiServer:
    def __init__(self, rules: RuleLoader, host: str = "127.0.0.1", port: int = 4573,
                 timezone: str = "", clock: Callable[[], datetime] | None = None,
                 on_callback: CallbackSink | None = None) -> None:
        self.rules, self.host, self.port = rules, host, port
        self.on_callback = on_callback
        zone = ZoneInfo(timezone) if timezone else None
        self.clock = clock or (lambda: datetime.now(zone).astimezone(zone))
        self.server: asyncio.Server | None = None
        self.handled = 0
        self.refused = 0  # connections closed unread: MAX_CONNECTIONS were being served
        self.open = 0

    async def start(self) -> AgiServer:
        self.server = await asyncio.start_server(self._handle, self.host, self.port,
                                                 limit=LINE_LIMIT)
        self.port = int(self.server.sockets[0].getsockname()[1])
        log.info("FastAGI listening on %s:%d", self.host, self.port)
        return self

    async def close(self) -> None:
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()
            self.server = None

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.open >= MAX_CONNECTIONS:
            self.refused += 1
            if self.refused % 100 == 1:
                log.warning("agi: %d connections open; refusing more (%d so far)",
                            self.open, self.refused)
            writer.transport.abort()
            return
        self.open += 1
        try:
            await self._serve(reader, writer)
        finally:
            self.open -= 1

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = writer.get_extra_info("peername")
        try:
            headers = await asyncio.wait_for(read_headers(reader), READ_TIMEOUT_S)
            answers = await self._answer(headers)
            request = Request(None, headers, reader, writer)
            for name, value in answers:
                await asyncio.wait_for(
                    request.send_command(f'SET VARIABLE {name} "{value}"'), READ_TIMEOUT_S)
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError,
                ConnectionError, TimeoutError) as err:
            log.warning("agi: request from %s ended early or was unreadable (%s); "
                        "the dialplan keeps its default route", peer, type(err).__name__)
        finally:
            self.handled += 1
            writer.close()
            with contextlib.suppress(ConnectionError, TimeoutError):
                await asyncio.wait_for(writer.wait_closed(), READ_TIMEOUT_S)
            writer.transport.abort()  # a peer that reads nothing would hold the socket

    async def _answer(self, headers: dict[str, str]) -> list[tuple[str, str]]:
        """The channel variables that answer the script the dialplan called."""
        script = headers.get("agi_network_script", "").split("?")[0].strip("/")
        if script == CALLBACK_SCRIPT:
            return [("SMARTPBX_CALLBACK", self._callback(headers))]
        if script != ROUTE_SCRIPT:
            decision = Decision("ai", reason=f"unknown script {script!r}")
        else:
            decision = await self._decide(headers)
        log.info("agi: caller %r dialled %r -> %s (%s)", headers.get("agi_callerid"),
                 headers.get("agi_extension"), decision.route, decision.reason)
        return [("SMARTPBX_ROUTE", decision.route), ("SMARTPBX_LANGUAGE", decision.language)]

    def _callback(self, headers: dict[str, str]) -> str:
        """ok: the number reached the operators; invalid: not a number; failed: it did not."""
        number = callback_number(headers.get("agi_arg_1", ""))
        call_id = headers.get("agi_uniqueid", "")
        if number is None or not call_id:
            log.warning("agi: callback from call %r refused: %r is not a phone number",
                        call_id, headers.get("agi_arg_1", "")[:40])
            return "invalid"
        if self.on_callback is None:
            log.warning("agi: callback number for call %s not taken: no one to tell", call_id)
            return "failed"
        try:
            self.on_callback(CallbackRequest(call_id, number,
                                             _number(headers.get("agi_callerid", ""))))
        except Exception as err:  # the caller goes back into the queue, told so
            log.warning("agi: callback number for call %s not taken (%s: %s)", call_id,
                        type(err).__name__, err)
            return "failed"
        log.info("agi: call %s left callback number %s", call_id, number)
        return "ok"

    async def _decide(self, headers: dict[str, str]) -> Decision:
        caller = _number(headers.get("agi_callerid", ""))
        dialled = _number(headers.get("agi_extension", ""))
        try:
            rules = await self.rules()
        except Exception as err:  # the database is down: calls still go to the AI
            log.warning("agi: routing rules unavailable (%s); default route", err)
            return Decision("ai", reason="rules unavailable")
        return decide(caller, dialled, rules, self.clock())


async def read_headers(reader: asyncio.StreamReader) -> dict[str, str]:
    """The ``agi_*: value`` lines up to the blank line. ``ValueError`` for a line longer
    than the reader's limit (``LINE_LIMIT`` on the server), more than ``MAX_HEADERS`` lines,
    EOF before the blank line, or no AGI variable at all."""
    headers: dict[str, str] = {}
    for _ in range(MAX_HEADERS + 1):
        raw = await reader.readline()
        if not raw.endswith(b"\n"):
            raise ValueError("AGI request ended before its blank line")
        line = raw.decode("utf-8", "replace").rstrip("\r\n")
        if not line:
            break
        name, sep, value = line.partition(": ")
        if sep and name.startswith("agi_"):
            headers[name] = value.strip()
    else:
        raise ValueError(f"AGI request: more than {MAX_HEADERS} lines")
    if not headers:
        raise ValueError("no AGI variables")
    return headers


def callback_number(keyed: str) -> str | None:
    """The digits a caller keyed (Read() drops the closing #), or None when they are no
    phone number: empty, too short or long, or with anything but digits (a stray *)."""
    keyed = keyed.strip()
    low, high = CALLBACK_DIGITS
    if not keyed.isascii() or not keyed.isdigit() or not low <= len(keyed) <= high:
        return None
    return keyed


def _number(value: str) -> str:
    """A caller id or extension (a number or a SIP user); "unknown" and garbage -> ""."""
    kept = "".join(c for c in value if c.isalnum() or c in "+*#-_.@")
    return kept if kept.lower() != "unknown" and len(kept) <= 64 else ""
