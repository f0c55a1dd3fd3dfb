"""RAGEngine (SQL rows and the hybrid retriever) with the real packaged embedding model,
a real Chroma and SQLite (tmp dirs)."""

from __future__ import annotations

from pathlib import Path

import pytest

from smartpbx_ari.ai.biasing import KnowledgePrompt
from smartpbx_ari.ai.dense import entry_id
from smartpbx_ari.ai.knowledge_io import import_file
from smartpbx_ari.ai.rag import RAGEngine
from smartpbx_ari.store.knowledge import KnowledgeError, find_id

pytestmark = [pytest.mark.integration, pytest.mark.ai, pytest.mark.db]


async def test_search_returns_seed_dicts_best_first(engine: RAGEngine) -> None:
    results = await engine.search("How can I follow my parcel?", top_k=2)
    assert len(results) == 2
    assert set(results[0]) == {"id", "question", "answer", "category", "similarity"}
    assert results[0]["id"] == "en-delivery-track"
    assert results[0]["similarity"] >= results[1]["similarity"]


async def test_korean_is_found_by_its_lexical_half(engine: RAGEngine) -> None:
    results = await engine.search("환불 받고 싶어요", top_k=1)
    assert results[0]["id"] == "ko-refund-how"
    assert "환불" in results[0]["answer"]


def test_the_multilingual_half_bridges_korean_words_the_entry_does_not_use(
        engine: RAGEngine) -> None:
    question = "환불 처리 기간"  # "refund processing time": no word of it is the entry's
    assert engine.retriever.multilingual is not None
    scores = engine.retriever.multilingual.query(question, 20)
    assert max(scores, key=scores.__getitem__) == "ko-refund-how"
    assert engine.search_hits(question, 1)[0].id == "ko-refund-how"
    # Korean: no all-MiniLM, and a second opinion (USE) beside e5
    assert engine.retriever.weights(question) == (0.0, 0.82, 0.09)
    assert engine.retriever.weights("How do I pay?") == (0.3, 0.7, 0.0)
    retriever = engine.retriever
    halves = retriever.multilingual, retriever.korean
    retriever.multilingual = retriever.korean = None
    try:  # without them, the lexical half alone is misled by the shared words
        assert engine.search_hits(question, 1)[0].id != "ko-refund-how"
    finally:
        retriever.multilingual, retriever.korean = halves


def test_a_korean_faq_imported_without_languages_is_found_by_korean_calls(
        engine: RAGEngine, tmp_path: Path) -> None:
    """A plain CSV has no language column: each entry is in its question's script's, so
    a call routed as Korean finds the Korean ones, and only they enter the Korean
    second opinion."""
    csv = tmp_path / "faq.csv"
    csv.write_text("question,answer\n회의실 예약은 어떻게 하나요?,앱의 예약 메뉴에서 합니다.\n"
                   "How do I book a meeting room?,Use the booking menu in the app.\n", "utf-8")
    ids: list[str] = []
    try:
        import_file(engine, csv)
        ids = [find_id(engine.db, q) or "" for q in ("회의실 예약은 어떻게 하나요?",
                                                    "How do I book a meeting room?")]
        korean, english = (engine.retriever.entry(i) for i in ids)
        assert korean is not None and english is not None
        assert (korean.language, english.language) == ("ko", "en")
        assert engine.search_hits("회의실을 잡고 싶어요", 1, language="ko")[0].id == ids[0]
        assert engine.retriever.korean is not None
        second = {entry_id(i) for i in engine.retriever.korean.ids()}
        assert ids[0] in second and ids[1] not in second
        assert {r.language for r in engine.retriever.approved() if r.id in second} == {"ko"}
    finally:
        for knowledge_id in ids:
            if knowledge_id:
                engine.delete_sync(knowledge_id)


def test_a_call_language_keeps_the_knowledge_to_that_language(engine: RAGEngine) -> None:
    mixed = "refund 환불"
    assert {h.id[:3] for h in engine.search_hits(mixed, 6)} == {"en-", "ko-"}
    assert {h.id[:3] for h in engine.search_hits(mixed, 6, language="ko-KR")} == {"ko-"}
    assert {h.id[:3] for h in engine.search_hits(mixed, 6, language="en")} == {"en-"}


async def test_threshold_filters(engine: RAGEngine) -> None:
    assert await engine.search("What is the capital of France?", threshold=0.7) == []
    kept = await engine.search("How can I follow my parcel?", threshold=0.7)
    assert kept and all(r["similarity"] >= 0.7 for r in kept)


async def test_upsert_then_delete(engine: RAGEngine) -> None:
    new_id = await engine.upsert({"question": "Do you ship to Canada?",
                                  "answer": "Yes, within ten working days.",
                                  "category": "delivery"})
    assert (await engine.search("Do you ship to Canada?", top_k=1))[0]["id"] == new_id
    assert await engine.delete(new_id)
    assert all(r["id"] != new_id for r in await engine.search("ship to Canada", top_k=5))


