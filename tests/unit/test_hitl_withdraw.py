"""An alert raised for half a question (the caller went on in the holding phrase's first
moments) is withdrawn: closed on every console, and no operator's answer is awaited."""

from __future__ import annotations

import pytest

from smartpbx_ari.call.hitl import DeskError, HitlDesk
from smartpbx_ari.events import AlertUpdated, CallEvent

pytestmark = pytest.mark.unit


async def test_a_withdrawn_alert_is_closed_and_awaits_no_answer() -> None:
    events: list[CallEvent] = []
    desk = HitlDesk(events.append)
    alert = desk.raise_alert("c1", "low_confidence", "Stop.", 0.1, waiting=True)
    desk.withdraw(alert)
    assert (alert.status, alert.waiting) == ("closed", False)
    assert [(e.alert_id, e.status) for e in events if isinstance(e, AlertUpdated)] == \
        [(alert.id, "closed")]
    assert desk.open_alerts() == []
    assert await desk.wait_answer(alert, 0.1) is None
    with pytest.raises(DeskError, match="closed already"):
        desk.answer(alert.id, "op@example.com", "Refunds take five days.")
