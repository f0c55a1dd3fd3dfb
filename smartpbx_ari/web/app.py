"""The operators' web app (aiohttp): REST /api/v1, WebSocket /ws/operator, the console.

One route table (web/api.py ROUTES) drives routing, the right each route needs and the
OpenAPI document, so the three cannot disagree. Every error is JSON
``{"error": {"code", "message"}}``; nothing else of an exception leaves the process.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from aiohttp import web

from smartpbx_ari.ai.agent import AIAgentService
from smartpbx_ari.ai.rag import RAGEngine
from smartpbx_ari.call.control import Presence, Telephony, TelephonyError
from smartpbx_ari.config import Settings
from smartpbx_ari.errors import UserFacingError
from smartpbx_ari.hitl import DeskError, HitlDesk
from smartpbx_ari.store.db import Database
from smartpbx_ari.store.recorder import CallRecorder
from smartpbx_ari.web.auth import Claims, RateLimiter, Tokens
from smartpbx_ari.web.feed import ConnectionManager, EventFeed
from smartpbx_ari.web.metrics import Metrics

if TYPE_CHECKING:
    from smartpbx_ari.web.actions import RemoteActions

log = logging.getLogger(__name__)
STATIC = Path(__file__).parent / "static"
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass
class WebContext:
    settings: Settings
    db: Database
    rag: RAGEngine
    agent: AIAgentService
    desk: HitlDesk
    tokens: Tokens
    recorder: CallRecorder | None = None
    presence: Callable[[], dict[str, Presence]] = dict
    feed: EventFeed = field(default_factory=lambda: EventFeed(ConnectionManager()))
    metrics: Metrics = field(default_factory=Metrics)
    limiter: RateLimiter = field(init=False)  # logins per client address, from settings
    calls: Telephony | None = None  # the Stasis app: takeover, hand back, hang up
    # other nodes' alerts and calls, through the relay (set when the feed has one)
    remote: RemoteActions | None = None

    def __post_init__(self) -> None:
        self.limiter = RateLimiter(self.settings.web.login_attempts_per_minute)

    def audit(self, claims: Claims, action: str, call_id: str = "", alert_key: str = "",
              **detail: object) -> None:
        if self.recorder is not None:
            self.recorder.audit(claims.user, action, call_id, alert_key, **detail)


CTX = web.AppKey("ctx", WebContext)


def ctx(request: web.Request) -> WebContext:
    return request.app[CTX]


def error(status: int, code: str, message: str) -> web.Response:
    return web.json_response({"error": {"code": code, "message": message}}, status=status)


def error_for(exc: Exception, where: str) -> web.Response:
    """The JSON error response for a failure (an unexpected one is logged, never shown)."""
    if isinstance(exc, web.HTTPException):
        code = {401: "unauthorized", 403: "forbidden", 404: "not-found", 405: "method",
                413: "too-large", 429: "rate-limited"}.get(exc.status, "bad-request")
        message = exc.text if exc.text and not exc.text.startswith(f"{exc.status}:") \
            else exc.reason
        response = error(exc.status, code, message)
        for name in ("Retry-After", "Allow"):
            if name in exc.headers:
                response.headers[name] = exc.headers[name]
        return response
    if isinstance(exc, DeskError):
        return error(exc.status, exc.code, str(exc))
    if isinstance(exc, TelephonyError):  # the PBX refused: say what it said, as a conflict
        return error(409 if exc.status in (409, 422) else 404 if exc.status == 404
                     else 502, exc.code, exc.message)
    if isinstance(exc, UserFacingError):
        return error(400, exc.code, str(exc))
    log.error("web: %s failed", where, exc_info=exc)
    return error(500, "internal", "internal error")


@web.middleware
async def errors_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        response = await handler(request)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        response = error_for(exc, f"{request.method} {request.path}")
    except Exception as exc:
        response = error_for(exc, f"{request.method} {request.path}")
    ctx(request).metrics.request(request, response.status)
    return response


@web.middleware
async def headers_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    response = await handler(request)
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    response.headers.setdefault("X-Frame-Options", "DENY")
    response.headers.setdefault("Referrer-Policy", "no-referrer")
    response.headers.setdefault(
        "Content-Security-Policy", "default-src 'self'; connect-src 'self'; "
        "img-src 'self' data:; style-src 'self'; script-src 'self'; frame-ancestors 'none'")
    return response


def create_app(context: WebContext) -> web.Application:
    from smartpbx_ari.web import api, ws

    app = web.Application(middlewares=[headers_middleware, errors_middleware],
                          client_max_size=context.settings.web.max_body_kb * 1024)
    app[CTX] = context
    for route in api.ROUTES:
        app.router.add_route(route.method, route.path, api.guarded(route))
    app.router.add_get("/ws/operator/{operator_id}", ws.operator_socket)
    app.router.add_get("/", console)
    app.router.add_static("/static/", STATIC, follow_symlinks=False)
    app.on_startup.append(_start_feed)
    app.on_cleanup.append(_stop_feed)
    return app


async def console(request: web.Request) -> web.StreamResponse:
    return web.FileResponse(STATIC / "index.html")


async def _start_feed(app: web.Application) -> None:
    c = app[CTX]
    if c.feed.relay is not None and c.remote is None:
        from smartpbx_ari.web.actions import RemoteActions, execute

        c.remote = RemoteActions(c.feed.relay, lambda *args: execute(c, *args))
        c.feed.requests = c.remote.received
    await c.feed.start()


async def _stop_feed(app: web.Application) -> None:
    await app[CTX].feed.stop()


async def read_json(request: web.Request, fields: Mapping[str, type],
                    required: tuple[str, ...] = ()) -> dict[str, Any]:
    """The JSON body: an object with only ``fields`` (each of its type), ``required``
    present; else 400 naming the field."""
    try:
        body = await request.json(loads=json.loads)
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise web.HTTPBadRequest(text="body: not valid JSON") from None
    if not isinstance(body, dict):
        raise web.HTTPBadRequest(text="body: expected a JSON object")
    unknown = sorted(set(body) - set(fields))
    if unknown:
        raise web.HTTPBadRequest(text=f"{unknown[0]}: unknown field")
    for name in required:
        if name not in body:
            raise web.HTTPBadRequest(text=f"{name}: required")
    for name, value in body.items():
        kind = fields[name]
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            raise web.HTTPBadRequest(text=f"{name}: expected {kind.__name__}")
    return body


async def start_site(app: web.Application, host: str, port: int) -> web.AppRunner:
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, host, port).start()
    log.info("console and API on http://%s:%d", host, port)
    return runner
