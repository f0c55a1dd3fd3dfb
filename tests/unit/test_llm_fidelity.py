"""The LLM may rephrase, never add facts: the fidelity check on its output."""

from __future__ import annotations

import pytest

from smartpbx_ari.ai.llm import faithful

pytestmark = pytest.mark.unit
ANSWER = "Refunds are paid to your original payment method within 5 working days."


@pytest.mark.parametrize(("text", "ok"), [
    ("We refund your original payment method within 5 working days.", True),
    ("Refunds are paid within 3 working days.", False),  # a new number is a new fact
    ("Refunds are paid in cash at our Berlin store.", False),  # new words, new facts
    ("", False),
])
def test_faithful(text: str, ok: bool) -> None:
    assert faithful(text, ANSWER) is ok
