"""WebSocket /ws/operator/{operator_id}?token=JWT[&since=ID]: live events to operators.

In: ``{"type": "ping"}`` -> ``{"type": "pong"}``; ``accept`` / ``answer`` an alert (the
REST actions by socket: the same checks, audit and learning). Out: every feed message
(numbered ``id``); on connect, the messages missed since ``since`` are replayed first,
then a ``hello`` with the live alerts.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from aiohttp import WSMsgType, web

from smartpbx_ari.web import actions
from smartpbx_ari.web.auth import Claims
from smartpbx_ari.web.context import WebContext, ctx
from smartpbx_ari.web.text import plain

log = logging.getLogger(__name__)
MAX_MESSAGE = 16 * 1024


async def operator_socket(request: web.Request) -> web.StreamResponse:
    c = ctx(request)
    claims = c.tokens.verify(request.query.get("token", ""))
    if claims is None:
        raise web.HTTPUnauthorized(text="token: a valid access token is required")
    try:
        since = int(request.query.get("since", "0"))
    except ValueError:
        raise web.HTTPBadRequest(text="since: expected a message id") from None
    operator_id = request.match_info["operator_id"]
    ws = web.WebSocketResponse(heartbeat=30, max_msg_size=MAX_MESSAGE)
    await ws.prepare(request)
    for message in c.feed.since(since):
        await ws.send_json(message)
    await ws.send_json({"type": "hello", "user": claims.user, "role": claims.role,
                        "last_id": c.feed.last_id,
                        "alerts": actions.live_alerts(c)})
    await c.feed.manager.connect(operator_id, ws)
    try:
        async for msg in ws:
            if msg.type != WSMsgType.TEXT:
                continue
            await ws.send_json(await _handle(c, claims, msg.data))
    finally:
        c.feed.manager.disconnect(operator_id, ws)
    return ws


async def _handle(c: WebContext, claims: Claims, raw: str) -> dict[str, Any]:
    try:
        data = json.loads(raw)
    except json.JSONDecodeError:
        return {"type": "error", "message": "not JSON"}
    kind = data.get("type") if isinstance(data, dict) else None
    if kind == "ping":
        return {"type": "pong"}
    if kind not in ("accept", "answer"):
        return {"type": "error", "message": f"type: unknown {kind!r}"}
    if not claims.may("operate"):
        return {"type": "error", "message": "forbidden: viewers cannot act on alerts"}
    args = {"alert_id": str(data.get("alert_id", ""))}
    if kind == "answer":
        args["text"] = plain(str(data.get("text", "")))
    status, body = await actions.run(c, claims, f"alert_{kind}", args)
    if status != 200:
        return {"type": "error", "message": body["error"]["message"]}
    return {"type": "accepted" if kind == "accept" else "answered", **body}
