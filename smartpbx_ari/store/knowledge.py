"""The knowledge base's SQL rows, its source of truth: validated writes, reads and pages.

Blocking: run in a thread from async code. The search indexes (``ai/retrieval.py``) are
built from these rows and can always be rebuilt from them. Rows come back detached.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select

from smartpbx_ari.errors import UserFacingError
from smartpbx_ari.store.db import Database
from smartpbx_ari.store.models import Knowledge, KnowledgeSource, KnowledgeStatus

MAX_QUESTION = 1000
MAX_ALTERNATES = 50
MAX_TITLE = 120
ALT = "#alt"  # reserved in ids: an index names a phrasing <entry id>#alt<n>


class KnowledgeError(UserFacingError):
    code = "knowledge-invalid"


def validate_question(question: str, field: str = "question") -> str:
    text = " ".join(question.split())
    if not text:
        raise KnowledgeError(f"{field}: must not be empty")
    if len(text) > MAX_QUESTION:
        raise KnowledgeError(f"{field}: {len(text)} characters, at most {MAX_QUESTION}")
    return text


def validate_alternates(value: Any, question: str, field: str = "alternates",
                        known: tuple[str, ...] = ()) -> list[str]:
    """Other ways to ask: a list (or a ``|``-separated string, as in CSV) of questions;
    one equal to the question or to one of ``known`` is dropped."""
    if value is None or value == "":
        return []
    items = value.split("|") if isinstance(value, str) else value
    if not isinstance(items, list):
        raise KnowledgeError(f"{field}: expected a list of questions")
    out: list[str] = []
    for n, item in enumerate(items):
        text = validate_question(str(item), f"{field}[{n}]")
        if text != question and text not in out and text not in known:
            out.append(text)
    if len(out) > MAX_ALTERNATES:
        raise KnowledgeError(f"{field}: {len(out)} questions, at most {MAX_ALTERNATES}")
    return out


def validate_title(value: Any) -> str | None:
    text = " ".join(str(value or "").split())
    if len(text) > MAX_TITLE:
        raise KnowledgeError(f"title: {len(text)} characters, at most {MAX_TITLE}")
    return text or None


def all_alternates(row: Knowledge) -> list[str]:
    """The alternates people wrote, then the generated ones: every other phrasing."""
    return [*(row.alternates or ()), *(row.generated or ())]


def save_entry(db: Database, qa: dict[str, Any]) -> Knowledge:
    """Insert or update (by ``id``) an entry from its fields, validated; on an update,
    ``generated`` and ``title`` are kept unless given."""
    question = validate_question(str(qa.get("question", "")))
    alternates = validate_alternates(qa.get("alternates"), question)
    generated = validate_alternates(qa.get("generated"), question, "generated",
                                    tuple(alternates))
    title = validate_title(qa.get("title"))
    if ALT in str(qa.get("id") or ""):
        raise KnowledgeError(f"id: must not contain {ALT!r}")
    answer = " ".join(str(qa.get("answer", "")).split())
    if not answer:
        raise KnowledgeError("answer: must not be empty")
    with db.session() as session:
        row = session.get(Knowledge, qa["id"]) if qa.get("id") else None
        row = row or Knowledge(id=qa.get("id") or None)
        row.question, row.alternates, row.answer = question, alternates, answer
        # generated phrasings and the title stay as they are unless given (an update
        # from an operator's approved question or a form without them keeps them)
        if "generated" in qa or row.generated is None:
            row.generated = generated
        if "title" in qa:
            row.title = title
        row.category = str(qa.get("category") or "general")
        row.language = str(qa.get("language") or "en")
        row.source = KnowledgeSource(qa.get("source") or KnowledgeSource.MANUAL)
        row.status = KnowledgeStatus(qa.get("status") or KnowledgeStatus.APPROVED)
        session.add(row)
        session.flush()
        session.expunge(row)
    return row


def delete_entry(db: Database, knowledge_id: str) -> Knowledge | None:
    """The deleted row, or None if there was none."""
    with db.session() as session:
        row = session.get(Knowledge, knowledge_id)
        if row is not None:
            session.delete(row)
    return row


def get_entry(db: Database, knowledge_id: str) -> Knowledge | None:
    with db.session() as session:
        row = session.get(Knowledge, knowledge_id)
        if row is not None:
            session.expunge(row)
    return row


def has_entry(db: Database, knowledge_id: str) -> bool:
    with db.session() as session:
        return session.get(Knowledge, knowledge_id) is not None


def find_id(db: Database, question: str) -> str | None:
    """The id of the entry with exactly this question (whitespace-normalized)."""
    text = " ".join(question.split())
    with db.session() as session:
        return session.scalars(select(Knowledge.id).where(Knowledge.question == text)).first()


def approved_entries(db: Database) -> list[Knowledge]:
    """The searchable entries: what the indexes hold."""
    with db.session() as session:
        rows = session.scalars(select(Knowledge).where(
            Knowledge.status == KnowledgeStatus.APPROVED)).all()
    return list(rows)


def pending_entries(db: Database) -> list[Knowledge]:
    """Candidates waiting for review, oldest first."""
    with db.session() as session:
        rows = session.scalars(select(Knowledge).where(
            Knowledge.status == KnowledgeStatus.PENDING).order_by(Knowledge.created_at)).all()
        for row in rows:
            session.expunge(row)
    return list(rows)


def entry_dict(db: Database, knowledge_id: str) -> dict[str, Any] | None:
    """One entry as the REST API shows it."""
    with db.session() as session:
        row = session.get(Knowledge, knowledge_id)
        return row.as_dict() if row is not None else None


def list_entries(db: Database, status: str, limit: int, offset: int
                 ) -> tuple[int, list[dict[str, Any]]]:
    """(total with this status, one page newest first) as the REST API shows them."""
    query = select(Knowledge).where(Knowledge.status == KnowledgeStatus(status))
    with db.session() as session:
        total = session.scalar(select(func.count()).select_from(query.subquery())) or 0
        rows = session.scalars(query.order_by(Knowledge.created_at.desc(), Knowledge.id)
                               .limit(limit).offset(offset)).all()
        return int(total), [r.as_dict() for r in rows]
