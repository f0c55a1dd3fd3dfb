#!/usr/bin/env python3
"""A soak: synthetic calls without pause for --minutes, a few at a time, through the real
Asterisk, while the controller's and Asterisk's resources are sampled.

Starts the local PBX (if needed) and `smartpbx serve` as its own process. --concurrency
callers each place call after call, in turn of three kinds:
- answered: two questions of the demo knowledge base, each must be answered;
- barge-in: a question, then, a second into its answer, the next question over it: the
  agent must stop talking and answer the second;
- hand-over: the caller asks for a person; the agent must say something, then the call
  goes to the operators' queue (nobody answers there: the caller hangs up after a while).
Every --sample-s it samples the controller's RSS, open fds and threads (/proc), its asyncio
tasks (``smartpbx_asyncio_tasks`` on /metrics), and Asterisk's channels and bridges (ARI).
After the calls, it waits for Asterisk to be empty and samples once more ("after").

Each curve must be flat after --warmup-min: its least-squares trend over the rest of the
run moves less than 10 % of its mean (or than a small absolute floor: 20 MB, 5 fds, 3
threads, 5 tasks, 2 channels, 1 bridge). Prints the figures (--json: as JSON), draws them
(--plot PNG), and exits 1 if a curve is not flat, a turn went unanswered, or something was
left in Asterisk.

    .venv/bin/python scripts/soak.py --minutes 30 [--concurrency 3] [--plot soak.png]
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import re
import signal
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import matplotlib.pyplot as plt  # headless: the Agg backend, files only
import numpy as np
from bench_voice import QUESTIONS, start_controller

from smartpbx_ari.cli.kb import ensure_demo_knowledge
from smartpbx_ari.config import Settings, load_settings
from smartpbx_ari.credentials import load_credentials
from smartpbx_ari.media.turn import rms
from smartpbx_ari.sipcaller.caller import VOICE_RMS, Dial, Line, SyntheticCaller
from smartpbx_ari.telephony.ari import AriClient
from smartpbx_ari.telephony.pbx import LocalPbx

ANSWER_TIMEOUT_S = 20.0
QUEUE_STAY_S = 4.0  # how long a handed-over caller stays in the queue before hanging up
ASK_A_PERSON = "I would like to talk to a person, please."
KINDS = ("answered", "barge-in", "hand-over")
# series -> (unit, the absolute trend under which it counts as flat whatever its mean)
SERIES = {"rss_mb": ("MB", 20.0), "fds": ("", 5.0), "threads": ("", 3.0),
          "tasks": ("", 5.0), "channels": ("", 2.0), "bridges": ("", 1.0)}
TASKS = re.compile(rb"^smartpbx_asyncio_tasks ([0-9.e+]+)$", re.M)


@dataclass
class Tally:
    calls: dict[str, int] = field(default_factory=lambda: dict.fromkeys(KINDS, 0))
    turns: int = 0
    unanswered: int = 0
    barge_ins_ignored: int = 0  # the agent talked on over the caller
    failed: list[str] = field(default_factory=list)


@dataclass
class Sample:
    t_s: float
    values: dict[str, float]


async def answered(line: Line, tally: Tally, questions: list[str]) -> None:
    for text in questions:
        said = await line.say(text)
        tally.turns += 1
        heard = await line.wait_voice(said, ANSWER_TIMEOUT_S)
        if heard is None:
            tally.unanswered += 1
            return
        await line.wait_quiet(heard)
        await asyncio.sleep(0.3)


async def barge_in(line: Line, tally: Tally, questions: list[str]) -> None:
    first, second = questions
    said = await line.say(first)
    tally.turns += 1
    heard = await line.wait_voice(said, ANSWER_TIMEOUT_S)
    if heard is None:
        tally.unanswered += 1
        return
    await asyncio.sleep(max(0.0, heard + 1.0 - time.monotonic()))
    began = time.monotonic()
    said = await line.say(second)  # over the answer
    tally.turns += 1
    # the agent stops within about half a second of the caller's voice
    talked_over = voiced(line, began + 0.6, said)
    if talked_over and np.mean(talked_over) > 0.5:
        tally.barge_ins_ignored += 1
    if await line.wait_voice(said, ANSWER_TIMEOUT_S) is None:
        tally.unanswered += 1


def voiced(line: Line, since: float, until: float) -> list[bool]:
    """Whether each frame the agent sent between ``since`` and ``until`` was voice."""
    return [rms(pcm) >= VOICE_RMS for at, pcm in line.call.rtp.received
            if since <= at <= until]


async def hand_over(line: Line, tally: Tally, _questions: list[str]) -> None:
    said = await line.say(ASK_A_PERSON)
    tally.turns += 1
    if await line.wait_voice(said, ANSWER_TIMEOUT_S) is None:
        tally.unanswered += 1
        return
    await asyncio.sleep(QUEUE_STAY_S)


SCENARIOS = {"answered": answered, "barge-in": barge_in, "hand-over": hand_over}


async def caller_loop(caller: SyntheticCaller, dial: Dial, slot: int, until: float,
                      tally: Tally) -> None:
    for n in itertools.count(slot):
        if time.monotonic() >= until:
            return
        kind = KINDS[n % len(KINDS)]
        questions = [list(QUESTIONS)[(n + k) % len(QUESTIONS)] for k in range(2)]
        try:
            async with caller.dial(dial, ANSWER_TIMEOUT_S) as line:
                first = await line.wait_voice(line.answered_at, ANSWER_TIMEOUT_S)
                if first is None:
                    tally.unanswered += 1
                    tally.turns += 1
                else:
                    await line.wait_quiet(first)
                    await SCENARIOS[kind](line, tally, questions)
            tally.calls[kind] += 1
        except Exception as err:  # counted; the soak goes on
            tally.failed.append(f"{kind}: {type(err).__name__}: {err}")
            await asyncio.sleep(1.0)


def process_figures(pid: int) -> dict[str, float]:
    """The controller's resident memory, open fds and threads (native ones too), from /proc."""
    status = Path(f"/proc/{pid}/status").read_text()
    figures = {name: float(m[1]) for name in ("VmRSS", "Threads")
               if (m := re.search(rf"^{name}:\s+(\d+)", status, re.M))}
    return {"rss_mb": figures["VmRSS"] / 1024, "threads": figures["Threads"],
            "fds": float(len(list(Path(f"/proc/{pid}/fd").iterdir())))}


