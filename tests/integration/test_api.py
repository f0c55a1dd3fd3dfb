"""REST /api/v1 over a real loopback port (the seed's API and security tests, and more):
JWT and roles, calls, knowledge (validation, markup, candidates), the agent, alerts,
metrics, OpenAPI, errors as JSON."""

from __future__ import annotations

import asyncio
import io
import itertools
import math
import time
import wave
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import jwt
import pytest
from prometheus_client.parser import text_string_to_metric_families

from smartpbx_ari.ai.agent import SearchError
from smartpbx_ari.ai.rag import RAGEngine
from smartpbx_ari.call.control import Presence
from smartpbx_ari.config import Settings
from smartpbx_ari.events import CallEnded, CallStarted, Heard, Said
from smartpbx_ari.store.recordings import recordings_dir, save_recording
from smartpbx_ari.web.api import ROUTES
from tests.fixtures.web_app import PASSWORD, WebUnderTest, make_engine, running_web

pytestmark = [pytest.mark.integration]


@pytest.fixture(scope="module")
def web_engine(tmp_path_factory: pytest.TempPathFactory) -> tuple[Settings, RAGEngine]:
    return make_engine(tmp_path_factory.mktemp("web"))


@pytest.fixture
async def web(web_engine: tuple[Settings, RAGEngine]) -> AsyncIterator[WebUnderTest]:
    async with running_web(*web_engine) as under_test:
        yield under_test


async def token(web: WebUnderTest, http: aiohttp.ClientSession, user: str) -> str:
    async with http.post(f"{web.url}/api/v1/auth/login",
                         json={"email": f"{user}@example.com", "password": PASSWORD}) as r:
        assert r.status == 200, await r.text()
        body = await r.json()
    assert body["token_type"] == "bearer" and body["expires_in"] == 600
    return str(body["access_token"])


async def call(http: aiohttp.ClientSession, method: str, url: str, tok: str | None = None,
               **kwargs: Any) -> tuple[int, Any]:
    headers = {"Authorization": f"Bearer {tok}"} if tok else {}
    headers.update(kwargs.pop("headers", {}))
    async with http.request(method, url, headers=headers, **kwargs) as r:
        body = await r.json() if r.content_type == "application/json" else await r.text()
        return r.status, body


async def test_unauthorized_invalid_expired_and_unsigned_tokens_get_401(
        web: WebUnderTest, http: aiohttp.ClientSession) -> None:
    url = f"{web.url}/api/v1/calls"
    assert (await call(http, "GET", url))[0] == 401
    assert (await call(http, "GET", url, "invalid-token"))[0] == 401
    secret = web.context.tokens._secret
    expired = jwt.encode({"sub": "ada", "role": "admin", "exp": int(time.time()) - 5},
                         secret, algorithm="HS256")
    assert (await call(http, "GET", url, expired))[0] == 401
    unsigned = jwt.encode({"sub": "ada", "role": "admin", "exp": int(time.time()) + 60},
                          None, algorithm="none")
    status, body = await call(http, "GET", url, unsigned)
    assert status == 401 and body["error"]["code"] == "unauthorized"


async def test_wrong_password_and_the_login_backoff(web: WebUnderTest,
                                                    http: aiohttp.ClientSession) -> None:
    """Failures per account and per address make the next try wait (backoff), never lock
    the right password out: it works once the wait is over."""
    url = f"{web.url}/api/v1/auth/login"
    settings = web.context.settings.web
    status, body = await call(http, "POST", url, json={"email": "ada@example.com",
                                                       "password": "nope-nope-nope"})
    assert (status, body["error"]["message"]) == (401, "wrong e-mail or password")
    statuses = [(await call(http, "POST", url, json={"email": "ada@example.com",
                                                     "password": "wrong"}))[0]
                for _ in range(settings.login_failures_per_account)]
    assert statuses == [401] * (settings.login_failures_per_account - 1) + [429]
    async with http.post(url, json={"email": "ada@example.com", "password": PASSWORD}) as r:
        assert (r.status, r.headers["Retry-After"]) == (429, "1")  # even the right one waits
    assert (await call(http, "POST", url, json={"email": "vic@example.com",
                                                "password": PASSWORD}))[0] == 200
    await asyncio.sleep(1.05)
    assert (await call(http, "POST", url, json={"email": "ada@example.com",
                                                "password": PASSWORD}))[0] == 200
    left = settings.login_attempts_per_minute - settings.login_failures_per_account
    statuses = [(await call(http, "POST", url, json={"email": f"x{n}", "password": "y"}))[0]
                for n in range(left + 1)]  # many accounts from one address
    assert statuses == [401] * left + [429]
    await asyncio.sleep(1.05)
    assert (await call(http, "POST", url, json={"email": "otto@example.com",
                                                "password": PASSWORD}))[0] == 200


