"""WebSocket /ws/operator: ping/pong, alerts broadcast to every operator, transcripts,
replay of what was missed across a reconnect; the seed's ConnectionManager."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator
from typing import Any
from unittest.mock import AsyncMock

import aiohttp
import pytest

from smartpbx_ari.ai.rag import RAGEngine
from smartpbx_ari.call.hitl import HitlDesk
from smartpbx_ari.config import Settings
from smartpbx_ari.events import (
    AlertRaised,
    AlertUpdated,
    CallEnded,
    CallEvent,
    CallStarted,
    Heard,
)
from smartpbx_ari.web.feed import AlertMirror, ConnectionManager, message_for
from smartpbx_ari.web.relay import PgRelay
from tests.fixtures.postgres import LocalPostgres
from tests.fixtures.web_app import WebUnderTest, make_engine, running_web
from tests.integration.test_api import call, token

pytestmark = [pytest.mark.integration, pytest.mark.ws]


@pytest.fixture(scope="module")
def ws_engine(tmp_path_factory: pytest.TempPathFactory) -> tuple[Settings, RAGEngine]:
    return make_engine(tmp_path_factory.mktemp("ws"))


@pytest.fixture
async def web(ws_engine: tuple[Settings, RAGEngine]) -> AsyncIterator[WebUnderTest]:
    async with running_web(*ws_engine) as under_test:
        yield under_test


def ws_url(web: WebUnderTest, operator: str, tok: str, since: int = 0) -> str:
    return f"{web.url.replace('http', 'ws')}/ws/operator/{operator}?token={tok}&since={since}"


async def next_of(ws: aiohttp.ClientWebSocketResponse, kind: str) -> dict[str, Any]:
    async with asyncio.timeout(5):
        while True:
            message = await ws.receive_json()
            if message["type"] == kind:
                return message


async def test_websocket_connection(web: WebUnderTest, http: aiohttp.ClientSession) -> None:
    tok = await token(web, http, "otto")
    async with http.ws_connect(ws_url(web, "otto", tok)) as ws:
        hello = await next_of(ws, "hello")
        assert hello["user"] == "otto"
        await ws.send_str('{"type": "ping"}')
        assert (await next_of(ws, "pong"))["type"] == "pong"
        await ws.send_str("not json")
        assert (await next_of(ws, "error"))["message"] == "message: not valid JSON"


async def test_a_bad_token_is_refused(web: WebUnderTest, http: aiohttp.ClientSession) -> None:
    with pytest.raises(aiohttp.WSServerHandshakeError) as err:
        async with http.ws_connect(ws_url(web, "otto", "forged")):
            pass
    assert err.value.status == 401


async def test_hitl_alert_broadcast_and_transcripts(web: WebUnderTest,
                                                    http: aiohttp.ClientSession) -> None:
    otto, olga = await token(web, http, "otto"), await token(web, http, "olga")
    async with http.ws_connect(ws_url(web, "otto", otto)) as ws1, \
            http.ws_connect(ws_url(web, "olga", olga)) as ws2:
        await next_of(ws1, "hello")
        await next_of(ws2, "hello")
        web.publish(CallStarted(call_id="c-ws", caller="1003", exten="1000"))
        web.publish(Heard(call_id="c-ws", text="신제품 있나요?", confidence=0.9))
        alert = web.context.desk.raise_alert("c-ws", "low_confidence", "신제품 있나요?", 0.25,
                                             waiting=True)
        for ws in (ws1, ws2):
            assert (await next_of(ws, "transcript"))["text"] == "신제품 있나요?"
            got = await next_of(ws, "hitl_alert")
            assert (got["alert_id"], got["question"], got["confidence"]) == (
                alert.id, "신제품 있나요?", 0.25)
        await ws2.send_json({"type": "accept", "alert_id": alert.id})
        assert (await next_of(ws2, "accepted"))["accepted_by"] == "olga"
        update = await next_of(ws1, "alert_update")  # the other operator sees it taken
        assert (update["status"], update["user"]) == ("accepted", "olga")
        await ws1.send_json({"type": "answer", "alert_id": alert.id, "text": "Yes"})
        assert "olga has taken" in (await next_of(ws1, "error"))["message"]


async def test_websocket_reconnection_replays_what_was_missed(
        web: WebUnderTest, http: aiohttp.ClientSession) -> None:
    tok = await token(web, http, "vic")
    async with http.ws_connect(ws_url(web, "vic", tok)) as ws:
        hello = await next_of(ws, "hello")
        web.publish(CallStarted(call_id="c-re", caller="1004", exten="1000"))
        seen = (await next_of(ws, "call_started"))["id"]
    # offline: two events happen
    web.publish(Heard(call_id="c-re", text="Hello?", confidence=0.8))
    web.publish(CallEnded(call_id="c-re", reason="caller hung up"))
    await asyncio.sleep(0.2)
    async with http.ws_connect(ws_url(web, "vic", tok, since=seen)) as ws:
        missed = [await ws.receive_json() for _ in range(2)]
        assert [m["type"] for m in missed] == ["transcript", "call_ended"]
        assert [m["id"] for m in missed] == [seen + 1, seen + 2]
        assert (await next_of(ws, "hello"))["last_id"] == seen + 2
        await ws.send_str('{"type": "ping"}')
        assert (await next_of(ws, "pong"))["type"] == "pong"
        await ws.send_json({"type": "accept", "alert_id": "x"})
        assert "viewers" in (await next_of(ws, "error"))["message"]
    assert hello["last_id"] < seen


async def test_hitl_alert_broadcast_with_the_seeds_connection_manager() -> None:
    manager = ConnectionManager()
    ws1, ws2 = AsyncMock(), AsyncMock()
    await manager.connect("op001", ws1)
    await manager.connect("op002", ws2)
    alert = {"type": "hitl_alert", "alert_id": "alert_001", "question": "신제품 있나요?",
             "confidence": 0.25}
    await manager.broadcast(alert)
    ws1.send_json.assert_called_once_with(alert)
    ws2.send_json.assert_called_once_with(alert)
    ws2.send_json.side_effect = ConnectionResetError  # a dead socket is dropped, not fatal
    await manager.broadcast(alert)
    assert manager.count == 1
    manager.disconnect("op001", ws1)
    assert manager.count == 0


@pytest.fixture
async def two_nodes(ws_engine: tuple[Settings, RAGEngine], postgres: LocalPostgres
                    ) -> AsyncIterator[tuple[WebUnderTest, WebUnderTest]]:
    """A controller and a web-only node sharing events through PostgreSQL."""
    url = postgres.create_database(f"relay_{secrets.token_hex(4)}")
    controller_relay, node_relay = PgRelay(url), PgRelay(url)
    async with running_web(*ws_engine, relay=controller_relay) as controller, \
            running_web(*ws_engine, relay=node_relay) as node:
        await asyncio.wait_for(node_relay.listening.wait(), 10)
        await asyncio.wait_for(controller_relay.listening.wait(), 10)
        yield controller, node


async def test_two_processes_share_live_events_through_postgres(
        two_nodes: tuple[WebUnderTest, WebUnderTest], http: aiohttp.ClientSession) -> None:
    """A controller's alert reaches an operator connected to another web node."""
    controller, node = two_nodes
    controller_relay, node_relay = controller.context.feed.relay, node.context.feed.relay
    assert isinstance(controller_relay, PgRelay) and isinstance(node_relay, PgRelay)
    tok = await token(node, http, "otto")
    async with http.ws_connect(ws_url(node, "otto", tok)) as ws:
        await next_of(ws, "hello")
        controller.publish(CallStarted(call_id="c-relay", caller="1005"))
        alert = controller.context.desk.raise_alert("c-relay", "low_confidence",
                                                    "배송비 얼마예요?", 0.3)
        started = await next_of(ws, "call_started")
        got = await next_of(ws, "hitl_alert")
        assert (started["call_id"], got["alert_id"]) == ("c-relay", alert.id)
        assert got["id"] == started["id"] + 1  # numbered by the node's own feed
    assert controller_relay.received == 0  # nothing came back to its sender
    assert node_relay.received >= 2


