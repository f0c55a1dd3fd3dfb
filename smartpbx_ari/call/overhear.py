"""For the record while an operator talks with the caller: each party's voice alone (a
:class:`Leg`) heard by an ear of its own and transcribed as that speaker.

The conversation's own ear hears the bridge's mix of both (speaker ``call``); once the
legs are apart, that mix is no longer put on the record.
"""

from __future__ import annotations

import asyncio
import contextlib
import time

from smartpbx_ari.ai.stt import SttError
from smartpbx_ari.call.ear import Ear, EarEvent, Pcm, Playback, TurnEnded
from smartpbx_ari.call.engine import VoiceEngine, backlog
from smartpbx_ari.call.ports import CallPort, Leg
from smartpbx_ari.events import Heard, StageFailed
from smartpbx_ari.media import codecs

QUIET = Playback()  # nothing of ours plays on a leg


async def overhear(engine: VoiceEngine, port: CallPort, leg: Leg) -> None:
    """Transcribe ``leg`` turn by turn until cancelled (the operator left)."""
    rate = codecs.codec(port.codec).sample_rate
    vad = engine.vad(rate)
    ear = Ear(engine.settings.turn, vad, rate)
    pending: set[asyncio.Task[None]] = set()

    def record(event: EarEvent) -> None:
        if isinstance(event, TurnEnded):
            task = asyncio.create_task(_record(engine, port, leg, event.audio))
            pending.add(task)
            task.add_done_callback(pending.discard)

    try:
        async with contextlib.aclosing(backlog(leg.recv)) as heard:
            async for frames in heard:
                await engine.hear(ear, vad, frames, lambda: QUIET, record)
    finally:  # what was said before the operator left still reaches the record
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(asyncio.gather(*pending)), 10)


async def _record(engine: VoiceEngine, port: CallPort, leg: Leg, audio: Pcm) -> None:
    stt = engine.stt_for(port.language)
    if stt is None:
        return
    try:
        transcript = await stt.transcribe(audio, port.language)
    except SttError as err:
        port.publish(StageFailed(call_id=port.call_id, code=err.code, message=str(err)))
        return
    if transcript.text:
        end = time.time()
        port.publish(Heard(call_id=port.call_id, text=transcript.text, speaker=leg.speaker,
                           confidence=round(transcript.confidence, 3),
                           start=round(end - transcript.audio_s, 3), end=round(end, 3)))
