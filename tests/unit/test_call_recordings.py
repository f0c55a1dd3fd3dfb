"""The recording keeper (telephony/recording.py) against a fake of the four ARI calls it
makes: the dialplan records each call (MixMonitor) and moves the closed file into the
spool; the keeper waits for it to appear there, fetches it, stores it by call id and
deletes it from the spool: at once for a call that ended with the AI, when Asterisk's CDR
says the call is over for one handed to the queue. It keeps nothing when off; a restart
collects the dead controller's recordings but not those of live calls. (Through the real
Asterisk: tests/e2e/test_recording.py and test_serve.py.)"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import cast

import pytest

from smartpbx_ari.config import load_settings
from smartpbx_ari.events import QueueChanged
from smartpbx_ari.store.recordings import recordings_dir
from smartpbx_ari.telephony import recording
from smartpbx_ari.telephony.ari import AriClient, AriError
from smartpbx_ari.telephony.recording import CallRecordings
from smartpbx_ari.telephony.stasis import StasisApp

pytestmark = pytest.mark.unit


@pytest.fixture(autouse=True)
def quick_polls(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(recording, "APPEAR_POLL_S", 0.01)


class FakeAri:
    def __init__(self) -> None:
        self.calls: list[tuple[str, ...]] = []
        self.stored: dict[str, bytes] = {}

    async def recording_file(self, name: str) -> bytes:
        self.calls.append(("fetch", name))
        if name not in self.stored:
            raise AriError(404, "Recording not found")
        return self.stored[name]

    async def delete_recording(self, name: str) -> None:
        self.calls.append(("delete", name))
        del self.stored[name]

    async def stored_recordings(self) -> list[str]:
        self.calls.append(("list",))
        return list(self.stored)


def _files(where: Path) -> list[str]:
    return sorted(p.name for p in where.iterdir())


def keeper(ari: FakeAri, where: Path, enabled: bool = True) -> CallRecordings:
    return CallRecordings(cast(AriClient, ari), where, enabled)


async def _moved_in_later(ari: FakeAri, name: str, audio: bytes, after_s: float) -> None:
    """Asterisk closes the file after the hang-up, then the dialplan's mv moves it in."""
    await asyncio.sleep(after_s)
    ari.stored[name] = audio


async def test_a_call_that_ended_with_the_ai_is_kept_once_its_file_appears(
        tmp_path: Path) -> None:
    ari = FakeAri()
    rec = keeper(ari, tmp_path)
    moved = asyncio.create_task(_moved_in_later(ari, "smartpbx-1764.5", b"RIFF-5", 0.05))
    rec.handed_off("1764.5", to_queue=False)
    rec.call_over("1764.5")  # its CDR too: kept once
    await rec.drain()
    await moved
    assert (tmp_path / "1764.5.wav").read_bytes() == b"RIFF-5"
    assert [c for c in ari.calls if c[0] != "list"] == [("fetch", "smartpbx-1764.5"),
                                                        ("delete", "smartpbx-1764.5")]
    assert ari.stored == {} and list(rec.kept) == ["smartpbx-1764.5"]


async def test_a_call_handed_to_the_queue_is_kept_when_its_cdr_says_it_is_over(
        tmp_path: Path) -> None:
    ari = FakeAri()
    rec = keeper(ari, tmp_path)
    rec.handed_off("1764.5", to_queue=True)
    await rec.drain()
    assert ari.calls == []  # still in the queue, still being recorded: nothing asked
    rec.call_over("1764.5")
    await _moved_in_later(ari, "smartpbx-1764.5", b"RIFF-whole", 0.05)
    await rec.drain()
    assert (tmp_path / "1764.5.wav").read_bytes() == b"RIFF-whole"
    assert ari.stored == {} and list(rec.kept) == ["smartpbx-1764.5"]


async def test_recording_off_asks_asterisk_nothing(tmp_path: Path) -> None:
    ari = FakeAri()
    rec = keeper(ari, tmp_path, enabled=False)
    rec.handed_off("1764.5", to_queue=False)
    rec.call_over("1764.6")
    await rec.drain()
    assert ari.calls == [] and _files(tmp_path) == []


async def test_a_recording_that_never_appears_is_named_in_the_log(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(recording, "APPEAR_TIMEOUT_S", 0.05)
    ari = FakeAri()
    rec = keeper(ari, tmp_path)
    rec.handed_off("1764.5", to_queue=False)  # e.g. a dialplan with RECORD_CALLS off
    await rec.drain()
    assert _files(tmp_path) == [] and list(rec.kept) == []
    assert "call=1764.5: no recording in Asterisk's spool" in caplog.text


async def test_a_call_that_never_reached_the_ai_is_kept_when_its_cdr_comes(
        tmp_path: Path) -> None:
    ari = FakeAri()
    ari.stored["smartpbx-1764.9"] = b"RIFF-9"
    rec = keeper(ari, tmp_path)
    rec.call_over("1764.9")  # dialled 0: only its CDR tells us of it
    rec.call_over("")  # a CDR without an id: nothing
    await rec.drain()
    assert (tmp_path / "1764.9.wav").read_bytes() == b"RIFF-9"


async def test_a_restart_collects_recordings_of_dead_calls_only(tmp_path: Path) -> None:
    ari = FakeAri()
    ari.stored = {"smartpbx-1764.1": b"RIFF-dead", "smartpbx-1764.2": b"RIFF-live",
                  "voicemail-7": b"RIFF-not-ours"}
    rec = keeper(ari, tmp_path)
    assert await rec.collect({"1764.2"}) == 1
    await rec.drain()
    assert _files(tmp_path) == ["1764.1.wav"]
    assert sorted(ari.stored) == ["smartpbx-1764.2", "voicemail-7"]


async def test_a_failed_fetch_leaves_it_in_asterisk_and_no_file(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    ari = FakeAri()
    ari.stored["smartpbx-1764.5"] = b"RIFF-5"

    async def refused(name: str) -> bytes:
        raise AriError(500, "Internal Server Error")

    ari.recording_file = refused  # type: ignore[method-assign]
    rec = keeper(ari, tmp_path)
    rec.handed_off("1764.5", to_queue=False)
    await rec.drain()
    assert _files(tmp_path) == [] and list(rec.kept) == []
    assert "smartpbx-1764.5" in ari.stored
    assert "call=1764.5 recording not kept" in caplog.text


async def test_the_stasis_app_routes_asterisk_s_cdr_and_queue_events(tmp_path: Path) -> None:
    settings = load_settings(environ={"SMARTPBX_DATA_DIR": str(tmp_path)})
    ari = FakeAri()
    app = StasisApp(settings, cast(AriClient, ari))
    events = app.events.subscribe()
    app.ami_event("QueueCallerJoin", {"Uniqueid": "1764.5", "Queue": "operators",
                                      "Position": "1"})
    joined = events.queue.get_nowait()
    assert isinstance(joined, QueueChanged)
    assert (joined.call_id, joined.queue, joined.position) == ("1764.5", "operators", "1")
    app.ami_event("Newexten", {"Uniqueid": "9.9"})  # not a call of ours, not the queue's
    assert events.queue.empty()
    app.recordings.handed_off("1764.5", to_queue=True)
    ari.stored["smartpbx-1764.5"] = b"RIFF-whole"
    app.ami_event("Cdr", {"UniqueID": "1764.5"})
    await app.recordings.drain()
    assert (recordings_dir(settings) / "1764.5.wav").read_bytes() == b"RIFF-whole"
