"""Voice specs (``--voice``), the speech cache, and Piper's phoneme ids: pure parts."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from smartpbx_ari.ai.piper import phoneme_ids
from smartpbx_ari.ai.speech_cache import SpeechCache, cache_key
from smartpbx_ari.ai.voice import Voice, VoiceSpecError

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(("spec", "voice"), [
    ("piper", Voice("piper")),
    ("piper:1.15", Voice("piper", "", 1.15)),
    ("piper:0.9:-2", Voice("piper", "", 0.9, -2.0)),
    ("espeak", Voice("espeak", "en-us")),
    ("espeak:ko", Voice("espeak", "ko")),
    ("espeak:en-gb:1.2:3", Voice("espeak", "en-gb", 1.2, 3.0)),
])
def test_voice_specs_parse(spec: str, voice: Voice) -> None:
    assert Voice.parse(spec) == voice


@pytest.mark.parametrize(("spec", "message"), [
    ("festival", "'festival' is not one of piper, espeak"),
    ("piper:fast", "speed and pitch are numbers"),
    ("piper:3", "speed 3.0 is not between 0.5 and 2"),
    ("piper:1:20", "pitch 20.0 is not between -12 and 12"),
    ("piper:1:2:3", "is not piper[:speed[:pitch]]"),
])
def test_bad_voice_specs_name_the_problem(spec: str, message: str) -> None:
    with pytest.raises(VoiceSpecError, match=message.replace("[", r"\[")):
        Voice.parse(spec)


def test_the_cache_key_tells_voices_rates_and_texts_apart() -> None:
    keys = {cache_key("Hello.", Voice("piper").key, 16000),
            cache_key("Hello.", Voice("piper", speed=1.1).key, 16000),
            cache_key("Hello.", Voice("espeak", "en-us").key, 16000),
            cache_key("Hello.", Voice("piper").key, 8000),
            cache_key("Hello!", Voice("piper").key, 16000),
            cache_key("Hello.", Voice("piper", take=1).key, 16000)}
    assert len(keys) == 6
    assert Voice("piper").key == "piper::1:0"  # the usual take: the keys cached so far


def test_piper_ids_are_padded_between_bos_and_eos() -> None:
    table = {"_": 0, "^": 1, "$": 2, " ": 3, "a": 14, "ˈ": 120, "?": 13}
    assert phoneme_ids("ˈa a?", table) == [1, 0, 120, 0, 14, 0, 3, 0, 14, 0, 13, 0, 2]
    assert phoneme_ids("aé", table) == [1, 0, 14, 0, 2]  # é decomposes; unknown marks skipped


def _pcm(n: int, value: int = 100) -> np.ndarray:
    return np.full(n, value, np.int16)


def test_a_phrase_is_kept_in_memory_and_on_disk_across_starts(tmp_path: Path) -> None:
    cache = SpeechCache(tmp_path, 10**6)
    cache.put("k1", _pcm(1000))
    assert cache.get("k1", memory_only=True) is not None
    again = SpeechCache(tmp_path, 10**6)  # a new process
    assert again.get("k1", memory_only=True) is None
    got = again.get("k1")
    assert got is not None and np.array_equal(got, _pcm(1000))
    assert again.get("missing") is None
    assert (again.hits, again.misses) == (1, 1)


def test_a_torn_file_is_dropped_and_synthesized_again(tmp_path: Path) -> None:
    cache = SpeechCache(tmp_path, 10**6)
    cache.put("k2", _pcm(500))
    path = next(tmp_path.glob("*/k2.npy"))
    path.write_bytes(path.read_bytes()[:40])
    assert SpeechCache(tmp_path, 10**6).get("k2") is None
    assert not path.exists()


def test_the_disk_stays_within_its_budget_oldest_first(tmp_path: Path) -> None:
    cache = SpeechCache(tmp_path, 5000)  # about two 2,000-byte phrases
    for n in range(4):
        cache.put(f"k{n}", _pcm(1000, n))
    left = sorted(p.stem for p in tmp_path.glob("*/*.npy"))
    assert sum(p.stat().st_size for p in tmp_path.glob("*/*.npy")) <= 5000
    assert "k3" in left and "k0" not in left


def test_memory_holds_a_quarter_of_the_budget_most_recent_first() -> None:
    cache = SpeechCache(None, 16000)  # memory only: 4,000 bytes
    for n in range(3):
        cache.put(f"m{n}", _pcm(1000))  # 2,000 bytes each
    assert cache.get("m0") is None and cache.get("m2") is not None
