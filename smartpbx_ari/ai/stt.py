"""Speech to text with faster-whisper, off the event loop in a bounded worker pool; the
model of Korean calls (multilingual) beside the default one (tiny.en).

Utterances waiting at the same moment (callers who finished speaking together) are
decoded as one batch (ai/stt_batch.py, at most ``stt.batch_max``): whoever gets a worker
takes every waiting utterance of its language with it, and the others find theirs done.
Nothing waits for a batch to fill: a lone utterance is decoded at once, alone.
A decode past ``stt.timeout_s`` (a batch of n: n times that) fails its utterances
(:class:`SttError`, timed out) and is abandoned (``ai/deadline.py``): a hung model does
not wedge the turns after it.

``transcribe()`` of faster-whisper returns a lazy generator: it is consumed *inside* the
worker (``list(...)``), or decoding would silently run on the event loop.
"""

from __future__ import annotations

import asyncio
import logging
import math
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from smartpbx_ari.ai import faults, stt_models
from smartpbx_ari.ai.clarify import is_reply, is_short
from smartpbx_ari.ai.deadline import Deadline
from smartpbx_ari.ai.language import base_language
from smartpbx_ari.ai.stt_batch import SAMPLE_RATE, WINDOW_S, Decoded, decode_batch, readings
from smartpbx_ari.config import Settings, SttSettings
from smartpbx_ari.errors import StageError

log = logging.getLogger(__name__)
# Whisper's own checks of a decode: a segment more likely silence than speech, one decoded
# unsurely (mean log-probability), text so repetitive it compresses this well (a loop)
NO_SPEECH = 0.6
UNSURE = -1.0
_PIECES = re.compile(r"[^\W\d_]-(?:[^\W\d_]|\s|$|[?.!,])")  # "re-fin", "re-f-"
LOOPING = 2.4
_WORDS = re.compile(r"[\w']+")


class SttError(StageError):
    stage = "stt"
    code = "stt-failed"


@dataclass(frozen=True)
class Transcript:
    text: str
    confidence: float  # mean token probability, 0..1
    audio_s: float
    decode_s: float
    started: float | None = None  # time.monotonic() as decoding began; None: not decoded
    # the utterance decoded (16 kHz), to hear it again (:meth:`SpeechToText.readings`)
    audio: npt.NDArray[np.int16] | None = field(default=None, repr=False, compare=False)


@dataclass(eq=False)
class _Job:
    pcm16k: npt.NDArray[np.int16]
    language: str
    result: asyncio.Future[Transcript]
    context: str = ""


