"""Priming on doubt (``stt.prompt_below``): what was heard unsurely is decoded again with
the knowledge base's words, and the primed decode stands only where it is surer and
Whisper's own checks pass it."""

from __future__ import annotations

import math

from smartpbx_ari.ai.stt import prime_unsure
from smartpbx_ari.ai.stt_batch import Decoded


def heard(text: str, probability: float, *, no_speech: float = 0.1,
          compression: float = 1.2, skipped: bool = False) -> Decoded:
    return Decoded(text, math.log(probability), no_speech, compression, skipped)


SILENT = Decoded("", 0.0, 0.9, 0.0, skipped=True)


def test_only_what_was_heard_unsurely_is_decoded_again() -> None:
    decoded = [heard("How do I get a refund?", 0.78), heard("How do I get a re-fin?", 0.51),
               SILENT]
    asked: list[list[int]] = []

    def primed(indexes: list[int]) -> list[Decoded]:
        asked.append(indexes)
        return [heard("How do I get a refund?", 0.74)]

    prime_unsure(decoded, 0.6, primed)
    assert asked == [[1]]
    assert [d.text for d in decoded] == ["How do I get a refund?"] * 2 + [""]


def test_nothing_unsure_asks_nothing() -> None:
    decoded = [heard("Where is my parcel?", 0.8), SILENT]

    def primed(indexes: list[int]) -> list[Decoded]:
        raise AssertionError(f"asked to prime {indexes}")

    prime_unsure(decoded, 0.6, primed)
    assert decoded[0].text == "Where is my parcel?"


def test_a_primed_decode_less_sure_looping_or_silent_does_not_stand() -> None:
    plain = [heard("Do you sell gramophones?", 0.5)] * 4
    replies = [heard("Do you sell refunds?", 0.45),  # less sure than what it heard
               heard("$1,000, $1,000, $1,000", 0.9, compression=3.1),  # the prompt looping
               heard("refund", 0.7, no_speech=0.8),  # more likely silence
               SILENT]
    for reply in replies:
        decoded = list(plain[:1])
        prime_unsure(decoded, 0.6, lambda indexes, reply=reply: [reply])
        assert decoded[0].text == "Do you sell gramophones?", reply
