"""The clarifying question: spoken titles, prompts, and reading the caller's choice."""

from __future__ import annotations

import pytest

from smartpbx_ari.ai.clarify import (
    NO,
    Choice,
    is_reply,
    is_short,
    prompt,
    read_choice,
    spoken_title,
)

pytestmark = pytest.mark.unit

ONE = (Choice("close", "close your account"),)
TWO = (Choice("close", "close your account"), Choice("type", "change your account type"))
THREE = (*TWO, Choice("fee", "account fees"))


@pytest.mark.parametrize(("question", "title"), [
    ("How do I close my account?", "close your account"),
    ("Where can I find my sort code and account number?",
     "find your sort code and account number"),
    ("My card has been lost or stolen. What should I do?", "your card has been lost or stolen"),
    ("What is my daily cash withdrawal limit?", "daily cash withdrawal limit"),
    ("Opening hours", "opening hours"),
    # a word that begins with a pronoun is a word ("your", not "you" + "r")
    ("What are your branch opening hours?", "your branch opening hours"),
    ("회원 탈퇴는 어떻게 하나요?", "회원 탈퇴"),
    ("계정 이메일 주소를 변경하려면 어떻게 해야 하나요?", "계정 이메일 주소를 변경"),
    ("요금제별 가격은 어떻게 되나요?", "요금제별 가격"),
])
def test_a_spoken_title_drops_the_question_frame(question: str, title: str) -> None:
    assert spoken_title(question) == title


def test_a_long_title_is_cut() -> None:
    assert len(spoken_title("How do I " + "very " * 20 + "long thing?").split()) == 9


def test_prompts_name_the_choices_in_the_call_language() -> None:
    assert prompt(ONE, "en") == "Do you mean close your account? Please say yes or no."
    assert "close your account" in prompt(TWO, "en") and "press 1 or 2" in prompt(TWO, "en")
    assert prompt(TWO, "ko").startswith("close your account, change your account type 중")
    assert prompt(ONE, "xx") == prompt(ONE, "en")


@pytest.mark.parametrize(("said", "choice"), [
    ("yes", 0), ("Yes, please.", 0), ("yeah that's it", 0), ("1", 0), ("네", 0),
    ("no", NO), ("No, not that.", NO), ("아니요", NO), ("neither", NO),
    ("What time do you open?", None), ("2", None),  # one choice: "2" is not an answer
])
def test_one_choice_is_read_as_yes_or_no(said: str, choice: int | None) -> None:
    assert read_choice(said, ONE) == choice


@pytest.mark.parametrize(("said", "choice"), [
    ("1", 0), ("2", 1), ("one", 0), ("Two.", 1), ("the second one", 1),
    ("I think the first", 0), ("두 번째", 1), ("1번", 0),
    ("change your account type", 1), ("I want to close your account", 0),
    ("no", NO), ("neither of them", NO), ("yes", None),  # "yes" to A or B: not a choice
])
def test_two_choices_are_read_by_number_or_by_title(said: str, choice: int | None) -> None:
    assert read_choice(said, TWO) == choice


def test_a_short_unrecognised_reply_is_not_a_new_question() -> None:
    assert is_short("um, maybe") and not is_short("how much does a transfer abroad cost")


def test_three_choices_are_named_in_the_prompt() -> None:
    assert prompt(THREE, "en") == ("Is it about close your account, about change your account "
                                   "type, or about account fees? Say one, two or three, or "
                                   "press 1, 2 or 3.")
    assert prompt(THREE, "ko").startswith("close your account, change your account type, "
                                          "account fees 중")


@pytest.mark.parametrize(("said", "choice"), [
    ("3", 2), ("three", 2), ("the third one", 2), ("세 번째", 2), ("3번", 2), ("2", 1),
    ("I think the third", 2), ("account fees", 2), ("no", NO), ("yes", None),
])
def test_three_choices_are_read_by_number_or_by_title(said: str, choice: int | None) -> None:
    assert read_choice(said, THREE) == choice


def test_a_third_is_no_answer_to_two_choices() -> None:
    assert read_choice("3", TWO) is None and read_choice("the third one", TWO) is None


@pytest.mark.parametrize(("said", "choice"), [
    ("Two. Two.", 1), ("the first one, the first one", 0), ("No? No? No?", NO),
    ("one two", None),  # two choices named: neither is the answer
])
def test_a_reply_said_more_than_once_is_read_as_said_once(said: str, choice: int | None
                                                           ) -> None:
    assert read_choice(said, TWO) == choice


@pytest.mark.parametrize(("said", "reply"), [
    ("Two.", True), ("3", True), ("No thanks.", True), ("I think the second", True),
    ("Yes. Yes.", True), ("네", True), ("두 번째", True),
    ("10", False), ("", False), ("leader", False), ("Opening hours.", False),
    ("Number one.", False),
])
def test_a_reply_is_what_a_choice_yes_or_no_is_read_from(said: str, reply: bool) -> None:
    assert is_reply(said) is reply
