"""`smartpbx call`: argument parsing and output of the synthetic caller."""

from __future__ import annotations

import argparse

from smartpbx_ari.config import Settings


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


def run_call(args: argparse.Namespace, settings: Settings) -> int:
    raise NotImplementedError
