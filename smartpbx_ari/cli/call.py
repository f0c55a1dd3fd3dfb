"""`smartpbx call`: argument parsing and output of the synthetic caller."""

from __future__ import annotations

import argparse
import asyncio
import json
from pathlib import Path

from smartpbx_ari.ai.voice import Voice, VoiceSpecError
from smartpbx_ari.config import Settings
from smartpbx_ari.credentials import load_credentials
from smartpbx_ari.sipcaller.caller import CallReport, Dial, SyntheticCaller


def add_call_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("exten", help="extension to dial, e.g. 1000")
    parser.add_argument("--say", action="append", default=[], metavar="TEXT",
                        help="a sentence to speak (repeat for several turns)")
    parser.add_argument("--play", type=str, help="a WAV file to play instead of --say")
    parser.add_argument("--record", type=str, help="write everything heard to this WAV")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--server", help="Asterisk host:port (default: the local PBX)")
    parser.add_argument("--user", default="caller", help="SIP user (default: caller)")
    parser.add_argument("--password", help="SIP password (default: the secrets file)")
    parser.add_argument("--pause", type=float, default=0.5,
                        help="seconds of silence after each answer before the next turn")
    parser.add_argument("--answer-timeout", type=float, default=15.0,
                        help="seconds to wait for an answer to start")
    parser.add_argument("--codec", choices=["g722", "ulaw", "alaw"], default="g722",
                        help="g722 = HD voice, 16 kHz (default); ulaw/alaw = narrowband")
    parser.add_argument("--voice", type=_voice, default=Voice("piper"),
                        metavar="SPEC", help="piper[:speed[:pitch]] (neural, the default) "
                        "or espeak:<voice>[:speed[:pitch]] (robotic), pitch in semitones")
    parser.add_argument("--no-transcribe", action="store_true",
                        help="measure only; do not transcribe what was heard")


def _voice(spec: str) -> Voice:
    try:
        return Voice.parse(spec)
    except VoiceSpecError as err:
        raise argparse.ArgumentTypeError(str(err)) from None


def dial_from_args(args: argparse.Namespace, settings: Settings) -> Dial:
    host, port = settings.pbx.host, settings.pbx.sip_port
    if args.server:
        host, _, port_text = args.server.partition(":")
        port = int(port_text or 5060)
    password = args.password or load_credentials(settings.data_dir).caller_password
    return Dial(args.exten, (host, port), args.user, password, args.codec)


def run_call(args: argparse.Namespace, settings: Settings) -> int:
    caller = SyntheticCaller(settings, transcribe=not args.no_transcribe, voice=args.voice)
    report = asyncio.run(caller.conversation(
        dial_from_args(args, settings), args.say, pause_s=args.pause,
        answer_timeout=args.answer_timeout, record=Path(args.record) if args.record else None,
        play=Path(args.play) if args.play else None))
    if args.json:
        print(json.dumps(report.as_json(), ensure_ascii=False))
    else:
        print_report(report)
    return 0 if all(t.latency_ms is not None for t in report.turns) else 1


def print_report(report: CallReport) -> None:
    print(f"greeting after {report.greeting_ms} ms: {report.greeting!r}")
    for n, turn in enumerate(report.turns, 1):
        latency = "no answer" if turn.latency_ms is None else f"{turn.latency_ms} ms"
        print(f"turn {n}: said {turn.said!r}")
        print(f"        heard {turn.heard!r} ({latency})")
    print(f"call lasted {report.call_ms} ms")
