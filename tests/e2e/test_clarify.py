"""A clarifying question on the phone, through the real Asterisk, on a knowledge base
nobody here tuned for (the bank FAQ of ``tests/fixtures/domains``, imported as a user
would): a caller's question the agent is not sure of is answered with "Is it about A, or
about B?", and the caller's pick, by key or by voice, gets the picked entry's answer."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from smartpbx_ari.ai.knowledge_io import import_file
from smartpbx_ari.ai.rag import RAGEngine
from smartpbx_ari.config import Settings, load_settings
from smartpbx_ari.events import Said
from smartpbx_ari.sipcaller.caller import Dial, SyntheticCaller
from smartpbx_ari.store.knowledge import approved_entries
from smartpbx_ari.telephony.ari import AriClient
from smartpbx_ari.telephony.pbx import LocalPbx
from tests.e2e.conftest import Controller, running_controller

pytestmark = [pytest.mark.e2e, pytest.mark.ai, pytest.mark.slow]
BANK = Path(__file__).resolve().parents[1] / "fixtures" / "domains" / "bank.csv"
# a blind caller's question (bank-questions.yaml), chosen by its text alone: of those the
# agent answers, as text, with "Is it about A, or about B?" offering the entry asked for,
# the one furthest below the answer threshold (0.18; the sort code or the statement), so
# that a word misheard leaves it unsure. (The mortgage question first taken here, 0.39,
# rested on one word: a take of Piper heard as "how much you've done this?" by tiny.en
# and Whisper base alike was answered, rightly, at once.)
ASKED = "My new employer needs my details for payroll, where would I find them?"
WANTED = "Where can I find my sort code and account number?"
SAID_PICK = ("The first one.", "The second one.", "The third one.")


@pytest.fixture(scope="module")
def bank(tmp_path_factory: pytest.TempPathFactory) -> RAGEngine:
    data = tmp_path_factory.mktemp("bank")
    engine = RAGEngine.open(load_settings(environ={**os.environ,
                                                   "SMARTPBX_DATA_DIR": str(data)}))
    assert import_file(engine, BANK).added > 20
    return engine


@pytest.fixture
async def controller(pbx: LocalPbx, ari: AriClient, settings: Settings, bank: RAGEngine
                     ) -> AsyncIterator[Controller]:
    async with running_controller(settings, ari, bank) as running:
        yield running


@pytest.mark.parametrize("by", ["key", "voice"])
async def test_a_caller_picks_an_offered_entry_and_hears_its_answer(
    by: str, controller: Controller, caller: SyntheticCaller, dial: Dial, bank: RAGEngine
) -> None:
    [wanted] = [e for e in approved_entries(bank.db) if e.question == WANTED]
    async with caller.dial(dial) as line:
        await line.wait_quiet(await line.wait_voice(line.answered_at, 10) or 0)
        said = await line.say(ASKED)
        offer = await controller.until(Said, 20)
        assert offer.intent == "clarify" and not offer.hitl, offer
        assert wanted.title and wanted.title in offer.text, offer
        # the choice's number: the titles are read in order, each after "about"
        pick = offer.text[:offer.text.index(wanted.title)].count("about ")
        assert 1 <= pick <= 3, offer
        await line.wait_quiet(await line.wait_voice(said, 10) or said)
        if by == "key":
            await line.call.send_dtmf(str(pick))
        else:
            await line.say(SAID_PICK[pick - 1])
        answer = await controller.until(Said, 20)
        assert answer.text == wanted.answer and not answer.hitl, answer
        assert answer.intent != "clarify", answer
