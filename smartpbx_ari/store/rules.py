"""Routing rules in the database (admins edit them; the FastAGI server reads them).

A rule is validated (``call.routing.validate_rule``) before it is given to ``add_rule``.
"""

from __future__ import annotations

from sqlalchemy import select

from smartpbx_ari.store.db import Database
from smartpbx_ari.store.models import RoutingRule


def load_rules(db: Database) -> list[RoutingRule]:
    """The enabled rules, by priority."""
    with db.session() as session:
        return list(session.scalars(select(RoutingRule).where(RoutingRule.enabled)
                                    .order_by(RoutingRule.priority, RoutingRule.id)))


def list_rules(db: Database) -> list[RoutingRule]:
    """Every rule, enabled or not, by priority."""
    with db.session() as session:
        return list(session.scalars(select(RoutingRule).order_by(RoutingRule.priority,
                                                                 RoutingRule.id)))


def add_rule(db: Database, kind: str, pattern: str = "", value: str = "",
             priority: int = 100, note: str = "") -> int:
    """Store a rule (already validated); its id."""
    with db.session() as session:
        row = RoutingRule(kind=kind, pattern=pattern, value=value, priority=priority,
                          note=note[:255])
        session.add(row)
        session.flush()
        return row.id


def delete_rule(db: Database, rule_id: int) -> bool:
    """False when there is no such rule."""
    with db.session() as session:
        row = session.get(RoutingRule, rule_id)
        if row is not None:
            session.delete(row)
        return row is not None
