"""End of turn by meaning, through the real Asterisk: a caller who hesitates mid-sentence
is answered once, for the whole sentence."""

from __future__ import annotations

import contextlib

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


async def test_a_caller_going_on_after_a_1_s_pause_is_answered_for_the_whole_sentence(
    controller: Controller, caller: SyntheticCaller, dial: Dial
) -> None:
    """The head is a question of its own ("How do I get a refund,"): the model may end
    the turn early in the pause and its answer begin at once. The caller going on a
    second into the pause, well into that answer, stops it and is heard whole, not as a
    new turn without its head (turn.resume_into_answer_ms)."""
    async with caller.dial(dial) as line:
        await line.wait_quiet(await line.wait_voice(line.answered_at, 5) or 0)
        head = await line.speech("How do I get a refund,")
        tail = await line.speech("for an item that arrived broken?")
        pause = np.zeros(line.rate, np.int16)
        await line.play(np.concatenate([head, pause, tail]))
        heard = [await controller.until(Heard)]
        with contextlib.suppress(TimeoutError):  # the head's, then the whole; none after
            while True:
                heard.append(await controller.until(Heard, 4.0))
        # the last turn heard holds the head, the pause and the rest: not the rest alone
        whole_s = (len(head) + len(pause) + len(tail)) / line.rate
        last = heard[-1]
        assert last.start is not None and last.end is not None, last
        assert last.end - last.start >= whole_s - 0.3, (whole_s, heard)
        assert len(heard) <= 2, heard  # at most the head, answered before they went on
