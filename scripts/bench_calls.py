#!/usr/bin/env python3
"""Many callers at once through the real Asterisk, measured from the callers' side.

Starts the local PBX (if needed) and `smartpbx serve` as its own process, then, for each
N of --calls, places N synthetic callers (no transcription at the caller) under an
arrival shape:
- burst: every call starts at once and speaks its first question within about 1 s;
- poisson: calls arrive at --rate per second (exponential gaps).
Each caller asks --questions questions of the demo knowledge base. Per N it prints the
voice-to-voice latency p50/p95/max (end of the caller's words to the first answer audio),
unanswered turns, failed calls, calls put on hold (a question the agent was unsure of:
its holding phrase counts as that turn's answer, and the call asks no more over the
music), the most calls up at once, greeting time, the outbound RTP's jitter p99 and
longest gap at the callers, and the controller's CPU (share of one core) and peak RSS.
--plot draws latency and jitter against N (PNG, matplotlib). --profile samples the
controller with py-spy (``pip install py-spy``; needs ptrace rights) during the largest N and prints
where its threads spend their time (the collapsed stacks are kept next to the file).
The controller's settings come from the environment, e.g. ``SMARTPBX_STT__BATCH_MAX=1``
or ``SMARTPBX_MEDIA__MAX_CALLS=60`` (to measure past the configured capacity).
--pin CPUS keeps the controller (every thread) on those CPUs and this process and Asterisk
on the others, so the controller's capacity per core is measured apart from the callers'.

    .venv/bin/python scripts/bench_calls.py --calls 5,10,20 [--shape burst|poisson|both]
        [--rate 1.0] [--questions 3] [--plot calls.png] [--profile prof.txt] [--json]
        [--pin 1]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import matplotlib.pyplot as plt  # headless: the Agg backend, files only
import numpy as np
from bench_voice import QUESTIONS, percentile, start_controller, summary

from smartpbx_ari.cli.kb import ensure_demo_knowledge
from smartpbx_ari.config import load_settings
from smartpbx_ari.credentials import load_credentials
from smartpbx_ari.sipcaller.caller import QUIET_S, Dial, Line, SyntheticCaller
from smartpbx_ari.telephony.pbx import LocalPbx

ANSWER_TIMEOUT_S = 20.0
HELD_S = 15.0  # the demo's longest answer lasts about 8 s; audio longer than this is music
FRAME_S = 0.02


@dataclass
class CallResult:
    greeting_ms: float | None = None
    latencies_ms: list[float | None] = field(default_factory=list)
    jitter_ms: list[float] = field(default_factory=list)  # |arrival gap - 20 ms|
    longest_gap_ms: float = 0.0
    failed: str = ""
    held: bool = False  # a question was not answered: the caller was put on hold
    up: tuple[float, float] | None = None  # answered .. hung up (monotonic)


async def on_hold(line: Line, heard: float) -> bool:
    """Whether what began at ``heard`` goes on past any answer (music: the caller is on
    hold). Questions asked over the music would be "answered" at once by it, so the call
    asks no more of them; its holding phrase still counts as the turn's first audio."""
    last = await line.wait_quiet(heard, timeout=HELD_S)
    return time.monotonic() - last < QUIET_S


