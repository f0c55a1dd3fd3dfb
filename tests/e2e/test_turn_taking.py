"""End of turn by meaning, through the real Asterisk: a caller who hesitates mid-sentence
is answered once, for the whole sentence."""

from __future__ import annotations

import numpy as np
import pytest

from smartpbx_ari.events import Heard, Said
from smartpbx_ari.sipcaller.caller import Dial, SyntheticCaller
from tests.e2e.conftest import Controller

pytestmark = [pytest.mark.e2e, pytest.mark.ai, pytest.mark.slow]


async def test_a_700_ms_pause_mid_sentence_gets_one_answer_to_the_whole_sentence(
    controller: Controller, caller: SyntheticCaller, dial: Dial
) -> None:
    assert controller.engine.turn_model is not None, "Smart Turn is not loaded"
    async with caller.dial(dial) as line:
        await line.wait_quiet(await line.wait_voice(line.answered_at, 5) or 0)
        head = await line.speech("I'd like to change, um")
        tail = await line.speech("my delivery address.")
        pause = np.zeros(int(0.7 * line.rate), np.int16)
        await line.play(np.concatenate([head, pause, tail]))
        heard = await controller.until(Heard)
        said = await controller.until(Said)
        assert "change" in heard.text.lower() and "address" in heard.text.lower(), heard
        assert not said.hitl and "not shipped" in said.text, said
        with pytest.raises(TimeoutError):  # no answer to half a sentence, before or after
            await controller.until(Heard, 3.0)
