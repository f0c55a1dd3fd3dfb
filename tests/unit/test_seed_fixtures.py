"""The seed's shared fixtures (tests/conftest.py) are what they say they are."""

from __future__ import annotations

import pytest

from smartpbx_ari.media import codecs
from smartpbx_ari.media.rtp import RTPParser
from smartpbx_ari.web.auth import Tokens

pytestmark = pytest.mark.unit


@pytest.mark.smoke
def test_the_seed_tokens_carry_their_roles_and_an_expired_one_is_refused(
        tokens: Tokens, auth_token: str, viewer_token: str, expired_token: str) -> None:
    operator, viewer = tokens.verify(auth_token), tokens.verify(viewer_token)
    assert operator is not None and (operator.role, operator.may("operate")) == ("operator", True)
    assert viewer is not None and (viewer.role, viewer.may("operate")) == ("viewer", False)
    assert tokens.verify(expired_token) is None
    assert Tokens("another-secret-" + "y" * 32, 60).verify(auth_token) is None


def test_the_sample_audio_is_20_ms_of_mu_law_silence(sample_audio_data: bytes) -> None:
    pcm = codecs.ulaw_decode(sample_audio_data)
    assert len(pcm) == 160 and int(abs(pcm).max()) == 0


def test_the_sample_rtp_packet_carries_the_sample_audio(sample_rtp_packet: bytes,
                                                        sample_audio_data: bytes) -> None:
    assert RTPParser.strip_header(sample_rtp_packet) == sample_audio_data
