"""The recording keeper (telephony/recording.py) against a fake of the five ARI calls it
makes: it waits for Asterisk to close a recording, fetches it, stores it by call id and
deletes it from the spool; it keeps nothing when off; a restart collects the dead
controller's recordings but not those of live calls. (Through the real Asterisk:
tests/e2e/test_recording.py and test_serve.py.)"""

from __future__ import annotations

from pathlib import Path
from typing import cast

import pytest

from smartpbx_ari.telephony.ari import AriClient, AriError
from smartpbx_ari.telephony.recording import CallRecordings

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
    assert ari.stored == {} and rec.kept == 1


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
    assert _files(tmp_path) == [] and rec.kept == 0
    assert "call=1764.5 recording not kept" in caplog.text
