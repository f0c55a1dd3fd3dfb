"""A real SIP call by SIPp reaches our Stasis app, and its audio reaches us as RTP."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from pathlib import Path
from typing import TypeVar

import pytest

from smartpbx_ari.config import Settings
from smartpbx_ari.credentials import Credentials
from smartpbx_ari.events import CallEnded, CallEvent, CallStarted, Subscription
from smartpbx_ari.media import codecs
from smartpbx_ari.telephony.ari import AriClient
from smartpbx_ari.telephony.stasis import StasisApp
from tests.fixtures.audio import speak_wav, wav_frames
from tests.fixtures.sipp import run_rtp_stream_call

pytestmark = [pytest.mark.integration, pytest.mark.slow]

SAMPLES_PER_8K_FRAME = 160  # SIPp streams the 8 kHz WAV in 20 ms frames

E = TypeVar("E", bound=CallEvent)


async def _until(sub: Subscription, kind: type[E], timeout: float = 20.0) -> E:
    while True:
        event = await sub.next(timeout)
        if isinstance(event, kind):
            return event


async def test_sipp_call_reaches_stasis_and_audio_arrives_as_rtp(
    pbx: object, ari: AriClient, settings: Settings, credentials: Credentials, audio_dir: Path
) -> None:
    wav = speak_wav("Hello, I would like to know where my parcel is, please.",
                    audio_dir / "question.wav", ulaw=True)
    samples = wav_frames(wav)
    # unrecorded: a recording joins the bridge, whose mix then flows in the caller's
    # silences too, and the bytes counted here would be the call's length, not the audio's
    unrecorded = dataclasses.replace(settings, store=dataclasses.replace(settings.store,
                                                                         record_calls=False))
    app = StasisApp(unrecorded, ari)
    sub = app.events.subscribe()
    runner = asyncio.create_task(app.run())
    try:
        await asyncio.wait_for(ari.connected.wait(), 10)
        result = await asyncio.to_thread(
            run_rtp_stream_call, audio_dir, "1000", wav, credentials.caller_password,
            pause_ms=1000, stream_ms=samples // 8, tail_ms=600)
        assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
        started = await _until(sub, CallStarted)
        assert started.exten == "1000"
        assert started.caller == "caller"
        ended = await _until(sub, CallEnded)
        assert ended.call_id == started.call_id
        # RTP carries whole 20 ms frames (the last, partial one padded), each re-encoded
        # by Asterisk into the External Media format.
        frame_bytes = codecs.codec(settings.media.format).frame_bytes
        expected = -(-samples // SAMPLES_PER_8K_FRAME) * frame_bytes
        assert abs(ended.rx_bytes - expected) <= frame_bytes, (ended, expected)
    finally:
        runner.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await runner
    assert app.active_tasks() == []
    assert await ari.channels() == []
    assert [b for b in await ari.bridges() if b.id.startswith("smartpbx")] == []