async def test_an_operator_on_another_node_acts_on_the_controllers_alert(
        two_nodes: tuple[WebUnderTest, WebUnderTest], http: aiohttp.ClientSession) -> None:
    """A web-only node forwards accept / answer to the process holding the alert; that
    process decides (conflicts included) and the waiting caller gets the text."""
    controller, node = two_nodes
    assert node.context.remote is not None
    node.context.remote.timeout = 1.0
    desk = controller.context.desk
    alert = desk.raise_alert("c-remote", "low_confidence", "Do you sell gift cards?", 0.3,
                             waiting=True)
    assert alert.id not in node.context.desk.alerts  # held by the controller only
    waiting = asyncio.create_task(desk.wait_answer(alert, 10))
    otto, olga = await token(node, http, "otto"), await token(node, http, "olga")
    listed = await _listed_on(node, http, otto, alert.id, "open")
    assert (listed["question"], listed["waiting"]) == ("Do you sell gift cards?", True)
    base = f"{node.url}/api/v1/alerts/{alert.id}"
    status, body = await call(http, "POST", f"{base}/accept", otto)
    assert (status, body["accepted_by"]) == (200, "otto") and alert.accepted_by == "otto"
    assert (await _listed_on(node, http, otto, alert.id, "accepted"))["accepted_by"] == "otto"
    status, body = await call(http, "POST", f"{base}/accept", olga)
    assert status == 409 and body["error"]["message"] == (
        f"alert_id: otto has taken alert {alert.id}")
    async with http.ws_connect(ws_url(node, "otto", otto)) as ws:
        await next_of(ws, "hello")
        await ws.send_json({"type": "answer", "alert_id": alert.id,
                            "text": "Yes, in every <b>store</b>."})
        answered = await next_of(ws, "answered")
    assert answered["status"] == "answered" and answered["candidate"]
    assert await waiting == "Yes, in every store."
    await _listed_on(node, http, otto, alert.id, None)  # answered: no longer live
    status, body = await call(http, "POST", f"{node.url}/api/v1/alerts/nope/accept", otto)
    assert status == 404 and body["error"]["message"] == (
        "alert_id: 'nope' is not live on any node")
    status, body = await call(http, "POST", f"{node.url}/api/v1/calls/c-gone/hangup", otto)
    assert status == 404 and "call_id: 'c-gone'" in body["error"]["message"]


