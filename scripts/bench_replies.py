#!/usr/bin/env python3
"""Short replies: is the caller's "Yes." or "Two." to a clarifying question heard?

Each reply of ``tests/fixtures/clarify_replies.yaml`` (validation by default; the held-out
set is for measuring only) is spoken by each voice and sent through each phone channel,
as bench_hearing does, then heard offline through the call's receive path (RTP, jitter,
Silero VAD with energy's second opinion, Smart Turn, STT) and read as the choice it makes
(``clarify.read_choice``, as the call reads it). The STT is given the clarifying question
as its context, as the call gives it (``--no-context``: without). One word is the hardest
speech for a VAD to keep: a lower voice's "Two." over G.711 scores under Silero's
threshold throughout.

Also sounds that are not speech (coughs, a click, typing, a knock, a beep, a door, a hum:
synthetic) go through the same path: a turn heard as words there is a false alarm.

Prints, per voice and channel: replies that made a turn, heard as words, read right, and
read right from the STT on the whole clip (no VAD: the ceiling); then the sounds' turns
and words.

    .venv/bin/python scripts/bench_replies.py [--set validation|heldout]
        [--voices neural,neural-low,robot-us] [--channels g722,ulaw,ulaw-snr15] [--json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from bench_hearing import (
    CHANNELS,
    FIXTURES,
    VOICES,
    Question,
    ears,
    hear_offline,
    hear_whole,
    packets,
    pink_noise,
    render_all,
    shape,
)

from smartpbx_ari.ai.clarify import Choice, prompt, read_choice

REPLIES = FIXTURES / "clarify_replies.yaml"
CHOICES = (Choice("hours", "opening hours"), Choice("delivery", "delivery costs"),
           Choice("returns", "returns"))
RATE = 16000


def load_replies(path: Path, which: str) -> list[tuple[str, int, int]]:
    """(said, entries offered, the choice it makes) of one set."""
    return [(r["said"], r["offered"], r["choice"])
            for r in yaml.safe_load(path.read_text("utf-8"))[which]]


def _envelope(n: int, attack_s: float, decay_s: float) -> np.ndarray:
    t = np.arange(n) / RATE
    return np.minimum(1.0, t / attack_s) * np.exp(-t / decay_s)


def sounds(rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Sounds that are not speech, at 16 kHz, with silence around each."""
    out: dict[str, np.ndarray] = {}
    for n_s, level in ((0.25, 0.3), (0.4, 0.3), (0.5, 0.5)):  # coughs: bursts that fade
        n = int(n_s * RATE)
        burst = pink_noise(n, rng)
        out[f"cough {n_s}s"] = burst / np.std(burst) * level * 10000 * _envelope(
            n, 0.02, n_s / 3)
    click = np.zeros(RATE // 2)
    click[:160] = rng.normal(0, 8000, 160)
    out["click"] = click
    typing = np.zeros(2 * RATE)
    for at in range(0, 2 * RATE - 160, int(0.15 * RATE)):
        typing[at : at + 160] = rng.normal(0, 6000, 160) * _envelope(160, 0.001, 0.003)
    out["typing"] = typing
    knock, n = np.zeros(RATE), int(0.08 * RATE)
    t = np.arange(n) / RATE
    for at in (0, RATE // 5, 2 * RATE // 5):
        knock[at : at + n] += 12000 * np.sin(2 * np.pi * 120 * t) * np.exp(-t / 0.02)
    out["knock"] = knock
    out["beep"] = 6000 * np.sin(2 * np.pi * 1000 * np.arange(int(0.3 * RATE)) / RATE)
    n = int(0.12 * RATE)
    out["door"] = rng.normal(0, 15000, n) * _envelope(n, 0.002, 0.03)
    t = np.arange(int(1.5 * RATE)) / RATE
    out["hum"] = 3000 * np.sin(2 * np.pi * 150 * t) * (1 + np.sin(2 * np.pi * 3 * t)) / 2
    silence = np.zeros(RATE // 2)
    return {k: np.clip(np.concatenate([silence, v, silence, silence]), -32767, 32767)
            .astype(np.int16) for k, v in out.items()}


async def run(args: argparse.Namespace) -> dict[str, Any]:
    replies = load_replies(REPLIES, args.set)
    voices, channels = args.voices.split(","), args.channels.split(",")
    settings, _, stt, turn_model = ears()
    clips = await render_all([Question(said, None) for said, _, _ in replies], voices)
    rows, missed = [], []
    n = 0
    for voice in voices:
        for name in channels:
            channel, tally = CHANNELS[name], Counter[str]()
            for said, offered, choice in replies:
                rng = np.random.default_rng(n)
                n += 1
                clip = packets(shape(clips[(voice, said)], channel, rng), channel, rng)
                turns: list[float] = []  # the pause each turn ended after
                asked = prompt(CHOICES[:offered], "en") if args.context else ""
                heard, _ = await hear_offline(clip, channel, settings, stt, None, "r",
                                              turn_model, turns, Counter(), asked)
                read = read_choice(" ".join(heard), CHOICES[:offered])
                whole = read_choice(await hear_whole(clip, channel, stt, asked),
                                    CHOICES[:offered])
                tally.update(turn=bool(turns), heard=bool(heard), right=read == choice,
                             whole=whole == choice)
                if read != choice:
                    missed.append([voice, name, said, heard])
            rows.append({"voice": voice, "channel": name, "replies": len(replies), **tally})
            print(f"\r{voice} {name}", end="", file=sys.stderr)
    print(file=sys.stderr)
    noise = Counter(sounds=0, turns=0, words=0)
    for seed in range(args.seeds):
        for sound, pcm in sounds(np.random.default_rng(seed)).items():
            for name in channels:
                rng = np.random.default_rng(seed)
                channel = CHANNELS[name]
                clip = packets(shape(pcm, channel, rng), channel, rng)
                pauses: list[float] = []
                asked = prompt(CHOICES[:1 + seed % 3], "en") if args.context else ""
                heard, _ = await hear_offline(clip, channel, settings, stt, None, "s",
                                              turn_model, pauses, Counter(), asked)
                noise.update(sounds=1, turns=len(pauses), words=len(heard))
                if heard:
                    missed.append(["sound", name, sound, heard])
    stt.close()
    return {"set": args.set, "rows": rows, "sounds": dict(noise), "missed": missed,
            "asked_again": stt.asked_again}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--set", choices=("validation", "heldout"), default="validation")
    parser.add_argument("--voices", default="neural,neural-low,robot-us")
    parser.add_argument("--channels", default="g722,ulaw,ulaw-snr15")
    parser.add_argument("--seeds", type=int, default=3, help="renderings of each sound")
    parser.add_argument("--no-context", dest="context", action="store_false",
                        help="decode without the clarifying question as the STT's context "
                             "(the call gives it)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    for names, known in ((args.voices, VOICES), (args.channels, CHANNELS)):
        unknown = set(names.split(",")) - set(known)
        if unknown:
            parser.error(f"unknown {sorted(unknown)}; choose from {', '.join(known)}")
    result = asyncio.run(run(args))
    if args.json:
        print(json.dumps(result))
        return 0
    print(f"set: {result['set']}")
    print(f"{'voice':<12} {'channel':<11} {'turn':>5} {'words':>6} {'read right':>10} "
          f"{'STT whole':>9}")
    for row in result["rows"]:
        print(f"{row['voice']:<12} {row['channel']:<11} {row['turn']:>5} {row['heard']:>6} "
              f"{row['right']:>10} {row['whole']:>9}  (of {row['replies']})")
    s = result["sounds"]
    print(f"not speech: {s['sounds']} sounds, {s['turns']} turns, {s['words']} heard as words")
    print(f"decoded again knowing the question: {result['asked_again']}")
    for miss in result["missed"]:
        print(f"    missed: {miss}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
