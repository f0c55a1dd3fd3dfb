"""SQLAlchemy 2.0 models. The knowledge rows are the source of truth; Chroma is an index."""

from __future__ import annotations

import enum
import uuid
from datetime import UTC, datetime

from sqlalchemy import DateTime, Enum, String, Text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


def _now() -> datetime:
    return datetime.now(UTC)


class Base(DeclarativeBase):
    pass


class KnowledgeSource(enum.StrEnum):
    AUTO = "auto"
    OPERATOR_CORRECTION = "operator_correction"
    MANUAL = "manual"


class KnowledgeStatus(enum.StrEnum):
    PENDING = "pending"
    APPROVED = "approved"


class Knowledge(Base):
    __tablename__ = "knowledge"

    id: Mapped[str] = mapped_column(String(64), primary_key=True,
                                    default=lambda: uuid.uuid4().hex)
    question: Mapped[str] = mapped_column(Text)
    answer: Mapped[str] = mapped_column(Text)
    category: Mapped[str] = mapped_column(String(64), default="general")
    language: Mapped[str] = mapped_column(String(8), default="en")
    source: Mapped[KnowledgeSource] = mapped_column(
        Enum(KnowledgeSource, native_enum=False, length=32), default=KnowledgeSource.MANUAL)
    status: Mapped[KnowledgeStatus] = mapped_column(
        Enum(KnowledgeStatus, native_enum=False, length=16), default=KnowledgeStatus.APPROVED)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=_now)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=_now,
                                                 onupdate=_now)

    def as_dict(self) -> dict[str, str]:
        return {"id": self.id, "question": self.question, "answer": self.answer,
                "category": self.category, "language": self.language,
                "source": str(self.source), "status": str(self.status)}
