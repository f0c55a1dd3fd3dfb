#!/usr/bin/env python3
"""Fuzz every parser of untrusted input: only the documented errors may come out.

Parsers (``--parser``, default all, one after the other): rtp (media/rtp.py), sip
(sipcaller/sip.py: messages and the header helpers), sdp (sipcaller/sdp.py), agi
(telephony/agi.py: the request reader, then the routing answer), ari
(telephony/ari_events.py: a WebSocket frame to a typed event), ws (web/ws.py: an
operator's WebSocket message, as a viewer so no action runs).

Each input is random bytes or a valid sample mutated (bit flips, interesting bytes, the
parser's own tokens, cuts, splices, and for JSON a value swapped deep inside). An input
passes if it parses (and then meets the parser's invariant, e.g. RTP's round trip) or
raises one of the parser's documented errors. Anything else is a crash, grouped by type
and place, with the first input that caused it. Watchdogs: an input using more than
``--max-seconds`` of CPU (SIGPROF: a busy machine or ``nice`` does not trip it), or ten
times that of wall time (SIGALRM: blocked), is a hang; the process's address space is
capped at ``--max-memory-mb`` more than at start (a MemoryError is a crash), and its RSS
is printed.

    nice -n 19 .venv/bin/python scripts/fuzz_parsers.py --inputs 1000000 [--parser rtp]
    [--seed 1] [--json]

Exit status 1 if any parser crashed or hung.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import random
import resource
import signal
import sys
import time
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from types import FrameType
from typing import Any

from smartpbx_ari.media.rtp import RtpPacket
from smartpbx_ari.sipcaller import sdp, sip
from smartpbx_ari.telephony import agi
from smartpbx_ari.telephony.ari_events import AriEventError, parse_message
from smartpbx_ari.web import ws
from smartpbx_ari.web.auth import Claims


class Hang(Exception):
    """One input ran past the time watchdog."""


# ---- the parsers, their documented errors and invariants ----------------------------------
def check_rtp(data: bytes) -> None:
    packet = RtpPacket.parse(data)
    again = RtpPacket.parse(packet.serialize())
    if again != packet:
        raise AssertionError("RTP: parse(serialize(p)) != p")
    if packet.padding_size == 0 and packet.serialize() != data:
        raise AssertionError("RTP: serialize(parse(d)) != d")


def check_sip(data: bytes) -> None:
    try:
        msg = sip.SIPMessage.parse(data)
    finally:
        _sip_helpers(data.decode("utf-8", "replace"))
    for _, value in msg.headers.pairs():
        _sip_helpers(value)
    if msg.is_valid():
        first = msg.serialize()
        if sip.SIPMessage.parse(first).serialize() != first:
            raise AssertionError("SIP: serialize(parse(serialize(m))) != serialize(m)")
    _documented(lambda: msg.cseq)
    _documented(lambda: sip.uri_host_port(msg.uri))
    _documented(lambda: sip.response_status(msg))


def _sip_helpers(text: str) -> None:
    """The header helpers take any header value: results, or ValueError where documented."""
    sip.header_params(text)
    sip.name_addr_uri(text)
    sip.split_header_list(text)
    _documented(lambda: sip.uri_host_port(text))
    _documented(lambda: sip.choose_challenge([text]))


def _documented(call: Callable[[], object]) -> None:
    with contextlib.suppress(ValueError):
        call()


def check_sdp(data: bytes) -> None:
    sdp.parse_answer(data.decode("utf-8", "replace"))


class AgiCheck:
    """The FastAGI request reader on a stream fed with the input, then the answer."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.server = agi.AgiServer(self._rules, clock=lambda: datetime(2026, 11, 28, 12, 0),
                                    on_callback=lambda request: None)

    @staticmethod
    async def _rules() -> list[Any]:
        return []

    def __call__(self, data: bytes) -> None:
        self.loop.run_until_complete(self._one(data))

    async def _one(self, data: bytes) -> None:
        reader = asyncio.StreamReader(limit=agi.LINE_LIMIT)
        reader.feed_data(data)
        reader.feed_eof()
        headers = await agi.read_headers(reader)
        answers = await self.server._answer(headers)
        if not answers or any(not isinstance(v, str) or '"' in v for _, v in answers):
            raise AssertionError(f"AGI: bad answer {answers!r}")


def check_ari(data: bytes) -> None:
    parse_message(data)