class SpeechToText:
    """One Whisper model and its worker pool; ``bias`` (set by the owner) gives the words
    to prime the decoder with for a call's language (the knowledge base's vocabulary)."""

    def __init__(self, settings: SttSettings, cache_dir: Path | None = None,
                 model: str | None = None, key: str = "stt.model") -> None:
        from faster_whisper import WhisperModel

        self.settings = settings
        self.name = settings.model if model is None else model
        try:
            path = stt_models.resolve(self.name, cache_dir, key)
        except stt_models.ModelFileError as err:
            raise SttError(str(err)) from err
        try:
            self._model = WhisperModel(path, device="cpu", compute_type=settings.compute_type,
                                       cpu_threads=settings.cpu_threads, num_workers=1,
                                       local_files_only=True)
        except Exception as err:  # ctranslate2 raises plain RuntimeError for bad files
            raise SttError(f"{key}: cannot load {path}: {err}") from err
        self.multilingual = bool(self._model.model.is_multilingual)
        self.bias: Callable[[str], str] | None = None
        self._decoding = Deadline("stt", settings.workers, settings.timeout_s, SttError)
        self._slots: tuple[asyncio.AbstractEventLoop, asyncio.Semaphore] | None = None
        self._waiting: list[_Job] = []
        self._active = 0  # utterances asked for and not yet answered
        self.batches: dict[int, int] = {}  # batch size -> how many decoded (for /metrics)
        self.primed_again = 0  # decodes redone primed, heard unsurely (stt.prompt_below)
        self.asked_again = 0  # short replies redone knowing the question (their context)
        self.widened = 0  # short-window decodes redone in 30 s (they looped, or in pieces)
        self.heard_again = 0  # utterances decoded again for other readings (readings())

    def close(self) -> None:
        self._decoding.close()

    async def transcribe(self, pcm16k: npt.NDArray[np.int16], language: str = "",
                         context: str = "") -> Transcript:
        """Decode one utterance; raises :class:`SttError` (the caller turns it into speech).
        ``context``: what we just asked the caller (a clarifying question): a short
        utterance heard as no reply to it is decoded again knowing it
        (:func:`answer_asked`). espeak-ng's "No." over mu-law, heard plain as "So", is
        then heard as "No."."""
        loop = asyncio.get_running_loop()
        if self._slots is None or self._slots[0] is not loop:  # a semaphore binds to its loop
            self._slots = (loop, asyncio.Semaphore(self.settings.workers))
        job = _Job(pcm16k, self.language(language), loop.create_future(), context)
        self._waiting.append(job)
        self._active += 1
        try:
            async with self._slots[1]:
                if job in self._waiting:  # else taken into another's batch meanwhile
                    await self._decode_waiting(job)
            return await job.result
        finally:
            self._active -= 1
            if job in self._waiting:  # cancelled before its turn
                self._waiting.remove(job)

    async def readings(self, transcript: Transcript, language: str = "") -> list[str]:
        """Other readings of a decoded utterance (``stt.readings`` best of a beam search,
        most likely first; not its own text, none looping or taken for silence); none
        when off, when the utterance is not one window, or while other utterances are
        being decoded: a turn's first hearing goes before another's second."""
        pcm, n = transcript.audio, self.settings.readings
        if pcm is None or n < 2 or self.busy or len(pcm) > WINDOW_S * SAMPLE_RATE:
            return []
        self.heard_again += 1
        window = self._window(pcm)
        self._active += 1
        try:
            decoded = await self._decoding.run(
                readings, self._model, pcm.astype(np.float32) / 32768.0,
                self.language(language), n, window, timeout_s=self.settings.timeout_s)
        finally:
            self._active -= 1
        seen = {spelled(transcript.text)}
        out = []
        for one in decoded:
            key = spelled(one.text)
            if key and not one.skipped and not _looping(one) and key not in seen:
                seen.add(key)
                out.append(one.text)
        return out

    @property
    def busy(self) -> bool:
        """Decoding, or asked to: a speculative decode now would wait or slow another."""
        return self._active > 0

    async def _decode_waiting(self, first: _Job) -> None:
        """Decode ``first`` with the utterances of its language (and context) waiting now
        (a batch)."""
        batch = [first] + [j for j in self._waiting if j is not first and
                           (j.language, j.context) == (first.language, first.context)]
        batch = batch[:self.settings.batch_max]
        for job in batch:
            self._waiting.remove(job)
        try:
            done = await self._decoding.run(  # a batch of n: n decodes' time
                self._decode_many, [j.pcm16k for j in batch], first.language, first.context,
                timeout_s=self.settings.timeout_s * len(batch))
        except Exception as err:
            failed = err if isinstance(err, SttError) else SttError(
                f"transcription failed: {err}")
            for job in batch:
                if not job.result.done():
                    job.result.set_exception(failed)
            return
        self.batches[len(batch)] = self.batches.get(len(batch), 0) + 1
        for job, transcript in zip(batch, done, strict=True):
            if not job.result.done():
                job.result.set_result(transcript)

    def tokens(self, text: str) -> int:
        """How many tokens of this model's vocabulary ``text`` is, as a prompt."""
        return len(self._model.hf_tokenizer.encode(" " + text.strip(),
                                                   add_special_tokens=False).ids)

    def language(self, call_language: str = "") -> str:
        """What Whisper is told: the call's base language (``ko-KR`` -> ``ko``), else
        ``stt.language``; always ``en`` for an English-only model."""
        if not self.multilingual:
            return "en"
        return base_language(call_language) or self.settings.language

    def _decode_many(self, pcms: list[npt.NDArray[np.int16]], language: str,
                     context: str = "") -> list[Transcript]:
        """Decode these utterances, those that fit in ``stt.window_s`` in one batch with
        that window, the others in one with Whisper's own 30 s (longer: in 30 s pieces,
        alone, as faster-whisper does); each redone without the knowledge base's prompt
        where it may have spoken instead of the caller; a short reply to the ``context``
        (a clarifying question) that is no reply redone knowing it."""
        faults.point("stt")
        groups: dict[float, list[int]] = {}
        for i, pcm in enumerate(pcms):
            window = self._window(pcm)
            groups.setdefault(window if len(pcm) <= WINDOW_S * SAMPLE_RATE else 0.0,
                              []).append(i)
        out: list[Transcript | None] = [None] * len(pcms)
        for window, indexes in groups.items():
            for i, transcript in zip(indexes, self._decode_group(
                    [pcms[i] for i in indexes], language, window, context), strict=True):
                out[i] = transcript
        return [t for t in out if t is not None]

    def _window(self, pcm16k: npt.NDArray[np.int16]) -> float:
        """The window an utterance is decoded in: ``stt.window_s`` if that is at least half
        silence, else Whisper's own 30 s."""
        short = self.settings.window_s * SAMPLE_RATE / 2
        return WINDOW_S if len(pcm16k) > short else self.settings.window_s

    def _decode_group(self, pcms: list[npt.NDArray[np.int16]], language: str,
                      window: float, context: str = "") -> list[Transcript]:
        if not window:  # longer than one window: a question, not a reply
            return [self._decode(pcm, language) for pcm in pcms]
        started = time.monotonic()
        audios = [pcm.astype(np.float32) / 32768.0 for pcm in pcms]
        prompt = self.bias(language) if self.bias else ""
        unsure = self.settings.prompt_below  # > 0: primed only where heard unsurely
        primed = prompt if not unsure else ""
        decoded = decode_batch(self._model, audios, language, primed,
                               self.settings.beam_size, window)
        # the prompt may have spoken, not the caller: on silence or noise a primed decoder
        # loops ("$1,000, $1,000, ...") where a plain one says nothing; and a short window
        # loops on some voices where Whisper's own 30 s does not, or spells a word it could
        # not place in pieces ("How do I get a re-fin?"). Such a decode is redone as
        # faster-whisper would (no prompt, 30 s) unless Whisper's own checks pass it.
        doubt = _doubtful if primed else _narrow if window < WINDOW_S else None
        doubted = [] if doubt is None else [
            k for k, one in enumerate(decoded) if not one.skipped and doubt(one)]
        if doubted:
            self.widened += 0 if primed else len(doubted)
            plain = decode_batch(self._model, [audios[k] for k in doubted], language, "",
                                 self.settings.beam_size, WINDOW_S)
            for k, one in zip(doubted, plain, strict=True):
                decoded[k] = one
        if prompt and unsure:
            self.primed_again += prime_unsure(decoded, unsure, lambda ks: decode_batch(
                self._model, [audios[k] for k in ks], language, prompt,
                self.settings.beam_size, window))
        if context:
            self.asked_again += answer_asked(decoded, lambda ks: decode_batch(
                self._model, [audios[k] for k in ks], language, context,
                self.settings.beam_size, window))
        took = time.monotonic() - started
        return [Transcript(one.text, 0.0 if one.skipped else math.exp(one.avg_logprob),
                           len(pcm) / SAMPLE_RATE, took, started, pcm)
                for pcm, one in zip(pcms, decoded, strict=True)]

    def _decode(self, pcm16k: npt.NDArray[np.int16], language: str) -> Transcript:
        """One utterance longer than Whisper's window, as faster-whisper decodes it
        (primed only when ``stt.prompt_below`` is 0)."""
        started = time.monotonic()
        audio = pcm16k.astype(np.float32) / 32768.0
        prompt = self.bias(language) if self.bias and not self.settings.prompt_below else ""
        parts = self._segments(audio, language, prompt)
        if prompt and any(s.no_speech_prob > NO_SPEECH or s.avg_logprob < UNSURE
                          or s.compression_ratio > LOOPING for s in parts):
            parts = self._segments(audio, language, "")  # see _decode_group
        text = " ".join(s.text.strip() for s in parts).strip()
        logprobs = [s.avg_logprob for s in parts]
        confidence = math.exp(sum(logprobs) / len(logprobs)) if logprobs else 0.0
        return Transcript(text, confidence, len(pcm16k) / SAMPLE_RATE,
                          time.monotonic() - started, started)

    def _segments(self, audio: npt.NDArray[np.float32], language: str,
                  prompt: str) -> list[Any]:
        segments, _info = self._model.transcribe(
            audio, language=language, beam_size=self.settings.beam_size,
            initial_prompt=prompt or None,
            without_timestamps=True, condition_on_previous_text=False, vad_filter=False,
            temperature=0.0)
        return list(segments)  # consume the generator here, in the worker


