"""Routing rules the dialplan asks for before a call reaches the AI (sans-IO).

Kinds: ``block`` (caller pattern -> hang up), ``vip`` (caller pattern -> straight to the
operators), ``hours`` (value like ``Mon-Fri 09:00-18:00``; when any hours rule exists,
a call outside all of them is ``closed``), ``language`` (dialled-number pattern -> value,
a language code the Stasis app uses for STT, voice and knowledge). Patterns are exact
numbers or globs (``010*``, ``+8210????????``). Order: block, vip, hours, language.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, time
from typing import Protocol

from smartpbx_ari.ai.language import is_language_tag
from smartpbx_ari.errors import UserFacingError

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
KINDS = ("block", "vip", "hours", "language")
_HOURS = re.compile(r"^\s*([a-z,\-]+)\s+(\d{1,2}):(\d{2})\s*-\s*(\d{1,2}):(\d{2})\s*$",
                    re.IGNORECASE)
_PATTERN = re.compile(r"^[\w+*?#\[\]\-.@]{1,64}$")  # numbers; SIP users are words


class RuleError(UserFacingError, ValueError):
    code = "rule-invalid"


class RuleLike(Protocol):
    """A rule as stored (``store.models.RoutingRule``) or made (:class:`Rule`)."""

    @property
    def kind(self) -> str: ...

    @property
    def pattern(self) -> str: ...

    @property
    def value(self) -> str: ...

    @property
    def priority(self) -> int: ...


@dataclass(frozen=True)
class Rule:
    kind: str
    pattern: str = ""
    value: str = ""
    priority: int = 100


@dataclass(frozen=True)
class Decision:
    route: str  # ai | operators | closed | blocked
    language: str = ""
    reason: str = ""


@dataclass(frozen=True)
class Hours:
    days: frozenset[int]
    start: time
    end: time

    def contains(self, now: datetime) -> bool:
        t = now.time()
        if self.start <= self.end:
            return now.weekday() in self.days and self.start <= t < self.end
        # past midnight: the evening belongs to the listed day, the early hours to the next
        if t >= self.start:
            return now.weekday() in self.days
        return (now.weekday() - 1) % 7 in self.days and t < self.end


def parse_hours(value: str) -> Hours:
    match = _HOURS.match(value)
    if not match:
        raise RuleError(f"value: {value!r} is not like 'Mon-Fri 09:00-18:00'")
    days: set[int] = set()
    for part in match.group(1).lower().split(","):
        first, _, last = part.partition("-")
        if first not in DAYS or (last and last not in DAYS):
            raise RuleError(f"value: {part!r} is not a day or a range of days (Mon-Sun)")
        a, b = DAYS.index(first), DAYS.index(last or first)
        days.update(range(a, b + 1) if a <= b else [*range(a, 7), *range(0, b + 1)])
    h1, m1, h2, m2 = (int(g) for g in match.groups()[1:])
    if h1 > 23 or h2 > 24 or m1 > 59 or m2 > 59 or (h2 == 24 and m2):
        raise RuleError(f"value: {value!r} has an impossible time")
    end = time(23, 59, 59, 999999) if h2 == 24 else time(h2, m2)
    return Hours(frozenset(days), time(h1, m1), end)


def validate_rule(kind: str, pattern: str, value: str) -> Rule:
    """A rule as an admin typed it, or a RuleError naming the field."""
    if kind not in KINDS:
        raise RuleError(f"kind: {kind!r} is not one of {', '.join(KINDS)}")
    if kind in ("block", "vip", "language") and not _PATTERN.match(pattern):
        raise RuleError(f"pattern: {pattern!r} is not a number, a SIP user or a pattern")
    if kind == "hours":
        parse_hours(value)
    if kind == "language" and not is_language_tag(value):
        raise RuleError(f"value: {value!r} is not a language code (en, ko, en-US)")
    return Rule(kind, pattern, value)


def _matches(pattern: str, number: str) -> bool:
    return bool(number) and fnmatch.fnmatchcase(number, pattern)


def decide(caller: str, dialled: str, rules: Iterable[RuleLike], now: datetime) -> Decision:
    ordered = sorted(rules, key=lambda r: r.priority)
    for rule in ordered:
        if rule.kind == "block" and _matches(rule.pattern, caller):
            return Decision("blocked", reason=f"blocked number {rule.pattern}")
    language = next((r.value for r in ordered
                     if r.kind == "language" and _matches(r.pattern, dialled)), "")
    for rule in ordered:
        if rule.kind == "vip" and _matches(rule.pattern, caller):
            return Decision("operators", language, f"VIP {rule.pattern}")
    hours = []
    for rule in ordered:
        if rule.kind == "hours":
            try:
                hours.append(parse_hours(rule.value))
            except RuleError:
                continue  # a broken rule is not a reason to close the line
    if hours and not any(h.contains(now) for h in hours):
        return Decision("closed", language, "outside business hours")
    return Decision("ai", language, "default")
