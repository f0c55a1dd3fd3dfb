#!/usr/bin/env python3
"""Voice-to-voice latency through the real Asterisk, measured from the caller's side.

Starts the local PBX (if needed) and `smartpbx serve` as its own process, then places
calls with the synthetic caller until --turns questions were asked; prints greeting time
and voice-to-voice latency (end of the caller's speech -> first answer audio) as
p50/p95/max, and where it went from the controller's log: the STT's decode time and the
wait for the transcript once the turn had ended (the rest is the VAD's lag, the end-of-turn
decision, the answer and the line), and the controller's own per-stage histograms from
its /metrics (end-of-turn wait, STT queue wait, STT, agent, first audio out: mean and
p50/p95 interpolated in the buckets, as Prometheus' histogram_quantile does). Targets
on 2 cores: p50 <= 450 ms, p95 <= 700 ms, greeting <= 300 ms. Compare end-of-turn
decisions in the same conditions with SMARTPBX_TURN__MODEL=off (the silence timer)
against the default (Smart Turn).

    .venv/bin/python scripts/bench_voice.py --turns 20 [--per-call 5] [--fresh-voice] [--json]

``--fresh-voice``: each call's questions are another take of them (Piper's noise drawn
anew), as different callers would say them; otherwise one rendering serves the whole
run, so a mishearing repeats in every call. ``--per-call 1 --fresh-voice --turns 20``: one
question each in 20 calls of 20 renderings.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import re
import signal
import statistics
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import aiohttp
from prometheus_client.parser import text_string_to_metric_families

from smartpbx_ari.cli.kb import ensure_demo_knowledge
from smartpbx_ari.config import Settings, load_settings
from smartpbx_ari.credentials import load_credentials
from smartpbx_ari.sipcaller.caller import CallReport, Dial, SyntheticCaller
from smartpbx_ari.telephony.pbx import LocalPbx
from smartpbx_ari.telephony.stasis import READY_LOG
from smartpbx_ari.web.metrics import STAGES

QUESTIONS = {  # the question -> the demo knowledge base's entry that answers it
    "How do I get a refund?": "refund",
    "Which payment methods do you accept?": "payment",
    "Can I change my delivery address?": "delivery_tracking",
    "Can I exchange an item for another size?": "exchange",
    "Is this product in stock?": "product_inquiry",
}
TURNS_PER_CALL = 5
HOLD_S = 2.0  # agent.hitl_wait_s of the controller under measurement
HEARD = re.compile(rb"event=heard .* stt_ms=(\d+) wait_ms=(\d+)")
SAID = re.compile(rb"event=said .* intent='([^']*)' .* hitl=(True|False) .* speaker='agent'")


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    k = (len(ordered) - 1) * q
    lo, hi = int(k), min(int(k) + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


def summary(values: list[float]) -> dict[str, float]:
    if not values:
        return {}
    return {"n": len(values), "p50": round(statistics.median(values)),
            "p95": round(percentile(values, 0.95)), "min": round(min(values)),
            "max": round(max(values))}


def bucket_quantile(q: float, buckets: list[tuple[float, float]]) -> float | None:
    """The q-quantile of a histogram's cumulative (upper bound, count) buckets, linear
    within the bucket it falls in (Prometheus' histogram_quantile)."""
    total = buckets[-1][1] if buckets else 0.0
    if not total:
        return None
    rank, lower, below = q * total, 0.0, 0.0
    for upper, count in buckets:
        if count >= rank:
            if math.isinf(upper):
                return lower
            return lower + (upper - lower) * (rank - below) / ((count - below) or 1.0)
        lower, below = upper, count
    return lower


async def stage_figures(settings: Settings) -> dict[str, dict[str, float]]:
    """The controller's per-stage histograms, scraped from its /metrics, in ms."""
    url = f"http://{settings.web.host}:{settings.web.port}/metrics"
    async with aiohttp.ClientSession() as http, http.get(url) as response:
        text = await response.text()
    samples: dict[str, list[tuple[str, dict[str, str], float]]] = {}
    for family in text_string_to_metric_families(text):
        samples[family.name] = [(s.name, s.labels, s.value) for s in family.samples]
    figures = {}
    for stage in STAGES:
        name = f"smartpbx_turn_{stage}_seconds"
        rows = samples.get(name, [])
        values = {n: v for n, _, v in rows}
        buckets = [(float(labels["le"]), v) for n, labels, v in rows if n == f"{name}_bucket"]
        count = values.get(f"{name}_count", 0.0)
        figure = {"n": count, "mean": round(values.get(f"{name}_sum", 0.0) / count * 1000)
                  if count else 0}
        for q in (0.5, 0.95):
            at = bucket_quantile(q, sorted(buckets))
            figure[f"p{round(q * 100)}"] = round(at * 1000) if at is not None else 0
        figures[stage] = figure
    return figures


def start_controller(log: Path, env: dict[str, str] | None = None,
                     within_s: float = 60.0) -> subprocess.Popen[bytes]:
    """`smartpbx serve` (with ``env`` over this environment), once it takes calls."""
    exe = Path(sys.executable).with_name("smartpbx")
    out = log.open("wb")
    proc = subprocess.Popen([str(exe), "serve"], stdout=out, stderr=subprocess.STDOUT,
                            env={**os.environ, **(env or {})})
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        if READY_LOG.encode() in log.read_bytes():
            return proc
        if proc.poll() is not None:
            raise SystemExit(f"smartpbx serve exited: {log.read_text()[-500:]}")
        time.sleep(0.1)
    proc.kill()
    raise SystemExit(f"smartpbx serve was not ready for calls within {within_s:.0f} s")


def answered_right(asked: list[str], log: bytes) -> int:
    """Turns answered from the entry their question is about, not handed over: the
    longest run in order shared by the questions' entries and the controller's answers
    (a question heard as two turns adds an answer, and misaligns none of the rest)."""
    said = [intent.decode() if hitl == b"False" else "" for intent, hitl in SAID.findall(log)]
    return common_in_order([QUESTIONS[question] for question in asked], said)


def common_in_order(wanted: list[str], said: list[str]) -> int:
    """The length of the longest common subsequence (difflib's matcher is not one: it
    takes the longest block first, and an answer inserted early cost it the turns
    before)."""
    row = [0] * (len(said) + 1)
    for want in wanted:
        diagonal = 0
        for j, got in enumerate(said):
            diagonal, row[j + 1] = row[j + 1], (diagonal + 1 if want == got
                                               else max(row[j + 1], row[j]))
    return row[-1]


async def run_calls(turns: int, questions: list[str], per_call: int = TURNS_PER_CALL,
                    fresh_voice: bool = False) -> list[CallReport]:
    settings = load_settings()
    password = load_credentials(settings.data_dir).caller_password
    dial = Dial("1000", (settings.pbx.host, settings.pbx.sip_port), "caller", password)
    caller = SyntheticCaller(settings)
    reports = []
    asked = 0
    while asked < turns:
        if fresh_voice and asked:  # its own voice's cache: another take; the same ears
            caller.tts.close()
            caller = SyntheticCaller(settings, caller.stt(),
                                     voice=replace(caller.voice, take=len(reports)))
        batch = [questions[(asked + i) % len(questions)]
                 for i in range(min(per_call, turns - asked))]
        reports.append(await caller.conversation(dial, batch, pause_s=0.3))
        asked += len(batch)
    return reports


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--turns", type=int, default=20)
    parser.add_argument("--question", choices=sorted(QUESTIONS),
                        help="ask only this one (e.g. the README's example, 20 times)")
    parser.add_argument("--per-call", type=int, default=TURNS_PER_CALL,
                        help="questions asked in each call")
    parser.add_argument("--fresh-voice", action="store_true",
                        help="each call renders its questions anew (another caller)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    if args.per_call < 1:
        parser.error("--per-call: at least 1")
    settings = load_settings()
    print(ensure_demo_knowledge(settings), file=sys.stderr)
    LocalPbx(settings).up()
    log = settings.cache_dir / "bench-serve.log"
    # a question handed over waits on hold for an operator nobody plays here: 2 s, not 25,
    # so that a mishearing costs the run seconds, not half a minute a call
    controller = start_controller(log, {"SMARTPBX_AGENT__HITL_WAIT_S": str(HOLD_S)})
    try:
        questions = [args.question] if args.question else list(QUESTIONS)
        reports = asyncio.run(run_calls(args.turns, questions, args.per_call,
                                        args.fresh_voice))
        stages = asyncio.run(stage_figures(settings)) if settings.web.enabled else {}
    finally:
        controller.send_signal(signal.SIGTERM)
        controller.wait(20)
    heard = [m.groups() for m in HEARD.finditer(log.read_bytes())]
    turns = [t for r in reports for t in r.turns]
    latencies = [float(t.latency_ms) for t in turns if t.latency_ms is not None]
    greetings = [float(r.greeting_ms) for r in reports if r.greeting_ms is not None]
    result = {
        "cores": os.cpu_count(),
        "latency_ms": summary(latencies),
        "greeting_ms": summary(greetings),
        "stt_decode_ms": summary([float(stt) for stt, _ in heard]),
        "transcript_wait_after_turn_end_ms": summary([float(wait) for _, wait in heard]),
        "stages_ms": stages,
        "load_average": os.getloadavg()[0],
        "unanswered": sum(t.latency_ms is None for t in turns),
        "answered_right": answered_right([t.said for t in turns], log.read_bytes()),
        "turns": [{"said": t.said, "heard": t.heard, "latency_ms": t.latency_ms} for t in turns],
    }
    if args.json:
        print(json.dumps(result, ensure_ascii=False))
    else:
        print(f"voice-to-voice latency (ms): {result['latency_ms']}")
        print(f"greeting (ms):               {result['greeting_ms']}")
        print(f"STT decode (ms):             {result['stt_decode_ms']}")
        print(f"transcript wait after the turn ended (ms): "
              f"{result['transcript_wait_after_turn_end_ms']}")
        for stage, figure in stages.items():
            print(f"stage {stage + ' (ms):':<26}{figure}")
        print(f"load average (1 min):        {result['load_average']:.1f}")
        print(f"unanswered turns:            {result['unanswered']} of {len(turns)}")
        print(f"answered right:              {result['answered_right']} of {len(turns)}")
        for t in turns:
            ms = "    -" if t.latency_ms is None else f"{t.latency_ms:>5}"
            print(f"  {ms} ms  {t.said!r} -> {t.heard[:70]!r}")
    return 0 if result["unanswered"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
