"""REST handlers for running the service: performance figures, operators' presence,
routing rules, the audit log, liveness and Prometheus metrics."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta

from aiohttp import web

from smartpbx_ari.call.routing import validate_rule
from smartpbx_ari.store import stats
from smartpbx_ari.store.audit import list_actions
from smartpbx_ari.store.rules import add_rule, delete_rule, list_rules
from smartpbx_ari.store.window import Window
from smartpbx_ari.web.context import INT_MAX, ctx, read_json
from smartpbx_ari.web.route import ascii_int, claims_of, iso, page, span
from smartpbx_ari.web.text import plain

MAX_BUCKETS = 500
MAX_OFFSET_MIN = 14 * 60  # UTC-12:00 to UTC+14:00 are the zones in use
RULE_FIELDS: dict[str, type] = {"kind": str, "pattern": str, "value": str, "priority": int,
                                "note": str}


async def performance(request: web.Request) -> web.Response:
    period, seconds = span(request, "period", "1h")
    since = datetime.now(UTC) - timedelta(seconds=seconds)
    figures = await asyncio.to_thread(stats.performance, ctx(request).db, since)
    return web.json_response({"period": period, **figures})


async def timeline(request: web.Request) -> web.Response:
    """The figures per bucket over the period, oldest first, the last bucket holding now."""
    period, period_s = span(request, "period", "24h")
    bucket, bucket_s = span(request, "bucket", "1h")
    if bucket_s > period_s:
        raise web.HTTPBadRequest(text=f"bucket: at most the period ({period})")
    if -(-period_s // bucket_s) > MAX_BUCKETS:
        raise web.HTTPBadRequest(text=f"bucket: {period} in buckets of {bucket} is more "
                                 f"than {MAX_BUCKETS} buckets; choose a larger bucket")
    offset = _utc_offset_min(request)
    window = Window.ending_at(datetime.now(UTC), period_s, bucket_s, offset * 60)
    buckets = await asyncio.to_thread(stats.timeline, ctx(request).db, window)
    return web.json_response({"period": period, "bucket": bucket, "bucket_s": bucket_s,
                              "utc_offset": offset,
                              "from": iso(window.start), "to": iso(window.end),
                              "data": [{**b, "start": iso(b["start"])} for b in buckets]})


def _utc_offset_min(request: web.Request) -> int:
    """The viewer's offset from UTC in minutes (UTC+09:00: 540), so that their days and
    hours are whole buckets; 0 (UTC) when absent."""
    minutes = ascii_int(request.query.get("utc_offset", "0"))
    if minutes is None:
        raise web.HTTPBadRequest(text="utc_offset: minutes ahead of UTC, an integer "
                                 "(UTC+09:00: 540)")
    if not -MAX_OFFSET_MIN <= minutes <= MAX_OFFSET_MIN:
        raise web.HTTPBadRequest(text=f"utc_offset: -{MAX_OFFSET_MIN} to {MAX_OFFSET_MIN} "
                                 "minutes")
    return minutes


async def operators(request: web.Request) -> web.Response:
    presence = ctx(request).presence()
    return web.json_response({"data": [
        {"endpoint": p.endpoint, "state": p.state, "detail": p.detail}
        for p in sorted(presence.values(), key=lambda p: p.endpoint)]})


async def rules(request: web.Request) -> web.Response:
    found = await asyncio.to_thread(list_rules, ctx(request).db)
    return web.json_response({"data": [
        {"id": r.id, "kind": r.kind, "pattern": r.pattern, "value": r.value,
         "priority": r.priority, "enabled": r.enabled, "note": r.note} for r in found]})


async def rule_create(request: web.Request) -> web.Response:
    c = ctx(request)
    body = await read_json(request, RULE_FIELDS, ("kind",))
    rule = validate_rule(body["kind"], body.get("pattern", ""), body.get("value", ""))
    rule_id = await asyncio.to_thread(add_rule, c.db, rule.kind, rule.pattern, rule.value,
                                      body.get("priority", 100), plain(body.get("note", "")))
    c.audit(claims_of(request), "rule_create", rule=rule_id, kind=body["kind"])
    return web.json_response({"id": rule_id}, status=201)


async def rule_delete(request: web.Request) -> web.Response:
    c = ctx(request)
    rule_id = ascii_int(request.match_info["id"])
    if rule_id is None or not 1 <= rule_id <= INT_MAX:
        raise web.HTTPBadRequest(text=f"id: a rule number, 1 to {INT_MAX}")
    if not await asyncio.to_thread(delete_rule, c.db, rule_id):
        raise web.HTTPNotFound(text="id: no such rule")
    c.audit(claims_of(request), "rule_delete", rule=rule_id)
    return web.json_response({"deleted": rule_id})


async def audit(request: web.Request) -> web.Response:
    limit, offset = page(request)
    rows = await asyncio.to_thread(list_actions, ctx(request).db, limit, offset)
    return web.json_response({"data": [
        {"at": iso(r.at), "user": r.user, "action": r.action, "call_id": r.call_id,
         "alert_id": r.alert_key, "detail": r.detail} for r in rows]})


async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok", "time": time.time()})


async def prometheus(request: web.Request) -> web.Response:
    body, content_type = ctx(request).metrics.exposition(request.headers.get("Accept", ""))
    return web.Response(body=body, headers={"Content-Type": content_type})
