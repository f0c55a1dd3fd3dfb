"""JWT (HS256, pyjwt) access tokens, role checks, the login rate limit, and a token bucket
(the WebSocket's message rate)."""

from __future__ import annotations

import time
from collections import defaultdict, deque
from dataclasses import dataclass

import jwt

from smartpbx_ari.errors import UserFacingError

ALGORITHM = "HS256"
MIN_SECRET = 32
# what each role may do; a role has the rights of those below it
RIGHTS = {
    "viewer": {"read"},
    "operator": {"read", "operate", "edit_knowledge"},
    "admin": {"read", "operate", "edit_knowledge", "admin"},
}


class WeakSecretError(UserFacingError):
    code = "jwt-secret"


@dataclass(frozen=True)
class Claims:
    user: str
    role: str

    def may(self, right: str) -> bool:
        return right in RIGHTS.get(self.role, set())


class Tokens:
    def __init__(self, secret: str, ttl_s: int, dev_mode: bool = False) -> None:
        if len(secret) < MIN_SECRET and not dev_mode:
            raise WeakSecretError(
                f"web: the JWT secret has {len(secret)} characters, at least {MIN_SECRET} "
                "are needed (SMARTPBX_SECRET_JWT_SECRET, or delete it from secrets.toml to "
                "have one generated); web.dev_mode = true allows it for development")
        self._secret, self.ttl_s = secret, ttl_s

    def issue(self, user: str, role: str) -> str:
        now = int(time.time())
        return jwt.encode({"sub": user, "role": role, "iat": now, "exp": now + self.ttl_s},
                          self._secret, algorithm=ALGORITHM)

    def verify(self, token: str) -> Claims | None:
        """The token's claims, or None for a missing, invalid, expired or unsigned one."""
        try:
            data = jwt.decode(token, self._secret, algorithms=[ALGORITHM],
                              options={"require": ["exp", "sub", "role"]})
        except jwt.PyJWTError:
            return None
        if data.get("role") not in RIGHTS:
            return None
        return Claims(str(data["sub"]), str(data["role"]))


class RateLimiter:
    """At most ``limit`` attempts per ``window_s`` per key (a client address)."""

    def __init__(self, limit: int, window_s: float = 60.0) -> None:
        self.limit, self.window_s = limit, window_s
        self._hits: dict[str, deque[float]] = defaultdict(deque)

    def allow(self, key: str, now: float | None = None) -> float:
        """0 when allowed (and counted), else the seconds to wait."""
        now = time.monotonic() if now is None else now
        hits = self._hits[key]
        while hits and hits[0] <= now - self.window_s:
            hits.popleft()
        if len(hits) >= self.limit:
            return hits[0] + self.window_s - now
        hits.append(now)
        return 0.0


class Bucket:
    """A token bucket: ``rate`` takes a second on average, ``2 * rate`` at once."""

    def __init__(self, rate: float) -> None:
        self.rate, self.burst = rate, max(1.0, 2 * rate)
        self.tokens, self.at = self.burst, time.monotonic()

    def take(self, now: float | None = None) -> bool:
        now = time.monotonic() if now is None else now
        self.tokens = min(self.burst, self.tokens + (now - self.at) * self.rate)
        self.at = now
        if self.tokens < 1:
            return False
        self.tokens -= 1
        return True
