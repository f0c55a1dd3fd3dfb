#!/usr/bin/env python3
"""Model faults through `smartpbx serve` and the real Asterisk, measured from the caller.

For each mode of --modes it starts `smartpbx serve` as its own process with the test-only
``SMARTPBX_FAULTS__<STAGE>`` set (every call of that stage fails: ``faults.times = 0``;
a hang holds its thread --hang-s), places --calls synthetic calls that each ask one
question, and prints per mode the time from the end of the caller's words to the first
audio it heard (p50 and range), what it heard, and the alerts the controller raised.
``none`` is the same calls without a fault (the answer's voice-to-voice latency);
``llm=hang`` turns on ``agent.llm_phrasing``. The PBX is started if needed and the demo
knowledge base imported when the knowledge base is empty.

    .venv/bin/python scripts/bench_faults.py [--modes none,stt=hang,search=raise,...]
        [--calls 3] [--hang-s 3] [--json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import signal
import statistics
import sys
from pathlib import Path

from bench_voice import start_controller

from smartpbx_ari.cli.kb import ensure_demo_knowledge
from smartpbx_ari.config import load_settings
from smartpbx_ari.credentials import load_credentials
from smartpbx_ari.sipcaller.caller import Dial, SyntheticCaller
from smartpbx_ari.telephony.pbx import LocalPbx

MODES = "none,stt=hang,stt=raise,search=hang,search=raise,llm=hang"
QUESTION = "How do I get a refund?"
ALERT = re.compile(rb"event=hitl_alert .*?reason='([a-z_]+)'")


def fault_env(mode: str, hang_s: float) -> dict[str, str]:
    if mode == "none":
        return {}
    stage, how = mode.split("=")
    env = {f"SMARTPBX_FAULTS__{stage.upper()}": how, "SMARTPBX_FAULTS__HANG_S": str(hang_s)}
    if stage == "llm":
        env["SMARTPBX_AGENT__LLM_PHRASING"] = "true"
    return env


async def calls(n: int) -> list[tuple[int | None, str]]:
    """(end of the question -> first audio in ms, what was heard) of ``n`` calls."""
    settings = load_settings()
    password = load_credentials(settings.data_dir).caller_password
    dial = Dial("1000", (settings.pbx.host, settings.pbx.sip_port), "caller", password)
    caller = SyntheticCaller(settings)
    out = []
    for _ in range(n):
        report = await caller.conversation(dial, [QUESTION])
        out.append((report.turns[0].latency_ms, report.turns[0].heard))
    return out


def measure(mode: str, n: int, hang_s: float, log: Path) -> dict[str, object]:
    controller = start_controller(log, fault_env(mode, hang_s), within_s=120)
    try:
        results = asyncio.run(calls(n))
    finally:
        controller.send_signal(signal.SIGTERM)
        controller.wait(30)
    latencies = sorted(ms for ms, _ in results if ms is not None)
    return {"mode": mode, "calls": n,
            "first_audio_ms_p50": statistics.median(latencies) if latencies else None,
            "first_audio_ms_range": [latencies[0], latencies[-1]] if latencies else None,
            "unanswered": sum(ms is None for ms, _ in results),
            "heard": sorted({text for _, text in results}),
            "alerts": [m.decode() for m in ALERT.findall(log.read_bytes())]}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--modes", default=MODES)
    parser.add_argument("--calls", type=int, default=3)
    parser.add_argument("--hang-s", type=float, default=3.0)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    settings = load_settings()
    print(ensure_demo_knowledge(settings), file=sys.stderr)
    LocalPbx(settings).up()
    results = []
    for mode in args.modes.split(","):
        log = settings.cache_dir / f"bench-faults-{mode.replace('=', '-')}.log"
        result = measure(mode, args.calls, args.hang_s, log)
        results.append(result)
        if not args.json:
            print(f"{mode:14} end of turn -> first audio p50 {result['first_audio_ms_p50']} ms"
                  f" range {result['first_audio_ms_range']}, unanswered "
                  f"{result['unanswered']}, alerts {result['alerts']}, heard {result['heard']}",
                  flush=True)
    if args.json:
        print(json.dumps(results, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
