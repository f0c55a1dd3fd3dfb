"""The FastAGI server over a real loopback socket, Asterisk's side played by the test:
variables in, SET VARIABLE out; an early disconnect or garbage never spins and leaves
the dialplan's default."""

from __future__ import annotations

import asyncio
import time
from datetime import datetime

import pytest

from smartpbx_ari.call.routing import Rule
from smartpbx_ari.telephony import agi
from smartpbx_ari.telephony.agi import AgiServer, CallbackRequest, callback_number

pytestmark = pytest.mark.unit
HEADERS = ("agi_network: yes\nagi_network_script: route\nagi_request: agi://127.0.0.1/route\n"
           "agi_channel: PJSIP/caller-00000001\nagi_callerid: {caller}\n"
           "agi_extension: {exten}\n\n")


async def _server(rules: list[Rule] | Exception) -> AgiServer:
    async def load() -> list[Rule]:
        if isinstance(rules, Exception):
            raise rules
        return rules

    return await AgiServer(load, "127.0.0.1", 0,
                           clock=lambda: datetime(2026, 11, 23, 10, 0)).start()


async def _ask(server: AgiServer, text: str) -> list[str]:
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    writer.write(text.encode())
    commands = []
    while line := await reader.readline():
        commands.append(line.decode().strip())
        writer.write(b"200 result=1\n")
    writer.close()
    return commands


@pytest.mark.smoke
async def test_variables_in_route_and_language_out() -> None:
    server = await _server([Rule("vip", "01012345678"), Rule("language", "1001", "ko")])
    try:
        said = await _ask(server, HEADERS.format(caller="01012345678", exten="1001"))
        assert said == ['SET VARIABLE SMARTPBX_ROUTE "operators"',
                        'SET VARIABLE SMARTPBX_LANGUAGE "ko"']
        said = await _ask(server, HEADERS.format(caller="unknown", exten="1000"))
        assert said[0] == 'SET VARIABLE SMARTPBX_ROUTE "ai"'
    finally:
        await server.close()


async def test_rules_unavailable_give_the_ai_path() -> None:
    server = await _server(ConnectionError("database down"))
    try:
        said = await _ask(server, HEADERS.format(caller="1", exten="1000"))
        assert said[0] == 'SET VARIABLE SMARTPBX_ROUTE "ai"'
    finally:
        await server.close()


@pytest.mark.parametrize("sent", [b"", b"agi_network: yes\nagi_chan", b"\x00\xff garbage\n\n"])
async def test_early_disconnect_or_garbage_is_one_line_and_no_spin(
        sent: bytes, caplog: pytest.LogCaptureFixture) -> None:
    server = await _server([])
    try:
        cpu = time.process_time()
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        writer.write(sent)
        writer.write_eof()
        assert await asyncio.wait_for(reader.read(), 2) == b""  # closed, nothing set
        writer.close()
        await asyncio.sleep(0.05)
        assert server.handled == 1
        assert time.process_time() - cpu < 0.5  # panoramisk's own reader would spin here
        warnings = [r for r in caplog.records if r.name == "smartpbx_ari.telephony.agi"]
        assert len(warnings) == 1 and "keeps its default route" in warnings[0].message
    finally:
        await server.close()


CALLBACK = ("agi_network: yes\nagi_network_script: callback\n"
            "agi_request: agi://127.0.0.1/callback\nagi_channel: PJSIP/caller-00000002\n"
            "agi_uniqueid: 1764300000.42\nagi_callerid: caller\nagi_extension: 1\n"
            "agi_arg_1: {number}\n\n")


@pytest.mark.parametrize(("keyed", "number"), [
    ("01012345678", "01012345678"), (" 2001 ", "2001"), ("123", "123"), ("9" * 20, "9" * 20),
    ("", None), ("12", None), ("9" * 21, None), ("0101234*5678", None), ("+4930123", None),
    ("١٢٣٤", None),  # Arabic-Indic digits: str.isdigit() says yes, a phone does not
])
def test_callback_number_is_plain_digits_of_a_phone_number(keyed: str,
                                                           number: str | None) -> None:
    assert callback_number(keyed) == number


async def test_a_keyed_number_reaches_the_sink_and_the_dialplan_hears_ok() -> None:
    taken: list[CallbackRequest] = []
    server = await _server([])
    server.on_callback = taken.append
    try:
        said = await _ask(server, CALLBACK.format(number="5551234567"))
    finally:
        await server.close()
    assert said == ['SET VARIABLE SMARTPBX_CALLBACK "ok"']
    assert taken == [CallbackRequest("1764300000.42", "5551234567", "caller")]


async def test_a_bad_number_or_a_failing_sink_sends_the_caller_back_to_the_queue() -> None:
    def broken(request: CallbackRequest) -> None:
        raise RuntimeError("desk gone")

    server = await _server([])
    try:
        assert await _ask(server, CALLBACK.format(number="12*")) == [
            'SET VARIABLE SMARTPBX_CALLBACK "invalid"']
        assert await _ask(server, CALLBACK.format(number="5551234567")) == [
            'SET VARIABLE SMARTPBX_CALLBACK "failed"']  # nobody to tell
        server.on_callback = broken
        assert await _ask(server, CALLBACK.format(number="5551234567")) == [
            'SET VARIABLE SMARTPBX_CALLBACK "failed"']
    finally:
        await server.close()


@pytest.mark.parametrize(("sent", "why"), [
    (b"agi_callerid: " + b"9" * (agi.LINE_LIMIT + 10) + b"\n\n", "a line too long"),
    (b"agi_x: 1\n" * (agi.MAX_HEADERS + 1) + b"\n", "too many lines"),
    (b"agi_network: yes\r\nagi_chan", "EOF before the blank line"),
])
async def test_a_request_is_bounded(sent: bytes, why: str) -> None:
    reader = asyncio.StreamReader(limit=agi.LINE_LIMIT)
    reader.feed_data(sent)
    reader.feed_eof()
    with pytest.raises(ValueError):
        await agi.read_headers(reader)


async def test_crlf_lines_and_the_most_lines_allowed_are_read() -> None:
    reader = asyncio.StreamReader(limit=agi.LINE_LIMIT)
    reader.feed_data(b"agi_network_script: route\r\n" + b"agi_x: 1\n" * (agi.MAX_HEADERS - 1)
                     + b"\r\n")
    assert await agi.read_headers(reader) == {"agi_network_script": "route",
                                                     "agi_x": "1"}


async def test_a_silent_peer_is_cut_off_and_a_flood_beyond_the_limit_is_refused(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(agi, "READ_TIMEOUT_S", 0.3)
    monkeypatch.setattr(agi, "MAX_CONNECTIONS", 4)
    server = await _server([])
    try:
        silent = [await asyncio.open_connection("127.0.0.1", server.port) for _ in range(6)]
        await asyncio.sleep(0.1)
        assert (server.open, server.refused) == (4, 2)
        for reader, _ in silent:  # each is closed: two at once, four after READ_TIMEOUT_S
            assert await asyncio.wait_for(reader.read(), 2) == b""
        assert server.open == 0
        said = await _ask(server, HEADERS.format(caller="1", exten="1000"))
        assert said[0] == 'SET VARIABLE SMARTPBX_ROUTE "ai"'
        for _, writer in silent:
            writer.close()
    finally:
        await server.close()
