"""Priming on doubt (``stt.prompt_below``): what was heard unsurely is decoded again with
the knowledge base's words, and the primed decode stands only where it is surer and
Whisper's own checks pass it. And a short reply to a clarifying question that is no reply
is decoded again knowing the question, which stands only where it is a reply."""

from __future__ import annotations

import math

from smartpbx_ari.ai.stt import answer_asked, prime_unsure
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


def test_a_short_utterance_that_is_no_reply_is_decoded_again_knowing_the_question() -> None:
    decoded = [heard("10", 0.5), heard("Yes.", 0.9), SILENT,
               heard("How much does it cost to deliver to Spain?", 0.8)]
    asked: list[list[int]] = []

    def knowing(indexes: list[int]) -> list[Decoded]:
        asked.append(indexes)
        return [heard("Two.", 0.6), heard("Three.", 0.7)]

    assert answer_asked(decoded, knowing) == 2
    assert asked == [[0, 2]]  # not a reply already, nor a question
    assert [d.text for d in decoded] == ["Two.", "Yes.", "Three.",
                                         "How much does it cost to deliver to Spain?"]


def test_a_decode_knowing_the_question_stands_only_where_it_is_a_reply() -> None:
    """The question primed may speak instead of the caller: on a "Not really." heard
    plain, Whisper primed so wrote "Don't forget to subscribe to my channel."."""
    for plain, knowing in ((heard("Opening hours.", 0.8), heard("Opening hours.", 0.9)),
                           (heard("leader", 0.4), heard("Don't forget to subscribe.", 0.9)),
                           (heard("Neither", 0.4), heard("Neither.", 0.9)),
                           (heard("10", 0.4), heard("Two.", 0.9, no_speech=0.8)),
                           (heard("10", 0.4), heard("Two. Two. Two.", 0.9, compression=2.6)),
                           (SILENT, SILENT)):
        decoded = [plain]
        answer_asked(decoded, lambda indexes, knowing=knowing: [knowing])
        assert decoded == [plain], (plain, knowing)
