"""Routing rules in the database (admins edit them; the FastAGI server reads them)."""

from __future__ import annotations

from sqlalchemy import select

from smartpbx_ari.store.db import Database
from smartpbx_ari.store.models import RoutingRule
from smartpbx_ari.telephony.routing import Rule, validate_rule


def load_rules(db: Database) -> list[Rule]:
    """The enabled rules, by priority."""
    with db.session() as session:
        rows = session.scalars(select(RoutingRule).where(RoutingRule.enabled)
                               .order_by(RoutingRule.priority, RoutingRule.id)).all()
        return [Rule(r.kind, r.pattern, r.value, r.priority) for r in rows]


def list_rules(db: Database) -> list[RoutingRule]:
    """Every rule, enabled or not, by priority."""
    with db.session() as session:
        return list(session.scalars(select(RoutingRule).order_by(RoutingRule.priority,
                                                                 RoutingRule.id)))


def add_rule(db: Database, kind: str, pattern: str = "", value: str = "",
             priority: int = 100, note: str = "") -> int:
    """Store a rule after validating it (RuleError names the bad field)."""
    validate_rule(kind, pattern, value)
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
