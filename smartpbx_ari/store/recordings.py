"""Call recordings on disk: ``<data dir>/recordings/<call id>.wav``, written whole (a
temporary file renamed into place), read by the API, deleted with their call by the purge,
and past the retention even when their call's record is missing (blocking: run in a
thread from async code)."""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Iterable
from datetime import datetime
from pathlib import Path

from smartpbx_ari.config import Settings

SUFFIX = ".wav"
SAFE_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")


def recordings_dir(settings: Settings) -> Path:
    return settings.data_dir / "recordings"


def recording_path(directory: Path, call_id: str) -> Path:
    """Where the call's recording is; ValueError for an id that is not a plain name."""
    if not SAFE_ID.fullmatch(call_id) or ".." in call_id:
        raise ValueError(f"call_id: {call_id!r} is not a call id")
    return directory / f"{call_id}{SUFFIX}"


def save_recording(directory: Path, call_id: str, audio: bytes) -> Path:
    """Store the call's recording (replacing any), all or nothing."""
    path = recording_path(directory, call_id)
    directory.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".part")
    with partial.open("wb") as out:
        out.write(audio)
        out.flush()
        os.fsync(out.fileno())
    partial.replace(path)
    return path


def delete_recordings(directory: Path, call_ids: Iterable[str]) -> int:
    """Delete the recordings of these calls; returns how many there were."""
    deleted = 0
    for call_id in call_ids:
        with contextlib.suppress(FileNotFoundError, ValueError):
            recording_path(directory, call_id).unlink()
            deleted += 1
    return deleted


def delete_recordings_before(directory: Path, cutoff: datetime) -> int:
    """Delete recordings (and partial files) last written before ``cutoff``, whatever
    became of their call's record; returns how many."""
    if not directory.is_dir():
        return 0
    deleted = 0
    for path in directory.iterdir():
        if path.suffix in (SUFFIX, ".part") and path.stat().st_mtime < cutoff.timestamp():
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
                deleted += 1
    return deleted
