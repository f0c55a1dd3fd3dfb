"""The test-only fail points (``ai/faults.py``) and the deadline pool (``ai/deadline.py``)
that keeps a hung model from wedging the turns after it."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator

import pytest

from smartpbx_ari.ai import faults
from smartpbx_ari.ai.agent import SearchError
from smartpbx_ari.ai.deadline import Deadline
from smartpbx_ari.ai.stt import SttError
from smartpbx_ari.config import FaultSettings

pytestmark = pytest.mark.unit


@pytest.fixture(autouse=True)
def disarmed() -> Iterator[None]:
    yield
    faults.install(FaultSettings())


def test_points_do_nothing_unless_armed() -> None:
    faults.install(FaultSettings())
    for stage in faults.STAGES:
        faults.point(stage)  # returns at once


def test_an_armed_raise_fails_only_its_stage() -> None:
    faults.install(FaultSettings(search="raise"))
    faults.point("stt")
    with pytest.raises(faults.InjectedFault, match="search"):
        faults.point("search")
    with pytest.raises(faults.InjectedFault):  # times = 0: every call
        faults.point("search")


def test_times_limits_a_fault_to_the_first_calls() -> None:
    faults.install(FaultSettings(stt="raise", times=2))
    for _ in range(2):
        with pytest.raises(faults.InjectedFault):
            faults.point("stt")
    faults.point("stt")  # the third works


def test_a_hang_blocks_its_thread_for_hang_s(caplog: pytest.LogCaptureFixture) -> None:
    faults.install(FaultSettings(llm="hang", hang_s=0.2, times=1))
    assert "TEST ONLY fault injection is on: llm=hang" in caplog.text
    started = time.monotonic()
    faults.point("llm")
    assert time.monotonic() - started >= 0.2
    faults.point("llm")  # once only


def test_install_disarms_what_the_settings_do_not_name() -> None:
    faults.install(FaultSettings(stt="raise"))
    faults.install(FaultSettings())
    faults.point("stt")


async def test_a_call_past_its_deadline_is_abandoned_and_the_next_one_is_served() -> None:
    pool = Deadline("stt", 1, 0.2, SttError)
    release = threading.Event()
    started = time.monotonic()
    with pytest.raises(SttError) as caught:
        await pool.run(release.wait, 30)  # hangs its only worker
    assert 0.2 <= time.monotonic() - started < 0.5
    assert (caught.value.code, caught.value.timed_out) == ("stt-timeout", True)
    # one worker, still hung: the next call gets a new pool and is answered at once
    assert await pool.run(lambda x: x * 2, 21) == 42
    assert pool.abandoned == 1
    release.set()
    pool.close()


async def test_a_late_call_of_an_abandoned_pool_does_not_abandon_the_new_one() -> None:
    pool = Deadline("search", 1, 0.2, SearchError)
    release = threading.Event()
    hung = asyncio.ensure_future(pool.run(release.wait, 30))
    behind = asyncio.ensure_future(pool.run(time.sleep, 0))  # queued behind the hang
    for task in (hung, behind):
        with pytest.raises(SearchError, match="no result within 0.2 s"):
            await task
    assert pool.abandoned == 1  # the pool of the second was abandoned already
    release.set()
    pool.close()


async def test_an_exception_of_the_work_is_raised_as_is() -> None:
    pool = Deadline("search", 1, 1.0, SearchError)

    def broken() -> None:
        raise ValueError("index corrupt")

    with pytest.raises(ValueError, match="index corrupt"):
        await pool.run(broken)
    assert pool.abandoned == 0
    pool.close()