async def test_roles(web: WebUnderTest, http: aiohttp.ClientSession) -> None:
    viewer = await token(web, http, "vic")
    status, body = await call(http, "DELETE", f"{web.url}/api/v1/knowledge/en-refund-how",
                              viewer)
    assert status == 403 and "viewer" in body["error"]["message"]
    assert (await call(http, "GET", f"{web.url}/api/v1/rules", await token(web, http,
                                                                          "otto")))[0] == 403
    assert (await call(http, "GET", f"{web.url}/api/v1/knowledge/en-refund-how", viewer)
            )[0] == 200


async def test_calls_list_detail_and_not_found(web: WebUnderTest,
                                               http: aiohttp.ClientSession) -> None:
    t0 = time.time()
    for event in [CallStarted(call_id="c-api", at=t0, caller="1001", exten="1000"),
                  Heard(call_id="c-api", at=t0 + 2.4, text="Where is my parcel?",
                        confidence=0.9, start=t0 + 1, end=t0 + 2),
                  Said(call_id="c-api", at=t0 + 2.9, text="Track it online.", confidence=0.8,
                       intent="delivery_tracking")]:
        web.publish(event)
    assert web.context.recorder is not None and web.context.recorder.flush(10)
    tok = await token(web, http, "vic")
    status, body = await call(http, "GET", f"{web.url}/api/v1/calls", tok, params={"limit": 10})
    assert status == 200 and body["total"] >= 1 and isinstance(body["data"], list)
    status, detail = await call(http, "GET", f"{web.url}/api/v1/calls/c-api", tok)
    assert (status, detail["call_id"], detail["caller"], detail["callee"]) == (
        200, "c-api", "1001", "1000")
    assert [(u["speaker"], u["text"]) for u in detail["utterances"]] == [
        ("caller", "Where is my parcel?"), ("agent", "Track it online.")]
    for bad in ("nonexistent-id", "1' OR '1'='1"):
        status, body = await call(http, "GET", f"{web.url}/api/v1/calls/{bad}", tok)
        assert status == 404 and body["error"]["code"] == "not-found"
    status, body = await call(http, "GET", f"{web.url}/api/v1/calls", tok,
                              params={"from": "yesterday"})
    assert status == 400 and body["error"]["message"].startswith("from:")


