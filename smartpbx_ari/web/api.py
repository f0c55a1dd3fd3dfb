"""REST /api/v1: the route table, and the handlers for logging in, knowledge and the agent.

``ROUTES`` is the one table of (method, path, handler, right, summary, body); routing,
permission checks and the OpenAPI document are all made from it. Calls and their alerts
are handled in web/routes_calls.py, running the service in web/routes_admin.py.
"""

from __future__ import annotations

import asyncio
import math
from typing import Any

from aiohttp import web

from smartpbx_ari.ai import learning
from smartpbx_ari.ai.language import LANGUAGES
from smartpbx_ari.call.hitl import MAX_ANSWER
from smartpbx_ari.call.routing import KINDS
from smartpbx_ari.store.knowledge import MAX_QUESTION, MAX_TITLE, entry_dict, list_entries
from smartpbx_ari.store.users import authenticate
from smartpbx_ari.web.context import ctx, read_json
from smartpbx_ari.web.openapi import document
from smartpbx_ari.web.route import MAX_TOP_K, Route, bounded, claims_of, page
from smartpbx_ari.web.routes_admin import (
    RULE_FIELDS,
    audit,
    healthz,
    operators,
    performance,
    prometheus,
    rule_create,
    rule_delete,
    rules,
    timeline,
)
from smartpbx_ari.web.routes_calls import (
    alert_accept,
    alert_answer,
    alert_close,
    alert_takeover,
    alerts,
    call_detail,
    call_handback,
    call_hangup,
    call_listen,
    call_recording,
    call_takeover,
    calls,
)
from smartpbx_ari.web.text import plain

MIN_QUESTION = 5
LOGIN_REQUIRED = ("email", "password")


# ---- auth -------------------------------------------------------------------------
async def login(request: web.Request) -> web.Response:
    c = ctx(request)
    body = await read_json(request, {"email": str, "password": str}, LOGIN_REQUIRED)
    address = request.remote or "?"
    wait = c.logins.allow(address, body["email"])
    if wait:
        raise web.HTTPTooManyRequests(text="too many failed logins; wait and retry",
                                      headers={"Retry-After": str(math.ceil(wait))})
    user = await asyncio.to_thread(authenticate, c.db, body["email"], body["password"])
    if user is None:
        raise web.HTTPUnauthorized(text="wrong e-mail or password")
    c.logins.succeeded(address, body["email"])
    return web.json_response({"access_token": c.tokens.issue(user.name, user.role),
                              "token_type": "bearer", "expires_in": c.tokens.ttl_s,
                              "role": user.role, "user": user.name})


# ---- knowledge --------------------------------------------------------------------
# "generated": the phrasings made at import (a list without some removes them);
# "title": the short spoken title of clarifying questions
KNOWLEDGE_FIELDS: dict[str, type] = {"question": str, "alternates": list, "generated": list,
                                     "answer": str, "category": str, "language": str,
                                     "title": str}
KNOWLEDGE_REQUIRED = ("question", "answer")
LISTS = ("alternates", "generated")
LONGEST = {"category": 64, "title": MAX_TITLE}  # the column's size; the spoken title's
ENTRY: dict[str, type] = {**KNOWLEDGE_FIELDS, "id": str, "source": str, "status": str}


def _knowledge_body(body: dict[str, Any], partial: bool = False) -> dict[str, Any]:
    if "language" in body and body["language"] not in LANGUAGES:
        raise web.HTTPBadRequest(text=f"language: one of {', '.join(LANGUAGES)}")
    out: dict[str, Any] = {k: plain(v) for k, v in body.items() if k not in LISTS}
    for key in LISTS:
        if key not in body:
            continue
        for n, item in enumerate(body[key]):
            if not isinstance(item, str):
                raise web.HTTPBadRequest(text=f"{key}[{n}]: expected str")
        out[key] = [plain(item) for item in body[key]]
    if ("question" in out or not partial) and len(out.get("question", "")) < MIN_QUESTION:
        raise web.HTTPBadRequest(text=f"question: at least {MIN_QUESTION} characters "
                                 "(markup removed)")
    if ("answer" in out or not partial) and not out.get("answer"):
        raise web.HTTPBadRequest(text="answer: must not be empty (markup removed)")
    for key, most in LONGEST.items():
        if len(out.get(key, "")) > most:
            raise web.HTTPBadRequest(text=f"{key}: at most {most} characters")
    return out


async def knowledge(request: web.Request) -> web.Response:
    c = ctx(request)
    query = request.query.get("query", "").strip()
    if query:
        top_k = bounded(request, "top_k", 5, 1, MAX_TOP_K)
        hits = await c.rag.search(query, top_k)
        return web.json_response({"total": len(hits), "data": hits})
    status = request.query.get("status", "approved")
    if status not in ("approved", "pending"):
        raise web.HTTPBadRequest(text="status: approved or pending")
    limit, offset = page(request)
    total, rows = await asyncio.to_thread(list_entries, c.db, status, limit, offset)
    return web.json_response({"total": total, "data": rows})


async def knowledge_create(request: web.Request) -> web.Response:
    c = ctx(request)
    body = _knowledge_body(await read_json(request, KNOWLEDGE_FIELDS, KNOWLEDGE_REQUIRED))
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


async def openapi(request: web.Request) -> web.Response:
    return web.json_response(document(ROUTES, FIELD_SCHEMAS))