def prime_unsure(decoded: list[Decoded], below: float,
                 primed: Callable[[list[int]], list[Decoded]]) -> int:
    """Replace in ``decoded`` what was heard less surely than ``below`` (mean token
    probability) by its decode primed with the knowledge base's words (``primed(indexes)``),
    where Whisper's own checks pass that and it is the surer of the two; how many were
    decoded again."""
    unsure = [k for k, one in enumerate(decoded)
              if not one.skipped and math.exp(one.avg_logprob) < below]
    if not unsure:
        return 0
    for k, one in zip(unsure, primed(unsure), strict=True):
        if not one.skipped and not _doubtful(one) and one.avg_logprob > decoded[k].avg_logprob:
            decoded[k] = one
    return len(unsure)


def answer_asked(decoded: list[Decoded], asked: Callable[[list[int]], list[Decoded]]) -> int:
    """Replace in ``decoded`` each short utterance that is not a reply to a clarifying
    question ("So", "leader", or no words) by its decode knowing the question
    (``asked(indexes)``: primed with it), where that is a reply ("No.", "Neither.") and
    Whisper's own checks pass it; how many were decoded again. Only so: primed always, the
    question also made Whisper write "Don't forget to subscribe to my channel." for a
    "Not really." it heard plain (``bench_replies.py``)."""
    short = [k for k, one in enumerate(decoded) if is_short(one.text) and not is_reply(one.text)]
    if not short:
        return 0
    for k, one in zip(short, asked(short), strict=True):
        if not one.skipped and not _doubtful(one) and is_reply(one.text):
            decoded[k] = one
    return len(short)


