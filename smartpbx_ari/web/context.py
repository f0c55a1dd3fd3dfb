"""What every part of the web app shares: the context, the request's JSON body, errors as JSON.

The bottom of ``web/``: the app, the routes, the actions and the socket import this module,
never each other upwards. Every error is JSON ``{"error": {"code", "message"}}``.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from aiohttp import web

from smartpbx_ari.ai.agent import AIAgentService
from smartpbx_ari.ai.rag import RAGEngine
from smartpbx_ari.call.control import Presence, Telephony, TelephonyError
from smartpbx_ari.call.hitl import DeskError, HitlDesk
from smartpbx_ari.config import Settings
from smartpbx_ari.errors import StageError, UserFacingError
from smartpbx_ari.store.db import Database
from smartpbx_ari.store.recorder import CallRecorder
from smartpbx_ari.store.users import role_of
from smartpbx_ari.web.accounts import Accounts
from smartpbx_ari.web.auth import Claims, LoginThrottle, Tokens
from smartpbx_ari.web.feed import ConnectionManager, EventFeed
from smartpbx_ari.web.metrics import Metrics

log = logging.getLogger(__name__)
Body = dict[str, Any]
Result = tuple[int, Body]  # HTTP status, JSON body
INT_MIN, INT_MAX = -(2**31), 2**31 - 1  # what every database keeps as an integer


class Remote(Protocol):
    """Actions on alerts and calls that other nodes hold (web/actions.py RemoteActions)."""

    async def request(self, name: str, claims: Claims, args: Body) -> Result: ...


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
    logins: LoginThrottle = field(init=False)  # per client address and account
    accounts: Accounts = field(init=False)  # a token's user as they are now
    calls: Telephony | None = None  # the Stasis app: takeover, hand back, hang up
    # other nodes' alerts and calls, through the relay (set when the feed has one)
    remote: Remote | None = None

    def __post_init__(self) -> None:
        web = self.settings.web
        self.logins = LoginThrottle(web.login_attempts_per_minute,
                                    web.login_failures_per_account, web.login_backoff_max_s)
        self.accounts = Accounts(lambda name: role_of(self.db, name),
                                 self.settings.web.user_check_s)
        self.feed.summary_of = self._summary_of

    def _summary_of(self, alert_id: str) -> str:
        alert = self.desk.alerts.get(alert_id)
        return alert.summary if alert is not None else ""

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
                413: "too-large", 415: "unsupported-media-type",
                429: "rate-limited"}.get(exc.status, "bad-request")
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
    if isinstance(exc, StageError):  # a model failed or hung: ours, not the request's
        return error(503, exc.code, str(exc))
    if isinstance(exc, UserFacingError):
        return error(400, exc.code, str(exc))
    log.error("web: %s failed", where, exc_info=exc)
    return error(500, "internal", "internal error")


class BodyError(UserFacingError):
    """Input the API cannot take (a 400 naming the field or the problem)."""

    code = "bad-request"


def check_text(name: str, value: str) -> str:
    """``value`` unless it holds a NUL or a lone surrogate (which no store can keep)."""
    if "\x00" in value:
        raise BodyError(f"{name}: NUL characters are not allowed")
    if not value.isascii():
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise BodyError(f"{name}: not valid Unicode (a lone surrogate)") from None
    return value


def parse_json(raw: bytes | str) -> Any:
    """JSON text (UTF-8 when bytes) as Python values; BodyError naming what is wrong."""
    try:
        text = raw.decode("utf-8") if isinstance(raw, bytes) else raw
    except UnicodeDecodeError:
        raise BodyError("body: not UTF-8") from None
    try:
        return json.loads(text)
    except RecursionError:
        raise BodyError("body: nested too deeply") from None
    except ValueError:  # JSONDecodeError, or an integer of thousands of digits
        raise BodyError("body: not valid JSON") from None


def _field_name(name: object) -> str:
    text = str(name)[:40]
    return text if text.isprintable() and text.isascii() else repr(text)


async def read_json(request: web.Request, fields: Mapping[str, type],
                    required: tuple[str, ...] = ()) -> Body:
    """The JSON body (Content-Type application/json, UTF-8): an object with only
    ``fields`` (each of its type; text without NUL or lone surrogates; integers within
    32 bits), ``required`` present; else 415 or 400 naming the field."""
    if request.content_type != "application/json":
        raise web.HTTPUnsupportedMediaType(
            text=f"Content-Type: expected application/json (got "
                 f"{_field_name(request.content_type)})")
    charset = (request.charset or "utf-8").lower()
    if charset not in ("utf-8", "utf8"):
        raise web.HTTPBadRequest(text=f"Content-Type: charset {_field_name(charset)} is not "
                                      "supported (JSON is UTF-8)")
    body = parse_json(await request.read())
    if not isinstance(body, dict):
        raise BodyError("body: expected a JSON object")
    unknown = sorted(set(body) - set(fields))
    if unknown:
        raise BodyError(f"{_field_name(unknown[0])}: unknown field")
    for name in required:
        if name not in body:
            raise BodyError(f"{name}: required")
    for name, value in body.items():
        kind = fields[name]
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            raise BodyError(f"{name}: expected {kind.__name__}")
        if isinstance(value, str):
            check_text(name, value)
        elif isinstance(value, int) and not INT_MIN <= value <= INT_MAX:
            raise BodyError(f"{name}: an integer from {INT_MIN} to {INT_MAX}")
        elif isinstance(value, list):
            for n, item in enumerate(value):
                if isinstance(item, str):
                    check_text(f"{name}[{n}]", item)
    return body
