"""Each call's recording: Asterisk records the call's bridge (the caller, the AI and an
operator who takes over, mixed) into its own spool as ``smartpbx-<call id>``; once it has
finished it is fetched over ARI (so a PBX on another host works too), stored by
store/recordings.py under the data dir and deleted from Asterisk.

Asterisk writes the file as the call goes, so a controller killed mid-call loses nothing:
at reconcile the orphaned bridge is destroyed, which ends its recording, and every
finished ``smartpbx-*`` recording in the spool is collected.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Container
from pathlib import Path

from smartpbx_ari.store.recordings import save_recording
from smartpbx_ari.telephony.ari import AriClient, AriError

log = logging.getLogger(__name__)
PREFIX = "smartpbx-"
FORMAT = "wav"  # 8 kHz 16-bit PCM: plays in every browser
FINISH_TIMEOUT_S = 10.0
POLL_S = 0.05


class CallRecordings:
    def __init__(self, ari: AriClient, directory: Path, enabled: bool = True) -> None:
        self.ari = ari
        self.directory = directory
        self.enabled = enabled
        self.kept = 0
        self._keeping: set[str] = set()
        self._started: set[str] = set()  # call ids being recorded
        self._tasks: set[asyncio.Task[Path | None]] = set()

    async def start(self, call_id: str, bridge_id: str) -> bool:
        """Record the call's bridge; a PBX that refuses costs the recording, not the call."""
        if not self.enabled:
            return False
        try:
            await self.ari.record_bridge(bridge_id, PREFIX + call_id, FORMAT)
        except (AriError, OSError, TimeoutError) as err:
            log.warning("call=%s not recorded: %s", call_id, err)
            return False
        self._started.add(call_id)
        return True

    def finish(self, call_id: str) -> None:
        """The call's bridge is gone: keep its recording once Asterisk has closed it."""
        if call_id in self._started:
            self._started.discard(call_id)
            self._spawn(PREFIX + call_id)

    async def collect(self, live_calls: Container[str]) -> int:
        """Keep every finished recording of ours whose call is not live (a restart after
        ``kill -9`` finds them in the spool); returns how many were found."""
        try:
            names = await self.ari.stored_recordings()
        except (AriError, OSError, TimeoutError) as err:
            log.warning("recordings: cannot list Asterisk's recordings: %s", err)
            return 0
        found = [n for n in names
                 if n.startswith(PREFIX) and n[len(PREFIX):] not in live_calls]
        for name in found:
            self._spawn(name)
        return len(found)

    async def drain(self, timeout: float = FINISH_TIMEOUT_S) -> None:
        """Wait (up to ``timeout``) for the recordings being kept."""
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=timeout)

    def _spawn(self, name: str) -> None:
        if name in self._keeping:
            return
        self._keeping.add(name)
        task = asyncio.create_task(self._keep(name), name=f"recording:{name}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _keep(self, name: str) -> Path | None:
        call_id = name[len(PREFIX):]
        try:
            deadline = time.monotonic() + FINISH_TIMEOUT_S
            while await self.ari.is_recording(name):
                if time.monotonic() > deadline:
                    log.warning("call=%s recording still live after %.0f s; left in "
                                "Asterisk's spool", call_id, FINISH_TIMEOUT_S)
                    return None
                await asyncio.sleep(POLL_S)
            audio = await self.ari.recording_file(name)
            path = await asyncio.to_thread(save_recording, self.directory, call_id, audio)
            await self.ari.delete_recording(name)
        except (AriError, OSError, TimeoutError, ValueError) as err:
            log.warning("call=%s recording not kept: %s", call_id, err)
            return None
        finally:
            self._keeping.discard(name)
        self.kept += 1
        log.info("call=%s recording kept: %s (%d bytes)", call_id, path, len(audio))
        return path