ROUTES = [
    Route("POST", "/api/v1/auth/login", login, "", "Log in: a bearer token",
          {"email": str, "password": str}, LOGIN_REQUIRED,
          returns={"access_token": str, "token_type": str, "expires_in": int, "role": str,
                   "user": str}),
    Route("GET", "/api/v1/calls", calls, "read",
          "Calls, newest first, each with its caller's first question",
          query=("limit", "offset", "status", "disposition", "caller", "from", "to"),
          returns={"total": int, "limit": int, "offset": int, "data": list}),
    Route("GET", "/api/v1/calls/{call_id}", call_detail, "read", "A call and its transcript"),
    Route("GET", "/api/v1/calls/{call_id}/recording", call_recording, "operate",
          "The call's recording (WAV; HTTP Range requests)", media="audio/wav"),
    Route("GET", "/api/v1/knowledge", knowledge, "read",
          "Search (query, top_k) or list (status, limit, offset) the knowledge base",
          query=("query", "top_k", "status", "limit", "offset"),
          returns={"total": int, "data": list}),
    Route("POST", "/api/v1/knowledge", knowledge_create, "edit_knowledge",
          "Add an entry", KNOWLEDGE_FIELDS, KNOWLEDGE_REQUIRED, status=201, returns=ENTRY),
    Route("GET", "/api/v1/knowledge/{id}", knowledge_get, "read", "One entry", returns=ENTRY),
    Route("PUT", "/api/v1/knowledge/{id}", knowledge_update, "edit_knowledge",
          "Change an entry", KNOWLEDGE_FIELDS, returns=ENTRY),
    Route("DELETE", "/api/v1/knowledge/{id}", knowledge_delete, "edit_knowledge",
          "Delete an entry"),
    Route("POST", "/api/v1/knowledge/{id}/approve", knowledge_approve, "edit_knowledge",
          "Approve a candidate (an operator's answer)"),
    Route("POST", "/api/v1/knowledge/{id}/reject", knowledge_reject, "edit_knowledge",
          "Reject a candidate"),
    Route("POST", "/api/v1/agent/query", agent_query, "operate", "One agent turn",
          {"query": str, "session_id": str}, ("query",)),
    Route("GET", "/api/v1/alerts", alerts, "read", "Live HITL alerts",
          returns={"total": int, "data": list}),
    Route("POST", "/api/v1/alerts/{alert_id}/accept", alert_accept, "operate",
          "Take an alert (others see it taken)"),
    Route("POST", "/api/v1/alerts/{alert_id}/close", alert_close, "operate",
          "Done with an alert nobody waits on (e.g. a callback made)"),
    Route("POST", "/api/v1/alerts/{alert_id}/answer", alert_answer, "operate",
          "Answer a waiting caller by text (spoken to them)", {"text": str}, ("text",)),
    Route("POST", "/api/v1/alerts/{alert_id}/takeover", alert_takeover, "operate",
          "Take the call on your own phone (the AI leaves the conversation)"),
    Route("POST", "/api/v1/calls/{call_id}/listen", call_listen, "operate",
          "Listen in on a live AI call on your own phone, unheard (audited)"),
    Route("POST", "/api/v1/calls/{call_id}/takeover", call_takeover, "operate",
          "Take a live call on your own phone (from listening in: the same call)"),
    Route("POST", "/api/v1/calls/{call_id}/handback", call_handback, "operate",
          "Give the call back to the AI (your phone leaves)"),
    Route("POST", "/api/v1/calls/{call_id}/hangup", call_hangup, "operate",
          "Hang up a call"),
    Route("GET", "/api/v1/metrics/performance", performance, "read",
          "Calls, dispositions, containment, hold time, latency percentiles",
          query=("period",)),
    Route("GET", "/api/v1/metrics/timeline", timeline, "read",
          "The figures per time bucket (calls, containment, hold time and reply latency "
          "p50/p95), oldest first; buckets aligned in UTC or at utc_offset (minutes), the "
          "last one holding now", query=("period", "bucket", "utc_offset")),
    Route("GET", "/api/v1/operators", operators, "read", "Operators' phones: presence",
          returns={"data": list}),
    Route("GET", "/api/v1/rules", rules, "admin", "Routing rules (FastAGI)",
          returns={"data": list}),
    Route("POST", "/api/v1/rules", rule_create, "admin", "Add a routing rule", RULE_FIELDS,
          ("kind",), status=201, returns={"id": int}),
    Route("DELETE", "/api/v1/rules/{id}", rule_delete, "admin", "Delete a routing rule"),
    Route("GET", "/api/v1/audit", audit, "admin", "The operators' audit log",
          query=("limit", "offset"), returns={"data": list}),
    Route("GET", "/api/v1/openapi.json", openapi, "", "This document"),
    Route("GET", "/healthz", healthz, "", "Liveness", returns={"status": str, "time": float}),
    Route("GET", "/metrics", prometheus, "", "Prometheus metrics", media="text/plain"),
]

# what the handlers check of a body field beyond its type, told in the document (markup is
# removed before the lengths are counted: "<b></b>" is no answer)
SOME_TEXT = {"type": "string", "pattern": "\\S"}
FIELD_SCHEMAS: dict[str, dict[str, Any]] = {
    "language": {"type": "string", "enum": list(LANGUAGES)},
    "question": {"type": "string", "minLength": MIN_QUESTION, "maxLength": MAX_QUESTION,
                 "pattern": "\\S"},
    "answer": SOME_TEXT,
    "query": SOME_TEXT,
    "category": {"type": "string", "maxLength": LONGEST["category"]},
    "title": {"type": "string", "maxLength": LONGEST["title"]},
    "alternates": {"type": "array", "items": SOME_TEXT},
    "generated": {"type": "array", "items": SOME_TEXT},
    "text": {"type": "string", "minLength": 1, "maxLength": MAX_ANSWER, "pattern": "\\S"},
    "kind": {"type": "string", "enum": list(KINDS)},
}
