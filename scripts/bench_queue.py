#!/usr/bin/env python3
"""What callers waiting for an operator hear: the longest silence, through the real Asterisk.

Starts the local PBX (if needed) and places --callers calls at once to the operators'
queue (extension 0; no operator phone registered, so nobody answers), each staying
--seconds. Prints per caller the longest stretch with no audible frame (RMS under
media/audible.py's floor, about -50 dBFS; no RTP at all counts too) on its received,
decoded RTP, and where in the wait it began. Target: under 5 s for every caller.

    .venv/bin/python scripts/bench_queue.py [--callers 3] [--seconds 60] [--exten 0] [--json]
"""

from __future__ import annotations

import argparse
import asyncio
import json

from smartpbx_ari.config import load_settings
from smartpbx_ari.credentials import load_credentials
from smartpbx_ari.sipcaller.caller import Dial, SyntheticCaller
from smartpbx_ari.sipcaller.silence import longest_silence
from smartpbx_ari.telephony.pbx import LocalPbx

TARGET_S = 5.0
STAGGER_S = 1.0  # callers join one after another: positions 1, 2, 3, ...


async def wait_in_queue(caller: SyntheticCaller, dial: Dial, seconds: float,
                        delay: float) -> dict[str, float]:
    await asyncio.sleep(delay)
    async with caller.dial(dial) as line:
        await asyncio.sleep(seconds)
        start = line.answered_at
        silence = longest_silence(line.call.rtp.received, start, start + seconds)
        return {"longest_silence_s": round(silence.seconds, 2),
                "at_s": round(silence.start - start, 1),
                "frames": len(line.call.rtp.received)}


async def run(args: argparse.Namespace) -> list[dict[str, float]]:
    settings = load_settings()
    await asyncio.to_thread(LocalPbx(settings).up)
    creds = load_credentials(settings.data_dir)
    dial = Dial(args.exten, (settings.pbx.host, settings.pbx.sip_port), "caller",
                creds.caller_password)
    caller = SyntheticCaller(settings, transcribe=False)
    return list(await asyncio.gather(*(
        wait_in_queue(caller, dial, args.seconds, n * STAGGER_S) for n in range(args.callers))))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--callers", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--exten", default="0")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    results = asyncio.run(run(args))
    if args.json:
        print(json.dumps({"target_s": TARGET_S, "callers": results}))
        return
    for n, r in enumerate(results, 1):
        print(f"caller {n}: longest silence {r['longest_silence_s']:.2f} s "
              f"(from +{r['at_s']:.1f} s) in {args.seconds:.0f} s, {r['frames']} frames")
    worst = max(r["longest_silence_s"] for r in results)
    verdict = "ok" if worst < TARGET_S else "MISSED"
    print(f"worst {worst:.2f} s (target < {TARGET_S:.0f} s): {verdict}")


if __name__ == "__main__":
    main()
