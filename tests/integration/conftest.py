"""Fixtures shared by the integration tests: the web app's HTTP client, the real STT."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import aiohttp
import pytest

from smartpbx_ari.ai.stt import SpeechToText
from smartpbx_ari.config import SttSettings


@pytest.fixture(scope="module")
def stt() -> Iterator[SpeechToText]:
    """tiny.en with the default settings, loaded once per module."""
    model = SpeechToText(SttSettings())
    yield model
    model.close()


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session
