"""Every call's VAD windows in one batch (the real Silero model): each stream gets what it
would have got alone, in order, whatever else the batch held."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import numpy as np
import pytest

from smartpbx_ari.call.engine import backlog
from smartpbx_ari.media.resample import resample
from smartpbx_ari.media.vad import WINDOW, SileroVad, shared_session
from smartpbx_ari.media.vad_batch import VadBatcher
from tests.fixtures.audio import librivox

pytestmark = [pytest.mark.integration, pytest.mark.ai]


@pytest.fixture(scope="module")
def streams() -> list[np.ndarray]:
    """Six different streams: human speech from different points, noise, silence."""
    _, speech = librivox("sense_and_sensibility_01_austen_64kb-0870")
    rng = np.random.default_rng(7)
    cut = len(speech) // 4
    return [speech[:cut], speech[cut : 2 * cut], speech[2 * cut : 3 * cut][::-1].copy(),
            rng.normal(0, 300, cut).astype(np.int16), np.zeros(cut, np.int16),
            (speech[:cut] // 8).astype(np.int16)]


def alone(pcm: np.ndarray, rate: int = 16000) -> list[float]:
    vad = SileroVad(rate=rate)
    return [vad.probability(pcm[i : i + vad.window])
            for i in range(0, len(pcm) - vad.window + 1, vad.window)]


async def batched(batcher: VadBatcher, pcm: np.ndarray, per_request: int,
                  rate: int = 16000) -> list[float]:
    """Like a call: one request at a time, each of ``per_request`` windows."""
    vad, out = SileroVad(rate=rate), []
    n = vad.window
    windows = [pcm[i : i + n] for i in range(0, len(pcm) - n + 1, n)]
    for i in range(0, len(windows), per_request):
        out += await batcher.score(vad, windows[i : i + per_request])
    return out


async def test_each_stream_scores_as_it_would_alone(streams: list[np.ndarray]) -> None:
    batcher = VadBatcher()
    try:
        # uneven requests (1, 2 or 3 windows) so that streams step through batches apart
        got = await asyncio.gather(*(batched(batcher, pcm, 1 + i % 3)
                                     for i, pcm in enumerate(streams)))
    finally:
        batcher.close()
    for pcm, probabilities in zip(streams, got, strict=True):
        assert probabilities == pytest.approx(alone(pcm), abs=1e-4)
    assert max(max(p) for p in got[:3]) > 0.9  # speech is there to be found ...
    assert max(got[4]) < 0.1  # ... and silence is not speech
    # the streams shared runs of the model: fewer runs than windows
    assert batcher.batches < batcher.windows <= sum(len(p) for p in got)


async def test_narrowband_and_wideband_calls_batched_together_each_score_as_alone(
        streams: list[np.ndarray]) -> None:
    """A G.711 call's stream is scored in the model's 8 kHz mode beside 16 kHz calls: a
    run for each rate, each stream as it would be alone."""
    rates = [16000, 8000, 16000, 8000, 8000, 16000]
    pcms = [resample(pcm, 16000, 8000) if rate == 8000 else pcm
            for pcm, rate in zip(streams, rates, strict=True)]
    batcher = VadBatcher()
    try:
        got = await asyncio.gather(*(batched(batcher, pcm, 1 + i % 3, rate)
                                     for i, (pcm, rate) in enumerate(zip(pcms, rates,
                                                                         strict=True))))
    finally:
        batcher.close()
    for pcm, rate, probabilities in zip(pcms, rates, got, strict=True):
        assert probabilities == pytest.approx(alone(pcm, rate), abs=1e-4)
    assert max(got[1]) > 0.9  # the 8 kHz speech is found
    with pytest.raises(ValueError, match="256 samples"):
        await VadBatcher().score(SileroVad(rate=8000), [np.zeros(WINDOW, np.int16)])


async def test_no_windows_needs_no_worker_and_a_bad_window_is_refused_alone() -> None:
    batcher = VadBatcher()
    assert await batcher.score(SileroVad(), []) == []
    with pytest.raises(ValueError, match="512 samples"):
        await batcher.score(SileroVad(), [np.zeros(320, np.int16)])
    assert batcher.batches == 0
    batcher.close()


class BrokenSession:
    def run(self, _outputs: Any, _feeds: dict[str, Any]) -> Any:
        raise RuntimeError("onnxruntime: out of memory")


async def test_a_failed_run_reaches_every_waiting_call_and_the_worker_goes_on() -> None:
    batcher = VadBatcher(BrokenSession())
    window = np.zeros(WINDOW, np.int16)
    for _ in range(2):
        results = await asyncio.gather(batcher.score(SileroVad(), [window]),
                                       batcher.score(SileroVad(), [window]),
                                       return_exceptions=True)
        assert all(isinstance(r, RuntimeError) and "out of memory" in str(r)
                   for r in results)
    batcher.close()
    with pytest.raises(RuntimeError, match="closed"):
        await batcher.score(SileroVad(), [window])


async def test_a_call_gone_while_scored_does_not_stop_the_others() -> None:
    batcher = VadBatcher(shared_session(), linger_s=0.05)
    window = np.zeros(WINDOW, np.int16)
    gone = asyncio.ensure_future(batcher.score(SileroVad(), [window]))
    kept = asyncio.ensure_future(batcher.score(SileroVad(), [window]))
    await asyncio.sleep(0.01)
    gone.cancel()
    assert len(await kept) == 1
    assert gone.cancelled()
    batcher.close()


def test_a_closed_event_loop_does_not_stop_the_worker() -> None:
    batcher = VadBatcher(shared_session(), linger_s=0.05)
    window = np.zeros(WINDOW, np.int16)

    async def leave_one_waiting() -> None:
        waiting = asyncio.ensure_future(batcher.score(SileroVad(), [window]))
        await asyncio.sleep(0)
        assert not waiting.done()  # queued; the worker lingers past this loop's end

    asyncio.run(leave_one_waiting())
    assert asyncio.run(asyncio.wait_for(batcher.score(SileroVad(), [window]), 5)) != []
    batcher.close()


async def test_a_backlog_comes_as_one_batch_and_the_frames_before_an_error_first() -> None:
    arrived: asyncio.Queue[np.ndarray | Exception] = asyncio.Queue()

    async def recv() -> np.ndarray:
        item = await arrived.get()
        if isinstance(item, Exception):
            raise item
        return item

    frame = np.zeros(160, np.int16)
    async with contextlib.aclosing(backlog(recv)) as heard:
        arrived.put_nowait(frame)
        assert len(await anext(heard)) == 1
        for _ in range(5):  # piled up while the last was heard
            arrived.put_nowait(frame)
        await asyncio.sleep(0.01)
        assert len(await anext(heard)) == 5
        arrived.put_nowait(frame)
        arrived.put_nowait(ConnectionError("the channel is gone"))
        await asyncio.sleep(0.01)
        assert len(await anext(heard)) == 1
        with pytest.raises(ConnectionError, match="gone"):
            await anext(heard)


async def test_each_frame_is_seen_as_it_arrives_before_the_backlog_is_heard() -> None:
    """A barge-in's hold: a frame is seen on arrival, while the frames ahead of it are
    still being heard (their VAD windows scored)."""
    arrived: asyncio.Queue[np.ndarray] = asyncio.Queue()
    seen: list[int] = []
    async with contextlib.aclosing(backlog(arrived.get, lambda pcm: seen.append(int(pcm[0])))
                                   ) as heard:
        arrived.put_nowait(np.full(160, 1, np.int16))
        assert len(await anext(heard)) == 1  # ... and being heard now, for a while:
        for level in (2, 3):
            arrived.put_nowait(np.full(160, level, np.int16))
        await asyncio.sleep(0.01)
        assert seen == [1, 2, 3]  # seen before the generator is asked for them
        assert [int(f[0]) for f in await anext(heard)] == [2, 3]