class Sampler:
    def __init__(self, settings: Settings, pid: int) -> None:
        self.pid = pid
        self.metrics_url = f"http://{settings.web.host}:{settings.web.port}/metrics"
        creds = load_credentials(settings.data_dir)
        self.ari = AriClient(settings.ari_url, settings.ari.user, creds.ari_password,
                             settings.ari.app)
        self.started = time.monotonic()
        self.samples: list[Sample] = []

    async def sample(self, http: aiohttp.ClientSession, keep: bool = True) -> Sample:
        async with http.get(self.metrics_url) as resp:
            tasks = TASKS.search(await resp.read())
        values = {**process_figures(self.pid),
                  "tasks": float(tasks[1]) if tasks else float("nan"),
                  "channels": float(len(await self.ari.channels())),
                  "bridges": float(len(await self.ari.bridges()))}
        sample = Sample(round(time.monotonic() - self.started, 1), values)
        if keep:  # a sample of the soak itself, not of the quiet after it
            self.samples.append(sample)
        return sample

    async def every(self, period_s: float, until: float, http: aiohttp.ClientSession) -> None:
        while time.monotonic() < until:
            await self.sample(http)
            await asyncio.sleep(period_s)


async def soak(settings: Settings, pid: int, args: argparse.Namespace) -> dict[str, object]:
    password = load_credentials(settings.data_dir).caller_password
    dial = Dial("1000", (settings.pbx.host, settings.pbx.sip_port), "caller", password)
    caller = SyntheticCaller(settings, transcribe=False)
    tally, sampler = Tally(), Sampler(settings, pid)
    until = time.monotonic() + args.minutes * 60
    async with sampler.ari, aiohttp.ClientSession() as http:
        await asyncio.gather(sampler.every(args.sample_s, until, http),
                             *(caller_loop(caller, dial, slot, until, tally)
                               for slot in range(args.concurrency)))
        after = await drained(sampler, http)
    warm = args.warmup_min * 60
    trends = {name: trend([s for s in sampler.samples if s.t_s >= warm], name)
              for name in SERIES}
    return {"minutes": args.minutes, "concurrency": args.concurrency, "calls": tally.calls,
            "turns": tally.turns, "unanswered": tally.unanswered,
            "barge_ins_ignored": tally.barge_ins_ignored, "failed_calls": len(tally.failed),
            "failures": sorted(set(tally.failed))[:3], "samples": len(sampler.samples),
            "trend": trends, "after": after,
            "left_in_asterisk": {k: after[k] for k in ("channels", "bridges")},
            "series": [{"t_s": s.t_s, **s.values} for s in sampler.samples]}


