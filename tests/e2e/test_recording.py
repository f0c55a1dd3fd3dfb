"""A call through the real Asterisk is recorded (the bridge's mix: the AI and the caller),
kept under the data dir by call id, gone from Asterisk's spool, and as long as the call,
its time in the operators' queue included; its disposition, derived from the events the
real call published, is the right one."""

from __future__ import annotations

import asyncio
import time

import numpy as np
import pytest
from prometheus_client.parser import text_string_to_metric_families

from smartpbx_ari.cli.wiring import AMI_USER
from smartpbx_ari.config import Settings
from smartpbx_ari.credentials import Credentials
from smartpbx_ari.events import CallEnded, CallStarted, HandedOff, Subscription
from smartpbx_ari.sipcaller.caller import VOICE_RMS, Dial, SyntheticCaller
from smartpbx_ari.store.disposition import Disposition, Dispositions, Outcome
from smartpbx_ari.store.recordings import recording_path, recordings_dir
from smartpbx_ari.telephony.ami import AmiClient
from smartpbx_ari.telephony.ari import AriClient
from smartpbx_ari.telephony.recording import PREFIX, QUEUE_SUFFIX
from smartpbx_ari.web.metrics import STAGES, Metrics
from tests.e2e.conftest import Controller
from tests.fixtures.audio import loudest, wav_samples

pytestmark = [pytest.mark.e2e, pytest.mark.slow]
TOLERANCE_S = 0.5  # the target: the recording is as long as the call


def _outcome(events: Subscription, metrics: Metrics | None = None) -> Outcome | None:
    """The disposition of the call whose events ``events`` got (all of them, in order);
    ``metrics`` (as ``serve`` wires it) sees them too."""
    follower, outcome = Dispositions(), None
    while not events.queue.empty():
        event = events.queue.get_nowait()
        outcome = follower.observe(event) or outcome
        if metrics is not None:
            metrics.event(event)
    return outcome


def _stage_counts(metrics: Metrics) -> dict[str, float]:
    """Each turn stage histogram's count, parsed from the exposition /metrics serves."""
    body, _ = metrics.exposition()
    samples = {s.name: s.value for f in text_string_to_metric_families(body.decode())
               for s in f.samples if s.name.startswith("smartpbx_turn_")}
    print(" ".join(f"{stage} {samples[f'smartpbx_turn_{stage}_seconds_sum'] * 1000:.0f} ms"
                   for stage in STAGES))  # the figures (-s)
    return {name: value for name, value in samples.items() if name.endswith("_count")}


async def _kept(controller: Controller, settings: Settings, started: CallStarted,
                ended: CallEnded) -> tuple[np.ndarray, int]:
    """The call's recording, once kept; checked to last as long as the call."""
    await controller.app.recordings.drain()
    path = recording_path(recordings_dir(settings), started.call_id)
    assert path.is_file(), f"no recording at {path}"
    samples, rate = wav_samples(path)
    recorded, lasted = len(samples) / rate, ended.at - started.at
    print(f"recording {recorded:.3f} s, call {lasted:.3f} s, {rate} Hz")  # the figure (-s)
    assert abs(recorded - lasted) <= TOLERANCE_S, (recorded, lasted)
    return samples, rate


async def test_a_call_is_recorded_as_long_as_it_lasted_with_both_voices(
    controller: Controller, caller: SyntheticCaller, dial: Dial, ari: AriClient,
    settings: Settings,
) -> None:
    events = controller.app.events.subscribe()
    async with caller.dial(dial) as line:
        started = await controller.until(CallStarted)
        greeting = await line.wait_voice(line.answered_at, 5)
        assert greeting is not None
        await line.wait_quiet(greeting)
        said_at = await line.say("How do I get a refund?")
        assert await line.wait_voice(said_at, 10) is not None
        await asyncio.sleep(2.0)
    ended = await controller.until(CallEnded)
    samples, rate = await _kept(controller, settings, started, ended)
    # the AI's greeting and the caller's question are both in the mix, where they were
    # (moments in the recording: seconds since the call started, within the tolerance)
    wall = time.time() - time.monotonic()
    greeted, asked = greeting + wall - started.at, said_at + wall - started.at
    assert loudest(samples, rate, greeted, greeted + 1.0) >= VOICE_RMS
    assert loudest(samples, rate, asked - 1.0, asked) >= VOICE_RMS  # the AI is quiet here
    assert PREFIX + started.call_id not in await ari.stored_recordings()
    metrics = Metrics()
    assert _outcome(events, metrics) == Outcome(Disposition.AI)
    # the answered turn, stage by stage, on /metrics
    assert _stage_counts(metrics) == {f"smartpbx_turn_{stage}_seconds_count": 1
                                      for stage in STAGES}


async def test_a_call_handed_to_the_queue_is_recorded_to_its_end_queue_included(
    controller: Controller, caller: SyntheticCaller, dial: Dial, settings: Settings,
    credentials: Credentials, ari: AriClient,
) -> None:
    events = controller.app.events.subscribe()
    recordings = controller.app.recordings
    ami = await AmiClient(settings.pbx.host, settings.pbx.ami_port, AMI_USER,
                          credentials.ami_secret, on_event=controller.app.ami_event).start()
    try:
        async with caller.dial(dial) as line:
            started = await controller.until(CallStarted)
            assert await line.wait_voice(line.answered_at, 5) is not None  # the greeting
            await asyncio.sleep(1.5)
            await line.call.send_dtmf("0")
            assert (await controller.until(HandedOff)).reason == "caller pressed 0"
            ended = await controller.until(CallEnded)
            await asyncio.sleep(4.0)  # in the queue: its music and news, recorded too
        hung_up = time.time()
        parts = [PREFIX + started.call_id, PREFIX + started.call_id + QUEUE_SUFFIX]
        for _ in range(75):  # Asterisk's CDR of the call's end, then the queue's part kept
            if parts[1] in recordings.kept:  # (not a count: the controller's start also
                break  # keeps what an earlier test's call left in Asterisk's spool)
            await recordings.drain()
            await asyncio.sleep(0.2)
    finally:
        ami.close()
    assert [name for name in recordings.kept if name in parts] == parts  # the AI's first
    path = recording_path(recordings_dir(settings), started.call_id)
    samples, rate = wav_samples(path)
    recorded, lasted = len(samples) / rate, hung_up - started.at
    print(f"recording {recorded:.3f} s, call {lasted:.3f} s (queue included)")  # -s
    assert abs(recorded - lasted) <= TOLERANCE_S, (recorded, lasted)
    queued = ended.at - started.at
    assert loudest(samples, rate, queued + 0.5, recorded - 0.5) >= VOICE_RMS  # not silence
    spool = await ari.stored_recordings()
    assert not {PREFIX + started.call_id, PREFIX + started.call_id + QUEUE_SUFFIX} & set(spool)
    assert _outcome(events) == Outcome(Disposition.QUEUE, "caller pressed 0")
