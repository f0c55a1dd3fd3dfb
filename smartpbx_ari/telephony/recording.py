"""Each call's recording: Asterisk records the call's bridge (the caller, the AI and an
operator who takes over, mixed) into its own spool as ``smartpbx-<call id>``; once it has
finished it is fetched over ARI (so a PBX on another host works too), stored by
store/recordings.py under the data dir and deleted from Asterisk.

A call handed to the operators' queue goes on being recorded there: the dialplan's
MixMonitor writes ``smartpbx-<call id>-queue`` and moves it into the same spool once
closed. When Asterisk's call-detail record says the call is over, that part is fetched
and appended to the call's recording (the AI's part first), so one file holds the whole
call: the AI, the wait, and the operator who answered.

Asterisk writes the files as the call goes, so a controller killed mid-call loses nothing:
at reconcile the orphaned bridge is destroyed, which ends its recording, and every
finished ``smartpbx-*`` recording in the spool is collected.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict, deque
from collections.abc import Container
from pathlib import Path

from smartpbx_ari.store.recordings import append_recording, save_recording
from smartpbx_ari.telephony.ari import AriClient, AriError

log = logging.getLogger(__name__)
PREFIX = "smartpbx-"
FORMAT = "wav"  # 8 kHz 16-bit PCM: plays in every browser
QUEUE_SUFFIX = "-queue"  # asterisk-config/extensions.conf [operators]
FINISH_TIMEOUT_S = 10.0
POLL_S = 0.05
APPEAR_POLL_S = 0.25
UNKNOWN_WAIT_S = 3.0  # a call that never reached us (dialled 0) may have a queue part
REMEMBERED = 10_000  # calls whose end we still await, oldest forgotten first


class CallRecordings:
    def __init__(self, ari: AriClient, directory: Path, enabled: bool = True) -> None:
        self.ari = ari
        self.directory = directory
        self.enabled = enabled
        # the recordings kept lately, by name, in order
        self.kept: deque[str] = deque(maxlen=REMEMBERED)
        self._keeping: set[str] = set()
        self._started: set[str] = set()  # call ids being recorded
        self._queued: OrderedDict[str, bool] = OrderedDict()  # call id -> handed to the queue
        self._tasks: dict[str, asyncio.Task[Path | None]] = {}

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

    def handed_off(self, call_id: str, to_queue: bool) -> None:
        """The call left us: to the dialplan's queue (recorded on there) or not."""
        if self.enabled:
            self._queued[call_id] = to_queue
            while len(self._queued) > REMEMBERED:
                self._queued.popitem(last=False)

    def call_over(self, call_id: str) -> None:
        """Asterisk says the call is over (its CDR): keep its queue part once closed."""
        if not self.enabled or not call_id:
            return
        to_queue = self._queued.pop(call_id, None)
        if to_queue is False:  # ended with us, never in the queue
            return
        wait = FINISH_TIMEOUT_S if to_queue else UNKNOWN_WAIT_S
        self._spawn(PREFIX + call_id + QUEUE_SUFFIX, appear_within=wait)

    async def collect(self, live_calls: Container[str]) -> int:
        """Keep every finished recording of ours whose call is not live (a restart after
        ``kill -9`` finds them in the spool); returns how many were found."""
        try:
            names = await self.ari.stored_recordings()
        except (AriError, OSError, TimeoutError) as err:
            log.warning("recordings: cannot list Asterisk's recordings: %s", err)
            return 0
        found = [n for n in names
                 if n.startswith(PREFIX) and _call_id(n) not in live_calls]
        for name in found:
            self._spawn(name)
        return len(found)

    async def drain(self, timeout: float = FINISH_TIMEOUT_S) -> None:
        """Wait (up to ``timeout``) for the recordings being kept."""
        if self._tasks:
            await asyncio.wait(list(self._tasks.values()), timeout=timeout)

    def _spawn(self, name: str, appear_within: float = 0.0) -> None:
        if name in self._keeping:
            return
        self._keeping.add(name)
        task = asyncio.create_task(self._keep(name, appear_within), name=f"recording:{name}")
        self._tasks[name] = task
        task.add_done_callback(lambda _: self._tasks.pop(name, None))

    async def _appeared(self, name: str, within: float) -> bool:
        deadline = time.monotonic() + within
        while name not in await self.ari.stored_recordings():
            if time.monotonic() > deadline:
                return False
            await asyncio.sleep(APPEAR_POLL_S)
        return True

    async def _keep(self, name: str, appear_within: float = 0.0) -> Path | None:
        call_id, later = _call_id(name), name.endswith(QUEUE_SUFFIX)
        first = self._tasks.get(PREFIX + call_id) if later else None
        if first is not None:  # the AI's part goes first
            await asyncio.wait([first])
        try:
            if appear_within and not await self._appeared(name, appear_within):
                return None
            deadline = time.monotonic() + FINISH_TIMEOUT_S
            while await self.ari.is_recording(name):
                if time.monotonic() > deadline:
                    log.warning("call=%s recording still live after %.0f s; left in "
                                "Asterisk's spool", call_id, FINISH_TIMEOUT_S)
                    return None
                await asyncio.sleep(POLL_S)
            audio = await self.ari.recording_file(name)
            store = append_recording if later else save_recording
            path = await asyncio.to_thread(store, self.directory, call_id, audio)
            await self.ari.delete_recording(name)
        except (AriError, OSError, TimeoutError, ValueError) as err:
            log.warning("call=%s recording not kept: %s", call_id, err)
            return None
        finally:
            self._keeping.discard(name)
        self.kept.append(name)
        log.info("call=%s recording kept: %s (%d bytes)", call_id, path, len(audio))
        return path


def _call_id(name: str) -> str:
    """The call a recording of ours belongs to: ``smartpbx-<id>`` or its queue part."""
    return name[len(PREFIX):].removesuffix(QUEUE_SUFFIX)
