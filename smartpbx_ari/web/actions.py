"""Operators' actions on live alerts and calls: one implementation for REST, the WebSocket
and the other nodes.

An action runs where its alert or call lives. A web-only node (``smartpbx serve
--web-only``) does not hold the controller's alerts, so with a relay (``web.events =
"postgres"``) it publishes the action as a request; the node holding the alert or call
runs it (same checks, same audit) and publishes the reply, a status and a JSON body. No
node holding it within ``REMOTE_TIMEOUT_S`` -> 404. The asking node has checked the
role; the relay is the database's channel and trusted like the database itself.
"""

from __future__ import annotations

import asyncio
import json
import secrets
from collections.abc import Awaitable, Callable

from aiohttp import web

from smartpbx_ari.ai import learning
from smartpbx_ari.call.control import Telephony
from smartpbx_ari.store.knowledge import KnowledgeError
from smartpbx_ari.store.users import get_user
from smartpbx_ari.web.auth import Claims
from smartpbx_ari.web.context import Body, Result, WebContext, error_for
from smartpbx_ari.web.feed import Relay

REMOTE_TIMEOUT_S = 5.0


async def accept(c: WebContext, claims: Claims, args: Body) -> Body:
    alert = c.desk.accept(args["alert_id"], claims.user)
    c.audit(claims, "alert_accept", alert.call_id, alert.id)
    return alert.as_dict()


async def close(c: WebContext, claims: Claims, args: Body) -> Body:
    alert = c.desk.close(args["alert_id"], claims.user)
    c.audit(claims, "alert_close", alert.call_id, alert.id)
    return alert.as_dict()


async def answer(c: WebContext, claims: Claims, args: Body) -> Body:
    """The text is spoken to the waiting caller and filed as a knowledge candidate."""
    text = args["text"]
    alert = c.desk.answer(args["alert_id"], claims.user, text)
    c.audit(claims, "alert_answer", alert.call_id, alert.id, text=text)
    candidate = None
    if alert.question:  # learning: the caller's question and the operator's answer
        try:
            outcome = await asyncio.to_thread(learning.file_candidate, c.rag, alert.question, text)
            candidate = outcome.id
        except KnowledgeError:
            candidate = None
    return {**alert.as_dict(), "candidate": candidate}


async def _phone(c: WebContext, claims: Claims, listening_on: str = "") -> str:
    """The operator's own endpoint, reachable (or already listening in on the call)."""
    user = await asyncio.to_thread(get_user, c.db, claims.user)
    endpoint = user.endpoint if user is not None else ""
    if not endpoint:
        raise web.HTTPBadRequest(text="endpoint: your user has no phone "
                                      "(smartpbx users add NAME --endpoint 2001)")
    presence = c.presence().get(endpoint)
    if presence is not None and presence.state != "available" and endpoint != listening_on:
        raise web.HTTPConflict(text=f"endpoint: your phone {endpoint} is {presence.state}")
    return endpoint


async def listen(c: WebContext, claims: Claims, args: Body) -> Body:
    """Ring the operator's phone to hear a live AI call silently (caller and AI)."""
    endpoint = await _phone(c, claims)
    await _telephony(c).listen(args["call_id"], endpoint)
    c.audit(claims, "call_listen", args["call_id"], endpoint=endpoint)
    return {"call_id": args["call_id"], "endpoint": endpoint, "listening": True}


async def take_over_call(c: WebContext, claims: Claims, args: Body) -> Body:
    """Take a call over from listening in (the same phone joins the caller), or ring."""
    telephony = _telephony(c)
    endpoint = await _phone(c, claims, telephony.listener(args["call_id"]))
    await telephony.take_over(args["call_id"], endpoint)
    c.audit(claims, "call_takeover", args["call_id"], endpoint=endpoint)
    return {"call_id": args["call_id"], "endpoint": endpoint, "with": "operator"}


async def take_over(c: WebContext, claims: Claims, args: Body) -> Body:
    """Ring the operator's own phone and bridge it with the caller; the AI goes quiet."""
    endpoint = await _phone(c, claims)
    alert = c.desk.get(args["alert_id"])
    await _telephony(c).take_over(alert.call_id, endpoint)
    alert = c.desk.take_over(alert.id, claims.user)
    c.audit(claims, "alert_takeover", alert.call_id, alert.id, endpoint=endpoint)
    return {**alert.as_dict(), "endpoint": endpoint}


