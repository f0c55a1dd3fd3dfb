"""A row of the API's route table, the guard that checks its right, and what handlers read
of a request (the caller's claims, a page, a time), as JSON-ready values."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime

from aiohttp import web

from smartpbx_ari.web.auth import Claims
from smartpbx_ari.web.context import check_text, ctx

CLAIMS = web.RequestKey("claims", Claims)
MAX_PAGE = 200
MAX_OFFSET = 2**31 - 1
MAX_TOP_K = 50  # knowledge search hits
UNITS = {"m": 60, "h": 3600, "d": 86400}
MAX_SPAN_DAYS = 3660  # ten years and a bit: the longest period or bucket
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass(frozen=True)
class Route:
    method: str
    path: str
    handler: Handler
    right: str  # "" = public
    summary: str
    body: Mapping[str, type] = field(default_factory=dict)
    required: tuple[str, ...] = ()  # of ``body``: what the handler's read_json requires
    query: tuple[str, ...] = ()
    status: int = 200  # of success (201: created)
    returns: Mapping[str, type] = field(default_factory=dict)  # the JSON answer's fields
    media: str = "application/json"  # of the success answer


def guarded(route: Route) -> Handler:
    async def handler(request: web.Request) -> web.StreamResponse:
        for name, value in [*request.match_info.items(), *request.query.items()]:
            check_text(_printable(name), value)
        if route.right:
            claims = await current_claims(request, bearer_claims(request))
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


async def current_claims(request: web.Request, claims: Claims) -> Claims:
    """The token's user with their role now; 401 when they were removed or disabled."""
    current = await ctx(request).accounts.current(claims)
    if current is None:
        raise web.HTTPUnauthorized(text="token: its user no longer exists or is disabled",
                                   headers={"WWW-Authenticate": "Bearer"})
    return current


def claims_of(request: web.Request) -> Claims:
    return request[CLAIMS]


def _printable(name: str) -> str:
    return name if name.isascii() and name.isprintable() else repr(name[:40])


def ascii_int(text: str) -> int | None:
    """``text`` as an integer when it is ASCII digits (a leading '-' allowed, at most 18
    digits); None otherwise (no Unicode digits, signs, spaces or underscores)."""
    digits = text[1:] if text.startswith("-") else text
    if not digits.isascii() or not digits.isdigit() or len(digits) > 18:
        return None
    return int(text)


def bounded(request: web.Request, name: str, default: int, low: int, high: int) -> int:
    """The query's integer ``name`` in [low, high]; 400 naming it otherwise."""
    raw = request.query.get(name)
    value = default if raw is None else ascii_int(raw)
    if value is None or not low <= value <= high:
        raise web.HTTPBadRequest(text=f"{name}: an integer from {low} to {high}")
    return value


def page(request: web.Request) -> tuple[int, int]:
    """(limit, offset) from the query; 400 naming the one out of range."""
    return (bounded(request, "limit", 50, 1, MAX_PAGE),
            bounded(request, "offset", 0, 0, MAX_OFFSET))


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
    if unit is None or not count.isascii() or not count.isdigit() or len(count) > 12 \
            or int(count) < 1:
        return None
    return int(count) * unit


def span(request: web.Request, name: str, default: str) -> tuple[str, int]:
    """The query's span ``name`` (its text and seconds); 400 naming it when malformed."""
    text = request.query.get(name, default)
    seconds = span_s(text)
    if seconds is None:
        raise web.HTTPBadRequest(text=f"{name}: like 15m, 1h, 24h or 7d (got {text[:20]!r})")
    if seconds > MAX_SPAN_DAYS * 86400:
        raise web.HTTPBadRequest(text=f"{name}: at most {MAX_SPAN_DAYS}d")
    return text, seconds


def iso(moment: datetime | None) -> str | None:
    """ISO 8601, UTC when naive (SQLite returns naive times)."""
    if moment is None:
        return None
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).isoformat()
