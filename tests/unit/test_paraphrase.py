"""Rule-made phrasings of an entry's question (the entry's ``generated`` field)."""

from __future__ import annotations

import pytest

from smartpbx_ari.ai.paraphrase import generate

pytestmark = pytest.mark.unit


def test_an_action_question_becomes_its_topic_a_wish_and_a_request() -> None:
    assert generate("How do I close my account?") == [
        "close my account", "I want to close my account", "Can you help me close my account?"]
    assert generate("Can I use my card abroad?")[0] == "use my card abroad"


def test_a_what_question_becomes_a_topic() -> None:
    assert generate("What is the daily cash withdrawal limit?") == [
        "the daily cash withdrawal limit", "Tell me about the daily cash withdrawal limit",
        "I have a question about the daily cash withdrawal limit"]


def test_a_korean_question_drops_its_frame() -> None:
    assert generate("회원 탈퇴는 어떻게 하나요?") == [
        "회원 탈퇴", "회원 탈퇴 하고 싶어요", "회원 탈퇴 방법 알려 주세요", "회원 탈퇴 문의드려요"]


@pytest.mark.parametrize("question", [
    "My card has been lost or stolen. What should I do?", "Opening hours",
    "로그인을 여러 번 실패해서 계정이 잠겼어요."])
def test_no_rule_no_phrasing(question: str) -> None:
    assert generate(question) == []