async def test_bad_questions_name_the_field(engine: RAGEngine) -> None:
    with pytest.raises(KnowledgeError, match="query: must not be empty"):
        await engine.search("   ")
    with pytest.raises(KnowledgeError, match="question: 1001 characters"):
        await engine.upsert({"question": "x" * 1001, "answer": "a"})


def test_import_reports_bad_rows_by_line_and_keeps_the_rest(engine: RAGEngine,
                                                             tmp_path: Path) -> None:
    csv = tmp_path / "kb.csv"
    csv.write_text("question,answer,category,alternates\n"
                   "Do you gift wrap?,Yes for two dollars.,product_inquiry,\n"
                   ",no question,x,\n"
                   "Do you gift wrap?,Yes for three dollars.,product_inquiry,"
                   "Can you wrap it as a present?|Gift wrapping available?\n", "utf-8")
    jsonl = tmp_path / "kb.jsonl"
    jsonl.write_text('{"question": "Do you sell gift cards?", "answer": "Yes, online."}\n'
                     'not json\n[1]\n'
                     '{"question": "Do you sell vouchers?", "answer": "Oui.", "language": "fr"}\n'
                     '{"question": "Do you ship to Canada?", "answer": "Yes, in a week.", '
                     '"language": "en-US"}\n', "utf-8")
    try:
        report = import_file(engine, csv)
        assert (report.added, report.updated) == (1, 1)
        assert report.skipped == [(3, "question: must not be empty")]
        wrapped = engine.retriever.entry(find_id(engine.db, "Do you gift wrap?") or "")
        assert wrapped is not None and wrapped.alternates == [
            "Can you wrap it as a present?", "Gift wrapping available?"]
        report = import_file(engine, jsonl)
        assert report.added == 2
        assert [line for line, _ in report.skipped] == [2, 3, 4]
        assert report.skipped[2] == (4, "language: 'fr' is not one of en, ko")
        assert find_id(engine.db, "Do you sell vouchers?") is None
        # a tag is kept by its base language: a call routed as en-US finds the entry
        shipped = find_id(engine.db, "Do you ship to Canada?") or ""
        assert getattr(engine.retriever.entry(shipped), "language", None) == "en"
        assert shipped in [h.id for h in engine.search_hits(
            "Do you ship to Canada?", 3, language="en-US")]
    finally:  # the knowledge base is shared by the session's other tests
        for question in ("Do you gift wrap?", "Do you sell gift cards?",
                         "Do you ship to Canada?"):
            knowledge_id = find_id(engine.db, question)
            if knowledge_id:
                engine.delete_sync(knowledge_id)


def test_an_entry_is_found_by_its_alternates_and_forgets_removed_ones(
        engine: RAGEngine) -> None:
    qa = {"id": "test-alternates", "question": "Do you offer student discounts?",
          "alternates": ["I'm at university, is there a cheaper price for me?",
                         "Any reductions for pupils?"],
          "answer": "Students get ten percent off with a valid card.", "category": "payment"}
    asked = "I'm at university, is there a cheaper price for me?"
    try:
        engine.upsert_sync(qa)
        assert engine.search_hits(asked, 1)[0].id == "test-alternates"
        assert engine.search_hits("Any reductions for pupils?", 1)[0].id == "test-alternates"
        assert engine.retriever.check_drift() == (set(), set())  # phrasings count as their entry
        engine.upsert_sync({**qa, "alternates": ["Any reductions for pupils?"]})
        indexed = set(engine.retriever.dense.collection.get(include=[])["ids"])
        assert {"test-alternates", "test-alternates#alt1"} <= indexed
        assert "test-alternates#alt2" not in indexed
        assert engine.retriever.lexical.query(asked).get("test-alternates#alt2") == 0.0
    finally:
        assert engine.delete_sync("test-alternates")
    assert not {i for i in engine.retriever.dense.collection.get(include=[])["ids"]
                if i.startswith("test-alternates")}
    assert all(h.id != "test-alternates" for h in engine.search_hits(asked, 5))


def test_bad_alternates_name_the_field(engine: RAGEngine) -> None:
    base = {"question": "Do you offer student discounts?", "answer": "Yes."}
    with pytest.raises(KnowledgeError, match=r"alternates\[1\]: must not be empty"):
        engine.upsert_sync({**base, "alternates": ["Student price?", "  "]})
    with pytest.raises(KnowledgeError, match="alternates: expected a list"):
        engine.upsert_sync({**base, "alternates": {"a": 1}})
    with pytest.raises(KnowledgeError, match="alternates: 51 questions, at most 50"):
        engine.upsert_sync({**base, "alternates": [f"Student price {n}?" for n in range(51)]})
    with pytest.raises(KnowledgeError, match="id: must not contain '#alt'"):
        engine.upsert_sync({**base, "id": "x#alt1"})
    assert find_id(engine.db, base["question"]) is None  # nothing half-stored


def test_drift_is_detected_and_reindex_repairs_it(engine: RAGEngine) -> None:
    engine.retriever.dense.collection.delete(ids=["en-refund-how"])
    missing, stale = engine.retriever.check_drift()
    assert missing == {"en-refund-how"} and stale == set()
    assert engine.reindex() == len(engine)
    assert engine.retriever.check_drift() == (set(), set())