async def test_knowledge_create_validate_strip_update_delete(
        web: WebUnderTest, http: aiohttp.ClientSession) -> None:
    tok = await token(web, http, "otto")
    url = f"{web.url}/api/v1/knowledge"
    payload = {"question": "신제품 있나요?", "answer": "아이폰 16 Pro 있습니다",
               "category": "상품문의"}
    status, created = await call(http, "POST", url, tok, json=payload)
    assert status == 201 and created["question"] == payload["question"] and created["id"]
    status, body = await call(http, "POST", url, tok, json={"question": "짧은", "answer": "답변",
                                                           "category": "기타"})
    assert status == 400 and body["error"]["message"].startswith("question:")
    status, body = await call(http, "POST", url, tok, json={**payload, "colour": "red"})
    assert (status, body["error"]["message"]) == (400, "colour: unknown field")
    status, xss = await call(http, "POST", url, tok, json={
        "question": "<script>alert('xss')</script>Is <b>gift</b> wrapping free?",
        "answer": "Test answer", "category": "test"})
    assert status == 201 and "<script>" not in xss["question"] and "alert" not in xss["question"]
    assert xss["question"] == "Is gift wrapping free?"
    status, body = await call(http, "POST", url, tok, json={**payload, "alternates": [3]})
    assert (status, body["error"]["message"]) == (400, "alternates[0]: expected str")
    status, body = await call(http, "POST", url, tok, json={**payload, "alternates": "a"})
    assert (status, body["error"]["message"]) == (400, "alternates: expected list")
    status, changed = await call(http, "PUT", f"{url}/{xss['id']}", tok, json={
        "alternates": ["Do you <i>wrap</i> presents?<script>x()</script>"]})
    assert status == 200 and changed["alternates"] == ["Do you wrap presents?"]
    # generated phrasings are shown apart and removable; the spoken title is editable
    status, changed = await call(http, "PUT", f"{url}/{xss['id']}", tok, json={
        "generated": ["gift wrapping", "Tell me about gift wrapping"], "title": "gift wrapping"})
    assert status == 200 and changed["generated"] == ["gift wrapping",
                                                      "Tell me about gift wrapping"]
    assert changed["title"] == "gift wrapping"
    assert changed["alternates"] == ["Do you wrap presents?"]  # people's alternates stay
    status, changed = await call(http, "PUT", f"{url}/{xss['id']}", tok,
                                 json={"generated": ["gift wrapping"]})
    assert status == 200 and changed["generated"] == ["gift wrapping"]
    assert changed["title"] == "gift wrapping"
    status, body = await call(http, "PUT", f"{url}/{xss['id']}", tok, json={"generated": [1]})
    assert (status, body["error"]["message"]) == (400, "generated[0]: expected str")
    json_type = {"Content-Type": "application/json"}
    status, body = await call(http, "POST", url, tok, data=b"{" + b"x" * 70_000,
                              headers=json_type)
    assert status == 413 and body["error"]["code"] == "too-large"
    status, body = await call(http, "POST", url, tok, data=b"{not json", headers=json_type)
    assert (status, body["error"]["message"]) == (400, "body: not valid JSON")
    status, changed = await call(http, "PUT", f"{url}/{created['id']}", tok,
                                 json={"answer": "아이폰 17 있습니다"})
    assert status == 200 and changed["answer"] == "아이폰 17 있습니다"
    status, found = await call(http, "GET", url, tok, params={"query": "신제품", "top_k": 3})
    assert status == 200 and found["data"][0]["id"] == created["id"]
    assert (await call(http, "DELETE", f"{url}/{created['id']}", tok))[0] == 200
    assert (await call(http, "GET", f"{url}/{created['id']}", tok))[0] == 404
    assert (await call(http, "DELETE", f"{url}/{xss['id']}", tok))[0] == 200


async def test_agent_query(web: WebUnderTest, http: aiohttp.ClientSession) -> None:
    tok = await token(web, http, "otto")
    status, body = await call(http, "POST", f"{web.url}/api/v1/agent/query", tok,
                              json={"query": "How do I get a refund?", "session_id": "s1"})
    assert status == 200
    assert set(body) == {"response", "confidence", "intent", "hitl_triggered", "sources"}
    assert body["sources"] == ["en-refund-how"] and not body["hitl_triggered"]


