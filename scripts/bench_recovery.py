#!/usr/bin/env python3
"""Crash recovery: how long a caller waits after the controller dies in the middle of a call.

Starts the local PBX (if needed) and `smartpbx serve` as its own process; per run: dials
the AI, waits for the greeting, kills the controller with SIGKILL, starts a successor
--restart-after seconds later (a supervisor's RestartSec), and times from the kill until
the caller's channel leaves Stasis (polled over ARI's REST; the operators' queue from
there), and until the successor is ready for calls (its models loaded). The successor
is the next run's controller. Prints each run, then median and range. Target: the caller
out of Stasis <= 5 s after the kill.

    .venv/bin/python scripts/bench_recovery.py --runs 5 [--json]
    # the same measure of another checkout's controller (e.g. before a change):
    .venv/bin/python scripts/bench_recovery.py --code ../main --ready-line "ARI WebSocket connected"
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from smartpbx_ari.config import Settings, load_settings
from smartpbx_ari.credentials import load_credentials
from smartpbx_ari.sipcaller.caller import Dial, SyntheticCaller
from smartpbx_ari.telephony.ari import AriClient
from smartpbx_ari.telephony.pbx import LocalPbx
from smartpbx_ari.telephony.stasis import READY_LOG

READY_TIMEOUT_S = 180.0
RESCUE_TIMEOUT_S = 120.0


@dataclass
class Run:
    out_of_stasis_s: float  # kill -> the caller's channel no longer in Stasis
    ready_s: float  # kill -> the successor ready for calls (its models loaded)
    load_s: float  # the successor's start -> ready


class Controller:
    """`smartpbx serve` in its own process, logging to ``log``."""

    def __init__(self, log: Path, code: Path | None, ready_line: str) -> None:
        self.log, self.ready_line = log, ready_line
        env = dict(os.environ)
        if code is not None:
            env["PYTHONPATH"] = str(code)
        exe = Path(sys.executable).with_name("smartpbx")
        with log.open("wb") as out:
            self.proc = subprocess.Popen([str(exe), "serve"], stdout=out,
                                         stderr=subprocess.STDOUT, env=env)
        self.started = time.monotonic()

    def wait_ready(self) -> float:
        deadline = self.started + READY_TIMEOUT_S
        while self.ready_line.encode() not in self.log.read_bytes():
            if self.proc.poll() is not None:
                raise SystemExit(f"smartpbx serve exited: {self.log.read_text()[-800:]}")
            if time.monotonic() > deadline:
                raise SystemExit(f"smartpbx serve not ready within {READY_TIMEOUT_S:.0f} s")
            time.sleep(0.05)
        return time.monotonic()

    def kill(self) -> float:
        self.proc.kill()
        killed = time.monotonic()
        self.proc.wait(10)
        return killed


async def one_run(settings: Settings, dial: Dial, ari: AriClient, controller: Controller,
                  args: argparse.Namespace, n: int) -> tuple[Run, Controller]:
    caller = SyntheticCaller(settings, transcribe=False)
    async with caller.dial(dial) as line:
        if await line.wait_voice(line.answered_at, 15) is None:
            raise SystemExit("no greeting: the controller does not answer")
        [caller_id] = [c.id for c in await ari.channels() if c.name.startswith("PJSIP/caller")]
        killed = controller.kill()
        await asyncio.sleep(max(0.0, killed + args.restart_after - time.monotonic()))
        successor = Controller(args.logs / f"serve-{n}.log", args.code, args.ready_line)
        async with asyncio.timeout(RESCUE_TIMEOUT_S):
            while (await ari.channel(caller_id)).app_name == "Stasis":  # noqa: ASYNC110 (polls Asterisk)
                await asyncio.sleep(0.02)
        rescued = time.monotonic()
        ready = await asyncio.to_thread(successor.wait_ready)
    return Run(round(rescued - killed, 2), round(ready - killed, 2),
               round(ready - successor.started, 2)), successor


async def bench(args: argparse.Namespace) -> list[Run]:
    settings = load_settings()
    LocalPbx(settings).up()
    creds = load_credentials(settings.data_dir)
    dial = Dial("1000", (settings.pbx.host, settings.pbx.sip_port), "caller",
                creds.caller_password)
    args.logs.mkdir(parents=True, exist_ok=True)
    controller = Controller(args.logs / "serve-0.log", args.code, args.ready_line)
    await asyncio.to_thread(controller.wait_ready)
    runs: list[Run] = []
    try:
        async with AriClient(settings.ari_url, settings.ari.user, creds.ari_password,
                             settings.ari.app) as ari:
            for n in range(1, args.runs + 1):
                run, controller = await one_run(settings, dial, ari, controller, args, n)
                runs.append(run)
                if not args.json:
                    print(f"run {n}: caller out of Stasis {run.out_of_stasis_s:.2f} s after "
                          f"the kill; successor ready after {run.ready_s:.1f} s "
                          f"(its start-up {run.load_s:.1f} s)", flush=True)
    finally:
        controller.kill()
    return runs


def summary(values: list[float]) -> dict[str, float]:
    return {"median": round(statistics.median(values), 2), "min": min(values),
            "max": max(values)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--restart-after", type=float, default=1.0,
                        help="seconds between the kill and the successor's start")
    parser.add_argument("--code", type=Path,
                        help="run the controller from this checkout (PYTHONPATH)")
    parser.add_argument("--ready-line", default=READY_LOG,
                        help="the controller's log line that says it takes calls")
    parser.add_argument("--logs", type=Path, default=Path("/tmp/bench_recovery"))
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    if args.runs < 1:
        parser.error("--runs: at least 1")
    runs = asyncio.run(bench(args))
    figures = {key: summary([getattr(r, key) for r in runs])
               for key in ("out_of_stasis_s", "ready_s", "load_s")}
    if args.json:
        print(json.dumps({"runs": [asdict(r) for r in runs], **figures}))
        return 0
    for key, label in (("out_of_stasis_s", "kill -> caller out of Stasis (target <= 5 s)"),
                       ("ready_s", "kill -> successor ready for calls"),
                       ("load_s", "successor start -> ready (models loaded)")):
        s = figures[key]
        print(f"{label}: median {s['median']:.2f} s, range {s['min']:.2f}-{s['max']:.2f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
