"""Each call's recording: the dialplan records the caller's channel (``MixMonitor``, both
directions: the caller, the AI, an operator who takes over, the queue's music and the
operator who answers there) from the moment it reaches the AI or the operators' queue to
its end, as ``smartpbx-<call id>``, and moves the closed file into ARI's recordings
(``asterisk-config/extensions.conf``, ``RECORD_CALLS``). The controller fetches it over ARI
(so a PBX on another host works too), stores it by store/recordings.py under the data dir
and deletes it from Asterisk: at once for a call that ended with the AI, and when
Asterisk's call-detail record (AMI) says the call is over for one handed to the queue.

The bridge itself is not recorded: a recording in it would make it a three-party mixing
bridge (softmix, 20 ms ticks), which cost ~60 ms of voice-to-voice latency on every answer
(``scripts/bench_voice.py``, ``store.record_calls`` on and off).

Asterisk writes the file as the call goes, so a controller killed mid-call loses nothing:
the file closes when the caller hangs up, and at reconcile every finished ``smartpbx-*``
recording in the spool is collected.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict, deque
from collections.abc import Container
from pathlib import Path

from smartpbx_ari.store.recordings import save_recording
from smartpbx_ari.telephony.ari import AriClient, AriError

log = logging.getLogger(__name__)
PREFIX = "smartpbx-"  # asterisk-config/extensions.conf: smartpbx-${UNIQUEID}.wav
APPEAR_TIMEOUT_S = 10.0  # a call that ended: its closed file is moved into the spool by then
APPEAR_POLL_S = 0.25
UNKNOWN_WAIT_S = 3.0  # a call that never reached us (dialled 0) may have been recorded
REMEMBERED = 10_000  # calls whose end we still await, oldest forgotten first


class CallRecordings:
    def __init__(self, ari: AriClient, directory: Path, enabled: bool = True) -> None:
        self.ari = ari
        self.directory = directory
        self.enabled = enabled
        # the recordings kept lately, by name, in order
        self.kept: deque[str] = deque(maxlen=REMEMBERED)
        self._keeping: set[str] = set()
        self._queued: OrderedDict[str, bool] = OrderedDict()  # call id -> handed to the queue
        self._tasks: dict[str, asyncio.Task[Path | None]] = {}

    def handed_off(self, call_id: str, to_queue: bool) -> None:
        """The call left us: to the dialplan's queue (its recording goes on there, kept
        when the call is over) or not (ended: kept once Asterisk has closed it)."""
        if not self.enabled:
            return
        self._queued[call_id] = to_queue
        while len(self._queued) > REMEMBERED:
            self._queued.popitem(last=False)
        if not to_queue:
            self._spawn(PREFIX + call_id, APPEAR_TIMEOUT_S)

    def call_over(self, call_id: str) -> None:
        """Asterisk says the call is over (its CDR): keep its recording once closed."""
        if not self.enabled or not call_id:
            return
        to_queue = self._queued.pop(call_id, None)
        if to_queue is False:  # ended with us: already being kept
            return
        self._spawn(PREFIX + call_id, APPEAR_TIMEOUT_S if to_queue else UNKNOWN_WAIT_S)

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

    async def drain(self, timeout: float = APPEAR_TIMEOUT_S) -> None:
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
        call_id = name[len(PREFIX):]
        try:
            if appear_within and not await self._appeared(name, appear_within):
                if appear_within >= APPEAR_TIMEOUT_S:  # a call of ours: it should be there
                    log.warning("call=%s: no recording in Asterisk's spool %.0f s after "
                                "the call (RECORD_CALLS off in the dialplan?)", call_id,
                                appear_within)
                return None
            audio = await self.ari.recording_file(name)
            path = await asyncio.to_thread(save_recording, self.directory, call_id, audio)
            await self.ari.delete_recording(name)
        except (AriError, OSError, TimeoutError, ValueError) as err:
            log.warning("call=%s recording not kept: %s", call_id, err)
            return None
        finally:
            self._keeping.discard(name)
        self.kept.append(name)
        log.info("call=%s recording kept: %s (%d bytes)", call_id, path, len(audio))
        return path