async def test_an_operator_answer_reaches_the_waiting_caller_and_becomes_a_candidate(
        web: WebUnderTest, http: aiohttp.ClientSession) -> None:
    web.publish(CallStarted(call_id="c-hitl", caller="1002", exten="1000"))
    alert = web.context.desk.raise_alert("c-hitl", "low_confidence",
                                         "Do you sell gift cards?", 0.3, waiting=True)
    waiting = asyncio.create_task(web.context.desk.wait_answer(alert, 10))
    otto, olga = await token(web, http, "otto"), await token(web, http, "olga")
    status, live = await call(http, "GET", f"{web.url}/api/v1/alerts", otto)
    assert [a["alert_id"] for a in live["data"]] == [alert.id]
    base = f"{web.url}/api/v1/alerts/{alert.id}"
    assert (await call(http, "POST", f"{base}/accept", otto))[0] == 200
    status, body = await call(http, "POST", f"{base}/accept", olga)
    assert status == 409 and "otto has taken" in body["error"]["message"]
    status, body = await call(http, "POST", f"{base}/answer", otto,
                              json={"text": "Yes, <i>gift cards</i> from 10 euros."})
    assert status == 200 and body["status"] == "answered"
    assert await waiting == "Yes, gift cards from 10 euros."
    pending = await call(http, "GET", f"{web.url}/api/v1/knowledge", otto,
                         params={"status": "pending"})
    assert [(k["id"], k["source"]) for k in pending[1]["data"]] == [
        (body["candidate"], "operator_correction")]
    status, approved = await call(http, "POST",
                                  f"{web.url}/api/v1/knowledge/{body['candidate']}/approve",
                                  otto)
    assert status == 200
    hits = await web.context.rag.search("Do you sell gift cards?", 1)
    assert hits[0]["id"] == approved["id"]
    assert web.context.recorder is not None and web.context.recorder.flush(10)
    status, log = await call(http, "GET", f"{web.url}/api/v1/audit",
                             await token(web, http, "ada"))
    actions = [(a["user"], a["action"]) for a in log["data"]]
    assert ("otto", "alert_answer") in actions and ("otto", "alert_accept") in actions
    assert (await call(http, "POST", f"{base}/answer", otto, json={"text": "again"}))[0] == 409


class FakeTelephony:
    """The Stasis app's seam for the web (its real side: tests/e2e/test_takeover.py)."""

    def __init__(self) -> None:
        self.done: list[tuple[str, ...]] = []
        self.listening: dict[str, str] = {}

    def has_call(self, call_id: str) -> bool:
        return True

    async def listen(self, call_id: str, endpoint: str) -> None:
        self.done.append(("listen", call_id, endpoint))
        self.listening[call_id] = endpoint

    def listener(self, call_id: str) -> str:
        return self.listening.get(call_id, "")

    async def take_over(self, call_id: str, endpoint: str) -> None:
        self.done.append(("take_over", call_id, endpoint))

    async def hand_back(self, call_id: str) -> None:
        self.done.append(("hand_back", call_id))

    async def hang_up(self, call_id: str) -> None:
        self.done.append(("hang_up", call_id))


async def test_takeover_rings_the_operators_phone_and_frees_the_waiting_turn(
        web: WebUnderTest, http: aiohttp.ClientSession) -> None:
    telephony = FakeTelephony()
    presence = {"2001": Presence("2001", "unavailable", "UNAVAILABLE")}
    web.context.calls, web.context.presence = telephony, lambda: presence
    alert = web.context.desk.raise_alert("c-take", "low_confidence", "Gift cards?", 0.2,
                                         waiting=True)
    waiting = asyncio.create_task(web.context.desk.wait_answer(alert, 10))
    otto, olga = await token(web, http, "otto"), await token(web, http, "olga")
    url = f"{web.url}/api/v1/alerts/{alert.id}/takeover"
    status, body = await call(http, "POST", url, olga)
    assert status == 400 and body["error"]["message"].startswith("endpoint: your user has no")
    status, body = await call(http, "POST", url, otto)
    assert (status, body["error"]["message"]) == (409, "endpoint: your phone 2001 is "
                                                       "unavailable")
    presence["2001"] = Presence("2001", "available", "NOT_INUSE")
    status, body = await call(http, "POST", url, otto)
    assert (status, body["status"], body["endpoint"]) == (200, "taken_over", "2001")
    assert await waiting == ""  # the caller stops waiting for text: a human is on
    for action in ("handback", "hangup"):
        assert (await call(http, "POST", f"{web.url}/api/v1/calls/c-take/{action}", otto)
                )[0] == 200
    assert telephony.done == [("take_over", "c-take", "2001"), ("hand_back", "c-take"),
                              ("hang_up", "c-take")]
    web.context.calls = None
    status, body = await call(http, "POST", f"{web.url}/api/v1/calls/c-take/hangup", otto)
    assert status == 409 and "does not run calls" in body["error"]["message"]


