"""Whole calls through the real Asterisk: greeting, answers, DTMF 0, hang-up, barge-in."""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
from pathlib import Path
from typing import Any

import pytest

from smartpbx_ari.ai.voice import Voice
from smartpbx_ari.events import BargedIn, CallEnded, CallStarted, HandedOff, Heard, Said
from smartpbx_ari.media.turn import rms
from smartpbx_ari.sipcaller.caller import VOICE_RMS, Dial, SyntheticCaller
from smartpbx_ari.telephony.ari import AriClient
from tests.e2e.conftest import Controller
from tests.fixtures.audio import neural_wav, wav_frames
from tests.fixtures.sipp import run_rtp_stream_call

pytestmark = [pytest.mark.e2e, pytest.mark.ai, pytest.mark.slow]
ROBOT = Voice("espeak", "en-us")


async def test_two_questions_in_one_call_hear_the_right_answers(
    controller: Controller, caller: SyntheticCaller, dial: Dial
) -> None:
    report = await caller.conversation(
        dial, ["How do I get a refund?", "Which payment methods do you accept?"])
    assert report.greeting_ms is not None
    assert "assistant" in report.greeting.lower()
    refund, payment = report.turns
    assert refund.latency_ms is not None and payment.latency_ms is not None
    # the refund answer ("Refunds are paid to your original payment method ..."); tiny.en
    # at the caller hears the voice's "Refunds" as "Refons" in most renderings
    assert "original payment method" in refund.heard.lower(), refund.heard
    assert "card" in payment.heard.lower()
    heard = [(await controller.until(Said)).intent for _ in range(2)]
    assert heard == ["refund", "payment"]


async def test_pressing_zero_hands_the_caller_to_the_operators_queue(
    controller: Controller, caller: SyntheticCaller, dial: Dial, ari: AriClient
) -> None:
    async with caller.dial(dial) as line:
        started = await controller.until(CallStarted)
        await line.wait_voice(line.answered_at, 5)
        await line.call.send_dtmf("0")
        handed = await controller.until(HandedOff)
        assert handed.reason == "caller pressed 0"
        await asyncio.sleep(0.5)
        channel = await ari.channel(started.call_id)
        assert channel.app_name == "Queue"  # the dialplan took it on, not silence
    await controller.until(CallEnded)


async def test_hangup_mid_answer_leaves_no_channel_bridge_or_task(
    controller: Controller, caller: SyntheticCaller, dial: Dial, ari: AriClient
) -> None:
    async with caller.dial(dial) as line:
        await line.wait_quiet(await line.wait_voice(line.answered_at, 5) or 0)
        spoken = await line.say("How do I get a refund?")
        assert await line.wait_voice(spoken, 10) is not None
        await asyncio.sleep(0.5)  # hang up in the middle of the answer
    ended = await controller.until(CallEnded)
    assert ended.reason == "caller hung up"
    await asyncio.sleep(0.2)
    assert controller.app.active_tasks() == []
    assert not [t for t in asyncio.all_tasks() if t.get_name().startswith("call:")]
    assert await ari.channels() == []
    assert [b for b in await ari.bridges() if b.name.startswith("smartpbx-")] == []
    assert controller.app.ports.in_use == 0


async def test_barge_in_stops_the_answer_at_once(
    controller: Controller, caller: SyntheticCaller, dial: Dial
) -> None:
    async with caller.dial(dial) as line:
        await line.wait_quiet(await line.wait_voice(line.answered_at, 5) or 0)
        spoken = await line.say("How do I get a refund?")
        answer = await line.wait_voice(spoken, 10)
        assert answer is not None
        interruption = await line.speech("Stop, and tell me about payment.")
        await asyncio.sleep(1.0)
        await line.play(interruption)
        # the caller's voice began at its first voiced frame, as it left the caller (the
        # pacer sends the first frame at its next 20 ms slot)
        assert line.call.rtp.spurt_at is not None
        began = line.call.rtp.spurt_at
        interrupt_at = began + _first_voiced_s(interruption, line.rate)
        barge = await controller.until(BargedIn, 5)
        assert barge.call_id
        await asyncio.sleep(1.0)
        runs = _voiced_runs([t for t, pcm in line.call.rtp.received
                             if interrupt_at <= t < interrupt_at + 1.0 and _loud(pcm)])
        # the interrupted answer's last voiced frame (none: it was between words and held
        # at once)
        stopped_ms = ((runs[0][1] if runs and runs[0][0] - interrupt_at < GAP_S
                       else interrupt_at) - interrupt_at) * 1000
        print(f"the answer stopped {stopped_ms:.0f} ms into the caller's voice")  # (-s)
        assert stopped_ms <= 150, f"answer went on {stopped_ms:.0f} ms into the caller's speech"
        # a reply to "Stop," (its comma taken for the end of a turn) that began before the
        # caller went on yields at once, and the whole sentence is answered
        went_on = began + _after_first_pause(interruption, line.rate)
        for start, end in runs[1:]:
            assert end - max(start, went_on) <= 0.15, (start - interrupt_at, end - interrupt_at)
        # the interruption is the next turn; the voice pauses at its comma, which the
        # turn model may take for the end ("Stop." + the rest). What is asserted is that
        # the rest was heard, not tiny.en's hearing of its last word: in two CI runs it
        # heard "payment" as "painting" and as "pain" (the hard case stays in bench_voice)
        rest = "tell me about"
        heard = [(await controller.until(Heard)).text]
        if rest not in heard[0].lower():
            with contextlib.suppress(TimeoutError):  # the assertion says what was heard
                heard.append((await controller.until(Heard, 10)).text)
        assert rest in " ".join(heard).lower(), heard


