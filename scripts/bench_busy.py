#!/usr/bin/env python3
"""Callers beyond the controller's capacity: how soon each hears "all our lines are busy".

Starts the local PBX (if needed) and `smartpbx serve` with ``media.max_calls`` =
--capacity, keeps that many calls up (greeted, then silent), and places --calls more at
once. Per call beyond the capacity it prints the time from the answer to the first audio
heard (the busy phrase; target: within 1 s) and whether that audio says "busy"
(transcribed at the caller, over the first seconds: the queue's music follows). Then each
call in progress asks a question: they must still be answered.

    .venv/bin/python scripts/bench_busy.py --capacity 5 --calls 10 [--json]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import signal
import sys

from bench_voice import start_controller, summary

from smartpbx_ari.cli.kb import ensure_demo_knowledge
from smartpbx_ari.config import load_settings
from smartpbx_ari.credentials import load_credentials
from smartpbx_ari.sipcaller.caller import Dial, Line, SyntheticCaller
from smartpbx_ari.telephony.pbx import LocalPbx

HEARD_S = 4.0  # of the busy caller's audio transcribed: the phrase, not the music after


async def busy_caller(caller: SyntheticCaller, dial: Dial) -> tuple[float | None, bool]:
    """(answer -> first audio, in ms, or None: nothing heard; whether it said "busy")."""
    async with caller.dial(dial) as line:
        heard = await line.wait_voice(line.answered_at, 10)
        if heard is None:
            return None, False
        await asyncio.sleep(HEARD_S)
        told = await line.transcribe(heard, heard + HEARD_S)
        return (heard - line.answered_at) * 1000, "busy" in told.lower()


async def answered_ms(line: Line, question: str) -> float | None:
    said = await line.say(question)
    heard = await line.wait_voice(said, 20)
    return None if heard is None else (heard - said) * 1000


async def run(capacity: int, calls: int) -> dict[str, object]:
    settings = load_settings()
    password = load_credentials(settings.data_dir).caller_password
    dial = Dial("1000", (settings.pbx.host, settings.pbx.sip_port), "caller", password)
    caller = SyntheticCaller(settings)
    async with contextlib.AsyncExitStack() as stack:
        up = []
        for _ in range(capacity):  # one at a time: each greeted, then silent
            line = await stack.enter_async_context(caller.dial(dial))
            greeting = await line.wait_voice(line.answered_at, 15)
            await line.wait_quiet(greeting or line.answered_at)
            up.append(line)
        beyond = await asyncio.gather(*(busy_caller(caller, dial) for _ in range(calls)))
        going_on = await asyncio.gather(*(answered_ms(line, "How do I get a refund?")
                                          for line in up))
    busy = [ms for ms, _ in beyond if ms is not None]
    return {"capacity": capacity, "beyond": calls,
            "busy_phrase_ms": summary(busy),
            "heard_nothing": sum(ms is None for ms, _ in beyond),
            "said_busy": sum(said for _, said in beyond),
            "in_progress_answer_ms": summary([ms for ms in going_on if ms is not None]),
            "in_progress_unanswered": sum(ms is None for ms in going_on)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--capacity", type=int, default=5)
    parser.add_argument("--calls", type=int, default=10, help="placed beyond the capacity")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    if args.capacity < 1 or args.calls < 1:
        parser.error("--capacity and --calls: at least 1")
    settings = load_settings()
    print(ensure_demo_knowledge(settings), file=sys.stderr)
    LocalPbx(settings).up()
    controller = start_controller(settings.cache_dir / "bench-busy-serve.log",
                                  {"SMARTPBX_MEDIA__MAX_CALLS": str(args.capacity)})
    try:
        result = asyncio.run(run(args.capacity, args.calls))
    finally:
        controller.send_signal(signal.SIGTERM)
        controller.wait(20)
    if args.json:
        print(json.dumps(result))
    else:
        for key, value in result.items():
            print(f"{key + ':':<24} {value}")
    return 0 if result["heard_nothing"] == 0 and result["in_progress_unanswered"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
