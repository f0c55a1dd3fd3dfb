"""The calls' figures over a period: counts, AI-resolved and HITL rates, dispositions and
the containment rate, hold time and abandonment on hold, reply latency percentiles; and
the same per time bucket (a timeline) (blocking: run in a thread from async code)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any, Protocol

from sqlalchemy import ColumnElement, func, select
from sqlalchemy.orm import Session

from smartpbx_ari.store.db import Database
from smartpbx_ari.store.disposition import Disposition
from smartpbx_ari.store.models import Call, HitlAlert, Speaker, Utterance
from smartpbx_ari.store.window import Window

# the replies in a window are read from the calls started in it or up to this long before
# (through the indexes on calls.start_time and utterances.call_id)
CALL_MARGIN = timedelta(hours=1)


class Ended(Protocol):
    disposition: str | None
    hold_s: float | None


def performance(db: Database, since: datetime) -> dict[str, Any]:
    """Figures of the calls started since ``since``; the latency is from the end of a
    caller's utterance to the start of the agent's reply, in milliseconds."""
    with db.session() as session:
        rows = list(session.scalars(select(Call).where(Call.start_time >= since)))
        ids = [r.call_id for r in rows]
        alerted = set(session.scalars(select(HitlAlert.call_id).where(
            HitlAlert.call_id.in_(ids)))) if ids else set()
        replies = _replies(session, Utterance.call_id.in_(
            select(Call.call_id).where(Call.start_time >= since)))
    latencies = sorted(ms for _, ms in replies)
    total = len(rows)
    resolved = sum(1 for r in rows if r.status == "completed" and r.call_id not in alerted)
    return {"calls": total, "active": sum(r.status == "active" for r in rows),
            "ai_resolved_rate": round(resolved / total, 3) if total else None,
            "hitl_rate": round(len(alerted) / total, 3) if total else None,
            "handed_off": sum(r.status == "handed_off" for r in rows),
            **containment(rows),
            "latency_ms": {"p50": pct(latencies, 0.5), "p95": pct(latencies, 0.95),
                           "p99": pct(latencies, 0.99), "samples": len(latencies)}}


def _replies(session: Session, *where: ColumnElement[bool]) -> list[tuple[datetime, float]]:
    """(end of a caller's utterance, ms until the next utterance of its call began) for
    each caller's utterance among those ``where`` picks that was answered next (not
    followed by more of the caller's words: then the latest one counts)."""
    order: dict[str, Any] = {"partition_by": Utterance.call_id, "order_by": Utterance.seq}
    turns = select(
        Utterance.speaker, Utterance.end_time,
        func.lead(Utterance.speaker).over(**order).label("next_speaker"),
        func.lead(Utterance.start_time, type_=Utterance.start_time.type).over(**order)
        .label("next_start")).where(*where).subquery()
    rows = session.execute(select(turns.c.end_time, turns.c.next_start).where(
        turns.c.speaker == Speaker.CALLER, turns.c.next_speaker != Speaker.CALLER,
        turns.c.end_time.is_not(None))).all()
    return [(r.end_time, (r.next_start - r.end_time).total_seconds() * 1000) for r in rows]


def timeline(db: Database, window: Window) -> list[dict[str, Any]]:
    """Per bucket of ``window``: the calls started in it with their containment and hold
    figures, and the reply latency of the caller's utterances that ended in it."""
    with db.session() as session:
        calls = session.execute(select(Call.start_time, Call.disposition, Call.hold_s).where(
            Call.start_time >= window.start, Call.start_time < window.end)).all()
        replies = _replies(session, Utterance.call_id.in_(select(Call.call_id).where(
            Call.start_time >= window.start - CALL_MARGIN, Call.start_time < window.end)))
    started: list[list[Ended]] = [[] for _ in range(window.count)]
    for row in calls:
        i = window.index(row.start_time)
        if i is not None:
            started[i].append(row)
    latencies: list[list[float]] = [[] for _ in range(window.count)]
    for at, ms in replies:
        i = window.index(at)
        if i is not None:
            latencies[i].append(ms)
    return [{"start": start, "calls": len(rows), **_bucket(rows, sorted(ms))}
            for start, rows, ms in zip(window.starts(), started, latencies, strict=True)]


def _bucket(rows: Sequence[Ended], latencies: list[float]) -> dict[str, Any]:
    figures = containment(rows)
    return {"ended": sum(figures["dispositions"].values()),
            "contained": figures["dispositions"][Disposition.AI],
            "containment_rate": figures["containment_rate"], "hold_s": figures["hold_s"],
            "abandoned_on_hold": figures["abandoned_on_hold"],
            "latency_ms": {"p50": pct(latencies, 0.5), "p95": pct(latencies, 0.95),
                           "samples": len(latencies)}}


def containment(rows: Sequence[Ended]) -> dict[str, Any]:
    """Of the calls with a disposition (ended): how many of each, the share the AI handled
    end to end, hold time percentiles (s) and the share of held callers who hung up."""
    ended = [r for r in rows if r.disposition]
    counts = {str(d): sum(r.disposition == d for r in ended) for d in Disposition}
    holds = sorted(r.hold_s for r in ended if r.hold_s is not None)
    abandoned = counts[Disposition.ABANDONED_ON_HOLD]
    return {"dispositions": counts,
            "containment_rate": round(counts[Disposition.AI] / len(ended), 3) if ended
            else None,
            "hold_s": {"p50": pct(holds, 0.5, 2), "p95": pct(holds, 0.95, 2),
                       "samples": len(holds)},
            "abandoned_on_hold": abandoned,
            "abandoned_on_hold_rate": round(abandoned / len(holds), 3) if holds else None}


def pct(ordered: list[float], p: float, digits: int = 1) -> float | None:
    """The ``p`` quantile (nearest rank) of ``ordered``, None when empty."""
    return round(ordered[min(len(ordered) - 1, int(p * len(ordered)))], digits) \
        if ordered else None