def test_kb_cli_imports_and_prints_one_json_list(tmp_path: Path) -> None:
    import json
    import os
    import subprocess
    import sys

    exe = str(Path(sys.executable).with_name("smartpbx"))
    env = {**os.environ, "SMARTPBX_DATA_DIR": str(tmp_path)}
    imported = subprocess.run([exe, "kb", "import", "demo"], env=env, capture_output=True,
                              text=True, timeout=120, check=True)
    assert "added 20, updated 0, skipped 0" in imported.stderr
    out = subprocess.run([exe, "kb", "search", "Which payment methods do you accept?",
                          "--top-k", "3", "--json"], env=env, capture_output=True, text=True,
                         timeout=120, check=True)
    results = json.loads(out.stdout)
    assert len(results) == 3 and results[0]["id"] == "en-payment-methods"


def test_bulk_upsert_indexes_in_one_batch(engine: RAGEngine) -> None:
    items = [{"id": f"bulk-{n}", "question": q, "answer": a, "category": "test"}
             for n, (q, a) in enumerate([("Do you offer student discounts?", "Ten percent."),
                                         ("Is gift wrapping available?", "Yes, two dollars.")])]
    try:
        assert engine.bulk_upsert(items) == ["bulk-0", "bulk-1"]
        assert engine.search_hits("student discounts", 1)[0].id == "bulk-0"
        assert engine.retriever.check_drift() == (set(), set())
    finally:
        for item in items:
            engine.delete_sync(str(item["id"]))


def test_the_stt_prompt_follows_the_knowledge_as_it_changes(engine: RAGEngine) -> None:
    prompt = KnowledgePrompt(engine.retriever, 200, lambda text: len(text.split()))
    assert "refund" in prompt("en") and "refund" not in prompt("ko")
    assert "배송" in prompt("ko")
    qa = {"id": "test-biasing", "question": "Do you sell gramophones?",
          "answer": "Yes, two models.", "alternates": ["Any turntables in the shop?"]}
    try:
        engine.upsert_sync(qa)  # import, approval and edit all index through here
        assert "gramophones" in prompt("en") and "turntables" in prompt("en")
        engine.upsert_sync({**qa, "alternates": []})
        assert "turntables" not in prompt("en")
    finally:
        engine.delete_sync("test-biasing")
    assert "gramophones" not in prompt("en")


def test_import_gives_titles_and_marked_generated_phrasings(engine: RAGEngine,
                                                            tmp_path: Path) -> None:
    csv = tmp_path / "kb.csv"
    csv.write_text("question,answer,category\n"
                   "How do I order a gift voucher?,Vouchers are sold online.,payment\n",
                   "utf-8")
    try:
        report = import_file(engine, csv, generated=True)
        assert report.added == 1
        knowledge_id = find_id(engine.db, "How do I order a gift voucher?") or ""
        row = engine.retriever.entry(knowledge_id)
        assert row is not None and row.title == "order a gift voucher"
        assert row.generated and "I want to order a gift voucher" in row.generated
        assert row.alternates == []  # people's alternates stay apart
        assert engine.retriever.check_drift() == (set(), set())
        engine.upsert_sync({"id": knowledge_id, "question": row.question,
                            "answer": row.answer, "alternates": ["voucher for a friend?"]})
        kept = engine.retriever.entry(knowledge_id)
        assert kept is not None and kept.generated == row.generated  # an update keeps them
        assert kept.title == row.title
        engine.upsert_sync({**kept.as_dict(), "generated": []})  # removed in the console
        gone = engine.retriever.entry(knowledge_id)
        assert gone is not None and gone.generated == []
        assert engine.retriever.check_drift() == (set(), set())
    finally:
        knowledge_id = find_id(engine.db, "How do I order a gift voucher?")
        if knowledge_id:
            engine.delete_sync(knowledge_id)


def test_import_without_generation_adds_no_phrasings(engine: RAGEngine,
                                                     tmp_path: Path) -> None:
    csv = tmp_path / "kb.csv"
    csv.write_text("question,answer\nHow do I book a fitting?,Book online.\n", "utf-8")
    try:
        import_file(engine, csv)
        row = engine.retriever.entry(find_id(engine.db, "How do I book a fitting?") or "")
        assert row is not None and row.generated == [] and row.title == "book a fitting"
    finally:
        knowledge_id = find_id(engine.db, "How do I book a fitting?")
        if knowledge_id:
            engine.delete_sync(knowledge_id)


def test_an_empty_vector_index_is_filled_at_open(engine: RAGEngine) -> None:
    """A model newly chosen (its collection empty) gets every approved entry at start."""
    half = engine.retriever.multilingual
    assert half is not None
    half.clear()
    RAGEngine(engine.db, engine.retriever)
    assert {entry_id(i) for i in half.ids()} == {r.id for r in engine.retriever.approved()}
    assert engine.search_hits("환불 처리 기간", 1)[0].id == "ko-refund-how"
