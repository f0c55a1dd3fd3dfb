#!/usr/bin/env python3
"""A pause mid-sentence: is the caller who hesitates cut off?

Each in-domain question of a paraphrase set is spoken by the neural voice with a comma
after its middle word: Piper pauses there, with the prosody of a sentence that goes on.
That pause is stretched to each ``--pauses`` length and the clip is heard offline through
the call's receive path (bench_hearing's: RTP, jitter, Silero VAD, Smart Turn, STT, the
agent). A question answered in more than one turn was cut off (its head answered on its
own). Counted apart: the turn ended inside the pause (and after how much of it), and
resumed (ended, then taken up again by the caller's going on). Offline, a turn may be
resumed until the cap; live, only in the first ``turn.resume_into_answer_ms`` of our reply
(an answer, or the holding phrase of a hand-over). A head whose words stop short
("Could I get the") is not answered while the caller may go on (``ends_unfinished``), nor
is an unsure reply (a clarifying question, a hand-over) before the pause reaches
``turn.unsure_silence_ms``:
the rest of the turns ended inside the pause get a reply to half a sentence, live
("replied to half"), taken back unheard if the caller goes on before its first audio
(~0.2 s after the turn ended), stopped if after. "unsure": whole questions whose reply
was unsure, and so waited for that much silence.
With --play, the same clips go into real calls through Asterisk (bench_hearing's live
path, one call at a time by default: each reply's timing is what decides): per channel and
pause, the questions answered right by their last reply, split (answered in pieces), and
"head answered": a reply to the head began, the caller going on stopped it, and the
whole question was answered next (further into our answer, what the caller says is a
turn of its own: split).
Target: no caller cut off by a pause of up to 1 s.

    .venv/bin/python scripts/bench_pauses.py [--set validation|heldout] [--limit 40]
        [--pauses 0.3,0.5,0.7,1.0] [--channels g722,ulaw] [--play [--calls 1]] [--json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
from collections import Counter, defaultdict
from typing import Any

import numpy as np
from bench_hearing import (
    CHANNELS,
    SETS,
    VOICES,
    Question,
    Tally,
    ears,
    hear_offline,
    judge,
    load_questions,
    packets,
    play_all,
    shape,
)

from smartpbx_ari.ai.agent import AIAgentService
from smartpbx_ari.ai.speech_cache import SpeechCache
from smartpbx_ari.ai.stt import SpeechToText
from smartpbx_ari.ai.tts import TextToSpeech
from smartpbx_ari.config import Settings
from smartpbx_ari.media.turn import rms
from smartpbx_ari.sipcaller.caller import trim_silence

FRAME = 320  # 20 ms at 16 kHz
QUIET_RMS = 200.0  # a frame below this is silence (trim_silence's threshold)
MIN_PAUSE_S = 0.06  # Piper's comma pause is longer than this; a stop closure is not


def with_comma(text: str) -> str | None:
    """The question with a comma after its middle word; None if too short to hesitate in
    or if it has a comma already (its pause is the sentence's own)."""
    words = text.rstrip("?.! ").split()
    if len(words) < 4 or "," in text:
        return None
    middle = len(words) // 2
    return " ".join(words[:middle]) + ", " + " ".join(words[middle:]) + "?"


def pause_at(pcm: np.ndarray) -> tuple[int, int] | None:
    """The longest run of quiet frames inside the speech (start, end in samples)."""
    frames = len(pcm) // FRAME
    quiet = [rms(pcm[i * FRAME:(i + 1) * FRAME]) < QUIET_RMS for i in range(frames)]
    best: tuple[int, int] | None = None
    start = None
    for i, still in enumerate([*quiet, False]):
        if still and start is None:
            start = i
        elif not still and start is not None:
            if start > 0 and i < frames and (best is None or i - start > best[1] - best[0]):
                best = (start, i)
            start = None
    if best is None or (best[1] - best[0]) * FRAME < MIN_PAUSE_S * 16000:
        return None
    return best[0] * FRAME, best[1] * FRAME


def stretched(pcm: np.ndarray, pause: tuple[int, int], seconds: float) -> np.ndarray:
    return np.concatenate([pcm[:pause[0]], np.zeros(round(seconds * 16000), np.int16),
                           pcm[pause[1]:]])


async def run(args: argparse.Namespace) -> dict[str, Any]:
    questions = [(q, text) for q in load_questions(SETS[args.set], 0)
                 if q.expected and (text := with_comma(q.text))][: args.limit]
    lengths = [float(p) for p in args.pauses.split(",")]
    settings, agent, stt, turn_model = ears()
    # kept on disk, as bench_hearing's: the same audio in every run
    tts = TextToSpeech(settings.tts, 16000,
                       SpeechCache(settings.cache_dir / "bench-speech", 2**30))
    clips: list[tuple[Question, np.ndarray, tuple[int, int]]] = []
    no_pause = 0
    for q, text in questions:
        pcm = trim_silence(await tts.synthesize(text, VOICES["neural"]))
        pause = pause_at(pcm)
        if pause is None:
            no_pause += 1
            continue
        clips.append((q, pcm, pause))
    tts.close()
    rows = []
    n = 0
    for c in args.channels.split(","):
        for seconds in lengths:
            tally = Counter(dict.fromkeys(
                ("questions", "cut_off", "ended_in_pause", "replied_to_half", "resumed",
                 "unheard", "right", "unsure"),
                0))
            cut: list[list[str]] = []
            ended_at: list[float] = []
            for q, pcm, pause in clips:
                rng = np.random.default_rng(n)
                channel = CHANNELS[c]
                clip = packets(shape(stretched(pcm, pause, seconds), channel, rng),
                               channel, rng)
                work: Counter[str] = Counter()
                ends: list[float] = []  # the pause each TurnEnded came after
                session, n = f"p{n}", n + 1
                heard, reply = await hear_offline(clip, channel, settings, stt, agent,
                                                  session, turn_model, ends, work)
                tally["questions"] += 1
                tally["cut_off"] += len(heard) > 1
                tally["resumed"] += work["TurnResumed"] > 0
                if len(ends) > 1:  # ended inside the hesitation: the first end says when
                    tally["ended_in_pause"] += 1
                    tally["replied_to_half"] += not work["held"]
                    ended_at.append(ends[0])
                tally["unheard"] += not heard
                # its whole turn's reply waited for the pause to reach unsure_silence_ms
                tally["unsure"] += len(heard) == 1 and reply.unsure
                tally["right"] += len(heard) == 1 and judge(q, reply, agent, session)
                if len(heard) > 1:
                    cut.append(heard)
            rows.append({"channel": c, "pause_s": seconds, **tally, "cut": cut[:5],
                         "ended_at_ms": sorted(round(e * 1000) for e in ended_at)})
            print(f"\r{c} {seconds} s: {dict(tally)}", file=sys.stderr)
    live = await play(args, settings, agent, stt, clips, lengths) if args.play else []
    stt.close()
    return {"set": args.set, "questions": len(clips), "no_pause_found": no_pause,
            "rows": rows, "live": live}


async def play(args: argparse.Namespace, settings: Settings, agent: AIAgentService,
               stt: SpeechToText, clips: list[tuple[Question, np.ndarray, tuple[int, int]]],
               lengths: list[float]) -> list[dict[str, Any]]:
    """The same stretched clips played into real calls through Asterisk: per channel
    and pause, the questions answered right (their last reply), split (answered in
    pieces), and those whose head was answered before the caller went on (its reply
    begun, then stopped: the whole question answered next)."""
    audio = {(f"{s}", q.text): stretched(pcm, pause, s)
             for s in lengths for q, pcm, pause in clips}
    jobs = [(f"{s}", c, q) for c in args.channels.split(",") for s in lengths
            for q, _, _ in clips]
    live: dict[str, Tally] = defaultdict(Tally)
    calls: list[list[Any]] = []
    await play_all(args, settings, agent, stt, jobs, audio, live, calls)
    rows = []
    for key, tally in live.items():
        seconds, c = key.split()
        mine = [call for call in calls if call[0] == seconds and call[1] == c]
        rows.append({"channel": c, "pause_s": float(seconds), **tally.summary(),
                     "head_answered": sum(call[6] > 0 for call in mine),
                     "heads": [[call[2], call[4]] for call in mine if call[6]][:5],
                     "cut": [[call[2], call[4]] for call in mine if len(call[4]) > 1][:5]})
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--set", choices=sorted(SETS), default="validation")
    parser.add_argument("--limit", type=int, default=40,
                        help="in-domain questions of at least 4 words")
    parser.add_argument("--pauses", default="0.3,0.5,0.7,1.0", help="seconds")
    parser.add_argument("--channels", default="g722,ulaw")
    parser.add_argument("--play", action="store_true", help="also through real calls")
    parser.add_argument("--calls", type=int, default=1,
                        help="live calls at once (each one's timing is what is measured)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    unknown = set(args.channels.split(",")) - set(CHANNELS)
    if unknown:
        parser.error(f"unknown {sorted(unknown)}; choose from {', '.join(CHANNELS)}")
    result = asyncio.run(run(args))
    if args.json:
        print(json.dumps(result))
        return 0
    print(f"set: {result['set']}: {result['questions']} questions with a pause "
          f"({result['no_pause_found']} rendered with none found)")
    print(f"{'channel':<11} {'pause':>6} {'cut off':>8} {'ended in it':>12} "
          f"{'replied to half':>16} {'resumed':>8} {'unheard':>8} {'right':>6} "
          f"{'unsure':>7}")
    for row in result["rows"]:
        print(f"{row['channel']:<11} {row['pause_s']:>5.1f}s {row['cut_off']:>8} "
              f"{row['ended_in_pause']:>12} {row['replied_to_half']:>16} "
              f"{row['resumed']:>8} {row['unheard']:>8} "
              f"{row['right']:>6} {row['unsure']:>7}  (of {row['questions']}; ended after "
              f"{statistics.median(row['ended_at_ms'] or [0]):.0f} ms of it, median)")
        for heard in row["cut"]:
            print(f"    cut: {' | '.join(heard)}")
    if result["live"]:
        print(f"live (--play, {args.calls} call(s) at once):")
        print(f"{'channel':<11} {'pause':>6} {'right':>6} {'split':>6} {'unheard':>8} "
              f"{'head answered':>14} {'WER':>6}")
    for row in result["live"]:
        print(f"{row['channel']:<11} {row['pause_s']:>5.1f}s "
              f"{round(row['accuracy'] * row['n']):>6} {row['split']:>6} "
              f"{row['unheard']:>8} {row['head_answered']:>14} {row['wer']:>6.3f}"
              f"  (of {row['n']})")
        for text, heard in row["heads"]:
            print(f"    head answered: {text} -> {' | '.join(heard)}")
        for text, heard in row["cut"]:
            print(f"    cut: {text} -> {' | '.join(heard)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
