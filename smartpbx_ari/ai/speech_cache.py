"""Synthesized speech kept by (text, voice, rate): in memory, and on disk across starts.

A stored answer, the greeting, the holding phrases and the apology are synthesized once
(on import and at start) and then cost a lookup during a call. Memory holds the most
recently used phrases up to a byte budget; the disk keeps them all up to ``max_bytes``
(the oldest files go first). Thread-safe: synthesis workers and the event loop share it.
"""

from __future__ import annotations

import collections
import hashlib
import logging
import os
import threading
from pathlib import Path

import numpy as np
import numpy.typing as npt

log = logging.getLogger(__name__)
Pcm = npt.NDArray[np.int16]
MEMORY_SHARE = 4  # memory holds up to a quarter of the disk budget
RENDERING = 2  # bump when synthesis changes what a phrase sounds like: old files go unused


def cache_key(text: str, voice: str, rate: int) -> str:
    return hashlib.sha256(f"{RENDERING}\n{voice}\n{rate}\n{text}".encode()).hexdigest()


class SpeechCache:
    def __init__(self, directory: Path | None, max_bytes: int) -> None:
        self.directory = directory
        self.max_bytes = max_bytes
        self._memory: collections.OrderedDict[str, Pcm] = collections.OrderedDict()
        self._memory_bytes = 0
        self._lock = threading.Lock()
        self._disk_bytes: int | None = None  # counted once, then kept up to date
        self.hits = self.misses = 0

    def get(self, key: str, memory_only: bool = False) -> Pcm | None:
        with self._lock:
            pcm = self._memory.get(key)
            if pcm is not None:
                self._memory.move_to_end(key)
                self.hits += 1
                return pcm
        if memory_only:
            return None
        pcm = self._read(key)
        with self._lock:
            if pcm is None:
                self.misses += 1
            else:
                self.hits += 1
                self._remember(key, pcm)
        return pcm

    def put(self, key: str, pcm: Pcm) -> None:
        pcm = np.ascontiguousarray(pcm, dtype=np.int16)
        pcm.setflags(write=False)
        with self._lock:
            self._remember(key, pcm)
        self._write(key, pcm)

    def _remember(self, key: str, pcm: Pcm) -> None:
        if key in self._memory:
            return
        self._memory[key] = pcm
        self._memory_bytes += pcm.nbytes
        while self._memory_bytes > self.max_bytes // MEMORY_SHARE and len(self._memory) > 1:
            _, old = self._memory.popitem(last=False)
            self._memory_bytes -= old.nbytes

    def _path(self, key: str) -> Path | None:
        return None if self.directory is None else self.directory / key[:2] / f"{key}.npy"

    def _read(self, key: str) -> Pcm | None:
        path = self._path(key)
        if path is None or not path.is_file():
            return None
        try:
            pcm: Pcm = np.load(path, allow_pickle=False)
        except (OSError, ValueError) as err:  # a torn or foreign file: synthesize again
            log.warning("speech cache: %s unreadable (%s); dropped", path.name, err)
            path.unlink(missing_ok=True)
            return None
        if pcm.dtype != np.int16 or pcm.ndim != 1:
            path.unlink(missing_ok=True)
            return None
        pcm.setflags(write=False)
        return pcm

    def _write(self, key: str, pcm: Pcm) -> None:
        path = self._path(key)
        if path is None:
            return
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(f".{os.getpid()}.{threading.get_ident()}.tmp")
            with tmp.open("wb") as f:
                np.save(f, pcm, allow_pickle=False)
            tmp.replace(path)  # readers never see half a file
            size = path.stat().st_size
        except OSError as err:
            log.warning("speech cache: cannot write %s (%s)", path, err)
            return
        with self._lock:
            if self._disk_bytes is None:
                self._disk_bytes = sum(f.stat().st_size for f in self._files())
            else:
                self._disk_bytes += size
            if self._disk_bytes > self.max_bytes:
                self._disk_bytes = self._trim()

    def _files(self) -> list[Path]:
        assert self.directory is not None
        return list(self.directory.glob("*/*.npy"))

    def _trim(self) -> int:
        """Bring the disk under ``max_bytes``, the least recently written first; the total."""
        files = sorted((p.stat().st_mtime, p.stat().st_size, p) for p in self._files())
        total = sum(size for _, size, _ in files)
        for _, size, path in files:
            if total <= self.max_bytes:
                break
            path.unlink(missing_ok=True)
            total -= size
        return total
