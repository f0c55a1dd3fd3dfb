"""JWT (HS256, pyjwt) access tokens, role checks, the logins' backoff (per address and
per account), and a token bucket (the WebSocket's message rate)."""

from __future__ import annotations

import time
from dataclasses import dataclass

import jwt

from smartpbx_ari.errors import UserFacingError

ALGORITHM = "HS256"
MIN_SECRET = 32
FORGET_S = 3600.0  # a login key's failures are forgotten after an hour without one
MAX_KEYS = 100_000  # login keys remembered (addresses and account names)
MAX_LOGIN = 254  # characters of an account name kept as its key
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


class Backoff:
    """Attempts per key (an address, an account): the first ``free`` go at once; after
    that each next one waits 1 s, 2 s, 4 s ... at most ``max_s`` after the last. Every
    attempt counts until ``succeeded`` takes it back; an hour without one starts over."""

    def __init__(self, free: int, max_s: float = 300.0) -> None:
        self.free, self.max_s = free, max_s
        self._tries: dict[str, tuple[int, float]] = {}  # key -> (count, last attempt)

    def wait(self, key: str, now: float) -> float:
        """0 when ``key`` may try now, else the seconds to wait."""
        count, last = self._tries.get(key, (0, now))
        if now - last > FORGET_S:
            del self._tries[key]
            return 0.0
        if count < self.free:
            return 0.0
        return max(0.0, last + min(self.max_s, 2.0 ** (count - self.free)) - now)

    def attempt(self, key: str, now: float) -> None:
        if len(self._tries) >= MAX_KEYS:
            self._tries = {k: v for k, v in self._tries.items() if now - v[1] <= FORGET_S}
            if len(self._tries) >= MAX_KEYS:  # a flood of names: keep the busiest
                keep = sorted(self._tries.items(), key=lambda kv: -kv[1][0])[:MAX_KEYS // 2]
                self._tries = dict(keep)
        self._tries[key] = (self._tries.get(key, (0, now))[0] + 1, now)

    def succeeded(self, key: str, clear: bool) -> None:
        """The attempt was right: ``clear`` the key's count, or take this one back."""
        count, last = self._tries.pop(key, (0, 0.0))
        if not clear and count > 1:
            self._tries[key] = (count - 1, last)


def _account_key(login: str) -> str:
    return login.strip().lower()[:MAX_LOGIN]  # no e-mail is longer; memory stays bounded


class LoginThrottle:
    """Logins limited per client address and per account, with backoff: a wrong password
    makes the next try wait a little longer, never locks the right one out for long. A
    success clears its account's count; only failures count against an address."""

    def __init__(self, per_address: int, per_account: int, max_s: float) -> None:
        self.addresses, self.accounts = Backoff(per_address, max_s), Backoff(per_account, max_s)

    def allow(self, address: str, account: str, now: float | None = None) -> float:
        """0 when this login may be tried (and counted), else the seconds to wait."""
        now = time.monotonic() if now is None else now
        account = _account_key(account)
        wait = max(self.addresses.wait(address, now), self.accounts.wait(account, now))
        if wait == 0:
            self.addresses.attempt(address, now)
            self.accounts.attempt(account, now)
        return wait

    def succeeded(self, address: str, account: str) -> None:
        self.addresses.succeeded(address, clear=False)
        self.accounts.succeeded(_account_key(account), clear=True)


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
