"""The synthetic caller: dials through the real Asterisk, speaks, listens, measures.

Latency is measured from the caller's side: from the instant the last frame of its
speech leaves (trailing silence trimmed, so the agent gets no head start) to the arrival
of the first answer frame louder than ``VOICE_RMS``.
"""

from __future__ import annotations

import asyncio
import time
import wave
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np
import numpy.typing as npt

from smartpbx_ari.ai.speech_cache import SpeechCache
from smartpbx_ari.ai.stt import SpeechToText
from smartpbx_ari.ai.tts import TextToSpeech
from smartpbx_ari.ai.voice import Voice
from smartpbx_ari.config import Settings
from smartpbx_ari.media.codecs import Pcm
from smartpbx_ari.media.resample import resample
from smartpbx_ari.media.turn import rms
from smartpbx_ari.sipcaller.ua import SipCall

VOICE_RMS = 300.0  # a 20 ms frame louder than this is speech, not line noise
QUIET_S = 0.8  # this much silence after speech ends an answer
POLL_S = 0.005
CACHE_BYTES = 64 * 2**20  # the caller's phrases, in memory: benchmarks ask them again
CALLER_STT_S = 30.0  # the deadline of a decode of what the caller heard
NEURAL = Voice("piper")  # a human-like caller by default; espeak-ng is the hard accent


@dataclass
class Turn:
    said: str
    heard: str
    latency_ms: int | None  # None: no answer within the timeout


@dataclass
class CallReport:
    greeting_ms: int | None
    greeting: str = ""
    turns: list[Turn] = field(default_factory=list)
    call_ms: int = 0

    def as_json(self) -> dict[str, object]:
        data = asdict(self)
        data.pop("greeting")
        return data


@dataclass(frozen=True)
class Dial:
    exten: str
    server: tuple[str, int]
    user: str
    password: str = field(repr=False)
    codec: str = "g722"


class Line:
    """One answered call as the caller experiences it."""

    def __init__(self, call: SipCall, tts: TextToSpeech, stt: SpeechToText | None,
                 voice: Voice = NEURAL) -> None:
        self.call, self.tts, self.stt, self.voice = call, tts, stt, voice
        self.answered_at = time.monotonic()
        self._seen = 0  # frames of rtp.received already scanned for voice

    @property
    def rate(self) -> int:
        return self.call.rtp.codec.sample_rate

    async def speech(self, text: str, voice: Voice | None = None) -> Pcm:
        """``text`` synthesized at the call's rate, leading and trailing silence trimmed."""
        pcm = trim_silence(await self.tts.synthesize(text, voice or self.voice))
        return resample(pcm, 16000, self.rate) if self.rate != 16000 else pcm

    async def say(self, text: str, voice: Voice | None = None) -> float:
        """Speak ``text``; return the monotonic time its last voiced frame left."""
        await self.play(await self.speech(text, voice))
        return time.monotonic()

    async def play(self, pcm: Pcm) -> None:
        await self.call.rtp.play(pcm)

    async def wait_voice(self, after: float, timeout: float) -> float | None:
        """Arrival time of the first voiced frame after ``after``, or None on timeout."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and not self.call.ended.is_set():
            frames = self.call.rtp.received
            for arrival, pcm in frames[self._seen :]:
                if arrival >= after and rms(pcm) >= VOICE_RMS:
                    return arrival
            self._seen = max(0, len(frames) - 1)
            await asyncio.sleep(POLL_S)
        return None

    async def wait_quiet(self, since: float, quiet_s: float = QUIET_S,
                         timeout: float = 60.0) -> float:
        """Time of the last voiced frame once ``quiet_s`` of silence followed it."""
        deadline = time.monotonic() + timeout
        last = since
        while time.monotonic() < deadline and not self.call.ended.is_set():
            for arrival, pcm in self.call.rtp.received[-60:]:
                if arrival > last and rms(pcm) >= VOICE_RMS:
                    last = arrival
            if time.monotonic() - last >= quiet_s:
                break
            await asyncio.sleep(0.02)
        self._seen = len(self.call.rtp.received)
        return last

    async def transcribe(self, since: float, until: float) -> str:
        if self.stt is None:
            return ""
        pcm = self.call.rtp.recorded_pcm(since - 0.05, until + 0.05)
        pcm16k = resample(pcm, self.rate, 16000) if self.rate != 16000 else pcm
        return (await self.stt.transcribe(pcm16k)).text

    async def listen(self, after: float, timeout: float) -> tuple[float | None, str]:
        """Wait for an answer after ``after``; return (first voice time, what it said)."""
        start = await self.wait_voice(after, timeout)
        if start is None:
            return None, ""
        end = await self.wait_quiet(start)
        return start, await self.transcribe(start, end)


def caller_ears(settings: Settings) -> SpeechToText:
    """Blocking (loads the model): the ears of a measuring tool. What it heard is decoded
    however long that takes; the controller's ``stt.timeout_s`` is a fault detector for
    callers' turns, not for this."""
    return SpeechToText(replace(settings.stt, timeout_s=CALLER_STT_S), settings.cache_dir)