async def drained(sampler: Sampler, http: aiohttp.ClientSession) -> dict[str, float]:
    """After the last call: the figures once Asterisk is empty, or 20 s have passed."""
    deadline = time.monotonic() + 20
    while True:
        last = await sampler.sample(http, keep=False)
        if last.values["channels"] == 0 == last.values["bridges"] \
                or time.monotonic() > deadline:
            return last.values
        await asyncio.sleep(1.0)


def trend(samples: list[Sample], name: str) -> dict[str, float | bool]:
    """The least-squares change of one series over the samples, against its mean."""
    t = np.array([s.t_s for s in samples])
    y = np.array([s.values[name] for s in samples])
    if len(samples) < 3 or np.isnan(y).any():
        return {"mean": float(np.nanmean(y)) if len(y) else 0.0, "change": 0.0,
                "flat": False}
    slope = np.polyfit(t, y, 1)[0]
    change = float(slope * (t[-1] - t[0]))
    mean = float(y.mean())
    flat = abs(change) <= max(0.1 * abs(mean), SERIES[name][1])
    return {"mean": round(mean, 1), "change": round(change, 1),
            "min": float(y.min()), "max": float(y.max()), "flat": bool(flat)}


def plot(report: dict[str, object], path: Path, warmup_min: float) -> None:
    series = report["series"]
    assert isinstance(series, list)
    fig, axes = plt.subplots(2, 3, figsize=(13, 6))
    minutes = [s["t_s"] / 60 for s in series]
    for ax, name in zip(axes.flat, SERIES, strict=True):
        ax.plot(minutes, [s[name] for s in series], marker=".")
        ax.axvline(warmup_min, color="grey", linestyle=":")
        unit = SERIES[name][0]
        ax.set(title=name, xlabel="minutes", ylabel=unit or "count")
    fig.suptitle(f"soak: {report['concurrency']} callers for {report['minutes']} min")
    fig.tight_layout()
    fig.savefig(path, dpi=100)


def passed(report: dict[str, object]) -> bool:
    trends = report["trend"]
    left = report["left_in_asterisk"]
    assert isinstance(trends, dict) and isinstance(left, dict)
    return (report["unanswered"] == 0 and report["failed_calls"] == 0
            and all(t["flat"] for t in trends.values()) and not any(left.values()))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=30.0)
    parser.add_argument("--concurrency", type=int, default=3)
    parser.add_argument("--sample-s", type=float, default=10.0)
    parser.add_argument("--warmup-min", type=float, default=5.0)
    parser.add_argument("--plot", type=Path)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    if not 0 < args.warmup_min < args.minutes:
        parser.error("--warmup-min: must be above 0 and below --minutes")
    settings = load_settings()
    print(ensure_demo_knowledge(settings), file=sys.stderr)
    LocalPbx(settings).up()
    controller = start_controller(settings.cache_dir / "soak-serve.log")
    try:
        report = asyncio.run(soak(settings, controller.pid, args))
    finally:
        controller.send_signal(signal.SIGTERM)
        controller.wait(20)
    if args.plot:
        plot(report, args.plot, args.warmup_min)
        print(f"plot: {args.plot}", file=sys.stderr)
    shown = report if args.json else {k: v for k, v in report.items() if k != "series"}
    print(json.dumps(shown, indent=None if args.json else 1))
    return 0 if passed(report) else 1


if __name__ == "__main__":
    sys.exit(main())
