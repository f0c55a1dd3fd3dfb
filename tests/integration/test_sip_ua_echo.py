"""The synthetic caller's SIP UA against the real Asterisk: echo test (600), DTMF, auth.

Extension 600 is Answer() + Echo(): whatever audio and DTMF we send comes straight back,
and '#' ends the application, so Asterisk hangs up on us with a BYE.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest

from smartpbx_ari.config import Settings
from smartpbx_ari.credentials import Credentials
from smartpbx_ari.media.rtp import RtpPacket
from smartpbx_ari.media.turn import rms
from smartpbx_ari.sipcaller.errors import SipError
from smartpbx_ari.sipcaller.sip import SIPMethod
from smartpbx_ari.sipcaller.ua import SipCall
from smartpbx_ari.telephony.pbx import LocalPbx

pytestmark = [pytest.mark.integration]

ECHO = "600"
VOICE_RMS = 500.0


@dataclass(frozen=True)
class Target:
    server: tuple[str, int]
    password: str


@pytest.fixture
def asterisk(pbx: LocalPbx, settings: Settings, credentials: Credentials) -> Target:
    return Target((settings.pbx.host, settings.pbx.sip_port), credentials.caller_password)


def tone(seconds: float, hz: float = 440.0, amplitude: int = 8000) -> np.ndarray[Any, Any]:
    t = np.arange(round(seconds * 8000)) / 8000
    return (amplitude * np.sin(2 * np.pi * hz * t)).astype(np.int16)


def dominant_hz(pcm: np.ndarray[Any, Any]) -> float:
    spectrum = np.abs(np.fft.rfft(pcm.astype(np.float64) * np.hanning(len(pcm))))
    return float(np.fft.rfftfreq(len(pcm), 1 / 8000)[int(np.argmax(spectrum))])


@pytest.mark.smoke
async def test_echo_plays_our_tone_back(asterisk: Target) -> None:
    async with SipCall.dial(server=asterisk.server, password=asterisk.password,
                            exten=ECHO) as call:
        answered = time.monotonic()
        assert (call.payload_type, call.dtmf_payload_type) == (0, 101)
        assert call.remote_rtp[0] == "127.0.0.1"
        await asyncio.sleep(0.3)  # keepalive silence first: strictrtp learns our address
        started = time.monotonic()
        await call.rtp.play(tone(2.0))
        finished = time.monotonic()
        await asyncio.sleep(0.5)

        first = call.rtp.first_voice_after(answered, VOICE_RMS)
        assert first is not None and started <= first < started + 0.3
        heard = call.rtp.audio.recorded_pcm(since=started, until=finished + 0.5)
        frames = heard[: len(heard) // 160 * 160].reshape(-1, 160)
        voiced = frames[[rms(f) >= VOICE_RMS for f in frames]]
        assert 95 <= len(voiced) <= 102  # 2 s of 20 ms frames came back
        assert abs(dominant_hz(voiced.ravel()) - 440) < 5
        assert abs(rms(voiced.ravel()) - 8000 / np.sqrt(2)) < 400  # mu-law twice, same level

        response = await call.hangup()
        assert response is not None and response.status_code == 200


async def wait_for_event(call: SipCall, event: int, timeout: float = 3.0) -> RtpPacket:
    async with asyncio.timeout(timeout):
        while True:
            for _, packet in call.rtp.audio.other:
                if packet.payload[:1] == bytes([event]) and packet.payload[1] & 0x80:
                    return packet
            await asyncio.sleep(0.02)


async def test_dtmf_is_echoed_and_hash_makes_asterisk_hang_up(asterisk: Target) -> None:
    async with SipCall.dial(server=asterisk.server, password=asterisk.password,
                            exten=ECHO) as call:
        await asyncio.sleep(0.2)
        await call.send_dtmf("5")
        end = await wait_for_event(call, 5)
        assert end.payload_type == call.dtmf_payload_type
        assert not call.ended.is_set()

        await call.send_dtmf("#")
        await asyncio.wait_for(call.ended.wait(), 5.0)
        assert call.requests[-1].method is SIPMethod.BYE
        assert await call.hangup() is None  # nothing left to hang up


async def test_wrong_password_is_refused(asterisk: Target) -> None:
    with pytest.raises(SipError) as err:
        async with SipCall.dial(server=asterisk.server, password="not-" + asterisk.password,
                                exten=ECHO):
            pytest.fail("Asterisk answered with a wrong password")
    assert err.value.status in (401, 403)


async def test_unknown_extension_is_not_found(asterisk: Target) -> None:
    with pytest.raises(SipError) as err:
        async with SipCall.dial(server=asterisk.server, password=asterisk.password,
                                exten="9999"):
            pytest.fail("Asterisk answered an extension that does not exist")
    assert err.value.status == 404
