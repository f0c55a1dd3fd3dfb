"""The calls' figures over a period: counts, AI-resolved and HITL rates, reply latency
percentiles (blocking: run in a thread from async code)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select

from smartpbx_ari.store.db import Database
from smartpbx_ari.store.models import Call, HitlAlert, Utterance


def performance(db: Database, since: datetime) -> dict[str, Any]:
    """Figures of the calls started since ``since``; the latency is from the end of a
    caller's utterance to the start of the agent's reply, in milliseconds."""
    with db.session() as session:
        rows = session.scalars(select(Call).where(Call.start_time >= since)).all()
        ids = [r.call_id for r in rows]
        alerted = set(session.scalars(select(HitlAlert.call_id).where(
            HitlAlert.call_id.in_(ids)))) if ids else set()
        turns = session.scalars(select(Utterance).where(Utterance.call_id.in_(ids))
                                .order_by(Utterance.call_id, Utterance.seq)).all() if ids else []
    latencies, last = [], None
    for u in turns:
        if u.speaker == "caller":
            last = u
        elif last is not None and last.call_id == u.call_id and last.end_time is not None:
            latencies.append((u.start_time - last.end_time).total_seconds() * 1000)
            last = None
    latencies.sort()
    total = len(rows)
    resolved = sum(1 for r in rows if r.status == "completed" and r.call_id not in alerted)

    def pct(p: float) -> float | None:
        return round(latencies[min(len(latencies) - 1, int(p * len(latencies)))], 1) \
            if latencies else None

    return {"calls": total, "active": sum(r.status == "active" for r in rows),
            "ai_resolved_rate": round(resolved / total, 3) if total else None,
            "hitl_rate": round(len(alerted) / total, 3) if total else None,
            "handed_off": sum(r.status == "handed_off" for r in rows),
            "latency_ms": {"p50": pct(0.5), "p95": pct(0.95), "p99": pct(0.99),
                           "samples": len(latencies)}}