class Process:
    """The controller's CPU time and resident memory, from /proc (Linux)."""

    def __init__(self, pid: int) -> None:
        self.pid, self.peak_rss_mb = pid, 0.0
        self.tick = os.sysconf("SC_CLK_TCK")

    def cpu_s(self) -> float:
        fields = Path(f"/proc/{self.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / self.tick  # utime + stime

    def sample(self) -> None:
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                self.peak_rss_mb = max(self.peak_rss_mb, int(line.split()[1]) / 1024)


async def one_call(caller: SyntheticCaller, dial: Dial, delay: float, speak_within: float,
                   questions: list[str]) -> CallResult:
    result = CallResult()
    await asyncio.sleep(delay)
    try:
        async with caller.dial(dial, ANSWER_TIMEOUT_S) as line:
            first = await line.wait_voice(line.answered_at, ANSWER_TIMEOUT_S)
            result.greeting_ms = None if first is None else (first - line.answered_at) * 1000
            await line.wait_quiet(first or line.answered_at)
            await asyncio.sleep(random.uniform(0, speak_within))
            for text in questions:
                said = await line.say(text)
                heard = await line.wait_voice(said, ANSWER_TIMEOUT_S)
                result.latencies_ms.append(None if heard is None else (heard - said) * 1000)
                if heard is not None and await on_hold(line, heard):
                    result.held = True  # the holding phrase was the answer; music follows
                    break
                await asyncio.sleep(0.5)
            arrivals = np.array([at for at, _ in line.call.rtp.received])
        result.up = (line.answered_at, time.monotonic())
    except Exception as err:  # a call that failed is counted, the run goes on
        result.failed = f"{type(err).__name__}: {err}"
        return result
    gaps = np.diff(arrivals) * 1000 if len(arrivals) > 1 else np.zeros(1)
    result.jitter_ms = list(np.abs(gaps - FRAME_S * 1000))
    result.longest_gap_ms = float(gaps.max())
    return result


async def run_level(n: int, shape: str, rate: float, questions: int,
                    process: Process) -> dict[str, object]:
    settings = load_settings()
    password = load_credentials(settings.data_dir).caller_password
    dial = Dial("1000", (settings.pbx.host, settings.pbx.sip_port), "caller", password)
    caller = SyntheticCaller(settings, transcribe=False)
    if shape == "burst":
        delays, speak_within = [0.0] * n, 1.0
    else:
        delays = list(np.cumsum(np.random.default_rng(n).exponential(1 / rate, n)))
        speak_within = 0.0
    texts = list(QUESTIONS)
    asked = [[texts[(i + k) % len(texts)] for k in range(questions)] for i in range(n)]
    cpu_before, started = process.cpu_s(), time.monotonic()
    calls = asyncio.gather(*(one_call(caller, dial, d, speak_within, q)
                             for d, q in zip(delays, asked, strict=True)))
    task = asyncio.ensure_future(calls)
    while not task.done():
        process.sample()
        await asyncio.sleep(0.5)
    results: list[CallResult] = task.result()
    wall = time.monotonic() - started
    latencies = [lat for r in results for lat in r.latencies_ms if lat is not None]
    jitter = [j for r in results for j in r.jitter_ms]
    return {
        "calls": n, "shape": shape,
        "latency_ms": summary(latencies),
        "unanswered_turns": sum(lat is None for r in results for lat in r.latencies_ms),
        "failed_calls": sum(bool(r.failed) for r in results),
        "held_calls": sum(r.held for r in results),
        "peak_concurrent": peak([r.up for r in results if r.up is not None]),
        "failures": sorted({r.failed for r in results if r.failed})[:3],
        "greeting_ms": summary([r.greeting_ms for r in results if r.greeting_ms is not None]),
        "rtp_jitter_p99_ms": round(percentile(jitter, 0.99), 1) if jitter else None,
        "rtp_longest_gap_ms": round(max((r.longest_gap_ms for r in results), default=0.0)),
        "controller_cpu_cores": round((process.cpu_s() - cpu_before) / wall, 2),
        "controller_peak_rss_mb": round(process.peak_rss_mb),
    }


def peak(spans: list[tuple[float, float]]) -> int:
    """The most calls up at one moment."""
    edges = sorted([(start, 1) for start, _ in spans] + [(end, -1) for _, end in spans])
    return int(max(np.cumsum([step for _, step in edges]), default=0))


def plot(levels: list[dict[str, object]], path: Path) -> None:
    fig, (lat, jit) = plt.subplots(1, 2, figsize=(11, 4))
    for shape in sorted({str(level["shape"]) for level in levels}):
        rows = [lv for lv in levels if lv["shape"] == shape and lv["latency_ms"]]
        ns = [lv["calls"] for lv in rows]
        for q in ("p50", "p95"):
            lat.plot(ns, [lv["latency_ms"][q] for lv in rows], marker="o",  # type: ignore[index]
                     label=f"{shape} {q}")
        jit.plot(ns, [lv["rtp_jitter_p99_ms"] for lv in rows], marker="o", label=shape)
    lat.set(xlabel="concurrent calls", ylabel="voice-to-voice (ms)", title="Latency")
    jit.set(xlabel="concurrent calls", ylabel="RTP jitter p99 (ms)", title="Jitter at callers")
    lat.legend()
    jit.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", default="5,10,20")
    parser.add_argument("--shape", choices=("burst", "poisson", "both"), default="burst")
    parser.add_argument("--rate", type=float, default=1.0, help="poisson: calls per second")
    parser.add_argument("--questions", type=int, default=3)
    parser.add_argument("--plot", type=Path)
    parser.add_argument("--profile", type=Path, help="py-spy's top frames, at the largest N")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--pin", help="CPUs of the controller, e.g. 1 or 1-3 (the rest: "
                        "the callers and Asterisk)")
    args = parser.parse_args()
    try:
        ns = [int(n) for n in args.calls.split(",")]
    except ValueError:
        parser.error(f"--calls: comma-separated numbers, got {args.calls!r}")
    settings = load_settings()
    print(ensure_demo_knowledge(settings), file=sys.stderr)
    pbx = LocalPbx(settings)
    pbx.up()
    controller = start_controller(settings.cache_dir / "bench-calls-serve.log")
    if args.pin:
        try:
            ours = cpus(args.pin)
        except ValueError:
            parser.error(f"--pin: CPUs like 1, 0,2 or 1-3, got {args.pin!r}")
        others = os.sched_getaffinity(0) - ours
        if not ours or not others:
            parser.error(f"--pin: leave CPUs of {sorted(os.sched_getaffinity(0))} to both sides")
        pin(controller.pid, ours)
        pin(os.getpid(), others)
        if (asterisk := pbx.pid()) is not None:
            pin(asterisk, others)
        print(f"pinned: the controller on CPUs {sorted(ours)}, the callers and Asterisk on "
              f"{sorted(others)}", file=sys.stderr)
    process = Process(controller.pid)
    shapes = ["burst", "poisson"] if args.shape == "both" else [args.shape]
    levels = []
    try:
        for shape in shapes:
            for n in ns:
                spy = profiler(controller.pid, args.profile) \
                    if args.profile and n == max(ns) else None
                levels.append(asyncio.run(run_level(n, shape, args.rate, args.questions,
                                                    process)))
                if spy is not None and args.profile:
                    spy.send_signal(signal.SIGINT)  # py-spy writes what it has
                    spy.wait(30)
                    args.profile.write_text(top_frames(args.profile.with_suffix(".raw")))
                    print(args.profile.read_text(), file=sys.stderr)
                print(json.dumps(levels[-1]) if args.json else _line(levels[-1]), flush=True)
    finally:
        controller.send_signal(signal.SIGTERM)
        controller.wait(20)
    if args.plot:
        plot(levels, args.plot)
        print(f"plot: {args.plot}", file=sys.stderr)
    return 0 if all(lv["failed_calls"] == 0 for lv in levels) else 1


def cpus(text: str) -> set[int]:
    """"1", "0,2" or "1-3" as a set of CPU numbers."""
    out: set[int] = set()
    for part in text.split(","):
        first, _, last = part.partition("-")
        out.update(range(int(first), int(last or first) + 1))
    return out


def pin(pid: int, to: set[int]) -> None:
    """Every thread of ``pid`` on the CPUs ``to`` (threads it starts later inherit it)."""
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            os.sched_setaffinity(int(task.name), to)
        except ProcessLookupError:  # a thread that ended meanwhile
            continue


def profiler(pid: int, out: Path) -> subprocess.Popen[bytes]:
    exe = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    return subprocess.Popen([exe, "record", "--pid", str(pid), "--threads", "--rate", "50",
                             "--format", "raw", "--output", str(out.with_suffix(".raw")),
                             "--nonblocking"], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)


def top_frames(raw: Path, shown: int = 25) -> str:
    """The frames most often on top of a thread's stack (self time), and per thread the
    share of samples, from py-spy's collapsed stacks ("thread;frame;...;frame count")."""
    own: dict[str, int] = {}
    threads: dict[str, int] = {}
    total = 0
    for line in raw.read_text("utf-8", "replace").splitlines():
        stack, _, count = line.rpartition(" ")
        if not count.isdigit():
            continue
        frames, n = stack.split(";"), int(count)
        total += n
        threads[frames[0]] = threads.get(frames[0], 0) + n
        own[frames[-1]] = own.get(frames[-1], 0) + n
    lines = [f"{total} samples"]
    lines += [f"{100 * n / total:5.1f}%  thread {t}" for t, n in
              sorted(threads.items(), key=lambda kv: -kv[1])[:8]]
    lines += [f"{100 * n / total:5.1f}%  {f}" for f, n in
              sorted(own.items(), key=lambda kv: -kv[1])[:shown]]
    return "\n".join(lines) + "\n"


def _line(level: dict[str, object]) -> str:
    return (f"{level['shape']:>7} N={level['calls']:<3} latency {level['latency_ms']} "
            f"unanswered {level['unanswered_turns']} failed {level['failed_calls']} "
            f"held {level['held_calls']} up at once {level['peak_concurrent']} "
            f"greeting {level['greeting_ms']} jitter p99 {level['rtp_jitter_p99_ms']} ms "
            f"gap {level['rtp_longest_gap_ms']} ms cpu {level['controller_cpu_cores']} "
            f"rss {level['controller_peak_rss_mb']} MB")


if __name__ == "__main__":
    sys.exit(main())