async def _listed_on(node: WebUnderTest, http: aiohttp.ClientSession, tok: str,
                     alert_id: str, status: str | None) -> dict[str, Any]:
    """The alert as ``node`` lists it once it shows ``status`` (None: once it is gone)."""
    async with asyncio.timeout(5):
        while True:
            code, body = await call(http, "GET", f"{node.url}/api/v1/alerts", tok)
            assert code == 200
            found = {a["alert_id"]: a for a in body["data"]}.get(alert_id)
            if (found or {}).get("status") == status or (status is None and found is None):
                return found or {}
            await asyncio.sleep(0.05)


def test_other_nodes_alerts_follow_their_feed() -> None:
    mirror = AlertMirror()
    for n, call_id in enumerate(("c1", "c2", "c3")):
        mirror.follow({"type": "hitl_alert", "call_id": call_id, "alert_id": f"a{n}",
                       "question": "Gift cards?", "waiting": True, "at": 1.0})
    mirror.follow({"type": "alert_update", "alert_id": "a0", "status": "accepted",
                   "user": "otto"})
    mirror.follow({"type": "call_ended", "call_id": "c2", "status": "handed_off"})
    mirror.follow({"type": "call_ended", "call_id": "c3", "status": "ended"})
    listed = {a["alert_id"]: a for a in mirror.open_alerts()}
    assert set(listed) == {"a0", "a1"}
    assert (listed["a0"]["status"], listed["a0"]["accepted_by"]) == ("accepted", "otto")
    assert listed["a1"]["waiting"] is False  # in the queue: open, nobody waits for text
    mirror.follow({"type": "alert_update", "alert_id": "a0", "status": "answered",
                   "user": "otto"})
    assert [a["alert_id"] for a in mirror.open_alerts()] == ["a1"]