class WsCheck:
    """An operator's WebSocket message, from a viewer (no action runs): always a reply."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.claims = Claims("fuzz", "viewer")
        self.context: Any = None  # never reached: viewers act on nothing

    def __call__(self, data: bytes) -> None:
        reply = self.loop.run_until_complete(
            ws._handle(self.context, self.claims, data.decode("utf-8", "replace")))
        if not isinstance(reply, dict) or reply.get("type") not in ("pong", "error"):
            raise AssertionError(f"WS: unexpected reply {reply!r}")


# ---- valid samples and each parser's tokens ---------------------------------------------
INVITE = (b"INVITE sip:1000@127.0.0.1:5060 SIP/2.0\r\n"
          b"Via: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK-abc123;rport\r\n"
          b"Max-Forwards: 70\r\n"
          b'From: "Caller" <sip:caller@127.0.0.1>;tag=abc123\r\n'
          b"To: <sip:1000@127.0.0.1>\r\n"
          b"Call-ID: xyz789@127.0.0.1\r\n"
          b"CSeq: 1 INVITE\r\n"
          b"Contact: <sip:caller@127.0.0.1:5070>\r\n"
          b"Content-Type: application/sdp\r\n"
          b"Content-Length: 135\r\n\r\n"
          b"v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
          b"m=audio 10000 RTP/AVP 0 101\r\na=rtpmap:0 PCMU/8000\r\na=sendrecv\r\n")
UNAUTHORIZED = (b"SIP/2.0 401 Unauthorized\r\n"
                b"Via: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK-1;received=127.0.0.1\r\n"
                b"From: <sip:caller@127.0.0.1>;tag=1\r\nTo: <sip:1000@127.0.0.1>;tag=as2\r\n"
                b"Call-ID: a@b\r\nCSeq: 1 INVITE\r\n"
                b'WWW-Authenticate: Digest realm="asterisk",nonce="1/2",opaque="x",'
                b'algorithm=MD5,qop="auth"\r\nv: SIP/2.0/UDP 10.0.0.1\r\n l: 0\r\n\r\n')
SDP_ANSWER = (b"v=0\r\no=- 1 2 IN IP4 10.0.0.2\r\ns=Asterisk\r\nc=IN IP4 10.0.0.2\r\n"
              b"t=0 0\r\nm=video 0 RTP/AVP 96\r\nm=audio 12000/2 RTP/AVP 9 0 101\r\n"
              b"c=IN IP6 ::1\r\na=rtpmap:9 G722/8000\r\na=rtpmap:101 telephone-event/8000\r\n"
              b"a=fmtp:101 0-16\r\na=ptime:20\r\na=recvonly\r\n")
AGI_ROUTE = (b"agi_network: yes\nagi_network_script: route\nagi_request: agi://127.0.0.1/route\n"
             b"agi_channel: PJSIP/caller-00000001\nagi_language: en\nagi_uniqueid: 1700.1\n"
             b"agi_callerid: 2001\nagi_calleridname: Ada\nagi_extension: 1000\n"
             b"agi_context: from-caller\n\n")
AGI_CALLBACK = (b"agi_network_script: callback?x=1\nagi_uniqueid: 1700.2\n"
                b"agi_callerid: +82 10 1234\nagi_arg_1: 01012345678\n\n")


def _ari(event: dict[str, Any]) -> bytes:
    return json.dumps(event).encode()


CHANNEL = {"id": "1700.1", "name": "PJSIP/caller-00000001", "state": "Up",
           "caller": {"name": "Ada", "number": "2001"},
           "dialplan": {"context": "from-caller", "exten": "1000", "priority": 3,
                        "app_name": "Stasis", "app_data": "smartpbx"},
           "channelvars": {"SMARTPBX_LANGUAGE": "ko"}, "language": "en"}
ARI_EVENTS = [
    _ari({"type": "StasisStart", "application": "smartpbx", "args": ["ai", "ko"],
          "channel": CHANNEL, "timestamp": "2026-11-28T12:00:00.000+0000"}),
    _ari({"type": "ChannelDtmfReceived", "application": "smartpbx", "digit": "0",
          "duration_ms": 120, "channel": CHANNEL}),
    _ari({"type": "ChannelDestroyed", "application": "smartpbx", "cause": 16,
          "cause_txt": "Normal Clearing", "channel": CHANNEL}),
    _ari({"type": "ChannelHangupRequest", "cause": "16", "channel": CHANNEL}),
    _ari({"type": "StasisEnd", "application": "smartpbx", "channel": CHANNEL}),
    _ari({"type": "BridgeCreated", "bridge": {"id": "b1", "channels": ["1700.1"]}}),
]
WS_MESSAGES = [b'{"type": "ping"}', b'{"type": "accept", "alert_id": "a1"}',
               b'{"type": "answer", "alert_id": "a1", "text": "It ships <b>today</b>."}']


def _rtp_samples() -> list[bytes]:
    base = RtpPacket(payload_type=0, sequence_number=0x1234, timestamp=160, ssrc=0xAABBCCDD,
                     payload=b"\xff" * 160)
    full = RtpPacket(payload_type=101, marker=True, csrc=[1, 2, 3], extension_profile=0xBEDE,
                     extension=b"\x10\xaa\x00\x00", payload=b"\x05\x0a\x00\xa0",
                     padding_size=4)
    return [base.serialize(), full.serialize(), base.serialize()[:12]]


@dataclass
class Target:
    name: str
    check: Callable[[bytes], None]
    errors: tuple[type[BaseException], ...]  # the documented ones
    samples: list[bytes]
    tokens: list[bytes]
    json: bool = False


def targets() -> dict[str, Target]:
    agi_errors = (ValueError, asyncio.IncompleteReadError, asyncio.LimitOverrunError)
    return {t.name: t for t in [
        Target("rtp", check_rtp, (ValueError,), _rtp_samples(),
               [b"\x80", b"\x90", b"\xa0", b"\xbf", b"\xbe\xde", b"\x00\x01"]),
        Target("sip", check_sip, (ValueError,), [INVITE, UNAUTHORIZED],
               [b"\r\n", b"\n", b"\r\n\r\n", b": ", b";", b"<", b">", b",", b'"', b" ",
                b"\t", b"SIP/2.0", b"Content-Length: ", b"l: 99999999", b"Via: ", b"v: ",
                b"CSeq: ", b"sip:", b"@", b";tag=", b";branch=", b"Digest ", b"realm=",
                b"\\", b"\xc3", b"\xff", b"\x00", "²".encode()]),
        Target("sdp", check_sdp, (ValueError,), [SDP_ANSWER, INVITE.split(b"\r\n\r\n")[1]],
               [b"\r\n", b"m=audio ", b"m=video ", b"c=IN IP4 ", b"c=IN IP6 ", b"a=rtpmap:",
                b"telephone-event/8000", b"/", b" ", b"=", b"0", b"65536", b"999",
                "٣".encode(), "²".encode(), b"a=inactive"]),
        Target("agi", AgiCheck(), agi_errors, [AGI_ROUTE, AGI_CALLBACK],
               [b"\n", b"\n\n", b"\r\n", b": ", b"agi_", b"agi_network_script: ",
                b"callback", b"route", b"agi_arg_1: ", b"agi_callerid: ", b"unknown", b'"',
                b"?", b"/", b"\x00", b"\xff"]),
        Target("ari", check_ari, (AriEventError,), ARI_EVENTS,
               [b"{", b"}", b"[", b"]", b'"', b":", b",", b"null", b"true", b"1e999",
                b'"channel"', b'"id"', b'"type"', b'"StasisStart"', b"\\ud800"], json=True),
        Target("ws", WsCheck(), (), WS_MESSAGES,
               [b"{", b"}", b"[", b"]", b'"', b":", b",", b"null", b'"type"', b'"ping"',
                b'"accept"', b"\\u0000", b"\\ud800"], json=True),
    ]}


# ---- inputs ---------------------------------------------------------------------------------
INTERESTING = [0x00, 0x01, 0x7F, 0x80, 0xFF, 0x0A, 0x0D, 0x20, 0x3A, 0x3B, 0x3C, 0x3E, 0x22]
MAX_LEN = 4096


class Inputs:
    """Random bytes and mutated samples, reproducible from the seed."""

    def __init__(self, target: Target, seed: int) -> None:
        self.target, self.rng = target, random.Random(seed)

    def __iter__(self) -> Iterator[bytes]:
        while True:
            yield self.next()

    def next(self) -> bytes:
        rng = self.rng
        roll = rng.random()
        if roll < 0.15:
            return rng.randbytes(int(rng.expovariate(1 / 64)) % MAX_LEN)
        if self.target.json and roll < 0.45:
            return self._json_mutation()
        data = bytearray(rng.choice(self.target.samples))
        for _ in range(1 + int(rng.expovariate(1 / 2))):
            self._mutate(data)
        return bytes(data[:MAX_LEN * 4])

    def _mutate(self, data: bytearray) -> None:
        rng = self.rng
        n = len(data)
        op = rng.randrange(8)
        at = rng.randrange(n + 1)
        if op == 0 and n:
            data[at % n] ^= 1 << rng.randrange(8)
        elif op == 1 and n:
            data[at % n] = rng.choice(INTERESTING)
        elif op == 2:
            data[at:at] = rng.choice(self.target.tokens)
        elif op == 3:
            del data[at:at + 1 + int(rng.expovariate(1 / 8))]
        elif op == 4 and n:
            start = rng.randrange(n)
            chunk = data[start:start + 1 + int(rng.expovariate(1 / 16))]
            data[at:at] = chunk * (1 + int(rng.expovariate(1 / 2)) % 64)
        elif op == 5:
            del data[at:]
        elif op == 6:
            other = rng.choice(self.target.samples)
            cut = rng.randrange(len(other) + 1)
            data[at:] = other[cut:]
        else:
            data[at:at] = rng.randbytes(1 + int(rng.expovariate(1 / 4)))

    def _json_mutation(self) -> bytes:
        rng = self.rng
        doc = json.loads(rng.choice(self.target.samples))
        for _ in range(1 + int(rng.expovariate(1))):
            doc = self._swap(doc, depth=0)
        if rng.random() < 0.05:  # nesting, deep or very deep
            depth = rng.choice([10, 100, 1000, 5000, 100_000])
            return ("[" * depth + "]" * depth).encode() if rng.random() < 0.5 else (
                '{"type":' * depth + '"ping"' + "}" * depth).encode()
        return json.dumps(doc, ensure_ascii=rng.random() < 0.5).encode("utf-8", "surrogatepass")

    def _swap(self, node: Any, depth: int) -> Any:
        rng = self.rng
        if isinstance(node, dict) and node and rng.random() < 0.8:
            key = rng.choice(list(node))
            node[key] = self._swap(node[key], depth + 1)
            return node
        if isinstance(node, list) and node and rng.random() < 0.8:
            i = rng.randrange(len(node))
            node[i] = self._swap(node[i], depth + 1)
            return node
        return self._value(depth)

    def _value(self, depth: int) -> Any:
        rng = self.rng
        kind = rng.randrange(9 if depth < 4 else 7)
        if kind == 7:
            return [self._value(depth + 1) for _ in range(rng.randrange(4))]
        if kind == 8:
            keys = ["id", "type", "channel", "caller", "args", "cause", "text"]
            return {rng.choice(keys): self._value(depth + 1) for _ in range(rng.randrange(4))}
        scalars: list[Callable[[], Any]] = [
            lambda: None, lambda: True, lambda: rng.randint(-2**70, 2**70),
            lambda: rng.choice([0.5, 1e308, -0.0]), lambda: "",
            lambda: "".join(chr(rng.randrange(0x11000)) for _ in range(rng.randrange(8))),
            lambda: rng.choice(["16", "x", "\ud800", "0" * 5000, "StasisStart", "ping"])]
        return scalars[kind]()


# ---- the run --------------------------------------------------------------------------------
@dataclass
class Crash:
    kind: str
    where: str
    count: int = 0
    example: bytes = b""
    trace: str = ""


@dataclass
class Result:
    parser: str
    inputs: int = 0
    parsed: int = 0
    rejected: int = 0  # a documented error
    crashes: dict[str, Crash] = field(default_factory=dict)
    seconds: float = 0.0
    max_input_s: float = 0.0
    rss_mb: float = 0.0

    @property
    def crashed(self) -> int:
        return sum(c.count for c in self.crashes.values())

    def as_dict(self) -> dict[str, Any]:
        return {"parser": self.parser, "inputs": self.inputs, "parsed": self.parsed,
                "rejected": self.rejected, "crashed": self.crashed,
                "seconds": round(self.seconds, 1),
                "rate_per_s": round(self.inputs / self.seconds) if self.seconds else 0,
                "slowest_input_ms": round(self.max_input_s * 1000, 1),
                "rss_mb": round(self.rss_mb, 1),
                "crashes": [{"kind": c.kind, "where": c.where, "count": c.count,
                             "example": c.example[:300].hex()}
                            for c in self.crashes.values()]}


def _where(err: BaseException) -> str:
    frames = [f for f in traceback.extract_tb(err.__traceback__) if f.name != "_alarm"]
    ours = [f for f in frames if "smartpbx_ari" in f.filename] or frames
    last = ours[-1] if ours else None
    return f"{Path(last.filename).name}:{last.lineno}" if last else "?"


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _alarm(signum: int, frame: FrameType | None) -> None:
    raise Hang


def fuzz(target: Target, inputs: int, seed: int, max_seconds: float = 2.0,
         progress: Callable[[Result], None] | None = None) -> Result:
    """Run ``inputs`` inputs through ``target``; crashes are collected, never raised."""
    result = Result(target.name)
    source = Inputs(target, seed)
    previous = {sig: signal.signal(sig, _alarm) for sig in (signal.SIGALRM, signal.SIGPROF)}
    started = time.perf_counter()
    try:
        for n in range(inputs):
            data = source.next()
            t0 = time.perf_counter()
            signal.setitimer(signal.ITIMER_PROF, max_seconds)
            signal.setitimer(signal.ITIMER_REAL, 10 * max_seconds)
            try:
                target.check(data)
                result.parsed += 1
            except target.errors:
                result.rejected += 1
            except Hang as err:
                _record(result, err, data, "Hang")
            except Exception as err:  # every other exception is a finding
                _record(result, err, data, type(err).__name__)
            finally:
                signal.setitimer(signal.ITIMER_PROF, 0)
                signal.setitimer(signal.ITIMER_REAL, 0)
            result.max_input_s = max(result.max_input_s, time.perf_counter() - t0)
            result.inputs = n + 1
            if progress is not None and (n + 1) % 100_000 == 0:
                result.seconds, result.rss_mb = time.perf_counter() - started, _rss_mb()
                progress(result)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    result.seconds, result.rss_mb = time.perf_counter() - started, _rss_mb()
    return result


def _record(result: Result, err: BaseException, data: bytes, kind: str) -> None:
    where = _where(err)
    key = f"{kind} at {where}"
    crash = result.crashes.get(key)
    if crash is None:
        crash = result.crashes[key] = Crash(kind, where, 0, data,
                                            "".join(traceback.format_exception(err))[-2000:])
    crash.count += 1


def _cap_memory(extra_mb: int) -> None:
    _, hard = resource.getrlimit(resource.RLIMIT_AS)
    with open("/proc/self/statm") as statm:
        vm_bytes = int(statm.read().split()[0]) * resource.getpagesize()
    cap = vm_bytes + extra_mb * 1024 * 1024
    if hard != resource.RLIM_INFINITY:
        cap = min(cap, hard)
    resource.setrlimit(resource.RLIMIT_AS, (cap, hard))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    all_targets = targets()
    parser.add_argument("--parser", action="append", choices=sorted(all_targets),
                        help="one parser (repeatable); default: all, in turn")
    parser.add_argument("--inputs", type=int, default=1_000_000, help="per parser")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--max-seconds", type=float, default=2.0,
                        help="CPU-time watchdog per input (wall time: ten times it)")
    parser.add_argument("--max-memory-mb", type=int, default=1024,
                        help="address space allowed above the start")
    parser.add_argument("--json", action="store_true", help="one JSON line per parser")
    args = parser.parse_args(argv)
    if args.inputs < 1:
        parser.error("--inputs: at least 1")
    _cap_memory(args.max_memory_mb)
    logging.disable(logging.WARNING)  # the AGI server logs each refused request
    failed = False
    for name in args.parser or list(all_targets):

        def progress(r: Result) -> None:
            print(f"  {r.parser}: {r.inputs:,} inputs, {r.crashed} crashes, "
                  f"{r.inputs / r.seconds:,.0f}/s, RSS {r.rss_mb:.0f} MB", file=sys.stderr)

        result = fuzz(all_targets[name], args.inputs, args.seed, args.max_seconds,
                      None if args.json else progress)
        failed = failed or bool(result.crashes)
        if args.json:
            print(json.dumps(result.as_dict()))
            continue
        summary = result.as_dict()
        print(f"{name}: {result.inputs:,} inputs in {result.seconds:.0f} s "
              f"({summary['rate_per_s']:,}/s): {result.parsed:,} parsed, "
              f"{result.rejected:,} rejected (documented), {result.crashed:,} crashed; "
              f"slowest input {summary['slowest_input_ms']} ms; max RSS {result.rss_mb:.0f} MB")
        for crash in result.crashes.values():
            print(f"  CRASH {crash.kind} at {crash.where} x{crash.count}; first input "
                  f"{crash.example[:120]!r}\n{crash.trace}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
