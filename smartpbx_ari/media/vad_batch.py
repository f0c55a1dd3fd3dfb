"""Every call's VAD windows scored together, off the event loop: one Silero run per batch.

Profiled at 50 concurrent calls, scoring each call's windows one by one on the event loop
took half of the controller's samples. The model takes a batch (``input`` [B, 64 + 512],
``state`` [2, B, 128]) and a run of 32 windows costs what 12 single runs do, so a worker
thread gathers what every call has waiting, runs it as one batch (onnxruntime releases the
GIL meanwhile), and hands each call its probabilities back on its loop. Each stream's
context and state stay in its own :class:`SileroVad`; a call awaits one request at a time,
so the worker alone touches a stream's state while it is out. A request of several windows
is scored window by window, each step a batch of every stream with a window left (a run
for each rate: wideband and narrowband calls are batched apart).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from smartpbx_ari.media.vad import SileroVad, as_float, shared_session

log = logging.getLogger(__name__)
LINGER_S = 0.002  # a worker woken by one window waits this long for the other calls'
MAX_BATCH = 64  # beyond this the cost per window stops falling (measured: 57 us at 32)



@dataclass
class _Request:
    vad: SileroVad
    windows: list[npt.NDArray[np.int16]]  # as float, on the worker: the loop does no more
    loop: asyncio.AbstractEventLoop
    future: asyncio.Future[list[float]]
    probabilities: list[float] = field(default_factory=list)


def _resolve(future: asyncio.Future[list[float]], result: list[float] | BaseException) -> None:
    if future.done():  # the call is gone (cancelled while its windows were scored)
        return
    if isinstance(result, BaseException):
        future.set_exception(result)
    else:
        future.set_result(result)


class VadBatcher:
    """``await score(vad, windows)`` from any call; one worker thread runs the batches."""

    def __init__(self, session: Any = None, linger_s: float = LINGER_S) -> None:
        self._session = session or shared_session()
        self._linger_s = linger_s
        self._waiting: list[_Request] = []
        self._wake = threading.Condition()
        self._closed = False
        self._worker: threading.Thread | None = None
        self.batches = 0  # runs of the model, and the windows they scored (for the bench)
        self.windows = 0

    async def score(self, vad: SileroVad, windows: list[npt.NDArray[np.int16]]) -> list[float]:
        """The speech probability of each window of one stream, in order."""
        if not windows:
            return []
        # refused here: one bad window must not fail the batch of every other call
        if any(w.shape != (vad.window,) or w.dtype != np.int16 for w in windows):
            raise ValueError(f"VAD windows must be int16 of {vad.window} samples "
                             f"({vad.rate} Hz)")
        loop = asyncio.get_running_loop()
        request = _Request(vad, windows, loop, loop.create_future())
        with self._wake:
            if self._closed:
                raise RuntimeError("the VAD batcher is closed")
            if self._worker is None:
                self._worker = threading.Thread(target=self._run, name="vad-batch",
                                                daemon=True)
                self._worker.start()
            self._waiting.append(request)
            self._wake.notify()
        return await request.future

    def close(self) -> None:
        """Score what is waiting, then stop the worker."""
        with self._wake:
            self._closed = True
            self._wake.notify()
            worker = self._worker
        if worker is not None:
            worker.join()

    def _run(self) -> None:
        while True:
            with self._wake:
                while not self._waiting and not self._closed:
                    self._wake.wait()
                if not self._waiting:
                    return
            time.sleep(self._linger_s)  # the other calls' windows of this moment
            with self._wake:
                batch, self._waiting = self._waiting[:MAX_BATCH], self._waiting[MAX_BATCH:]
            self._answer(batch)

    def _answer(self, batch: list[_Request]) -> None:
        result: BaseException | None = None
        try:
            self._score(batch)
        except Exception as err:  # every waiting call hears of it; the worker goes on
            log.exception("VAD batch of %d streams failed", len(batch))
            result = err
        for r in batch:
            with contextlib.suppress(RuntimeError):  # its loop is closed: nobody waits
                r.loop.call_soon_threadsafe(_resolve, r.future, result or r.probabilities)

    def _score(self, batch: list[_Request]) -> None:
        rates = sorted({r.vad.rate for r in batch})
        for step in range(max(len(r.windows) for r in batch)):
            for rate in rates:
                now = [r for r in batch if step < len(r.windows) and r.vad.rate == rate]
                if now:
                    self._step(now, step, rate)

    def _step(self, now: list[_Request], step: int, rate: int) -> None:
        """One window of each of ``now`` (streams at ``rate``), as one run."""
        audio = [as_float(r.windows[step], r.vad.window) for r in now]
        rows = np.stack([r.vad.model_input(a) for r, a in zip(now, audio, strict=True)])
        state = np.concatenate([r.vad.state for r in now], axis=1)
        probs, states = self._session.run(
            None, {"input": rows, "state": state, "sr": np.array(rate, dtype=np.int64)})
        flat = np.asarray(probs).reshape(-1)
        for i, r in enumerate(now):
            r.vad.advance(audio[i], states[:, i : i + 1, :].copy())
            r.probabilities.append(float(flat[i]))
        self.batches += 1
        self.windows += len(now)
