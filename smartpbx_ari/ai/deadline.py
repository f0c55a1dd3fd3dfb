"""Blocking model work on threads of its own, each call with a deadline.

A Python thread cannot be killed: a call past its deadline is abandoned instead. Its
thread is left to finish (or hang) alone in the old pool, which is shut down without
waiting, and later calls get a new pool, so one hung model call cannot wedge the calls
after it. Each abandonment leaks one thread for as long as the model hangs
(``abandoned`` counts them).
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from smartpbx_ari.errors import StageError

T = TypeVar("T")


class Deadline:
    def __init__(self, stage: str, workers: int, timeout_s: float,
                 error: type[StageError]) -> None:
        self.stage, self.workers, self.timeout_s, self.error = stage, workers, timeout_s, error
        self.abandoned = 0
        self._pool = self._new_pool()

    def _new_pool(self) -> ThreadPoolExecutor:
        return ThreadPoolExecutor(self.workers, thread_name_prefix=self.stage)

    async def run(self, fn: Callable[..., T], *args: Any, timeout_s: float | None = None
                  ) -> T:
        """``fn(*args)`` on a worker; past ``timeout_s`` (the pool's by default; time
        queued for a worker included) ``error(..., timed_out=True)``, and the work is
        abandoned."""
        timeout = self.timeout_s if timeout_s is None else timeout_s
        pool = self._pool
        work = asyncio.get_running_loop().run_in_executor(pool, functools.partial(fn, *args))
        try:
            return await asyncio.wait_for(work, timeout)
        except TimeoutError:
            if pool is self._pool:  # (work of an already abandoned pool leaves the new one)
                self.abandon()
            raise self.error(f"{self.stage}: no result within {timeout:g} s (its "
                             "thread abandoned)", timed_out=True) from None

    def abandon(self) -> None:
        """Leave the current pool's threads behind; later calls get a new pool."""
        old, self._pool = self._pool, self._new_pool()
        self.abandoned += 1
        old.shutdown(wait=False)

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
