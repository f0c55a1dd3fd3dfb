"""A call's disposition and hold time, derived from its events alone (store/disposition.py)."""

from __future__ import annotations

import pytest

from smartpbx_ari.events import (
    DEAD_PEER,
    AlertRaised,
    AlertUpdated,
    CallEnded,
    CallEvent,
    CallStarted,
    HandedBack,
    HandedOff,
    Heard,
    Said,
    TakenOver,
)
from smartpbx_ari.store.disposition import Disposition, Dispositions, Outcome, derive

pytestmark = pytest.mark.unit
C = "1764320000.1"


def started(at: float = 0.0) -> CallStarted:
    return CallStarted(call_id=C, at=at, caller="2001", exten="1000")


def heard(at: float, text: str = "How do I get a refund?") -> Heard:
    return Heard(call_id=C, at=at, text=text)


def said(at: float, speaker: str = "agent", hitl: bool = False) -> Said:
    return Said(call_id=C, at=at, text="Refunds go to your card.", speaker=speaker, hitl=hitl)


def held(at: float, alert: str = "a1") -> AlertRaised:
    return AlertRaised(call_id=C, at=at, alert_id=alert, reason="low_confidence",
                       question="Do you sell gift cards?", waiting=True)


def update(at: float, status: str, alert: str = "a1") -> AlertUpdated:
    return AlertUpdated(call_id=C, at=at, alert_id=alert, status=status, user="alice")


def ended(at: float, reason: str = "caller hung up") -> CallEnded:
    return CallEnded(call_id=C, at=at, reason=reason)


def test_a_call_the_ai_answered_alone_is_contained() -> None:
    outcome = derive([started(), heard(2), said(3), heard(8), said(9), ended(12)])
    assert outcome == Outcome(Disposition.AI, "", None)


def test_an_operators_typed_answer_ends_the_hold_when_given() -> None:
    outcome = derive([started(), heard(2), said(3, hitl=True), held(3.1),
                      update(5, "accepted"), update(9.6, "answered"),
                      said(9.7, speaker="operator"), ended(15)])
    assert outcome.disposition is Disposition.OPERATOR_ANSWER
    assert outcome.hold_s == pytest.approx(6.5)  # accepted does not end the hold


def test_no_answer_in_time_goes_to_the_queue_with_its_reason() -> None:
    outcome = derive([started(), heard(2), held(3), HandedOff(call_id=C, at=28, reason=
                      "no operator answered in time"), ended(28.1, "no operator answered "
                                                            "in time"),
                      update(28.2, "closed")])
    assert outcome == Outcome(Disposition.QUEUE, "no operator answered in time", 25.0)


def test_a_caller_asking_for_a_person_goes_to_the_queue_without_holding() -> None:
    person = AlertRaised(call_id=C, at=3, alert_id="a2", reason="human_request")
    outcome = derive([started(), heard(2), person,
                      HandedOff(call_id=C, at=5, reason="caller asked for a person"),
                      ended(5.1, "caller asked for a person")])
    assert outcome == Outcome(Disposition.QUEUE, "caller asked for a person", None)


def test_hanging_up_while_waiting_for_an_operator_is_abandoned_on_hold() -> None:
    # the desk closes the alert once the call has ended: that close does not count
    outcome = derive([started(), heard(2), held(3), ended(11), update(11, "closed")])
    assert outcome == Outcome(Disposition.ABANDONED_ON_HOLD, "", 8.0)


def test_the_desks_close_at_the_end_may_arrive_first_and_still_is_abandoned() -> None:
    # a sink after the desk sees the desk's close (made when it saw CallEnded) before the
    # CallEnded itself: the moments decide, not the order of arrival
    outcome = derive([started(), held(3), update(11.002, "closed"), ended(11)])
    assert outcome == Outcome(Disposition.ABANDONED_ON_HOLD, "", 8.0)


def test_hanging_up_after_the_hold_was_answered_is_not_abandoned() -> None:
    outcome = derive([started(), held(3), update(4, "answered"), said(4, "operator"),
                      ended(11)])
    assert outcome.disposition is Disposition.OPERATOR_ANSWER
    assert outcome.hold_s == 1.0


def test_a_hold_closed_before_the_end_is_not_abandoned() -> None:
    outcome = derive([started(), held(3), update(6, "closed"), said(7), ended(11)])
    assert outcome == Outcome(Disposition.AI, "", 3.0)


def test_a_takeover_wins_over_everything_after_it_and_ends_the_hold() -> None:
    events: list[CallEvent] = [
        started(), held(3), update(7, "taken_over"), TakenOver(call_id=C, at=8, endpoint="2001"),
        HandedBack(call_id=C, at=30, endpoint="2001"), held(31, "a3"),
        HandedOff(call_id=C, at=40, reason="no operator answered in time"), ended(40)]
    outcome = derive(events)
    assert outcome.disposition is Disposition.TAKEN_OVER
    assert outcome.hold_s == pytest.approx(4.0 + 9.0)  # both holds, summed


def test_holds_of_one_call_add_up() -> None:
    outcome = derive([started(), held(1, "a1"), update(3, "answered", "a1"),
                      said(3, "operator"), held(10, "a2"), ended(14)])
    assert outcome == Outcome(Disposition.ABANDONED_ON_HOLD, "", 6.0)


def test_the_stream_of_many_calls_gives_each_outcome_at_its_end() -> None:
    follower = Dispositions()
    other = "1764320000.2"
    stream: list[CallEvent] = [
        started(), CallStarted(call_id=other, at=0.5), held(3),
        CallEnded(call_id=other, at=4, reason="caller hung up"), ended(9),
        update(9, "closed")]
    outcomes = [(e.call_id, follower.observe(e)) for e in stream]
    assert [(cid, o.disposition) for cid, o in outcomes if o is not None] == [
        (other, Disposition.AI), (C, Disposition.ABANDONED_ON_HOLD)]
    assert follower.following == 0  # the close after the end left nothing behind


def test_events_of_a_call_never_started_here_are_ignored() -> None:
    follower = Dispositions()
    assert follower.observe(held(1)) is None
    assert follower.observe(ended(2)) is None
    assert follower.following == 0


def test_a_caller_whose_phone_went_silent_is_recorded_as_a_dead_peer() -> None:
    outcome = derive([heard(1), said(2), ended(40, DEAD_PEER)])
    assert outcome == Outcome(Disposition.DEAD_PEER, DEAD_PEER)
    # on hold for an operator's answer: the line died, the caller did not hang up
    assert derive([held(3), ended(40, DEAD_PEER)]).disposition == Disposition.DEAD_PEER
    assert derive([held(3), ended(40)]).disposition == Disposition.ABANDONED_ON_HOLD
