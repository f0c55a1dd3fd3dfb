"""Tokens (HS256 only, required claims, expiry), the weak-secret refusal, role rights,
the login rate limiter, the socket's token bucket, a token's user looked up again,
markup stripping."""

from __future__ import annotations

import time

import jwt
import pytest

from smartpbx_ari.web.accounts import Accounts
from smartpbx_ari.web.auth import Bucket, Claims, RateLimiter, Tokens, WeakSecretError
from smartpbx_ari.web.text import plain

pytestmark = pytest.mark.unit
SECRET = "s" * 40


def test_issue_and_verify() -> None:
    tokens = Tokens(SECRET, 60)
    assert tokens.verify(tokens.issue("ada", "admin")) == Claims("ada", "admin")
    assert Tokens("t" * 40, 60).verify(tokens.issue("ada", "admin")) is None  # other key


@pytest.mark.parametrize("claims", [
    {"sub": "ada", "role": "admin"},  # no exp
    {"sub": "ada", "role": "root", "exp": int(time.time()) + 60},  # unknown role
    {"sub": "ada", "role": "admin", "exp": int(time.time()) - 1},  # expired
])
def test_bad_claims_are_refused(claims: dict[str, object]) -> None:
    assert Tokens(SECRET, 60).verify(jwt.encode(claims, SECRET, algorithm="HS256")) is None


def test_other_algorithms_are_refused() -> None:
    claims = {"sub": "ada", "role": "admin", "exp": int(time.time()) + 60}
    long_key = SECRET * 2  # HS512 wants 64 bytes
    assert Tokens(long_key, 60).verify(jwt.encode(claims, long_key, algorithm="HS512")) is None
    assert Tokens(SECRET, 60).verify(jwt.encode(claims, None, algorithm="none")) is None


def test_a_weak_secret_stops_start_up_unless_dev_mode() -> None:
    with pytest.raises(WeakSecretError, match="has 5 characters, at least 32"):
        Tokens("short", 60)
    assert Tokens("short", 60, dev_mode=True).verify("x") is None


def test_rights_by_role() -> None:
    assert Claims("v", "viewer").may("read") and not Claims("v", "viewer").may("edit_knowledge")
    assert Claims("o", "operator").may("operate") and not Claims("o", "operator").may("admin")
    assert Claims("a", "admin").may("admin")


def test_rate_limiter_window() -> None:
    limiter = RateLimiter(2, window_s=10)
    assert limiter.allow("ip", now=0) == 0 and limiter.allow("ip", now=1) == 0
    assert limiter.allow("ip", now=2) == pytest.approx(8)
    assert limiter.allow("other", now=2) == 0
    assert limiter.allow("ip", now=10.5) == 0  # the first attempt left the window


def test_plain_strips_markup_and_scripts() -> None:
    assert plain("<b>Hi</b> <script>alert(1)</script>there &amp; you") == "Hi there & you"
    assert plain("a < b > c") == "a b c"


def test_the_bucket_allows_a_burst_then_the_rate() -> None:
    bucket = Bucket(5.0)
    bucket.at = 0.0
    assert [bucket.take(now=0.0) for _ in range(11)] == [True] * 10 + [False]
    assert bucket.take(now=0.2) and not bucket.take(now=0.2)  # one more every 1/5 s
    assert [bucket.take(now=100.0) for _ in range(11)].count(True) == 10  # never above burst


async def test_accounts_look_the_user_up_again_when_the_cache_is_old() -> None:
    roles: dict[str, str | None] = {"ada": "admin"}
    asked: list[str] = []

    def role_of(name: str) -> str | None:
        asked.append(name)
        return roles.get(name)

    accounts = Accounts(role_of, check_s=60.0)
    token = Claims("ada", "admin")
    assert await accounts.current(token) == token
    roles["ada"] = "viewer"
    assert await accounts.current(token) == token and asked == ["ada"]  # cached
    assert await accounts.current(token, fresh=True) == Claims("ada", "viewer")
    roles["ada"] = None  # disabled or removed
    accounts.check_s = 0.0
    assert await accounts.current(token) is None
    assert await accounts.current(Claims("ghost", "admin")) is None
