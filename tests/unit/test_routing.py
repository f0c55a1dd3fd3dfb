"""Routing rules (sans-IO): blocked, VIP, business hours, language; bad rules name the
field; no input makes decide() fail."""

from __future__ import annotations

from datetime import datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from smartpbx_ari.call.routing import Rule, RuleError, decide, parse_hours, validate_rule

pytestmark = pytest.mark.unit
MONDAY_10 = datetime(2026, 11, 23, 10, 0)  # a Monday
SUNDAY_10 = datetime(2026, 11, 29, 10, 0)
RULES = [Rule("block", "0109999*"), Rule("vip", "01012345678"),
         Rule("hours", "", "Mon-Fri 09:00-18:00"), Rule("language", "1001", "ko")]


@pytest.mark.smoke
def test_order_block_vip_hours_language() -> None:
    assert decide("01099990000", "1000", RULES, MONDAY_10).route == "blocked"
    assert decide("01012345678", "1001", RULES, SUNDAY_10) == decide(
        "01012345678", "1001", RULES, MONDAY_10)  # a VIP reaches people even when closed
    assert decide("01012345678", "1001", RULES, SUNDAY_10).route == "operators"
    assert decide("0105555", "1000", RULES, SUNDAY_10).route == "closed"
    open_ko = decide("0105555", "1001", RULES, MONDAY_10)
    assert (open_ko.route, open_ko.language) == ("ai", "ko")
    assert decide("0105555", "1000", [], SUNDAY_10).route == "ai"  # no hours: always open


def test_hours() -> None:
    weekdays = parse_hours("Mon-Fri 09:00-18:00")
    assert weekdays.contains(MONDAY_10)
    assert not weekdays.contains(datetime(2026, 11, 23, 18, 0))  # the end is exclusive
    assert not weekdays.contains(SUNDAY_10)
    night = parse_hours("Fri 22:00-06:00")  # past midnight belongs to Friday's shift
    assert night.contains(datetime(2026, 11, 27, 23, 0))
    assert night.contains(datetime(2026, 11, 28, 5, 59))
    assert not night.contains(datetime(2026, 11, 28, 23, 0))
    assert parse_hours("sat,sun 10:00-24:00").contains(datetime(2026, 11, 29, 23, 59))
    assert parse_hours("Sun-Tue 00:00-01:00").days == frozenset({6, 0, 1})


@pytest.mark.parametrize(("kind", "pattern", "value", "message"), [
    ("holiday", "", "", "kind: 'holiday' is not one of"),
    ("block", "", "", "pattern: '' is not a number"),
    ("vip", "010 1234", "", "pattern: '010 1234'"),
    ("hours", "", "weekdays 9-6", "value: 'weekdays 9-6' is not like"),
    ("hours", "", "Mon-Fri 09:00-25:00", "impossible time"),
    ("hours", "", "Mon-Fry 09:00-18:00", "value: 'mon-fry' is not a day"),
    ("language", "1001", "korean", "value: 'korean' is not a language code"),
])
def test_bad_rules_name_the_field(kind: str, pattern: str, value: str, message: str) -> None:
    with pytest.raises(RuleError, match=message):
        validate_rule(kind, pattern, value)


def test_a_broken_stored_hours_rule_does_not_close_the_line() -> None:
    rules = [Rule("hours", "", "garbage")]
    assert decide("1", "1000", rules, SUNDAY_10).route == "ai"


@given(st.text(max_size=80), st.text(max_size=80))
def test_any_caller_and_number_get_a_route(caller: str, dialled: str) -> None:
    assert decide(caller, dialled, RULES, MONDAY_10).route in {"ai", "operators", "blocked"}
