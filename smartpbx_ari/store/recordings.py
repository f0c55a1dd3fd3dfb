"""Call recordings on disk: ``<data dir>/recordings/<call id>.wav``, written whole (a
temporary file renamed into place; a later part of the call, its time in the operators'
queue, appended the same way), read by the API, deleted with their call by the purge,
and past the retention even when their call's record is missing (blocking: run in a
thread from async code)."""

from __future__ import annotations

import contextlib
import io
import os
import re
import wave
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


def append_recording(directory: Path, call_id: str, audio: bytes) -> Path:
    """Append a later part of the call (a WAV of the same format) to its recording, or
    store it as the recording when there is none; ValueError when the formats differ."""
    path = recording_path(directory, call_id)
    if not path.is_file():
        return save_recording(directory, call_id, audio)
    with wave.open(str(path), "rb") as first, wave.open(io.BytesIO(audio), "rb") as later:
        shape = (first.getnchannels(), first.getsampwidth(), first.getframerate())
        if (later.getnchannels(), later.getsampwidth(), later.getframerate()) != shape:
            raise ValueError(f"recording: {call_id}'s later part is not in its format {shape}")
        frames = first.readframes(first.getnframes()) + later.readframes(later.getnframes())
    out = io.BytesIO()
    with wave.open(out, "wb") as whole:
        whole.setnchannels(shape[0])
        whole.setsampwidth(shape[1])
        whole.setframerate(shape[2])
        whole.writeframes(frames)
    return save_recording(directory, call_id, out.getvalue())


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
