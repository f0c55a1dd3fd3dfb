"""REST /api/v1: the seed's routes, the HITL actions, routing rules, presence, audit.

``ROUTES`` is the one table of (method, path, handler, right, summary, body); routing,
permission checks and the OpenAPI document are all made from it.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from aiohttp import web
from sqlalchemy import select

from smartpbx_ari.ai import learning
from smartpbx_ari.store.calls import CallFilter, get_call, list_calls
from smartpbx_ari.store.knowledge import entry_dict, list_entries
from smartpbx_ari.store.models import (
    Call,
    HitlAlert,
    OperatorAction,
    RoutingRule,
    Utterance,
)
from smartpbx_ari.store.rules import add_rule
from smartpbx_ari.store.users import authenticate
from smartpbx_ari.web import actions
from smartpbx_ari.web.app import WebContext, ctx, read_json
from smartpbx_ari.web.auth import Claims
from smartpbx_ari.web.text import plain

CLAIMS = web.RequestKey("claims", Claims)
MIN_QUESTION = 5
MAX_PAGE = 200
PERIODS = {"m": 60, "h": 3600, "d": 86400}


@dataclass(frozen=True)
class Route:
    method: str
    path: str
    handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    right: str  # "" = public
    summary: str
    body: Mapping[str, type] = field(default_factory=dict)
    query: tuple[str, ...] = ()


def guarded(route: Route) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    async def handler(request: web.Request) -> web.StreamResponse:
        if route.right:
            claims = bearer_claims(request)
            if not claims.may(route.right):
                raise web.HTTPForbidden(text=f"role {claims.role!r} may not {route.right}")
            request[CLAIMS] = claims
        return await route.handler(request)

    return handler


def bearer_claims(request: web.Request) -> Claims:
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    claims = ctx(request).tokens.verify(token) if scheme.lower() == "bearer" else None
    if claims is None:
        raise web.HTTPUnauthorized(text="a valid bearer token is required",
                                   headers={"WWW-Authenticate": "Bearer"})
    return claims


def claims_of(request: web.Request) -> Claims:
    return request[CLAIMS]


# ---- auth -------------------------------------------------------------------------
async def login(request: web.Request) -> web.Response:
    c = ctx(request)
    wait = c.limiter.allow(request.remote or "?")
    if wait:
        raise web.HTTPTooManyRequests(text="too many login attempts; wait and retry",
                                      headers={"Retry-After": str(int(wait) + 1)})
    body = await read_json(request, {"email": str, "password": str}, ("email", "password"))
    user = await asyncio.to_thread(authenticate, c.db, body["email"], body["password"])
    if user is None:
        raise web.HTTPUnauthorized(text="wrong e-mail or password")
    return web.json_response({"access_token": c.tokens.issue(user.name, user.role),
                              "token_type": "bearer", "expires_in": c.tokens.ttl_s,
                              "role": user.role, "user": user.name})


# ---- calls ------------------------------------------------------------------------
def _page(request: web.Request) -> tuple[int, int]:
    try:
        limit = int(request.query.get("limit", "50"))
        offset = int(request.query.get("offset", "0"))
    except ValueError:
        raise web.HTTPBadRequest(text="limit: expected integers for limit and offset") from None
    if not 1 <= limit <= MAX_PAGE or offset < 0:
        raise web.HTTPBadRequest(text=f"limit: 1 to {MAX_PAGE}, offset >= 0")
    return limit, offset


def _when(request: web.Request, name: str) -> datetime | None:
    raw = request.query.get(name)
    if not raw:
        return None
    try:
        when = datetime.fromisoformat(raw)
    except ValueError:
        raise web.HTTPBadRequest(text=f"{name}: expected an ISO 8601 date or time") from None
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def call_summary(call: Call) -> dict[str, Any]:
    return {"call_id": call.call_id, "caller": call.caller, "callee": call.callee,
            "start_time": _iso(call.start_time), "end_time": _iso(call.end_time),
            "duration": call.duration, "status": call.status, "language": call.language,
            "end_reason": call.end_reason}


def _iso(when: datetime | None) -> str | None:
    if when is None:
        return None
    return (when if when.tzinfo else when.replace(tzinfo=UTC)).isoformat()


async def calls(request: web.Request) -> web.Response:
    limit, offset = _page(request)
    where = CallFilter(status=request.query.get("status", ""),
                       caller=request.query.get("caller", ""),
                       since=_when(request, "from"), until=_when(request, "to"))
    total, page = await asyncio.to_thread(list_calls, ctx(request).db, where, limit, offset)
    return web.json_response({"total": total, "data": [call_summary(c) for c in page]})


async def call_detail(request: web.Request) -> web.Response:
    found = await asyncio.to_thread(get_call, ctx(request).db, request.match_info["call_id"])
    if found is None:
        raise web.HTTPNotFound(text="call_id: no such call")
    call, utterances = found
    return web.json_response({**call_summary(call), "cdr": call.cdr, "utterances": [
        {"seq": u.seq, "speaker": u.speaker, "text": u.text, "start": _iso(u.start_time),
         "end": _iso(u.end_time), "confidence": u.confidence} for u in utterances]})


# ---- knowledge --------------------------------------------------------------------
KNOWLEDGE_FIELDS: dict[str, type] = {"question": str, "alternates": list, "answer": str,
                                     "category": str, "language": str}


def _knowledge_body(body: dict[str, Any], partial: bool = False) -> dict[str, Any]:
    out: dict[str, Any] = {k: plain(v) for k, v in body.items() if k != "alternates"}
    if "alternates" in body:
        for n, item in enumerate(body["alternates"]):
            if not isinstance(item, str):
                raise web.HTTPBadRequest(text=f"alternates[{n}]: expected str")
        out["alternates"] = [plain(item) for item in body["alternates"]]
    if ("question" in out or not partial) and len(out.get("question", "")) < MIN_QUESTION:
        raise web.HTTPBadRequest(text=f"question: at least {MIN_QUESTION} characters "
                                 "(markup removed)")
    if ("answer" in out or not partial) and not out.get("answer"):
        raise web.HTTPBadRequest(text="answer: must not be empty (markup removed)")
    return out


async def knowledge(request: web.Request) -> web.Response:
    c = ctx(request)
    query = request.query.get("query", "").strip()
    if query:
        try:
            top_k = int(request.query.get("top_k", "5"))
        except ValueError:
            raise web.HTTPBadRequest(text="top_k: expected an integer") from None
        if not 1 <= top_k <= 50:
            raise web.HTTPBadRequest(text="top_k: 1 to 50")
        hits = await c.rag.search(query, top_k)
        return web.json_response({"total": len(hits), "data": hits})
    status = request.query.get("status", "approved")
    if status not in ("approved", "pending"):
        raise web.HTTPBadRequest(text="status: approved or pending")
    limit, offset = _page(request)
    total, rows = await asyncio.to_thread(list_entries, c.db, status, limit, offset)
    return web.json_response({"total": total, "data": rows})


async def knowledge_create(request: web.Request) -> web.Response:
    c = ctx(request)
    body = _knowledge_body(await read_json(request, KNOWLEDGE_FIELDS, ("question", "answer")))
    knowledge_id = await c.rag.upsert(body)
    c.audit(claims_of(request), "knowledge_create", knowledge=knowledge_id)
    return web.json_response(await asyncio.to_thread(entry_dict, c.db, knowledge_id), status=201)


async def knowledge_get(request: web.Request) -> web.Response:
    row = await asyncio.to_thread(entry_dict, ctx(request).db, request.match_info["id"])
    if row is None:
        raise web.HTTPNotFound(text="id: no such entry")
    return web.json_response(row)


async def knowledge_update(request: web.Request) -> web.Response:
    c = ctx(request)
    knowledge_id = request.match_info["id"]
    current = await asyncio.to_thread(entry_dict, c.db, knowledge_id)
    if current is None:
        raise web.HTTPNotFound(text="id: no such entry")
    body = _knowledge_body(await read_json(request, KNOWLEDGE_FIELDS), partial=True)
    await c.rag.upsert({**current, **body, "id": knowledge_id})
    c.audit(claims_of(request), "knowledge_update", knowledge=knowledge_id)
    return web.json_response(await asyncio.to_thread(entry_dict, c.db, knowledge_id))


async def knowledge_delete(request: web.Request) -> web.Response:
    c = ctx(request)
    knowledge_id = request.match_info["id"]
    if not await c.rag.delete(knowledge_id):
        raise web.HTTPNotFound(text="id: no such entry")
    c.audit(claims_of(request), "knowledge_delete", knowledge=knowledge_id)
    return web.json_response({"deleted": knowledge_id})


async def knowledge_approve(request: web.Request) -> web.Response:
    c = ctx(request)
    outcome = await asyncio.to_thread(learning.approve, c.rag, request.match_info["id"])
    c.audit(claims_of(request), "knowledge_approve", knowledge=outcome.id)
    return web.json_response({"id": outcome.id, "merged_into": outcome.merged_into})


async def knowledge_reject(request: web.Request) -> web.Response:
    c = ctx(request)
    await asyncio.to_thread(learning.reject, c.rag, request.match_info["id"])
    c.audit(claims_of(request), "knowledge_reject", knowledge=request.match_info["id"])
    return web.json_response({"rejected": request.match_info["id"]})


# ---- the agent --------------------------------------------------------------------
async def agent_query(request: web.Request) -> web.Response:
    body = await read_json(request, {"query": str, "session_id": str}, ("query",))
    session = body.get("session_id") or f"api-{claims_of(request).user}"
    reply = await ctx(request).agent.respond(body["query"], session)
    return web.json_response((await reply.written()).as_dict())


# ---- HITL -------------------------------------------------------------------------
async def alerts(request: web.Request) -> web.Response:
    live = actions.live_alerts(ctx(request))
    return web.json_response({"total": len(live), "data": live})


async def alert_accept(request: web.Request) -> web.Response:
    return await _act(request, "alert_accept", {"alert_id": request.match_info["alert_id"]})


async def alert_answer(request: web.Request) -> web.Response:
    body = await read_json(request, {"text": str}, ("text",))
    return await _act(request, "alert_answer", {"alert_id": request.match_info["alert_id"],
                                                "text": plain(body["text"])})


async def alert_takeover(request: web.Request) -> web.Response:
    return await _act(request, "alert_takeover", {"alert_id": request.match_info["alert_id"]})


async def call_handback(request: web.Request) -> web.Response:
    return await _act(request, "call_handback", {"call_id": request.match_info["call_id"]})


async def call_hangup(request: web.Request) -> web.Response:
    return await _act(request, "call_hangup", {"call_id": request.match_info["call_id"]})


async def _act(request: web.Request, name: str, args: dict[str, Any]) -> web.Response:
    status, body = await actions.run(ctx(request), claims_of(request), name, args)
    return web.json_response(body, status=status)


# ---- metrics and the rest ---------------------------------------------------------
def _performance(c: WebContext, since: datetime) -> dict[str, Any]:
    with c.db.session() as session:
        rows = session.scalars(select(Call).where(Call.start_time >= since)).all()
        ids = [r.call_id for r in rows]
        alerted = set(session.scalars(select(HitlAlert.call_id).where(
            HitlAlert.call_id.in_(ids)))) if ids else set()
        turns = session.scalars(select(Utterance).where(Utterance.call_id.in_(ids))
                                .order_by(Utterance.call_id, Utterance.seq)).all() if ids else []
    latencies, last = [], None
    for u in turns:
        if u.speaker == "caller":
            last = u
        elif last is not None and last.call_id == u.call_id and last.end_time is not None:
            latencies.append((u.start_time - last.end_time).total_seconds() * 1000)
            last = None
    latencies.sort()
    total = len(rows)
    resolved = sum(1 for r in rows if r.status == "completed" and r.call_id not in alerted)

    def pct(p: float) -> float | None:
        return round(latencies[min(len(latencies) - 1, int(p * len(latencies)))], 1) \
            if latencies else None

    return {"calls": total, "active": sum(r.status == "active" for r in rows),
            "ai_resolved_rate": round(resolved / total, 3) if total else None,
            "hitl_rate": round(len(alerted) / total, 3) if total else None,
            "handed_off": sum(r.status == "handed_off" for r in rows),
            "latency_ms": {"p50": pct(0.5), "p95": pct(0.95), "p99": pct(0.99),
                           "samples": len(latencies)}}


async def performance(request: web.Request) -> web.Response:
    period = request.query.get("period", "1h")
    unit = PERIODS.get(period[-1:])
    if unit is None or not period[:-1].isdigit() or int(period[:-1]) < 1:
        raise web.HTTPBadRequest(text="period: like 15m, 1h, 24h or 7d")
    seconds = int(period[:-1]) * unit
    since = datetime.now(UTC) - timedelta(seconds=seconds)
    figures = await asyncio.to_thread(_performance, ctx(request), since)
    return web.json_response({"period": period, **figures})


async def operators(request: web.Request) -> web.Response:
    presence = ctx(request).presence()
    return web.json_response({"data": [
        {"endpoint": p.endpoint, "state": p.state, "detail": p.detail}
        for p in sorted(presence.values(), key=lambda p: p.endpoint)]})


def _rules(c: WebContext) -> list[dict[str, Any]]:
    with c.db.session() as session:
        return [{"id": r.id, "kind": r.kind, "pattern": r.pattern, "value": r.value,
                 "priority": r.priority, "enabled": r.enabled, "note": r.note}
                for r in session.scalars(select(RoutingRule).order_by(RoutingRule.priority,
                                                                      RoutingRule.id))]


async def rules(request: web.Request) -> web.Response:
    return web.json_response({"data": await asyncio.to_thread(_rules, ctx(request))})


async def rule_create(request: web.Request) -> web.Response:
    c = ctx(request)
    body = await read_json(request, {"kind": str, "pattern": str, "value": str,
                                     "priority": int, "note": str}, ("kind",))
    rule_id = await asyncio.to_thread(add_rule, c.db, body["kind"], body.get("pattern", ""),
                             body.get("value", ""), body.get("priority", 100),
                             plain(body.get("note", "")))
    c.audit(claims_of(request), "rule_create", rule=rule_id, kind=body["kind"])
    return web.json_response({"id": rule_id}, status=201)


def _delete_rule(c: WebContext, rule_id: int) -> bool:
    with c.db.session() as session:
        row = session.get(RoutingRule, rule_id)
        if row is not None:
            session.delete(row)
        return row is not None


async def rule_delete(request: web.Request) -> web.Response:
    c = ctx(request)
    raw = request.match_info["id"]
    if not raw.isdigit() or not await asyncio.to_thread(_delete_rule, c, int(raw)):
        raise web.HTTPNotFound(text="id: no such rule")
    c.audit(claims_of(request), "rule_delete", rule=int(raw))
    return web.json_response({"deleted": int(raw)})


def _audit(c: WebContext, limit: int, offset: int) -> list[dict[str, Any]]:
    with c.db.session() as session:
        rows = session.scalars(select(OperatorAction).order_by(OperatorAction.at.desc())
                               .limit(limit).offset(offset)).all()
        return [{"at": _iso(r.at), "user": r.user, "action": r.action, "call_id": r.call_id,
                 "alert_id": r.alert_key, "detail": r.detail} for r in rows]


async def audit(request: web.Request) -> web.Response:
    limit, offset = _page(request)
    return web.json_response({"data": await asyncio.to_thread(_audit, ctx(request), limit, offset)})


async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok", "time": time.time()})


async def prometheus(request: web.Request) -> web.Response:
    return web.Response(text=ctx(request).metrics.render(), content_type="text/plain",
                        charset="utf-8")


async def openapi(request: web.Request) -> web.Response:
    from smartpbx_ari.web.openapi import document

    return web.json_response(document(ROUTES))


ROUTES = [
    Route("POST", "/api/v1/auth/login", login, "", "Log in: a bearer token",
          {"email": str, "password": str}),
    Route("GET", "/api/v1/calls", calls, "read", "Calls, newest first",
          query=("limit", "offset", "status", "caller", "from", "to")),
    Route("GET", "/api/v1/calls/{call_id}", call_detail, "read", "A call and its transcript"),
    Route("GET", "/api/v1/knowledge", knowledge, "read",
          "Search (query, top_k) or list (status, limit, offset) the knowledge base",
          query=("query", "top_k", "status", "limit", "offset")),
    Route("POST", "/api/v1/knowledge", knowledge_create, "edit_knowledge",
          "Add an entry", KNOWLEDGE_FIELDS),
    Route("GET", "/api/v1/knowledge/{id}", knowledge_get, "read", "One entry"),
    Route("PUT", "/api/v1/knowledge/{id}", knowledge_update, "edit_knowledge",
          "Change an entry", KNOWLEDGE_FIELDS),
    Route("DELETE", "/api/v1/knowledge/{id}", knowledge_delete, "edit_knowledge",
          "Delete an entry"),
    Route("POST", "/api/v1/knowledge/{id}/approve", knowledge_approve, "edit_knowledge",
          "Approve a candidate (an operator's answer)"),
    Route("POST", "/api/v1/knowledge/{id}/reject", knowledge_reject, "edit_knowledge",
          "Reject a candidate"),
    Route("POST", "/api/v1/agent/query", agent_query, "operate", "One agent turn",
          {"query": str, "session_id": str}),
    Route("GET", "/api/v1/alerts", alerts, "read", "Live HITL alerts"),
    Route("POST", "/api/v1/alerts/{alert_id}/accept", alert_accept, "operate",
          "Take an alert (others see it taken)"),
    Route("POST", "/api/v1/alerts/{alert_id}/answer", alert_answer, "operate",
          "Answer a waiting caller by text (spoken to them)", {"text": str}),
    Route("POST", "/api/v1/alerts/{alert_id}/takeover", alert_takeover, "operate",
          "Take the call on your own phone (the AI leaves the conversation)"),
    Route("POST", "/api/v1/calls/{call_id}/handback", call_handback, "operate",
          "Give the call back to the AI (your phone leaves)"),
    Route("POST", "/api/v1/calls/{call_id}/hangup", call_hangup, "operate",
          "Hang up a call"),
    Route("GET", "/api/v1/metrics/performance", performance, "read",
          "Calls, AI-resolved and HITL rates, latency percentiles", query=("period",)),
    Route("GET", "/api/v1/operators", operators, "read", "Operators' phones: presence"),
    Route("GET", "/api/v1/rules", rules, "admin", "Routing rules (FastAGI)"),
    Route("POST", "/api/v1/rules", rule_create, "admin", "Add a routing rule",
          {"kind": str, "pattern": str, "value": str, "priority": int, "note": str}),
    Route("DELETE", "/api/v1/rules/{id}", rule_delete, "admin", "Delete a routing rule"),
    Route("GET", "/api/v1/audit", audit, "admin", "The operators' audit log",
          query=("limit", "offset")),
    Route("GET", "/api/v1/openapi.json", openapi, "", "This document"),
    Route("GET", "/healthz", healthz, "", "Liveness"),
    Route("GET", "/metrics", prometheus, "", "Prometheus metrics"),
]