async def hand_back(c: WebContext, claims: Claims, args: Body) -> Body:
    await _telephony(c).hand_back(args["call_id"])
    c.audit(claims, "call_handback", args["call_id"])
    return {"call_id": args["call_id"], "with": "ai"}


async def hang_up(c: WebContext, claims: Claims, args: Body) -> Body:
    await _telephony(c).hang_up(args["call_id"])
    c.audit(claims, "call_hangup", args["call_id"])
    return {"call_id": args["call_id"], "hung_up": True}


def _telephony(c: WebContext) -> Telephony:
    if c.calls is None:
        raise web.HTTPConflict(text="call_id: this web node does not run calls")
    return c.calls


ACTIONS: dict[str, Callable[[WebContext, Claims, Body], Awaitable[Body]]] = {
    "alert_accept": accept, "alert_answer": answer, "alert_close": close,
    "alert_takeover": take_over,
    "call_listen": listen, "call_takeover": take_over_call,
    "call_handback": hand_back, "call_hangup": hang_up}


def live_alerts(c: WebContext) -> list[Body]:
    """This process's open alerts, then those other processes hold (through the relay)."""
    own = [a.as_dict() for a in c.desk.open_alerts()]
    return own + [a for a in c.feed.others.open_alerts() if a["alert_id"] not in c.desk.alerts]


def holds(c: WebContext, args: Body) -> bool:
    if "alert_id" in args:
        return args["alert_id"] in c.desk.alerts
    return c.calls is not None and c.calls.has_call(args["call_id"])


async def run(c: WebContext, claims: Claims, name: str, args: Body) -> Result:
    """Here if this node holds the alert or call (or is alone), else where it lives."""
    if c.remote is not None and not holds(c, args):
        return await c.remote.request(name, claims, args)
    return await local(c, claims, name, args)


async def local(c: WebContext, claims: Claims, name: str, args: Body) -> Result:
    try:
        return 200, await ACTIONS[name](c, claims, args)
    except Exception as exc:  # as the API would answer it
        return _result(error_for(exc, name))


async def execute(c: WebContext, name: str, claims: Claims, args: Body) -> Result | None:
    """Another node's request: run it if this node holds the alert or call."""
    if name not in ACTIONS or not holds(c, args):
        return None
    return await local(c, claims, name, args)


def _result(response: web.Response) -> Result:
    return response.status, json.loads(response.text or "{}")


class RemoteActions:
    """Requests to, and replies from, the node that holds an alert or call."""

    def __init__(self, relay: Relay,
                 execute: Callable[[str, Claims, Body], Awaitable[Result | None]],
                 timeout: float = REMOTE_TIMEOUT_S) -> None:
        self.relay, self.execute, self.timeout = relay, execute, timeout
        self._waiting: dict[str, asyncio.Future[Result]] = {}
        self._serving: set[asyncio.Task[None]] = set()

    async def request(self, name: str, claims: Claims, args: Body) -> Result:
        key = secrets.token_hex(8)
        reply: asyncio.Future[Result] = asyncio.get_running_loop().create_future()
        self._waiting[key] = reply
        try:
            await self.relay.publish({"type": "action", "key": key, "action": name,
                                      "user": claims.user, "role": claims.role, "args": args})
            return await asyncio.wait_for(reply, self.timeout)
        except TimeoutError:
            field = "alert_id" if "alert_id" in args else "call_id"
            return _result(error_for(web.HTTPNotFound(
                text=f"{field}: {args[field]!r} is not live on any node"), name))
        finally:
            self._waiting.pop(key, None)

    async def received(self, message: Body) -> None:
        if message.get("type") == "action_reply":
            reply = self._waiting.get(str(message.get("key")))
            if reply is not None and not reply.done():
                reply.set_result((int(message["status"]), message["body"]))
            return
        task = asyncio.create_task(self._serve(message))  # not in the relay's reading loop
        self._serving.add(task)
        task.add_done_callback(self._serving.discard)

    async def _serve(self, message: Body) -> None:
        claims = Claims(str(message.get("user")), str(message.get("role")))
        result = await self.execute(str(message.get("action")), claims, message.get("args") or {})
        if result is not None:
            await self.relay.publish({"type": "action_reply", "key": message.get("key"),
                                      "status": result[0], "body": result[1]})
