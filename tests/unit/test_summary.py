"""The warm hand-over's summary, from a call's events: who called and how, each question
with what was answered (or not), and why a person is needed; the desk puts it on alerts."""

from __future__ import annotations

import asyncio

import pytest

from smartpbx_ari.call.hitl import HitlDesk
from smartpbx_ari.call.summary import MAX_TURNS, CallNotes
from smartpbx_ari.events import (
    AlertRaised,
    AlertUpdated,
    CallEnded,
    CallEvent,
    CallStarted,
    Heard,
    Said,
)

pytestmark = pytest.mark.unit


def _call(notes: CallNotes | HitlDesk) -> None:
    for event in (CallStarted(call_id="c1", caller="1003", exten="1000", language="en"),
                  Heard(call_id="c1", text="How do I get a refund?"),
                  Said(call_id="c1", text="Refunds take five days.", intent="refund"),
                  Heard(call_id="c1", text="Do you sell gift cards?"),
                  Said(call_id="c1", text="Let me connect you.", hitl=True),
                  Heard(call_id="c1", text="Hello?", speaker="call")):  # a takeover's mix
        notes.observe(event)


def test_the_summary_says_who_what_was_answered_and_why() -> None:
    notes = CallNotes()
    _call(notes)
    assert notes.summary("c1", "low_confidence", 0.31).splitlines() == [
        "Caller 1003 dialled 1000 (en).",
        "Asked: \u201cHow do I get a refund?\u201d \u2192 answered (agent: Refunds take five "
        "days.)",
        "Asked: \u201cDo you sell gift cards?\u201d \u2192 not answered",
        "Why a person: the agent was unsure (confidence 0.31)."]


def test_a_long_call_shows_its_latest_questions_and_counts_the_rest() -> None:
    notes = CallNotes()
    for n in range(MAX_TURNS + 3):
        notes.observe(Heard(call_id="c2", text=f"question {n}"))
    lines = notes.summary("c2", "dtmf_0").splitlines()
    assert lines[0] == "Caller unknown dialled ?." and lines[1] == "(3 earlier questions)"
    assert "question 3" in lines[2] and lines[-1] == "Why a person: the caller pressed 0."
    notes.observe(CallEnded(call_id="c2", reason="hung up"))
    assert "c2" not in notes.calls  # nothing kept after the call


def test_the_desk_puts_the_summary_on_alerts_it_raises_and_ones_raised_elsewhere() -> None:
    published: list[CallEvent] = []
    desk = HitlDesk(published.append)
    _call(desk)
    desk.observe(AlertRaised(call_id="c1", alert_id="a0", reason="dtmf_0"))
    assert "pressed 0" in desk.get("a0").summary
    assert "How do I get a refund?" in str(desk.get("a0").as_dict()["summary"])
    alert = desk.raise_alert("c1", "human_request", "Do you sell gift cards?", 1.0)
    (event,) = [e for e in published if isinstance(e, AlertRaised)]
    assert event.summary == alert.summary and "asked for a person" in alert.summary


async def test_an_llm_note_goes_on_top_of_the_summary_when_it_comes() -> None:
    published: list[CallEvent] = []
    desk = HitlDesk(published.append)
    asked: list[str] = []

    async def note(notes: str) -> str:
        asked.append(notes)
        return "Caller wants gift cards." if "gift" in notes else ""

    desk.summarize = note
    _call(desk)
    alert = desk.raise_alert("c1", "low_confidence", "Do you sell gift cards?", 0.3)
    extractive = alert.summary  # the note comes later, off the call's path
    await asyncio.gather(*desk._tasks)
    (update,) = [e for e in published if isinstance(e, AlertUpdated)]
    assert update.summary == f"Caller wants gift cards.\n{extractive}"
    assert (update.status, alert.summary) == ("open", update.summary)
    other = desk.raise_alert("c2", "dtmf_0")  # nothing faithful to say: no update
    await asyncio.gather(*desk._tasks)
    assert [e for e in published if isinstance(e, AlertUpdated)] == [update]
    assert other.summary.startswith("Caller unknown")


async def test_a_failing_llm_leaves_the_extractive_summary() -> None:
    published: list[CallEvent] = []
    desk = HitlDesk(published.append)

    async def broken(notes: str) -> str:
        raise RuntimeError("model gone")

    desk.summarize = broken
    alert = desk.raise_alert("c3", "human_request", "A person please", 1.0)
    before = alert.summary
    await asyncio.gather(*desk._tasks, return_exceptions=True)
    assert alert.summary == before
    assert not [e for e in published if isinstance(e, AlertUpdated)]
