"""A row of the API's route table, the guard that checks its right, and what handlers read
of a request (the caller's claims, a page, a time), as JSON-ready values."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime

from aiohttp import web

from smartpbx_ari.web.auth import Claims
from smartpbx_ari.web.context import ctx

CLAIMS = web.RequestKey("claims", Claims)
MAX_PAGE = 200
UNITS = {"m": 60, "h": 3600, "d": 86400}
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass(frozen=True)
class Route:
    method: str
    path: str
    handler: Handler
    right: str  # "" = public
    summary: str
    body: Mapping[str, type] = field(default_factory=dict)
    query: tuple[str, ...] = ()


def guarded(route: Route) -> Handler:
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


def page(request: web.Request) -> tuple[int, int]:
    """(limit, offset) from the query; 400 when out of range."""
    try:
        limit = int(request.query.get("limit", "50"))
        offset = int(request.query.get("offset", "0"))
    except ValueError:
        raise web.HTTPBadRequest(text="limit: expected integers for limit and offset") from None
    if not 1 <= limit <= MAX_PAGE or offset < 0:
        raise web.HTTPBadRequest(text=f"limit: 1 to {MAX_PAGE}, offset >= 0")
    return limit, offset


def when(request: web.Request, name: str) -> datetime | None:
    """The query's ISO 8601 date or time ``name`` (UTC when naive), None when absent."""
    raw = request.query.get(name)
    if not raw:
        return None
    try:
        moment = datetime.fromisoformat(raw)
    except ValueError:
        raise web.HTTPBadRequest(text=f"{name}: expected an ISO 8601 date or time") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def span_s(text: str) -> int | None:
    """Seconds of a span like 15m, 1h, 24h or 7d; None when it is not one."""
    unit, count = UNITS.get(text[-1:]), text[:-1]
    if unit is None or not count.isascii() or not count.isdigit() or int(count) < 1:
        return None
    return int(count) * unit


def span(request: web.Request, name: str, default: str) -> tuple[str, int]:
    """The query's span ``name`` (its text and seconds); 400 naming it when malformed."""
    text = request.query.get(name, default)
    seconds = span_s(text)
    if seconds is None:
        raise web.HTTPBadRequest(text=f"{name}: like 15m, 1h, 24h or 7d (got {text[:20]!r})")
    return text, seconds


def iso(moment: datetime | None) -> str | None:
    """ISO 8601, UTC when naive (SQLite returns naive times)."""
    if moment is None:
        return None
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).isoformat()