def spelled(text: str) -> str:
    """Its words alone: two readings that differ in case or punctuation are one."""
    return " ".join(_WORDS.findall(text.lower()))


def _doubtful(one: Decoded) -> bool:
    """Whisper's own checks fail a primed decode (see ``_decode_group``)."""
    return one.no_speech_prob > NO_SPEECH or one.avg_logprob < UNSURE or _looping(one)


def _narrow(one: Decoded) -> bool:
    """A short window's decode that Whisper's own 30 s should redo: it loops, or spells a
    word in hyphenated pieces. The short window mishears the last word of some short
    questions so: 4 of 60 Piper renderings of "How do I get a refund?" were heard as
    "re-fin", "re-finned", "re-fender" in 10 s, each right in 30 s (as were the other 56);
    1 of 240 decodes of the spoken validation set has a hyphen."""
    return _looping(one) or _PIECES.search(one.text) is not None


def _looping(one: Decoded) -> bool:
    """The decode repeats itself: its text compresses too well, or ran into max_tokens."""
    return one.compression_ratio > LOOPING or one.cut


def korean_ears(settings: Settings, default: SpeechToText) -> SpeechToText | None:
    """The model Korean calls are heard with (``stt.model_ko``, multilingual), or None,
    said once in the log: Korean calls then go to the operators."""
    name = settings.stt.model_ko
    if not name:
        log.warning("stt.model_ko is empty: Korean calls go to the operators")
        return None
    if name == default.name and default.multilingual:
        return default
    try:
        ears = SpeechToText(settings.stt, settings.cache_dir, name, "stt.model_ko")
    except SttError as err:
        log.error("%s; Korean calls go to the operators", err)
        return None
    if not ears.multilingual:
        ears.close()
        log.error("stt.model_ko: %s is English-only; Korean calls go to the operators", name)
        return None
    return ears
