"""Reading the operators' audit log (the recorder writes it; blocking: run in a thread)."""

from __future__ import annotations

from sqlalchemy import select

from smartpbx_ari.store.db import Database
from smartpbx_ari.store.models import OperatorAction


def list_actions(db: Database, limit: int = 50, offset: int = 0) -> list[OperatorAction]:
    """One page of the log, newest first."""
    with db.session() as session:
        return list(session.scalars(select(OperatorAction).order_by(OperatorAction.at.desc())
                                    .limit(limit).offset(offset)))