async def test_listening_in_then_taking_over_from_there(
        web: WebUnderTest, http: aiohttp.ClientSession) -> None:
    telephony = FakeTelephony()
    presence = {"2001": Presence("2001", "available", "NOT_INUSE")}
    web.context.calls, web.context.presence = telephony, lambda: presence
    otto, vic = await token(web, http, "otto"), await token(web, http, "vic")
    listen = f"{web.url}/api/v1/calls/c-listen/listen"
    assert (await call(http, "POST", listen, vic))[0] == 403  # viewers cannot listen
    status, body = await call(http, "POST", listen, otto)
    assert (status, body["endpoint"], body["listening"]) == (200, "2001", True)
    presence["2001"] = Presence("2001", "busy", "INUSE")  # busy: listening on this call
    status, body = await call(http, "POST", f"{web.url}/api/v1/calls/c-listen/takeover", otto)
    assert (status, body["with"]) == (200, "operator")
    assert telephony.done == [("listen", "c-listen", "2001"), ("take_over", "c-listen", "2001")]
    # a busy phone that is not listening in on that call cannot take another over
    status, body = await call(http, "POST", f"{web.url}/api/v1/calls/c-other/takeover", otto)
    assert (status, body["error"]["message"]) == (409, "endpoint: your phone 2001 is busy")
    assert web.context.recorder is not None and web.context.recorder.flush(10)
    status, log = await call(http, "GET", f"{web.url}/api/v1/audit",
                             await token(web, http, "ada"))
    done = [(a["user"], a["action"], a["call_id"]) for a in log["data"]]
    assert ("otto", "call_listen", "c-listen") in done
    assert ("otto", "call_takeover", "c-listen") in done


async def test_metrics_health_and_openapi(web: WebUnderTest,
                                          http: aiohttp.ClientSession) -> None:
    tok = await token(web, http, "vic")
    status, body = await call(http, "GET", f"{web.url}/api/v1/metrics/performance", tok,
                              params={"period": "1h"})
    assert status == 200 and {"calls", "ai_resolved_rate", "hitl_rate", "latency_ms"} <= set(body)
    assert (await call(http, "GET", f"{web.url}/api/v1/metrics/performance", tok,
                       params={"period": "forever"}))[0] == 400
    status, text = await call(http, "GET", f"{web.url}/metrics")
    assert status == 200 and "smartpbx_http_requests_total{" in text
    families = {f.name: f.type for f in text_string_to_metric_families(text)}
    assert families["smartpbx_turn_stt_seconds"] == "histogram"
    gauges = {s.name: s.value for f in text_string_to_metric_families(text)
              if f.type == "gauge" for s in f.samples}
    assert gauges["smartpbx_asyncio_tasks"] >= 1  # the scrape's own task at least
    assert gauges["smartpbx_threads"] >= 1
    assert families["process_cpu_seconds"] == "counter"
    assert (await call(http, "GET", f"{web.url}/healthz"))[1]["status"] == "ok"
    status, doc = await call(http, "GET", f"{web.url}/api/v1/openapi.json")
    documented = {(m.upper(), p) for p, ops in doc["paths"].items() for m in ops}
    assert documented == {(r.method, r.path) for r in ROUTES}
    assert doc["openapi"].startswith("3.")


async def test_a_failure_inside_is_500_json_without_a_trace(
        web: WebUnderTest, http: aiohttp.ClientSession,
        monkeypatch: pytest.MonkeyPatch) -> None:
    async def broken(*args: object) -> object:
        raise RuntimeError("secret internals /etc/passwd")

    monkeypatch.setattr(web.context.rag, "search", broken)
    status, body = await call(http, "GET", f"{web.url}/api/v1/knowledge",
                              await token(web, http, "vic"), params={"query": "refund"})
    assert (status, body) == (500, {"error": {"code": "internal", "message": "internal error"}})


async def test_a_failed_or_hung_model_is_503_naming_the_stage(
        web: WebUnderTest, http: aiohttp.ClientSession,
        monkeypatch: pytest.MonkeyPatch) -> None:
    def hung(*args: object) -> object:
        raise SearchError("search: no result within 1.5 s (its thread abandoned)",
                          timed_out=True)

    monkeypatch.setattr(web.context.agent, "answer", hung)
    status, body = await call(http, "POST", f"{web.url}/api/v1/agent/query",
                              await token(web, http, "otto"),
                              json={"query": "How do I get a refund?", "session_id": "s9"})
    assert status == 503 and body["error"]["code"] == "search-timeout", body


