"""Reading and purging the call record (blocking: run in a thread from async code)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import delete, func, select

from smartpbx_ari.store.db import Database
from smartpbx_ari.store.models import Call, HitlAlert, Speaker, Utterance
from smartpbx_ari.store.recordings import delete_recordings, delete_recordings_before


@dataclass(frozen=True)
class CallFilter:
    status: str = ""
    caller: str = ""
    disposition: str = ""
    since: datetime | None = None
    until: datetime | None = None


def list_calls(db: Database, where: CallFilter, limit: int = 50, offset: int = 0
               ) -> tuple[int, list[Call]]:
    """(total matching, one page newest first)."""
    query = select(Call)
    if where.status:
        query = query.where(Call.status == where.status)
    if where.disposition:
        query = query.where(Call.disposition == where.disposition)
    if where.caller:
        query = query.where(Call.caller == where.caller)
    if where.since is not None:
        query = query.where(Call.start_time >= where.since)
    if where.until is not None:
        query = query.where(Call.start_time <= where.until)
    with db.session() as session:
        total = session.scalar(select(func.count()).select_from(query.subquery())) or 0
        page = session.scalars(query.order_by(Call.start_time.desc(), Call.call_id)
                               .limit(limit).offset(offset)).all()
    return int(total), list(page)


def first_questions(db: Database, call_ids: list[str]) -> dict[str, str]:
    """Each call's first words of its caller (its lowest-seq caller utterance), by call id;
    calls whose caller said nothing are left out."""
    if not call_ids:
        return {}
    first = (select(Utterance.call_id, func.min(Utterance.seq).label("seq"))
             .where(Utterance.call_id.in_(call_ids), Utterance.speaker == Speaker.CALLER)
             .group_by(Utterance.call_id).subquery())
    query = select(Utterance.call_id, Utterance.text).join(
        first, (Utterance.call_id == first.c.call_id) & (Utterance.seq == first.c.seq))
    with db.session() as session:
        return {row.call_id: row.text for row in session.execute(query)}


def call_page(db: Database, where: CallFilter, limit: int = 50, offset: int = 0
              ) -> tuple[int, list[Call], dict[str, str]]:
    """:func:`list_calls` with the listed calls' :func:`first_questions`."""
    total, page = list_calls(db, where, limit, offset)
    return total, page, first_questions(db, [c.call_id for c in page])


def get_call(db: Database, call_id: str) -> tuple[Call, list[Utterance]] | None:
    with db.session() as session:
        call = session.get(Call, call_id)
        if call is None:
            return None
        return call, list(call.utterances)


def purge(db: Database, days: int, now: datetime | None = None,
          recordings: Path | None = None) -> int:
    """Delete calls (their utterances, alerts and recordings in ``recordings`` with them)
    started more than ``days`` days ago; the audit log stays. Returns the number of calls
    deleted. A recording goes once its call's rows are gone (committed); one older than
    the cutoff goes too when its call has no record (lost with a full buffer)."""
    cutoff = (now or datetime.now(UTC)) - timedelta(days=days)
    old = select(Call.call_id).where(Call.start_time < cutoff)
    with db.session() as session:
        ids = list(session.scalars(old))
        for start in range(0, len(ids), 500):
            chunk = ids[start : start + 500]
            session.execute(delete(Utterance).where(Utterance.call_id.in_(chunk)))
            session.execute(delete(HitlAlert).where(HitlAlert.call_id.in_(chunk)))
            session.execute(delete(Call).where(Call.call_id.in_(chunk)))
    if recordings is not None:
        delete_recordings(recordings, ids)
        delete_recordings_before(recordings, cutoff)
    return len(ids)
