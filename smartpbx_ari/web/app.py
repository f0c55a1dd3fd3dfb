"""The operators' web app (aiohttp): REST /api/v1, WebSocket /ws/operator, the console.

One route table (web/api.py ROUTES) drives routing, the right each route needs and the
OpenAPI document, so the three cannot disagree. Every error is JSON
``{"error": {"code", "message"}}``; nothing else of an exception leaves the process. Every
response has the security headers (web/server.py).
"""

from __future__ import annotations

import logging
from pathlib import Path

from aiohttp import web

from smartpbx_ari.web import api, server, ws
from smartpbx_ari.web.actions import RemoteActions, execute
from smartpbx_ari.web.context import CTX, WebContext, ctx, error_for
from smartpbx_ari.web.route import Handler, guarded

log = logging.getLogger(__name__)
STATIC = Path(__file__).parent / "static"


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


def create_app(context: WebContext) -> web.Application:
    app = web.Application(middlewares=[errors_middleware],
                          client_max_size=context.settings.web.max_body_kb * 1024)
    app[CTX] = context
    app.on_response_prepare.append(server.on_prepare)
    for route in api.ROUTES:
        app.router.add_route(route.method, route.path, guarded(route))
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
        remote = RemoteActions(c.feed.relay, lambda *args: execute(c, *args))
        c.remote, c.feed.requests = remote, remote.received
    await c.feed.start()


async def _stop_feed(app: web.Application) -> None:
    await app[CTX].feed.stop()


async def start_site(app: web.Application, host: str, port: int) -> web.AppRunner:
    runner = server.Runner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, host, port).start()
    log.info("console and API on http://%s:%d", host, port)
    return runner
