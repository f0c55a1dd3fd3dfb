"""The recording keeper (telephony/recording.py) against a fake of the five ARI calls it
makes: it waits for Asterisk to close a recording, fetches it, stores it by call id and
deletes it from the spool; it keeps nothing when off; a restart collects the dead
controller's recordings but not those of live calls; a call's part in the operators' queue
is appended to its recording once Asterisk's CDR says the call is over. (Through the real Asterisk:
tests/e2e/test_recording.py and test_serve.py.)"""

from __future__ import annotations

import asyncio
import io
import struct
import wave
from pathlib import Path
from typing import cast

import pytest

from smartpbx_ari.config import load_settings
from smartpbx_ari.events import QueueChanged
from smartpbx_ari.store.recordings import recordings_dir
from smartpbx_ari.telephony.ari import AriClient, AriError
from smartpbx_ari.telephony.recording import CallRecordings
from smartpbx_ari.telephony.stasis import StasisApp

pytestmark = pytest.mark.unit


class FakeAri:
    def __init__(self, live_polls: int = 0, refuse: bool = False) -> None:
        self.calls: list[tuple[str, ...]] = []
        self.stored: dict[str, bytes] = {}
        self.live_polls = live_polls
        self.refuse = refuse

    async def record_bridge(self, bridge_id: str, name: str, fmt: str) -> None:
        self.calls.append(("record", bridge_id, name, fmt))
        if self.refuse:
            raise AriError(500, "Failed to create recording channel")
        self.stored[name] = b"RIFF" + name.encode()

    async def is_recording(self, name: str) -> bool:
        self.calls.append(("live?", name))
        self.live_polls -= 1
        return self.live_polls >= 0

    async def recording_file(self, name: str) -> bytes:
        self.calls.append(("fetch", name))
        if name not in self.stored:
            raise AriError(404, "Recording not found")
        return self.stored[name]

    async def delete_recording(self, name: str) -> None:
        self.calls.append(("delete", name))
        del self.stored[name]

    async def stored_recordings(self) -> list[str]:
        return list(self.stored)


def _files(where: Path) -> list[str]:
    return sorted(p.name for p in where.iterdir())


def keeper(ari: FakeAri, where: Path, enabled: bool = True) -> CallRecordings:
    return CallRecordings(cast(AriClient, ari), where, enabled)


async def test_a_finished_call_is_fetched_once_closed_stored_and_deleted(tmp_path: Path
                                                                          ) -> None:
    ari = FakeAri(live_polls=2)  # Asterisk still closes the file for two polls
    rec = keeper(ari, tmp_path)
    assert await rec.start("1764.5", "bridge-1")
    rec.finish("1764.5")
    rec.finish("1764.5")  # twice: kept once
    await rec.drain()
    assert (tmp_path / "1764.5.wav").read_bytes() == b"RIFFsmartpbx-1764.5"
    assert [c[0] for c in ari.calls] == ["record", "live?", "live?", "live?", "fetch",
                                        "delete"]
    assert ari.stored == {} and list(rec.kept) == ["smartpbx-1764.5"]


async def test_recording_off_asks_asterisk_nothing(tmp_path: Path) -> None:
    ari = FakeAri()
    rec = keeper(ari, tmp_path, enabled=False)
    assert not await rec.start("1764.5", "bridge-1")
    rec.finish("1764.5")
    await rec.drain()
    assert ari.calls == [] and _files(tmp_path) == []


async def test_a_refused_recording_costs_the_recording_not_the_call(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    ari = FakeAri(refuse=True)
    rec = keeper(ari, tmp_path)
    assert not await rec.start("1764.5", "bridge-1")
    rec.finish("1764.5")  # nothing started: nothing to fetch
    await rec.drain()
    assert [c[0] for c in ari.calls] == ["record"]
    assert "call=1764.5 not recorded: ARI" in caplog.text


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
    rec = keeper(ari, tmp_path)
    assert await rec.start("1764.5", "bridge-1")
    ari.stored.clear()  # e.g. removed by hand meanwhile
    rec.finish("1764.5")
    await rec.drain()
    assert _files(tmp_path) == [] and list(rec.kept) == []
    assert "call=1764.5 recording not kept" in caplog.text


def _wav(samples: list[int], rate: int = 8000) -> bytes:
    out = io.BytesIO()
    with wave.open(out, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(struct.pack(f"<{len(samples)}h", *samples))
    return out.getvalue()


def _samples(path: Path) -> list[int]:
    with wave.open(str(path), "rb") as w:
        return list(struct.unpack(f"<{w.getnframes()}h", w.readframes(w.getnframes())))


async def test_the_queue_part_is_appended_after_the_ai_part_once_it_appears(
        tmp_path: Path) -> None:
    ari = FakeAri(live_polls=3)  # the AI's part is still being closed...
    rec = keeper(ari, tmp_path)
    await rec.start("1764.5", "bridge-1")
    ari.stored["smartpbx-1764.5"] = _wav([1, 2, 3])
    rec.finish("1764.5")
    rec.handed_off("1764.5", to_queue=True)
    rec.call_over("1764.5")  # ...when the CDR says the call is over; the queue part not
    await asyncio.sleep(0.1)  # moved into the spool yet either
    ari.stored["smartpbx-1764.5-queue"] = _wav([4, 5])
    await rec.drain()
    assert _samples(tmp_path / "1764.5.wav") == [1, 2, 3, 4, 5]
    assert ari.stored == {} and list(rec.kept) == ["smartpbx-1764.5", "smartpbx-1764.5-queue"]


async def test_a_call_that_ended_with_the_ai_asks_nothing_more_at_its_end(
        tmp_path: Path) -> None:
    ari = FakeAri()
    rec = keeper(ari, tmp_path)
    rec.handed_off("1764.5", to_queue=False)
    before = len(ari.calls)
    rec.call_over("1764.5")
    await rec.drain()
    assert len(ari.calls) == before and list(rec.kept) == []


async def test_a_queue_part_of_another_format_is_left_in_the_spool(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    ari = FakeAri()
    (tmp_path / "1764.5.wav").write_bytes(_wav([1, 2, 3]))
    ari.stored["smartpbx-1764.5-queue"] = _wav([4, 5], rate=16000)
    rec = keeper(ari, tmp_path)
    assert await rec.collect(set()) == 1  # a restart finds it: no call of that id is live
    await rec.drain()
    assert _samples(tmp_path / "1764.5.wav") == [1, 2, 3]
    assert "smartpbx-1764.5-queue" in ari.stored and "not in its format" in caplog.text


async def test_a_call_that_never_reached_the_ai_keeps_its_queue_part_alone(
        tmp_path: Path) -> None:
    ari = FakeAri()
    ari.stored["smartpbx-1764.9-queue"] = _wav([7, 8])
    rec = keeper(ari, tmp_path)
    rec.call_over("1764.9")  # dialled 0: only its CDR tells us of it
    await rec.drain()
    assert _samples(tmp_path / "1764.9.wav") == [7, 8]


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
    ari.stored["smartpbx-1764.5-queue"] = _wav([4, 5])
    app.ami_event("Cdr", {"UniqueID": "1764.5"})
    await app.recordings.drain()
    assert _samples(recordings_dir(settings) / "1764.5.wav") == [4, 5]
