"""`smartpbx call`'s arguments: light, so building the parser imports no caller or model."""

from __future__ import annotations

import argparse

from smartpbx_ari.ai.voice import Voice, VoiceSpecError


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
