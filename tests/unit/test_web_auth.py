"""Tokens (HS256 only, required claims, expiry), the weak-secret refusal, role rights,
the logins' backoff, the socket's token bucket, a token's user looked up again,
markup stripping."""

from __future__ import annotations

import time

import jwt
import pytest

from smartpbx_ari.web.accounts import Accounts
from smartpbx_ari.web.auth import (
    Backoff,
    Bucket,
    Claims,
    LoginThrottle,
    Tokens,
    WeakSecretError,
)
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


def test_backoff_doubles_after_the_free_attempts_and_forgets_after_an_hour() -> None:
    backoff = Backoff(2, max_s=5.0)
    for now in (0.0, 0.1):
        assert backoff.wait("k", now) == 0
        backoff.attempt("k", now)
    assert backoff.wait("k", 0.1) == pytest.approx(1.0)  # third try: 1 s after the last
    assert backoff.wait("other", 0.1) == 0
    backoff.attempt("k", 1.1)
    assert backoff.wait("k", 1.1) == pytest.approx(2.0)
    for now in (3.1, 7.1, 12.1):
        backoff.attempt("k", now)
    assert backoff.wait("k", 12.1) == pytest.approx(5.0)  # capped at max_s
    assert backoff.wait("k", 12.1 + 3601) == 0  # an hour of quiet: forgotten


def test_a_right_password_is_never_locked_out_for_long() -> None:
    throttle = LoginThrottle(per_address=4, per_account=2, max_s=300.0)
    for now in (0.0, 0.1):  # two wrong passwords for ada
        assert throttle.allow("10.0.0.1", "ada@example.com", now) == 0
    assert throttle.allow("10.0.0.1", " ADA@example.com", 0.2) == pytest.approx(0.9)
    assert throttle.allow("10.0.0.2", "ada@example.com", 0.2) > 0  # per account, any address
    assert throttle.allow("10.0.0.1", "otto@example.com", 0.2) == 0  # others still may
    assert throttle.allow("10.0.0.1", "ada@example.com", 1.2) == 0  # a second later
    throttle.succeeded("10.0.0.1", "ada@example.com")  # the right one: ada's count cleared
    assert throttle.allow("10.0.0.1", "ada@example.com", 1.3) == 0
    # the address: three failures and one attempt still open -> the next waits
    assert throttle.allow("10.0.0.1", "vic@example.com", 1.4) == pytest.approx(0.9)


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


def test_a_login_keeps_a_bounded_key_however_long_the_name() -> None:
    throttle = LoginThrottle(per_address=4, per_account=2, max_s=300.0)
    assert throttle.allow("10.0.0.1", "x" * 60_000, 0.0) == 0
    assert [len(key) for key in throttle.accounts._tries] == [254]
