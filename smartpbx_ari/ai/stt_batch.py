"""Several utterances decoded by one Whisper model in one CTranslate2 call: their log-mel
features stacked into one encoder batch and one ``generate`` (greedy or beam), as
faster-whisper decodes one of them alone (the same prompt, suppressed tokens, no-speech
skip and scores), so a batch hears each utterance as a lone decode would.

Each utterance is one window (at most 30 s; longer ones are the caller's to decode alone).
A shorter window (``stt.window_s``) costs the encoder less: attention over the padding is
most of a short question's decode. Blocking: run it on the STT's worker thread.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

WINDOW_S = 30.0  # one Whisper window
SAMPLE_RATE = 16000
# Tokens a second of speech can take: fast speech is about 4 words a second, English about
# 1.3 tokens a word. A decode that runs past twice that is looping ("the the the ..."):
# stopped there, it costs no more than a long answer's worth of tokens, not Whisper's 448.
TOKENS_PER_S = 10
TOKENS_MIN = 24
MAX_LENGTH = 448  # Whisper's text context: the prompt and the text together
NO_SPEECH = 0.6  # faster-whisper's defaults: skipped as silence when more likely
LOG_PROB = -1.0  # silence than speech and decoded no better than this


@dataclass(frozen=True)
class Decoded:
    text: str
    avg_logprob: float  # 0.0 when skipped as silence (no text)
    no_speech_prob: float
    compression_ratio: float
    skipped: bool
    cut: bool = False  # stopped at max_tokens, not by Whisper: a loop, most likely


def decode_batch(model: Any, audios: list[npt.NDArray[np.float32]], language: str,
                 prompt: str, beam_size: int, window_s: float = WINDOW_S) -> list[Decoded]:
    """Decode ``audios`` (16 kHz float, each at most ``window_s``) in one batch, each
    padded to ``window_s`` (Whisper's own 30 s; the encoder's cost grows with it), in at
    most :func:`max_tokens` of the longest."""
    tokenizer, results, limit = _generate(model, audios, language, prompt, beam_size,
                                          window_s)
    return [_decoded(tokenizer, result, limit) for result in results]


def readings(model: Any, audio: npt.NDArray[np.float32], language: str, n: int,
             window_s: float = WINDOW_S) -> list[Decoded]:
    """The ``n`` best readings of one utterance (a beam of ``n``), most likely first."""
    tokenizer, results, limit = _generate(model, [audio], language, "", n, window_s, n)
    return [_decoded(tokenizer, results[0], limit, k)
            for k in range(len(results[0].sequences_ids))]


def _generate(model: Any, audios: list[npt.NDArray[np.float32]], language: str,
              prompt: str, beam_size: int, window_s: float, hypotheses: int = 1
              ) -> tuple[Any, list[Any], int]:
    """(tokenizer, CTranslate2's results, the most tokens a result may have)."""
    from faster_whisper.audio import pad_or_trim  # heavy (PyAV): loaded with the model
    from faster_whisper.tokenizer import Tokenizer
    from faster_whisper.transcribe import get_suppressed_tokens

    tokenizer = Tokenizer(model.hf_tokenizer, model.model.is_multilingual,
                          task="transcribe", language=language)
    extract = model.feature_extractor
    # faster-whisper drops the extractor's last frame, then pads the window to 30 s
    frames = round(window_s * 100)  # 10 ms a frame
    features = np.stack([pad_or_trim(extract(audio)[:, :-1], frames) for audio in audios])
    encoded = model.encode(features)
    previous = tokenizer.encode(" " + prompt.strip()) if prompt else []
    start = model.get_prompt(tokenizer, previous, without_timestamps=True)
    longest_s = max(len(audio) for audio in audios) / SAMPLE_RATE
    max_length = min(MAX_LENGTH, len(start) + max_tokens(longest_s))
    results = model.model.generate(
        encoded, [list(start) for _ in audios], beam_size=beam_size, patience=1.0,
        length_penalty=1.0, max_length=max_length, suppress_blank=True,
        suppress_tokens=get_suppressed_tokens(tokenizer, [-1]), return_scores=True,
        return_no_speech_prob=True, num_hypotheses=hypotheses)
    return tokenizer, results, max_length - len(start)


def max_tokens(audio_s: float) -> int:
    """The most tokens ``audio_s`` seconds of speech can be (the prompt not counted)."""
    return TOKENS_MIN + round(TOKENS_PER_S * audio_s)


def _decoded(tokenizer: Any, result: Any, limit: int, k: int = 0) -> Decoded:
    """The ``k``-th hypothesis of a result."""
    tokens = result.sequences_ids[k]
    avg_logprob = result.scores[k] * len(tokens) / (len(tokens) + 1)
    if result.no_speech_prob > NO_SPEECH and avg_logprob <= LOG_PROB:
        return Decoded("", 0.0, result.no_speech_prob, 0.0, skipped=True)
    text = tokenizer.decode(tokens).strip()
    return Decoded(text, avg_logprob, result.no_speech_prob, _compression_ratio(text),
                   skipped=False, cut=len(tokens) >= limit)


def _compression_ratio(text: str) -> float:
    """How well the text compresses (faster-whisper's loop check)."""
    data = text.encode("utf-8")
    return len(data) / len(zlib.compress(data))