class SyntheticCaller:
    def __init__(self, settings: Settings, stt: SpeechToText | None = None,
                 transcribe: bool = True, voice: Voice = NEURAL) -> None:
        self.settings = settings
        self.voice = voice
        self.tts = TextToSpeech(settings.tts, 16000, SpeechCache(None, CACHE_BYTES))
        self._stt = stt
        self._transcribe = transcribe

    def stt(self) -> SpeechToText | None:
        if self._transcribe and self._stt is None:
            self._stt = caller_ears(self.settings)
        return self._stt

    @asynccontextmanager
    async def dial(self, dial: Dial, answer_timeout: float = 15.0) -> AsyncIterator[Line]:
        stt = await asyncio.get_running_loop().run_in_executor(None, self.stt)
        async with SipCall.dial(dial.server, dial.user, dial.password, dial.exten,
                                answer_timeout=answer_timeout, codec=dial.codec) as call:
            yield Line(call, self.tts, stt, self.voice)

    async def conversation(self, dial: Dial, says: list[str], pause_s: float = 0.5,
                           answer_timeout: float = 15.0, record: Path | None = None,
                           play: Path | None = None) -> CallReport:
        started = time.monotonic()
        async with self.dial(dial, answer_timeout) as line:
            first, greeting = await line.listen(line.answered_at, answer_timeout)
            report = CallReport(_ms(first, line.answered_at), greeting)
            if play is not None:
                await line.play(read_wav(play, line.rate))
            for text in says:
                spoken = await line.say(text)
                heard_at, heard = await line.listen(spoken, answer_timeout)
                report.turns.append(Turn(text, heard, _ms(heard_at, spoken)))
                await asyncio.sleep(pause_s)
            if record is not None:
                write_wav(record, line.call.rtp.recorded_pcm(), line.rate)
        report.call_ms = round((time.monotonic() - started) * 1000)
        return report


def _ms(at: float | None, since: float) -> int | None:
    return None if at is None else round((at - since) * 1000)


def voiced_frames(pcm: Pcm, threshold: float, frame: int) -> npt.NDArray[np.intp]:
    """The numbers of the whole ``frame``-sample frames of ``pcm`` at least ``threshold``
    loud (RMS)."""
    n = len(pcm) // frame
    levels = np.sqrt(np.mean(pcm[: n * frame].reshape(n, frame).astype(np.float64) ** 2, 1))
    return np.flatnonzero(levels >= threshold)


def trim_silence(pcm: Pcm, threshold: float = 200.0, frame: int = 160) -> Pcm:
    """Cut leading and trailing frames quieter than ``threshold`` (voices pad both)."""
    if len(pcm) < frame:
        return pcm
    voiced = voiced_frames(pcm, threshold, frame)
    if voiced.size == 0:
        return pcm[:0]
    return pcm[voiced[0] * frame : (voiced[-1] + 1) * frame]


def read_wav(path: Path, rate: int) -> Pcm:
    with wave.open(str(path), "rb") as w:
        if w.getsampwidth() != 2 or w.getnchannels() != 1:
            raise ValueError(f"{path}: need a mono 16-bit WAV")
        pcm = np.frombuffer(w.readframes(w.getnframes()), "<i2").astype(np.int16)
        src = w.getframerate()
    return resample(pcm, src, rate) if src != rate else pcm


def write_wav(path: Path, pcm: Pcm, rate: int) -> None:
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(pcm.astype("<i2").tobytes())
