#!/usr/bin/env python3
"""A caller on hold with the AI, through the real Asterisk, measured from the caller's side.

Starts the local PBX (if needed) and `smartpbx serve` as its own process, then places
--calls calls one after another: each asks a question the knowledge base cannot answer
(the agent alerts the operators and puts the caller on hold), holds --hold-s, then says
"I want to talk to a person please." Prints per call and as p50/max:
- the longest silence the caller heard on hold (no audible frame: RMS under
  media/audible.py's floor, or no RTP at all), from the end of the question;
- how soon the request for a person was acted on: from the end of the caller's words to
  the controller's hand-off to the queue (its log's clock; same machine).
Targets: silence under 5 s; acted on within 1.5 s.

    .venv/bin/python scripts/bench_hold.py [--calls 5] [--hold-s 12] [--json]
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import json
import os
import re
import signal
import sys
import time
from pathlib import Path

from bench_voice import start_controller, summary

from smartpbx_ari.cli.kb import ensure_demo_knowledge
from smartpbx_ari.config import load_settings
from smartpbx_ari.credentials import load_credentials
from smartpbx_ari.sipcaller.caller import Dial, SyntheticCaller
from smartpbx_ari.sipcaller.silence import longest_silence
from smartpbx_ari.telephony.pbx import LocalPbx

UNSURE = ["What will the weather be like in Paris tomorrow?",
          "Can you recommend a good dentist near me?",
          "Who won the football match last night?"]
PERSON = "I want to talk to a person please."
HANDED_OFF = re.compile(rb"^(\S+ \S+) INFO \S+: call=\S+ event=handed_off", re.M)


async def hold_once(caller: SyntheticCaller, dial: Dial, question: str,
                    hold_s: float) -> dict[str, float]:
    async with caller.dial(dial) as line:
        await line.wait_quiet(await line.wait_voice(line.answered_at, 10) or 0)
        asked = await line.say(question)
        await asyncio.sleep(hold_s)
        silence = longest_silence(line.call.rtp.received, asked, asked + hold_s)
        said = await line.say(PERSON)
        said_wall = time.time() - (time.monotonic() - said)
        await asyncio.sleep(3)  # the hand-off, then a little of the queue
    return {"longest_silence_s": round(silence.seconds, 2), "said_at": said_wall}


def handed_off_times(log: Path) -> list[float]:
    return [datetime.datetime.strptime(m[1].decode(), "%Y-%m-%d %H:%M:%S,%f").timestamp()
            for m in HANDED_OFF.finditer(log.read_bytes())]


async def run_calls(calls: int, hold_s: float) -> list[dict[str, float]]:
    settings = load_settings()
    password = load_credentials(settings.data_dir).caller_password
    dial = Dial("1000", (settings.pbx.host, settings.pbx.sip_port), "caller", password)
    caller = SyntheticCaller(settings)
    return [await hold_once(caller, dial, UNSURE[i % len(UNSURE)], hold_s)
            for i in range(calls)]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=5)
    parser.add_argument("--hold-s", type=float, default=12.0)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    settings = load_settings()
    print(ensure_demo_knowledge(settings), file=sys.stderr)
    LocalPbx(settings).up()
    log = settings.cache_dir / "bench-hold-serve.log"
    controller = start_controller(log)
    try:
        held = asyncio.run(run_calls(args.calls, args.hold_s))
    finally:
        controller.send_signal(signal.SIGTERM)
        controller.wait(20)
    offs = handed_off_times(log)
    for call in held:  # the first hand-off after the words, if any
        after = [t for t in offs if t >= call["said_at"] - 0.5]
        call["acted_on_s"] = round(after[0] - call["said_at"], 2) if after else float("nan")
        del call["said_at"]
    acted = [c["acted_on_s"] for c in held if c["acted_on_s"] == c["acted_on_s"]]
    result = {"cores": os.cpu_count(), "load_average": os.getloadavg()[0],
              "longest_silence_s": summary([c["longest_silence_s"] * 1000 for c in held]),
              "acted_on_ms": summary([a * 1000 for a in acted]),
              "not_acted_on": len(held) - len(acted), "calls": held}
    if args.json:
        print(json.dumps(result))
    else:
        print(f"longest silence on hold (ms): {result['longest_silence_s']}")
        print(f"person asked for -> queue (ms): {result['acted_on_ms']}")
        print(f"not acted on: {result['not_acted_on']} of {len(held)}; "
              f"load average {result['load_average']:.1f}")
    return 0 if result["not_acted_on"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
