"""Who a token speaks for now: its user must still exist and be active, and their current
role applies, read from the users table at most ``check_s`` seconds ago."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from smartpbx_ari.web.auth import Claims

MAX_CACHED = 10_000  # subjects of valid tokens only: bounded by the users, in practice


class Accounts:
    def __init__(self, role_of: Callable[[str], str | None], check_s: float) -> None:
        """``role_of``: blocking, a user name -> their role, None when missing or disabled."""
        self.role_of, self.check_s = role_of, check_s
        self._seen: dict[str, tuple[float, str | None]] = {}

    async def current(self, claims: Claims, fresh: bool = False) -> Claims | None:
        """The token's user with their role now; None when they are gone or disabled."""
        now = time.monotonic()
        seen = self._seen.get(claims.user)
        if fresh or seen is None or now - seen[0] >= self.check_s:
            if len(self._seen) >= MAX_CACHED:
                self._seen.clear()
            seen = (now, await asyncio.to_thread(self.role_of, claims.user))
            self._seen[claims.user] = seen
        return None if seen[1] is None else Claims(claims.user, seen[1])
