"""WebSocket /ws/operator/{operator_id}?token=JWT[&since=ID]: live events to operators.

The handshake: the token's user (who must still exist and be active) is ``operator_id``,
and a browser's ``Origin`` is this host or one of ``web.allowed_origins``. In: ``{"type":
"ping"}`` -> ``{"type": "pong"}``; ``accept`` / ``answer`` an alert (the REST actions by
socket: the same checks, audit and learning); at most ``web.ws_messages_per_s`` messages a
second (a burst of twice that), else the socket is closed 1008 (policy violation); a binary
frame is closed 1003 (unsupported data), and frames aiohttp cannot read end the socket with
their code (1002 protocol error, 1007 bad UTF-8, 1009 too big). A peer that answers no ping
for ``HEARTBEAT_S`` and a half is dropped (a fragment never finished ends that way). Out:
every feed message (numbered ``id``); on connect, the messages missed since ``since`` are
replayed first, then a ``hello`` with the live alerts. Every ``web.user_check_s`` the user is
looked up again: disabled, removed or given another role -> closed 1008.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any
from urllib.parse import urlsplit

from aiohttp import WSCloseCode, WSMsgType, web

from smartpbx_ari.web import actions
from smartpbx_ari.web.auth import Bucket, Claims
from smartpbx_ari.web.context import BodyError, WebContext, check_text, ctx, parse_json
from smartpbx_ari.web.route import ascii_int, current_claims
from smartpbx_ari.web.text import plain

log = logging.getLogger(__name__)
MAX_MESSAGE = 16 * 1024
MAX_SINCE = 2**53
HEARTBEAT_S = 30.0


async def operator_socket(request: web.Request) -> web.StreamResponse:
    c = ctx(request)
    if not origin_allowed(request, c.settings.web.allowed_origins):
        raise web.HTTPForbidden(text="Origin: not this console's (web.allowed_origins)")
    token = c.tokens.verify(request.query.get("token", ""))
    if token is None:
        raise web.HTTPUnauthorized(text="token: a valid access token is required")
    claims = await current_claims(request, token)
    operator_id = request.match_info["operator_id"]
    if operator_id != claims.user:
        raise web.HTTPForbidden(text=f"operator_id: must be your own user name "
                                     f"({claims.user})")
    since = ascii_int(request.query.get("since", "0"))
    if since is None or not 0 <= since <= MAX_SINCE:
        raise web.HTTPBadRequest(text="since: expected a message id")
    ws = web.WebSocketResponse(heartbeat=HEARTBEAT_S, max_msg_size=MAX_MESSAGE)
    await ws.prepare(request)
    for message in c.feed.since(since):
        await ws.send_json(message)
    await ws.send_json({"type": "hello", "user": claims.user, "role": claims.role,
                        "last_id": c.feed.last_id,
                        "alerts": actions.live_alerts(c)})
    await c.feed.manager.connect(operator_id, ws)
    watch = asyncio.create_task(_watch(c, claims, ws), name=f"ws-watch-{claims.user}")
    allowance = Bucket(c.settings.web.ws_messages_per_s)
    try:
        async for msg in ws:
            if not allowance.take():
                await ws.close(code=WSCloseCode.POLICY_VIOLATION,
                               message=b"too many messages (web.ws_messages_per_s)")
                break
            if msg.type == WSMsgType.TEXT:
                await ws.send_json(await _answer(c, claims, msg.data))
            elif msg.type == WSMsgType.BINARY:
                await ws.close(code=WSCloseCode.UNSUPPORTED_DATA,
                               message=b"text frames of JSON only")
                break
    finally:
        watch.cancel()
        c.feed.manager.disconnect(operator_id, ws)
    return ws


def origin_allowed(request: web.Request, allowed: str) -> bool:
    """No Origin (not a browser: the token decides), this host's, or a configured one."""
    origin = request.headers.get("Origin")
    if origin is None or origin in {o.strip() for o in allowed.split(",") if o.strip()}:
        return True
    try:
        parts = urlsplit(origin)
    except ValueError:
        return False
    return parts.scheme in ("http", "https") and parts.netloc.lower() == request.host.lower()


async def _watch(c: WebContext, claims: Claims, ws: web.WebSocketResponse) -> None:
    """Close the socket once its user is disabled, removed or has another role."""
    while not ws.closed:
        await asyncio.sleep(c.accounts.check_s)
        try:
            now = await c.accounts.current(claims, fresh=True)
        except Exception as err:  # the database away: keep the socket, look again later
            log.warning("ws: cannot look up %s (%s)", claims.user, type(err).__name__)
            continue
        if now != claims:
            log.info("ws: closing %s's socket (user disabled, removed or changed role)",
                     claims.user)
            await ws.close(code=WSCloseCode.POLICY_VIOLATION,
                           message=b"user disabled, removed or changed role")


async def _answer(c: WebContext, claims: Claims, raw: str) -> dict[str, Any]:
    try:
        return await _handle(c, claims, raw)
    except BodyError as err:
        return {"type": "error", "message": str(err)}
    except Exception as err:  # never the socket's end: say so, log it
        log.error("ws: a message of %s failed", claims.user, exc_info=err)
        return {"type": "error", "message": "internal error"}


async def _handle(c: WebContext, claims: Claims, raw: str) -> dict[str, Any]:
    try:
        data = parse_json(raw)
    except BodyError as err:  # "message: not valid JSON", "message: nested too deeply"
        return {"type": "error", "message": f"message: {str(err).removeprefix('body: ')}"}
    kind = data.get("type") if isinstance(data, dict) else None
    if kind == "ping":
        return {"type": "pong"}
    if kind not in ("accept", "answer"):
        shown = repr(kind[:40]) if isinstance(kind, str) else type(kind).__name__
        return {"type": "error", "message": f"type: unknown {shown}"}
    if not claims.may("operate"):
        return {"type": "error", "message": "forbidden: viewers cannot act on alerts"}
    args = {"alert_id": _text(data, "alert_id")}
    if kind == "answer":
        args["text"] = plain(_text(data, "text"))
    status, body = await actions.run(c, claims, f"alert_{kind}", args)
    if status != 200:
        return {"type": "error", "message": body["error"]["message"]}
    return {"type": "accepted" if kind == "accept" else "answered", **body}


def _text(data: dict[str, Any], name: str) -> str:
    value = data.get(name, "")
    if not isinstance(value, str):
        raise BodyError(f"{name}: expected a string")
    return check_text(name, value)
