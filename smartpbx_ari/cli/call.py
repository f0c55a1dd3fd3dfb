"""`smartpbx call`: the synthetic caller run, and its output (the arguments: cli/call_args.py)."""

from __future__ import annotations

import argparse
import asyncio
import json
from pathlib import Path

from smartpbx_ari.config import Settings
from smartpbx_ari.credentials import load_credentials
from smartpbx_ari.sipcaller.caller import CallReport, Dial, SyntheticCaller


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
