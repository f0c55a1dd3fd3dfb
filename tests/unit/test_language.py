"""Language tags and scripts: base languages, tags a rule may set, Korean text."""

from __future__ import annotations

import pytest

from smartpbx_ari.ai.language import (
    base_language,
    ends_unfinished,
    is_hangul,
    is_korean,
    is_language_tag,
    written_language,
)

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(("tag", "base"), [("ko-KR", "ko"), ("en", "en"), ("EN-us", "en"),
                                           ("", "")])
def test_base_language(tag: str, base: str) -> None:
    assert base_language(tag) == base


@pytest.mark.parametrize(("value", "ok"), [("en", True), ("ko", True), ("en-US", True),
                                           ("yue", True), ("EN", False), ("en_US", False),
                                           ("english", False), ("", False)])
def test_a_rule_sets_a_short_tag(value: str, ok: bool) -> None:
    assert is_language_tag(value) is ok


def test_korean_is_told_by_its_hangul_syllables() -> None:
    assert is_korean("환불 refund") and not is_korean("refund")
    assert is_hangul("가") and is_hangul("힣") and not is_hangul("a") and not is_hangul("")
    assert written_language("배송 조회") == "ko" and written_language("Track it") == "en"


@pytest.mark.parametrize(("text", "short"), [
    ("Where's my?", True), ("Is there a?", True), ("tracking my", True),
    ("When are the...", True), ("Can I split my card payment into", True),
    ("I'd like to cancel and", True), ("re-", True),
    ("Is it plan A?", False), ("How do I get a refund?", False), ("Can I pay?", False),
    ("What's going on?", False), ("Where do I put it in?", False), ("", False),
])
def test_a_transcript_that_stops_on_a_word_no_sentence_ends_on(text: str, short: bool) -> None:
    assert ends_unfinished(text) is short
    assert ends_unfinished(text, "en-US") is short


def test_only_english_is_judged_unfinished() -> None:
    assert not ends_unfinished("the", "ko") and not ends_unfinished("환불은 그리고", "ko")