async def test_sipp_third_party_call_receives_answer_audio(
    controller: Controller, ari: AriClient, credentials: object, audio_dir: Path
) -> None:
    wav = await neural_wav("Which payment methods do you accept?", audio_dir / "q.wav")
    password = credentials.caller_password  # type: ignore[attr-defined]
    sipp = asyncio.create_task(asyncio.to_thread(
        run_rtp_stream_call, audio_dir, "1000", wav, password,
        pause_ms=5000, stream_ms=wav_frames(wav) // 8, tail_ms=7000))
    started = await controller.until(CallStarted)
    heard = await controller.until(Heard, 20)
    said = await controller.until(Said, 20)
    assert said.intent == "payment", (heard, said)
    before = await _tx_packets(ari, started.call_id)
    await asyncio.sleep(2.0)
    after = await _tx_packets(ari, started.call_id)
    assert after - before >= 80, (before, after)  # Asterisk sent SIPp >= 1.6 s of answer
    result = await sipp
    assert result.returncode == 0, result.stdout[-1500:]


async def _tx_packets(ari: AriClient, channel_id: str) -> int:
    return int(await ari.get_variable(channel_id, "CHANNEL(rtcp,txcount)") or 0)


def _loud(pcm: Any) -> bool:
    return rms(pcm) >= VOICE_RMS


GAP_S = 0.2  # voice this far apart is two utterances, not the pause between two words


def _voiced_runs(times: list[float]) -> list[tuple[float, float]]:
    """Arrival times of voiced frames as (first, last) of each run, split at GAP_S."""
    runs: list[tuple[float, float]] = []
    for t in sorted(times):
        if runs and t - runs[-1][1] < GAP_S:
            runs[-1] = (runs[-1][0], t)
        else:
            runs.append((t, t))
    return runs


def _voiced(pcm: Any, rate: int) -> list[bool]:
    frame = rate // 50
    return [_loud(pcm[i : i + frame]) for i in range(0, len(pcm) - frame + 1, frame)]


def _first_voiced_s(pcm: Any, rate: int) -> float:
    """Seconds into ``pcm`` of its first voiced 20 ms frame."""
    return _voiced(pcm, rate).index(True) * 0.02


def _after_first_pause(pcm: Any, rate: int) -> float:
    """Seconds into ``pcm`` where the voice goes on after its first pause (a comma)."""
    loud = _voiced(pcm, rate)
    first = loud.index(True)
    gap = loud.index(False, first)
    return loud.index(True, gap) * 0.02


async def test_asking_for_a_person_hands_the_call_over(
    controller: Controller, caller: SyntheticCaller, dial: Dial, ari: AriClient
) -> None:
    async with caller.dial(dial) as line:
        started = await controller.until(CallStarted)
        await line.wait_quiet(await line.wait_voice(line.answered_at, 5) or 0)
        await line.say("I want to talk to a person.", ROBOT)  # the hard, robotic accent
        said = await controller.until(Said)
        assert said.intent == "human_request" and said.hitl is True
        handed = await controller.until(HandedOff)
        assert handed.reason == "caller asked for a person"
        await asyncio.sleep(0.5)
        assert (await ari.channel(started.call_id)).app_name == "Queue"


async def test_smartpbx_call_cli_prints_one_json_object(
    controller: Controller, settings: object
) -> None:
    proc = await asyncio.create_subprocess_exec(
        str(Path(sys.executable).with_name("smartpbx")), "call", "1000",
        "--say", "Which payment methods do you accept?", "--json",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 0, err.decode()[-1000:]
    report = json.loads(out)
    assert set(report) == {"greeting_ms", "turns", "call_ms"}
    (turn,) = report["turns"]
    assert set(turn) == {"said", "heard", "latency_ms"}
    assert turn["said"] == "Which payment methods do you accept?"
    assert "card" in turn["heard"].lower()
    assert 0 < turn["latency_ms"] < 5000 and 0 <= report["greeting_ms"] < 2000
