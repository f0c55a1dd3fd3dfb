"""AIAgentService over MockLLM and a fake retriever (tests/fakes.py): the seed's intents
(delivery_tracking, refund, product_inquiry), a request for a person, and a low-confidence
hand-over. The real models' side is tests/integration/test_agent.py."""

from __future__ import annotations

import pytest

from smartpbx_ari.ai.agent import HOLDING, AIAgentService
from smartpbx_ari.ai.confidence import KbProfile
from tests.fakes import Entry, FakeRetriever, MockLLM, agent_service, entries

pytestmark = [pytest.mark.unit, pytest.mark.ai]

KB = entries([
    Entry("qa_001", "배송 조회는 어떻게 하나요?", "주문번호로 배송을 조회할 수 있습니다.", "배송"),
    Entry("qa_002", "환불 받을 수 있나요?", "구매 후 7일 안에 환불을 신청할 수 있습니다.", "환불"),
    Entry("qa_003", "상품 재입고는 언제인가요?", "재입고 알림을 신청하시면 문자로 알려 드립니다.",
          "상품문의"),
    Entry("qa_004", "Where is my parcel?", "Track it with your order number.", "delivery"),
])
SCORES = {  # the best entry well above the KB's impostor level, the second far behind
    "배송": [("qa_001", 0.92), ("qa_004", 0.41)],
    "환불": [("qa_002", 0.90), ("qa_001", 0.38)],
    "재입고": [("qa_003", 0.88), ("qa_002", 0.35)],
    "parcel": [("qa_004", 0.93), ("qa_001", 0.40)],
}
UNRELATED = [("qa_003", 0.30), ("qa_001", 0.29)]  # the seed's "similarity 0.30"
# the KB's impostor level (an entry's question against the others): 0.6 +- 0.1
PROFILE = KbProfile(impostor=0.6, spread=0.1, entries=len(KB))


@pytest.fixture
def mock_llm() -> MockLLM:
    return MockLLM(responses={"배송": "주문번호를 알려주시겠어요?",
                              "환불": "환불 사유를 말씀해주세요",
                              "재입고": "어떤 상품이 궁금하신가요?"})


@pytest.fixture
def retriever() -> FakeRetriever:
    return FakeRetriever(KB, SCORES, default=UNRELATED, kb=PROFILE)


@pytest.fixture
def agent(retriever: FakeRetriever, mock_llm: MockLLM) -> AIAgentService:
    return agent_service(retriever, mock_llm)


@pytest.mark.smoke
@pytest.mark.parametrize(("query", "entry", "intent", "spoken"), [
    ("배송 조회하고 싶어요", "qa_001", "delivery_tracking", "주문번호를 알려주시겠어요?"),
    ("환불 하고 싶어요", "qa_002", "refund", "환불 사유를 말씀해주세요"),
    ("상품 재입고 문의", "qa_003", "product_inquiry", "어떤 상품이 궁금하신가요?"),
])
async def test_a_known_question_is_answered_from_its_entry_and_rephrased(
        agent: AIAgentService, mock_llm: MockLLM, query: str, entry: str, intent: str,
        spoken: str) -> None:
    reply = await agent.respond(query, "session_123")
    assert reply.sources == (entry,)
    assert reply.text == KB[entry].answer  # the stored answer, never the LLM's words
    assert reply.intent == intent
    assert reply.confidence > 0.6 and not reply.hitl
    assert reply.speech is not None
    assert [s async for s in reply.speech] == [spoken]
    assert mock_llm.prompts == [KB[entry].answer]  # the LLM saw the grounded answer only


async def test_without_an_llm_the_answer_is_said_as_stored(retriever: FakeRetriever) -> None:
    reply = await agent_service(retriever).respond("Where is my parcel?", "s")
    assert (reply.text, reply.intent, reply.speech) == (KB["qa_004"].answer,
                                                        "delivery_tracking", None)


@pytest.mark.parametrize(("query", "language"), [
    ("connect me to an operator", "en"), ("상담원 연결해 주세요", "ko")])
async def test_asking_for_a_person_hands_over_without_searching(
        agent: AIAgentService, retriever: FakeRetriever, mock_llm: MockLLM, query: str,
        language: str) -> None:
    reply = await agent.respond(query, "s")
    assert reply.hitl and reply.intent == "human_request"
    assert reply.text == HOLDING[language]
    assert retriever.queries == [] and mock_llm.call_count == 0


@pytest.mark.smoke
async def test_low_confidence_hands_over_with_the_holding_phrase(
        agent: AIAgentService, mock_llm: MockLLM) -> None:
    reply = await agent.respond("완전히 새로운 질문", "session_123")
    assert reply.confidence < 0.6
    assert reply.hitl
    assert reply.text == HOLDING["ko"] and reply.sources == () and not reply.clarifying
    assert mock_llm.call_count == 0  # nothing grounded: nothing to rephrase


@pytest.mark.parametrize(("query", "intent"), [
    ("배송 조회", "delivery_tracking"),
    ("환불 하고 싶어요", "refund"),
    ("상품 문의", "product_inquiry"),
    ("I want a human", "human_request"),
])
def test_intent_classification(query: str, intent: str) -> None:
    """The intent comes from the words even when nothing in the KB matches (handed over)."""
    bot = agent_service(FakeRetriever(KB, {}, default=UNRELATED, kb=PROFILE))
    reply = bot.answer(query, "session_test")
    assert reply.intent == intent and reply.hitl


def test_mock_llm_keeps_the_seeds_api() -> None:
    llm = MockLLM({"배송": "주문번호를 알려주시겠어요?"})
    assert llm._reply("배송 조회") == "주문번호를 알려주시겠어요?"
    assert llm._reply("other") == "other" and llm.call_count == 2
    llm.reset()
    assert llm.call_count == 0 and llm.prompts == []


async def test_mock_llm_ainvoke_answers_like_the_seeds() -> None:
    llm = MockLLM({"환불": "환불 사유를 말씀해주세요"})
    assert (await llm.ainvoke("환불 하고 싶어요")).content == "환불 사유를 말씀해주세요"
