"""SQLAlchemy 2.0 models (the schema itself lives in Alembic migrations, store/migrations).

Knowledge rows are the source of truth for the knowledge base; Chroma is an index. A call's
transcript is its utterances, each committed as it happens. Status-like columns are plain
strings with StrEnum values (portable between SQLite and PostgreSQL, no native enums).
"""

from __future__ import annotations

import enum
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    DateTime,
    Enum,
    Float,
    ForeignKey,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship


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
    # other ways callers ask it: each is searched like the question itself
    alternates: Mapped[list[str] | None] = mapped_column(JSON)
    # phrasings generated at import (searched like alternates; operators may remove them)
    generated: Mapped[list[str] | None] = mapped_column(JSON)
    # the short spoken title a clarifying question uses ("Do you mean <title>?")
    title: Mapped[str | None] = mapped_column(String(200))
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

    def as_dict(self) -> dict[str, Any]:
        return {"id": self.id, "question": self.question,
                "alternates": list(self.alternates or ()),
                "generated": list(self.generated or ()), "title": self.title or "",
                "answer": self.answer,
                "category": self.category, "language": self.language,
                "source": str(self.source), "status": str(self.status)}


class CallStatus(enum.StrEnum):
    ACTIVE = "active"
    COMPLETED = "completed"  # the caller or the agent hung up
    HANDED_OFF = "handed_off"  # back to the dialplan: the operators' queue
    FAILED = "failed"


class Speaker(enum.StrEnum):
    CALLER = "caller"
    AGENT = "agent"
    OPERATOR = "operator"


class Role(enum.StrEnum):
    ADMIN = "admin"
    OPERATOR = "operator"
    VIEWER = "viewer"


class AlertStatus(enum.StrEnum):
    OPEN = "open"
    ACCEPTED = "accepted"
    ANSWERED = "answered"
    TAKEN_OVER = "taken_over"
    CLOSED = "closed"
    ABANDONED = "abandoned"  # the caller hung up while on hold for it


class RuleKind(enum.StrEnum):
    HOURS = "hours"  # value: "Mon-Fri 09:00-18:00" (local time); outside -> closed
    BLOCK = "block"  # pattern: caller number -> hang up
    VIP = "vip"  # pattern: caller number -> straight to the operators
    LANGUAGE = "language"  # pattern: dialled number -> value: language code


@dataclass(frozen=True)
class Transcript:
    """A call's whole transcript, derived from its utterances (the seed's Transcript)."""

    content: str
    quality_score: float | None  # mean STT confidence of the caller's utterances
    word_count: int


class Call(Base):
    __tablename__ = "calls"

    call_id: Mapped[str] = mapped_column(String(64), primary_key=True,
                                         default=lambda: uuid.uuid4().hex)
    caller: Mapped[str] = mapped_column(String(64), index=True)
    callee: Mapped[str] = mapped_column(String(64), default="")
    start_time: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=_now,
                                                 index=True)
    end_time: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    duration: Mapped[float | None] = mapped_column(Float)  # seconds
    status: Mapped[str] = mapped_column(String(16), default=CallStatus.ACTIVE, index=True)
    call_type: Mapped[str] = mapped_column(String(16), default="sip_call")
    language: Mapped[str] = mapped_column(String(8), default="")
    end_reason: Mapped[str] = mapped_column(String(64), default="")
    cdr: Mapped[dict[str, Any] | None] = mapped_column(JSON)  # from AMI's Cdr event
    # how it ended (store/disposition.py), why it went to the queue, time held for an answer
    disposition: Mapped[str | None] = mapped_column(String(24), index=True)
    disposition_reason: Mapped[str] = mapped_column(String(64), default="")
    hold_s: Mapped[float | None] = mapped_column(Float)
    utterances: Mapped[list[Utterance]] = relationship(
        back_populates="call", order_by="Utterance.seq", cascade="all, delete-orphan",
        passive_deletes=True)

    @property
    def transcript(self) -> Transcript | None:
        if not self.utterances:
            return None
        confidences = [u.confidence for u in self.utterances
                       if u.speaker == Speaker.CALLER and u.confidence is not None]
        return Transcript(
            "\n".join(f"{u.speaker}: {u.text}" for u in self.utterances),
            sum(confidences) / len(confidences) if confidences else None,
            sum(len(u.text.split()) for u in self.utterances))


class Utterance(Base):
    """One turn of speech, committed as soon as it is transcribed (or spoken)."""

    __tablename__ = "utterances"
    __table_args__ = (UniqueConstraint("call_id", "seq"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    call_id: Mapped[str] = mapped_column(ForeignKey("calls.call_id", ondelete="CASCADE"),
                                         index=True)
    seq: Mapped[int] = mapped_column(Integer)  # order in the call; makes retries idempotent
    speaker: Mapped[str] = mapped_column(String(16))
    text: Mapped[str] = mapped_column(Text)
    start_time: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    end_time: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    confidence: Mapped[float | None] = mapped_column(Float)
    call: Mapped[Call] = relationship(back_populates="utterances")


class HitlAlert(Base):
    __tablename__ = "hitl_alerts"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    key: Mapped[str] = mapped_column(String(32))  # the live alert's id (unique)
    __table_args__ = (UniqueConstraint("key", name="uq_hitl_alerts_key"),)
    call_id: Mapped[str] = mapped_column(ForeignKey("calls.call_id", ondelete="CASCADE"),
                                         index=True)
    reason: Mapped[str] = mapped_column(String(64))
    question: Mapped[str] = mapped_column(Text, default="")
    confidence: Mapped[float | None] = mapped_column(Float)
    status: Mapped[str] = mapped_column(String(16), default=AlertStatus.OPEN, index=True)
    accepted_by: Mapped[str | None] = mapped_column(String(64))
    answer: Mapped[str | None] = mapped_column(Text)  # an operator's typed answer
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=_now)
    resolved_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class OperatorAction(Base):
    """The audit log: who did what, when."""

    __tablename__ = "operator_actions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=_now, index=True)
    user: Mapped[str] = mapped_column(String(64))
    action: Mapped[str] = mapped_column(String(32))
    call_id: Mapped[str | None] = mapped_column(String(64), index=True)
    alert_key: Mapped[str | None] = mapped_column(String(32))
    detail: Mapped[dict[str, Any] | None] = mapped_column(JSON)


class User(Base):
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    email: Mapped[str] = mapped_column(String(254), unique=True)
    password_hash: Mapped[str] = mapped_column(String(255))
    role: Mapped[str] = mapped_column(String(16), default=Role.VIEWER)
    endpoint: Mapped[str] = mapped_column(String(64), default="")  # the operator's phone
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=_now)


class OperatorPresence(Base):
    """Reachability of an operator's PJSIP endpoint, from AMI."""

    __tablename__ = "operator_presence"

    endpoint: Mapped[str] = mapped_column(String(64), primary_key=True)
    state: Mapped[str] = mapped_column(String(16), default="unknown")
    detail: Mapped[str] = mapped_column(String(128), default="")
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=_now,
                                                 onupdate=_now)


class RoutingRule(Base):
    """What the FastAGI server tells the dialplan before a call reaches the AI."""

    __tablename__ = "routing_rules"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    kind: Mapped[str] = mapped_column(String(16), index=True)
    pattern: Mapped[str] = mapped_column(String(64), default="")
    value: Mapped[str] = mapped_column(String(128), default="")
    priority: Mapped[int] = mapped_column(Integer, default=100)
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    note: Mapped[str] = mapped_column(String(255), default="")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=_now)
