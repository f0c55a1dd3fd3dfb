#!/usr/bin/env python3
"""A choice of ears: Whisper models side by side on the same clips, interleaved (each clip
goes to every model in turn, so a busy machine slows them alike).

The validation set's English questions (``--limit``) in the neural voice and espeak-ng,
each at 16 kHz and after an 8 kHz mu-law line. Prints per model: load seconds, decode
wall time p50/p95 per question, CPU seconds per question (all the process's threads,
so over 1.0 x wall when decoding uses more than one core), and the word error rate of
the clip as a whole (no VAD: the STT alone; ``bench_hearing.py`` measures the call path).

    .venv/bin/python scripts/bench_stt.py [--models ,whisper-base] [--limit 20]
        [--prompt-tokens 0] [--threads 2] [--json]

``--windows 30,15,10`` compares Whisper windows (``stt.window_s``, the first model): the
same clips plus people reading (pocketsphinx-testdata, the validation set's), each
decoded in each window in turn, printing word error rate and decode time per window.

``--pools 1x2b1,1x2b8,2x1b1`` sizes the pool: for each configuration (``stt.workers`` x
``stt.cpu_threads``, ``b`` ``stt.batch_max``) all clips are asked at once (as callers who
finish speaking together), interleaved over ``--rounds``; prints utterances per second
and the p50/p95 wait for a transcript.

``--batches 1,2,4,8`` measures instead what a batch costs (the first model): the clips
decoded in groups of each size in turn (interleaved, ``--rounds`` times), printing wall
and CPU time per utterance, and how many were heard differently than alone.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from scipy import signal

from smartpbx_ari.ai.biasing import tune
from smartpbx_ari.ai.knowledge_io import import_file
from smartpbx_ari.ai.language import is_korean
from smartpbx_ari.ai.rag import RAGEngine
from smartpbx_ari.ai.speech_cache import SpeechCache
from smartpbx_ari.ai.stt import SpeechToText
from smartpbx_ari.ai.tts import TextToSpeech
from smartpbx_ari.ai.voice import Voice
from smartpbx_ari.cli.kb import demo_path
from smartpbx_ari.config import load_settings
from smartpbx_ari.media import codecs
from smartpbx_ari.media.resample import resample
from smartpbx_ari.sipcaller.caller import trim_silence

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_hearing import pocketsphinx_recordings, word_errors  # Whisper's way of counting

VALIDATION = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "rag_validation.yaml"
VOICES = {"neural": Voice("piper"), "robot-us": Voice("espeak", "en-us")}


def questions(limit: int) -> list[str]:
    data = yaml.safe_load(VALIDATION.read_text("utf-8"))
    texts = [q for entry, qs in data["in_domain"].items() if entry.startswith("en-")
             for q in qs] + [q for q in data["out_of_domain"] if not is_korean(q)]
    return texts[:: max(1, len(texts) // limit)][:limit] if limit else texts


def ulaw_line(pcm16k: np.ndarray) -> np.ndarray:
    sos = signal.butter(6, [300, 3400], "bandpass", fs=16000, output="sos")
    narrow = np.clip(signal.sosfiltfilt(sos, pcm16k.astype(np.float64)), -32768, 32767)
    pcm8k = resample(np.rint(narrow).astype(np.int16), 16000, 8000)
    return resample(codecs.ulaw_decode(codecs.ulaw_encode(pcm8k)), 8000, 16000)


async def clips(texts: list[str]) -> list[tuple[str, str, np.ndarray]]:
    tts = TextToSpeech(load_settings().tts, 16000, SpeechCache(None, 2**30))
    out = []
    for name, voice in VOICES.items():
        for text in texts:
            pcm = trim_silence(await tts.synthesize(text, voice))
            out += [(f"{name} 16k", text, pcm), (f"{name} ulaw", text, ulaw_line(pcm))]
    tts.close()
    return out


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[round(share * (len(ordered) - 1))]


async def run(args: argparse.Namespace) -> dict[str, Any]:
    settings = load_settings()
    stt_settings = replace(settings.stt, cpu_threads=args.threads,
                           prompt_tokens=args.prompt_tokens)
    engine = None
    if args.prompt_tokens:
        data = tempfile.mkdtemp(prefix="bench-stt-")
        engine = RAGEngine.open(load_settings(environ={
            "SMARTPBX_DATA_DIR": data, "SMARTPBX_CACHE_DIR": str(settings.cache_dir)}))
        import_file(engine, demo_path())
    models: dict[str, SpeechToText] = {}
    loads: dict[str, float] = {}
    for name in args.models.split(","):
        started = time.perf_counter()
        models[name] = SpeechToText(replace(stt_settings, model=name), settings.cache_dir)
        loads[name] = time.perf_counter() - started
        if engine is not None:
            tune(models[name], engine.retriever)
    samples = await clips(questions(args.limit))
    wall: dict[str, list[float]] = {n: [] for n in models}
    cpu: dict[str, list[float]] = {n: [] for n in models}
    errors = {n: [0, 0] for n in models}
    for done, (_kind, text, pcm) in enumerate(samples, 1):
        for name, stt in models.items():
            cpu_before, wall_before = time.process_time(), time.perf_counter()
            heard = (await stt.transcribe(pcm, "en")).text
            wall[name].append(time.perf_counter() - wall_before)
            cpu[name].append(time.process_time() - cpu_before)
            e, n = word_errors(text, heard)
            errors[name][0] += e
            errors[name][1] += n
        print(f"\r{done}/{len(samples)}", end="", file=sys.stderr)
    print(file=sys.stderr)
    audio_s = sum(len(p) for _k, _t, p in samples) / 16000
    return {"clips": len(samples), "audio_s_mean": round(audio_s / len(samples), 2),
            "threads": args.threads, "prompt_tokens": args.prompt_tokens, "models": {
                name or "tiny.en": {
                    "load_s": round(loads[name], 2),
                    "wall_ms_p50": round(1000 * statistics.median(wall[name])),
                    "wall_ms_p95": round(1000 * percentile(wall[name], 0.95)),
                    "cpu_s_per_question": round(statistics.mean(cpu[name]), 3),
                    "rtf": round(sum(wall[name]) / audio_s, 3),
                    "wer": round(errors[name][0] / max(1, errors[name][1]), 3)}
                for name in models}}


def batch_cost(stt: SpeechToText, samples: list[tuple[str, str, np.ndarray]],
               sizes: list[int], rounds: int) -> dict[str, Any]:
    """Per batch size: wall and CPU ms per utterance (median and range over the rounds)."""
    pcms = [p for _k, _t, p in samples]
    stt._decode(pcms[0], "en")  # warm
    alone = [stt._decode(p, "en").text for p in pcms]
    wall: dict[int, list[float]] = {b: [] for b in sizes}
    cpu: dict[int, list[float]] = {b: [] for b in sizes}
    differ = dict.fromkeys(sizes, 0)
    for _round in range(rounds):
        for size in sizes:
            cpu_before, wall_before = time.process_time(), time.perf_counter()
            heard = [t.text for i in range(0, len(pcms), size)
                     for t in stt._decode_many(pcms[i:i + size], "en")]
            wall[size].append((time.perf_counter() - wall_before) / len(pcms))
            cpu[size].append((time.process_time() - cpu_before) / len(pcms))
            differ[size] += sum(a != b for a, b in zip(alone, heard, strict=True))
    return {"clips": len(pcms), "rounds": rounds, "batches": {
        size: {"wall_ms_per_utterance_p50": round(1000 * statistics.median(wall[size])),
               "range": f"{1000 * min(wall[size]):.0f}-{1000 * max(wall[size]):.0f}",
               "cpu_ms_per_utterance": round(1000 * statistics.median(cpu[size])),
               "heard_differently": differ[size]}
        for size in sizes}}


def window_cost(settings_stt: Any, cache_dir: Path, samples: list[tuple[str, str, np.ndarray]],
                windows: list[float]) -> dict[str, Any]:
    """Per window: word error rate (questions, people reading) and decode ms p50/p95."""
    people = [("human", r.text, r.pcm) for r in pocketsphinx_recordings()]
    models = {w: SpeechToText(replace(settings_stt, window_s=w), cache_dir) for w in windows}
    errors = {w: {"questions": [0, 0], "people": [0, 0]} for w in windows}
    took: dict[float, list[float]] = {w: [] for w in windows}
    for done, (kind, text, pcm) in enumerate(samples + people, 1):
        for window, stt in models.items():  # interleaved: a busy moment slows all alike
            heard = stt._decode_many([pcm], "en")[0]
            took[window].append(heard.decode_s)
            e, n = word_errors(text, heard.text)
            tally = errors[window]["people" if kind == "human" else "questions"]
            tally[0] += e
            tally[1] += n
        print(f"\r{done}/{len(samples) + len(people)}", end="", file=sys.stderr)
    print(file=sys.stderr)
    return {"questions": len(samples), "people": len(people), "windows": {
        window: {"wer_questions": round(errors[window]["questions"][0]
                                        / max(1, errors[window]["questions"][1]), 3),
                 "wer_people": round(errors[window]["people"][0]
                                     / max(1, errors[window]["people"][1]), 3),
                 "decode_ms_p50": round(1000 * statistics.median(took[window])),
                 "decode_ms_p95": round(1000 * percentile(took[window], 0.95))}
        for window in windows}}


async def pool_cost(settings_stt: Any, cache_dir: Path, pcms: list[np.ndarray],
                    pools: list[str], rounds: int) -> dict[str, Any]:
    """Per pool shape: throughput and the wait for each transcript, all asked at once."""
    shapes = {}
    for pool in pools:
        workers, rest = pool.split("x")
        threads, batch = rest.split("b")
        shapes[pool] = SpeechToText(replace(settings_stt, workers=int(workers),
                                            cpu_threads=int(threads), batch_max=int(batch)),
                                    cache_dir)
    rates: dict[str, list[float]] = {p: [] for p in pools}
    waits: dict[str, list[float]] = {p: [] for p in pools}

    async def timed(stt: SpeechToText, pcm: np.ndarray, asked: float) -> float:
        await stt.transcribe(pcm, "en")
        return time.perf_counter() - asked

    for _round in range(rounds):
        for pool, stt in shapes.items():
            asked = time.perf_counter()
            done = await asyncio.gather(*(timed(stt, p, asked) for p in pcms))
            rates[pool].append(len(pcms) / max(done))
            waits[pool] += done
    return {"utterances": len(pcms), "rounds": rounds, "pools": {
        pool: {"per_s": round(statistics.median(rates[pool]), 2),
               "wait_ms_p50": round(1000 * statistics.median(waits[pool])),
               "wait_ms_p95": round(1000 * percentile(waits[pool], 0.95))}
        for pool in pools}}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default=",whisper-base",
                        help="stt.model values, comma-separated ('' = tiny.en)")
    parser.add_argument("--limit", type=int, default=20, help="questions (0 = all)")
    parser.add_argument("--prompt-tokens", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2, help="stt.cpu_threads")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--batches", default="", help="batch sizes, e.g. 1,2,4,8")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--windows", default="", help="stt.window_s values, e.g. 30,15,10")
    parser.add_argument("--pools", default="", help="e.g. 1x2b1,1x2b8,2x1b1")
    args = parser.parse_args()
    if args.pools:
        settings = load_settings()
        pcms = [p for _k, _t, p in asyncio.run(clips(questions(args.limit)))]
        costs = asyncio.run(pool_cost(replace(settings.stt, model=args.models.split(",")[0]),
                                      settings.cache_dir, pcms, args.pools.split(","),
                                      args.rounds))
        print(json.dumps(costs) if args.json else "\n".join(
            [f"{costs['utterances']} utterances at once, {costs['rounds']} rounds"]
            + [f"pool {p:>7}: " + "  ".join(f"{k} {v}" for k, v in row.items())
               for p, row in costs["pools"].items()]))
        return 0
    if args.windows:
        settings = load_settings()
        costs = window_cost(replace(settings.stt, model=args.models.split(",")[0],
                                    cpu_threads=args.threads), settings.cache_dir,
                            asyncio.run(clips(questions(args.limit))),
                            [float(w) for w in args.windows.split(",")])
        print(json.dumps(costs) if args.json else "\n".join(
            [f"{costs['questions']} question clips, {costs['people']} people reading"]
            + [f"window {w:>4} s: " + "  ".join(f"{k} {v}" for k, v in row.items())
               for w, row in costs["windows"].items()]))
        return 0
    if args.batches:
        settings = load_settings()
        stt = SpeechToText(replace(settings.stt, model=args.models.split(",")[0],
                                   cpu_threads=args.threads), settings.cache_dir)
        costs = batch_cost(stt, asyncio.run(clips(questions(args.limit))),
                           [int(b) for b in args.batches.split(",")], args.rounds)
        print(json.dumps(costs) if args.json else "\n".join(
            [f"{costs['clips']} clips, {costs['rounds']} rounds, {args.threads} threads"]
            + [f"batch {b:>2}: " + "  ".join(f"{k} {v}" for k, v in row.items())
               for b, row in costs["batches"].items()]))
        return 0
    result = asyncio.run(run(args))
    if args.json:
        print(json.dumps(result))
        return 0
    print(f"{result['clips']} clips (mean {result['audio_s_mean']} s), "
          f"{result['threads']} threads, prompt {result['prompt_tokens']} tokens")
    for name, row in result["models"].items():
        print(f"{name:<14} " + "  ".join(f"{k} {v}" for k, v in row.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
