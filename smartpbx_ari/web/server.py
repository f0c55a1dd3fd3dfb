"""The HTTP server under the app: every response gets the security headers and a
``Server`` header without versions; aiohttp's own errors (a request it cannot parse, a
failure outside the app's middlewares) are JSON ``{"error": {...}}`` that echo nothing."""

from __future__ import annotations

import logging

from aiohttp import web

from smartpbx_ari.web.context import error

log = logging.getLogger(__name__)

SERVER = "SmartPBX"
SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Content-Security-Policy": "default-src 'self'; connect-src 'self'; img-src 'self' data:; "
    "media-src 'self' blob:; style-src 'self'; script-src 'self'; frame-ancestors 'none'",
}  # media-src blob: the recording player (fetched with the token)
PROTOCOL_ERRORS = {400: ("bad-request", "request: not valid HTTP"),
                   413: ("too-large", "request: too large"),
                   431: ("too-large", "request: headers too large"),
                   504: ("timeout", "request: timed out")}


def secure(response: web.StreamResponse) -> None:
    for name, value in SECURITY_HEADERS.items():
        response.headers.setdefault(name, value)
    response.headers["Server"] = SERVER  # aiohttp would name itself and Python, with versions


async def on_prepare(request: web.Request, response: web.StreamResponse) -> None:
    """The app's ``on_response_prepare``: every response the app makes, sockets too."""
    secure(response)


class _Protocol(web.RequestHandler):
    def handle_error(self, request: web.BaseRequest, status: int = 500,
                     exc: BaseException | None = None,
                     message: str | None = None) -> web.StreamResponse:
        if status >= 500:
            log.error("web: a request failed outside the app (%d)", status, exc_info=exc)
        else:  # hostile or broken clients: one line each, no trace to flood the log with
            log.info("web: refused a request from %s (%d, %s)", request.remote, status,
                     type(exc).__name__ if exc is not None else "-")
        if request.writer.output_size > 0:
            raise ConnectionError("the response has begun; no error can be sent")
        code, text = PROTOCOL_ERRORS.get(status, ("internal", "internal error"))
        response = error(status, code, text)
        secure(response)
        response.force_close()
        return response


class _Server(web.Server):
    def __call__(self) -> web.RequestHandler:
        return _Protocol(self, loop=self._loop, **self._kwargs)


class Runner(web.AppRunner):
    """``web.AppRunner`` whose connections answer aiohttp's own errors as JSON."""

    async def _make_server(self) -> web.Server:
        server = await super()._make_server()
        server.__class__ = _Server  # the same server; only its connections' class differs
        return server