async def test_what_a_caller_on_hold_says_reaches_the_alert_live(
        web: WebUnderTest, http: aiohttp.ClientSession) -> None:
    otto = await token(web, http, "otto")
    async with http.ws_connect(ws_url(web, "otto", otto)) as ws:
        await next_of(ws, "hello")
        desk = web.context.desk
        alert = desk.raise_alert("c-hold", "low_confidence", "Gift cards?", 0.3, waiting=True)
        await next_of(ws, "hitl_alert")
        desk.heard_on_hold(alert, "How do I get a refund?", "Within five days.")
        desk.heard_on_hold(alert, "Do you wrap presents?", "")
        first, second = await next_of(ws, "alert_heard"), await next_of(ws, "alert_heard")
        assert (first["alert_id"], first["text"], first["answer"]) == (
            alert.id, "How do I get a refund?", "Within five days.")
        assert (second["text"], second["answer"]) == ("Do you wrap presents?", "")
        assert desk.get(alert.id).as_dict()["heard"] == [
            {"text": "How do I get a refund?", "answer": "Within five days."},
            {"text": "Do you wrap presents?", "answer": ""}]
        # the caller hangs up on hold: abandoned, not merely closed
        web.publish(CallEnded(call_id="c-hold", reason="caller hung up"))
        update = await next_of(ws, "alert_update")
        assert (update["alert_id"], update["status"]) == (alert.id, "abandoned")


def test_a_caller_who_was_not_waiting_leaves_a_closed_alert() -> None:
    updates: list[CallEvent] = []
    desk = HitlDesk(updates.append)
    desk.observe(AlertRaised(call_id="c9", alert_id="a9", reason="dtmf_0"))
    desk.observe(CallEnded(call_id="c9", reason="caller hung up"))
    assert [(u.alert_id, u.status) for u in updates if isinstance(u, AlertUpdated)] == [
        ("a9", "closed")]


def test_other_nodes_see_what_a_caller_on_hold_said() -> None:
    mirror = AlertMirror()
    mirror.follow({"type": "hitl_alert", "call_id": "c1", "alert_id": "a1",
                   "question": "Gift cards?", "waiting": True, "at": 1.0})
    mirror.follow({"type": "alert_heard", "alert_id": "a1", "text": "Refunds?",
                   "answer": "Five days."})
    assert mirror.open_alerts()[0]["heard"] == [{"text": "Refunds?", "answer": "Five days."}]


async def test_an_alert_raised_by_the_pbx_side_reaches_operators_with_its_summary(
        web: WebUnderTest, http: aiohttp.ClientSession) -> None:
    otto = await token(web, http, "otto")
    async with http.ws_connect(ws_url(web, "otto", otto)) as ws:
        await next_of(ws, "hello")
        web.publish(CallStarted(call_id="c-sum", caller="1003", exten="1000"))
        web.publish(Heard(call_id="c-sum", text="Where is my parcel?"))
        web.publish(AlertRaised(call_id="c-sum", alert_id="a-sum", reason="dtmf_0"))
        summary = (await next_of(ws, "hitl_alert"))["summary"]
        assert summary.startswith("Caller 1003 dialled 1000")
        assert "Where is my parcel?" in summary and "pressed 0" in summary


def test_a_better_summary_reaches_the_console_and_other_nodes() -> None:
    event = AlertUpdated(call_id="c1", alert_id="a1", status="open", summary="Note.\nCaller")
    message = message_for(event)
    assert message is not None and message["summary"] == "Note.\nCaller"
    assert "summary" not in (message_for(AlertUpdated(call_id="c1", alert_id="a1",
                                                      status="accepted")) or {})
    mirror = AlertMirror()
    mirror.follow({"type": "hitl_alert", "call_id": "c1", "alert_id": "a1",
                   "question": "Gift cards?", "waiting": True, "at": 1.0, "summary": "Caller"})
    mirror.follow(message)
    (alert,) = mirror.open_alerts()
    assert (alert["summary"], alert["status"]) == ("Note.\nCaller", "open")  # still live
