"""bench_voice counts the turns answered right from the controller's log: a question
heard as two turns, or one handed over, costs that question and no other."""

from __future__ import annotations

from tests.fixtures.scripts import load_script

bench_voice = load_script("bench_voice")
REFUND, PAYMENT, ADDRESS = ("How do I get a refund?", "Which payment methods do you accept?",
                            "Can I change my delivery address?")


def _said(intent: str, hitl: bool = False) -> str:
    return (f"INFO smartpbx_ari.telephony.stasis: call=1.0 event=said text='...' "
            f"intent='{intent}' confidence=0.9 hitl={hitl} phrased=False question='...' "
            f"speaker='agent' operator=''\n")


def test_answers_in_order_are_each_right() -> None:
    log = (_said("refund") + _said("payment") + _said("delivery_tracking")).encode()
    assert bench_voice.answered_right([REFUND, PAYMENT, ADDRESS], log) == 3


def test_a_split_question_misaligns_none_of_the_rest() -> None:
    # "Can I change my delivery" | "address?": two answers to the first question
    log = (_said("delivery_tracking") + _said("delivery_tracking") + _said("refund")
           + _said("payment")).encode()
    assert bench_voice.answered_right([ADDRESS, REFUND, PAYMENT], log) == 3


def test_a_hand_over_or_a_wrong_entry_is_not_right() -> None:
    log = (_said("refund", hitl=True) + _said("exchange") + _said("delivery_tracking")
           ).encode()
    assert bench_voice.answered_right([REFUND, PAYMENT, ADDRESS], log) == 1


def test_an_answer_inserted_early_costs_none_of_the_turns_before_it() -> None:
    # a clarifying question to a half-heard "Can I change?" in the second of four calls:
    # the longest block first (difflib) counted 15 of these 20, not 20
    questions = [REFUND, PAYMENT, ADDRESS] * 4
    intents = ["refund", "payment", "delivery_tracking"] * 4
    log = "".join(_said(i) for i in [*intents[:5], "clarify", *intents[5:]]).encode()
    assert bench_voice.answered_right(questions, log) == 12