async def test_console_page_is_served_with_a_strict_policy(
        web: WebUnderTest, http: aiohttp.ClientSession) -> None:
    async with http.get(f"{web.url}/") as r:
        assert r.status == 200 and "SmartPBX console" in await r.text()
        assert "script-src 'self'" in r.headers["Content-Security-Policy"]
    async with http.get(f"{web.url}/static/console.js") as r:
        assert r.status == 200 and "textContent" in await r.text()


def test_the_app_is_loopback_by_default(web_engine: tuple[Settings, RAGEngine],
                                        tmp_path: Path) -> None:
    assert web_engine[0].web.host == "127.0.0.1"


def _wav(seconds: float, rate: int = 8000) -> bytes:
    out = io.BytesIO()
    with wave.open(out, "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(rate)
        wav.writeframes(b"".join(int(8000 * math.sin(2 * math.pi * 440 * n / rate)).to_bytes(
            2, "little", signed=True) for n in range(int(seconds * rate))))
    return out.getvalue()


async def test_a_recording_is_served_in_ranges_to_operators_and_admins_not_viewers(
        web: WebUnderTest, http: aiohttp.ClientSession) -> None:
    t0 = time.time()
    for cid in ("c-rec", "c-unrecorded"):
        web.publish(CallStarted(call_id=cid, at=t0, caller="1002", exten="1000"))
        web.publish(CallEnded(call_id=cid, at=t0 + 1, reason="caller hung up"))
    assert web.context.recorder is not None and web.context.recorder.flush(10)
    audio = _wav(1.0)
    save_recording(recordings_dir(web.context.settings), "c-rec", audio)
    otto, ada, vic = [await token(web, http, u) for u in ("otto", "ada", "vic")]
    url = f"{web.url}/api/v1/calls/c-rec/recording"
    async with http.get(url, headers={"Authorization": f"Bearer {otto}"}) as r:
        assert (r.status, r.content_type) == (200, "audio/wav")
        assert r.headers["Accept-Ranges"] == "bytes" and await r.read() == audio
    async with http.get(url, headers={"Authorization": f"Bearer {ada}",
                                      "Range": "bytes=44-1043"}) as r:
        assert r.status == 206
        assert r.headers["Content-Range"] == f"bytes 44-1043/{len(audio)}"
        assert await r.read() == audio[44:1044]
    async with http.get(url, headers={"Authorization": f"Bearer {otto}",
                                      "Range": "bytes=-100"}) as r:  # the last 100 bytes
        assert r.status == 206 and await r.read() == audio[-100:]
    status, body = await call(http, "GET", url, vic)
    assert status == 403 and "viewer" in body["error"]["message"]
    assert (await call(http, "GET", url))[0] == 401
    status, body = await call(http, "GET", f"{web.url}/api/v1/calls/c-unrecorded/recording",
                              otto)
    assert status == 404 and body["error"]["message"].startswith(
        "recording: call c-unrecorded has none")
    status, body = await call(http, "GET", f"{web.url}/api/v1/calls/nope/recording", otto)
    assert (status, body["error"]["message"]) == (404, "call_id: no such call")
    status, body = await call(http, "GET", f"{web.url}/api/v1/calls/..%2F..%2Fetc/recording",
                              otto)
    assert status == 404
    assert (await call(http, "GET", f"{web.url}/api/v1/calls/c-rec", vic))[1][
        "recording"] == "/api/v1/calls/c-rec/recording"
    assert (await call(http, "GET", f"{web.url}/api/v1/calls/c-unrecorded", vic))[1][
        "recording"] is None


async def test_dispositions_in_the_calls_list_the_figures_and_prometheus(
        web: WebUnderTest, http: aiohttp.ClientSession) -> None:
    t0 = time.time()
    web.publish(CallStarted(call_id="c-abandon", at=t0, caller="1003", exten="1000"))
    web.publish(Heard(call_id="c-abandon", at=t0 + 2, text="Do you sell gift cards?"))
    web.context.desk.raise_alert("c-abandon", "low_confidence", "Do you sell gift cards?",
                                 0.3, waiting=True)
    await asyncio.sleep(0.3)
    web.publish(CallEnded(call_id="c-abandon", at=time.time(), reason="caller hung up"))
    assert web.context.recorder is not None and web.context.recorder.flush(10)
    vic = await token(web, http, "vic")
    status, body = await call(http, "GET", f"{web.url}/api/v1/calls", vic,
                              params={"disposition": "abandoned_on_hold"})
    assert status == 200 and [c["call_id"] for c in body["data"]] == ["c-abandon"]
    row = body["data"][0]
    assert (row["disposition"], row["disposition_reason"]) == ("abandoned_on_hold", "")
    assert 0.3 <= row["hold_s"] < 5
    status, figures = await call(http, "GET", f"{web.url}/api/v1/metrics/performance", vic)
    counts = figures["dispositions"]
    assert status == 200 and counts["abandoned_on_hold"] >= 1
    assert figures["containment_rate"] == round(counts["ai"] / sum(counts.values()), 3)
    assert figures["hold_s"]["samples"] >= 1 and figures["hold_s"]["p50"] is not None
    assert figures["abandoned_on_hold"] == counts["abandoned_on_hold"]
    status, text = await call(http, "GET", f"{web.url}/metrics")
    assert 'smartpbx_call_dispositions_total{disposition="abandoned_on_hold"} 1.0\n' in text
    assert 'smartpbx_call_dispositions_total{disposition="taken_over"} 0.0\n' in text
    assert "smartpbx_call_hold_seconds_total " in text


async def test_an_operator_closes_an_alert_nobody_waits_on(
        web: WebUnderTest, http: aiohttp.ClientSession) -> None:
    desk = web.context.desk
    callback = desk.raise_alert("c-cb", "callback", "5551234567")
    held = desk.raise_alert("c-held", "low_confidence", "Gift cards?", 0.2, waiting=True)
    otto, olga = await token(web, http, "otto"), await token(web, http, "olga")
    url = f"{web.url}/api/v1/alerts/{{}}/close"
    status, body = await call(http, "POST", url.format(callback.id), otto)
    assert (status, body["status"], body["accepted_by"]) == (200, "closed", "otto")
    _, live = await call(http, "GET", f"{web.url}/api/v1/alerts", olga)
    assert callback.id not in [a["alert_id"] for a in live["data"]]
    status, body = await call(http, "POST", url.format(callback.id), olga)
    assert status == 409 and "is closed already" in body["error"]["message"]
    status, body = await call(http, "POST", url.format(held.id), otto)  # a caller on hold
    assert status == 409 and "answer or take over" in body["error"]["message"]
    assert desk.get(held.id).waiting and desk.get(held.id).status == "open"  # untouched


async def test_the_calls_list_pages_with_each_callers_first_question(
        web: WebUnderTest, http: aiohttp.ClientSession) -> None:
    t0 = time.time()
    for n in range(3):
        cid = f"c-page-{n}"
        web.publish(CallStarted(call_id=cid, at=t0 + n, caller="1077", exten="1000",
                                language="ko" if n == 2 else ""))
        web.publish(Said(call_id=cid, at=t0 + n + 0.1, text="Hello, how can I help?"))
        web.publish(Heard(call_id=cid, at=t0 + n + 0.5, text=f"Question number {n}?",
                          start=t0 + n + 0.2, end=t0 + n + 0.4))
    assert web.context.recorder is not None and web.context.recorder.flush(10)
    tok = await token(web, http, "vic")
    url = f"{web.url}/api/v1/calls"
    status, first = await call(http, "GET", url, tok, params={"caller": "1077", "limit": 2})
    assert (status, first["total"], first["limit"], first["offset"]) == (200, 3, 2, 0)
    assert [(c["call_id"], c["first_question"], c["language"]) for c in first["data"]] == [
        ("c-page-2", "Question number 2?", "ko"), ("c-page-1", "Question number 1?", "")]
    status, rest = await call(http, "GET", url, tok, params={"caller": "1077", "limit": 2,
                                                             "offset": 2})
    assert [c["first_question"] for c in rest["data"]] == ["Question number 0?"]
    for params, field in (({"limit": 0}, "limit:"), ({"offset": -1}, "offset:"),
                          ({"limit": "x"}, "limit:")):
        status, body = await call(http, "GET", url, tok, params=params)
        assert status == 400 and body["error"]["message"].startswith(field), body


async def test_the_metrics_timeline(web: WebUnderTest, http: aiohttp.ClientSession) -> None:
    t0 = time.time()
    web.publish(CallStarted(call_id="c-line", at=t0, caller="1088", exten="1000"))
    web.publish(Heard(call_id="c-line", at=t0 + 1.5, text="Where is my parcel?",
                      start=t0 + 0.2, end=t0 + 1.0))
    web.publish(Said(call_id="c-line", at=t0 + 1.6, text="Track it online."))
    web.publish(CallEnded(call_id="c-line", at=t0 + 3, reason="caller hung up"))
    assert web.context.recorder is not None and web.context.recorder.flush(10)
    vic = await token(web, http, "vic")
    url = f"{web.url}/api/v1/metrics/timeline"
    status, line = await call(http, "GET", url, vic, params={"period": "6h", "bucket": "1h"})
    assert status == 200, line
    assert (line["period"], line["bucket"], line["bucket_s"], len(line["data"])) == (
        "6h", "1h", 3600, 6)
    starts = [datetime.fromisoformat(b["start"]) for b in line["data"]]
    assert all(s.minute == s.second == 0 and s.utcoffset() == timedelta(0) for s in starts)
    assert [b - a for a, b in itertools.pairwise(starts)] == [timedelta(hours=1)] * 5
    assert starts[0] == datetime.fromisoformat(line["from"])
    now = line["data"][-1]  # the bucket holding now has the call just made
    assert now["calls"] >= 1 and now["ended"] >= 1 and now["latency_ms"]["samples"] >= 1
    assert set(now) == {"start", "calls", "ended", "contained", "containment_rate", "hold_s",
                        "abandoned_on_hold", "latency_ms"}
    # the buckets add up to the figures over the same span (all calls here are this hour's)
    status, figures = await call(http, "GET", f"{web.url}/api/v1/metrics/performance", vic,
                                 params={"period": "6h"})
    assert sum(b["calls"] for b in line["data"]) == figures["calls"]
    assert sum(b["contained"] for b in line["data"]) == figures["dispositions"]["ai"]
    status, default = await call(http, "GET", url, vic)
    assert (status, default["period"], default["bucket"], len(default["data"])) == (
        200, "24h", "1h", 24)
    status, seoul = await call(http, "GET", url, vic, params={"period": "7d", "bucket": "1d",
                                                             "utc_offset": "540"})
    assert (status, seoul["utc_offset"], len(seoul["data"])) == (200, 540, 7)
    assert all(datetime.fromisoformat(b["start"]).hour == 15 for b in seoul["data"])  # 00:00
    for params, message in (
            ({"utc_offset": "+9h"}, "utc_offset: minutes ahead of UTC, an integer "
                                    "(UTC+09:00: 540)"),
            ({"utc_offset": "900"}, "utc_offset: -840 to 840 minutes"),
            ({"period": "forever"}, "period: like 15m, 1h, 24h or 7d (got 'forever')"),
            ({"period": "0h"}, "period: like 15m, 1h, 24h or 7d (got '0h')"),
            ({"bucket": "1w"}, "bucket: like 15m, 1h, 24h or 7d (got '1w')"),
            ({"period": "1h", "bucket": "2h"}, "bucket: at most the period (1h)"),
            ({"period": "7d", "bucket": "1m"}, "bucket: 7d in buckets of 1m is more than 500 "
                                               "buckets; choose a larger bucket")):
        status, body = await call(http, "GET", url, vic, params=params)
        assert (status, body["error"]["message"]) == (400, message)
    assert (await call(http, "GET", url))[0] == 401
