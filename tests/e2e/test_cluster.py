"""Scale-out through the real parts: `smartpbx cluster up` starts Kamailio in front of two
Asterisk nodes (127.0.0.2, 127.0.0.3), a controller each, one PostgreSQL and one Chroma
server. Calls dialled at Kamailio land on both nodes; either node's console shows every
live call and alert; one node's Asterisk killed by its PID: new calls go to the other node
within 5 s, the killed node's calls end "PBX lost" in the shared database, and no caller's
utterance is missing from the record.

20 calls before the kill (SMARTPBX_E2E_CLUSTER_CALLS, even: 10 on each node,
round-robin) and 2 after."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from sqlalchemy import select

from smartpbx_ari.config import Settings, load_settings
from smartpbx_ari.credentials import load_credentials
from smartpbx_ari.sipcaller.caller import Dial, Line, SyntheticCaller
from smartpbx_ari.store.db import Database
from smartpbx_ari.store.models import Call, Utterance
from smartpbx_ari.telephony.cluster import Cluster
from smartpbx_ari.telephony.stasis import PBX_LOST
from tests.fixtures.postgres import LocalPostgres

# the hang guard: its setup alone starts two whole nodes (79 s on the slow box of stop 22)
pytestmark = [pytest.mark.e2e, pytest.mark.ai, pytest.mark.slow, pytest.mark.timeout(600)]

CALLS = int(os.environ.get("SMARTPBX_E2E_CLUSTER_CALLS", "20"))  # even: half on each node
AFTER_KILL = 2
QUESTIONS = ["How do I get a refund?", "Which payment methods do you accept?",
             "How long does shipping take?"]
NOWHERE = "What will the weather be like in Paris tomorrow?"  # not in the knowledge base
FAILOVER_S = 5.0


def _free_port(kind: socket.SocketKind) -> int:
    with socket.socket(socket.AF_INET, kind) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture(scope="module")
def cluster_env(postgres: LocalPostgres, tmp_path_factory: pytest.TempPathFactory
                ) -> dict[str, str]:
    """`smartpbx cluster`'s environment: a fresh data dir and database, and a config."""
    data = tmp_path_factory.mktemp("cluster-data")
    url = postgres.create_database(f"cluster_{os.urandom(4).hex()}")
    config = data / "smartpbx.toml"  # the callers on hold stay there for the whole test
    # Kamailio and Chroma on free ports: the single-node PBX of the other tests keeps 5060
    # two whole nodes on 2 cores, 20 questions at once: a tiny.en decode took past the
    # 2.5 s STT deadline (stt_failed) in 3 of 4 runs alone at stop 22; this test is about
    # spread, failover and the record, so its deadline is 10 s (the capacity: the benches)
    config.write_text(f"[agent]\nhitl_wait_s = 300\n\n[stt]\ntimeout_s = 10.0\n\n[cluster]\n"
                      f"sip_port = {_free_port(socket.SOCK_DGRAM)}\n"
                      f"chroma_port = {_free_port(socket.SOCK_STREAM)}\n")
    return {**os.environ, "SMARTPBX_DATA_DIR": str(data), "SMARTPBX_DATABASE_URL": url,
            "SMARTPBX_CONFIG": str(config)}


@pytest.fixture(scope="module")
def cluster(cluster_env: dict[str, str]) -> Iterator[Cluster]:
    env = cluster_env
    config = Path(env["SMARTPBX_CONFIG"])
    running = Cluster(load_settings(config, env), config=config)
    try:
        smartpbx("up", "--demo", env=env)
        yield running
    finally:
        smartpbx("down", env=env)
        assert running.down() == []  # `cluster down` left nothing running


@pytest.fixture(scope="module")
def db(cluster: Cluster) -> Iterator[Database]:
    database = Database(cluster.settings.database_url)
    yield database
    database.engine.dispose()


def smartpbx(*args: str, env: dict[str, str]) -> None:
    exe = Path(sys.executable).with_name("smartpbx")
    done = subprocess.run([str(exe), "cluster", *args], env=env, capture_output=True,
                          text=True, timeout=600, check=False)
    assert done.returncode == 0, done.stdout + done.stderr


def dispatcher(settings: Settings) -> Dial:
    password = load_credentials(settings.data_dir).caller_password
    return Dial("1000", (settings.cluster.sip_host, settings.cluster.sip_port), "caller",
                password)


async def greeted(caller: SyntheticCaller, dial: Dial, stack: contextlib.AsyncExitStack,
                  answered_s: list[float] | None = None) -> Line:
    """A call past its greeting; ``answered_s`` gets the time from dialling to the answer."""
    dialled = time.monotonic()
    line = await stack.enter_async_context(caller.dial(dial))
    if answered_s is not None:
        answered_s.append(line.answered_at - dialled)
    heard = await line.wait_voice(line.answered_at, 15)
    assert heard is not None, "no greeting"
    await line.wait_quiet(heard)
    return line


async def ask(line: Line, text: str) -> None:
    """An answer at all (how soon is bench_calls.py's to measure): 20 questions at once
    on two whole nodes on 2 cores queue for the STT, and in one CI run the last answer
    came 22 s after its question (decodes of 1.4-2.3 s, 13.7 s waited in the queue)."""
    said = await line.say(text)
    answer = await line.wait_voice(said, 60)
    assert answer is not None, f"no answer to {text!r}"
    await line.wait_quiet(answer)


def calls_of(db: Database) -> dict[str, Call]:
    with db.session() as s:
        return {c.call_id: c for c in s.scalars(select(Call))}


def ended_on(db: Database, node: str) -> list[Call]:
    return [c for c in calls_of(db).values() if c.call_id.startswith(node) and c.end_time]


def caller_utterances(db: Database) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    with db.session() as s:
        for u in s.scalars(select(Utterance).order_by(Utterance.seq)):
            if u.speaker == "caller":
                out.setdefault(u.call_id, []).append(u.text)
    return out


async def wait_for(check: Any, timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        found = await asyncio.to_thread(check)
        if found:
            return found
        assert time.monotonic() < deadline, f"{what} within {timeout} s"
        await asyncio.sleep(0.2)


@contextlib.asynccontextmanager
async def console(cluster: Cluster, node: int) -> AsyncIterator[aiohttp.ClientSession]:
    web = cluster.nodes[node].settings.web
    base = f"http://{web.host}:{web.port}"
    password = load_credentials(cluster.settings.data_dir).admin_password
    async with aiohttp.ClientSession(base) as http:
        async with http.post("/api/v1/auth/login", json={"email": "admin@localhost",
                                                         "password": password}) as resp:
            assert resp.status == 200, await resp.text()
            token = (await resp.json())["access_token"]
        http.headers["Authorization"] = f"Bearer {token}"
        yield http


async def get(http: aiohttp.ClientSession, path: str) -> Any:
    async with http.get(path) as resp:
        assert resp.status == 200, await resp.text()
        return await resp.json()


async def test_calls_spread_fail_over_and_stay_on_record(
    cluster: Cluster, db: Database, cluster_env: dict[str, str]
) -> None:
    dial = dispatcher(cluster.settings)
    caller = SyntheticCaller(cluster.settings, transcribe=False)
    async with contextlib.AsyncExitStack() as stack:
        # ---- calls dialled at Kamailio land on both nodes ----------------------------
        lines = [await greeted(caller, dial, stack) for _ in range(CALLS)]
        await asyncio.gather(*(ask(line, QUESTIONS[i % len(QUESTIONS)])
                               for i, line in enumerate(lines)))
        live = await wait_for(lambda: [c for c in calls_of(db).values()
                                       if c.end_time is None], 10, "every call on record")
        assert len(live) == CALLS
        per_node = {n.name: sorted(c.call_id for c in live if c.call_id.startswith(n.name))
                    for n in cluster.nodes}
        assert [len(ids) for ids in per_node.values()] == [CALLS // 2, CALLS // 2], per_node
        # the first two callers (one on each node: round-robin, each its node's first
        # call) ask what the AI does not know: an alert each, and they hold for an operator.
        # (A question of the others misheard is an alert too: hearing is measured by
        # bench_hearing.py, this test counts on the alerts of these two.)
        await asyncio.gather(lines[0].say(NOWHERE), lines[1].say(NOWHERE))
        started = {c.call_id: c.start_time for c in live}
        asked_twice = {min(ids, key=started.__getitem__) for ids in per_node.values()}

        # ---- either node's console shows every live call and alert -------------------
        seen: list[set[str]] = []
        for node in range(len(cluster.nodes)):
            async with console(cluster, node) as http:
                shown = await get(http, "/api/v1/calls?status=active")
                assert {c["call_id"] for c in shown["data"]} == {c.call_id for c in live}
                alerts = await wait_for_alerts(http, asked_twice)
                # each of the two is held for the question the AI does not know (another
                # call's alert may be of any kind: a question misheard, or an STT deadline
                # met on this box busy with two whole nodes: measured by the benches)
                unsure = {a["call_id"] for a in alerts if a["reason"] == "low_confidence"}
                assert asked_twice <= unsure, alerts
                seen.append({a["alert_id"] for a in alerts})
        assert seen[0] == seen[1], "both consoles show the same alerts"
        # ---- one node's Asterisk killed: new calls go to the other ------------------
        killed, survivor = cluster.nodes
        pid = cluster.pbx(killed).pid()
        assert pid is not None
        os.kill(pid, signal.SIGKILL)
        killed_at = time.monotonic()
        lost = asyncio.create_task(wait_for(
            lambda: len(ended_on(db, killed.name)) == CALLS // 2, 15,
            "the killed node's calls ended"))
        answered_s: list[float] = []  # each new call: dialled to answered
        # dialled together at once: before a probe finds the node gone, round-robin sends
        # one of them there, and it must fail over (timeout) to the other node
        more = await asyncio.gather(*(greeted(caller, dial, stack, answered_s)
                                      for _ in range(AFTER_KILL)))
        failover_s = max(line.answered_at for line in more) - killed_at
        assert failover_s < FAILOVER_S and max(answered_s) < FAILOVER_S, answered_s
        await asyncio.gather(*(ask(line, QUESTIONS[0]) for line in more))
        view = await asyncio.to_thread(cluster.kamailio.destinations)
        assert view is not None
        active = {d.uri: d.active for d in view}
        assert active == {f"sip:{killed.settings.pbx.host}:{killed.settings.pbx.sip_port}":
                          False,
                          f"sip:{survivor.settings.pbx.host}:{survivor.settings.pbx.sip_port}":
                          True}
        # the killed node's calls end with the reason, in the shared database
        await lost
        ended = ended_on(db, killed.name)
        lost_s = max(c.end_time for c in ended).timestamp() - (time.time() - (
            time.monotonic() - killed_at))
        print(f"\ncluster: {CALLS} calls {[len(v) for v in per_node.values()]} per node; "
              f"after the kill the new calls were answered within {failover_s:.2f} s (each "
              f"call: {', '.join(f'{s:.2f}' for s in answered_s)} s from dialling), the "
              f"killed node's calls on record as ended {lost_s:.2f} s after it")
        assert len(ended) == CALLS // 2
        assert {c.end_reason for c in ended} == {PBX_LOST}
        records = calls_of(db)
        new = [c for c in records.values() if c.call_id not in {x.call_id for x in live}]
        assert len(new) == AFTER_KILL and all(c.call_id.startswith(survivor.name) for c in new)
        async with console(cluster, 1) as http:
            shown = await get(http, "/api/v1/calls?status=active")
            assert {c["call_id"] for c in shown["data"]} == \
                set(per_node[survivor.name]) | {c.call_id for c in new}
        # every caller hangs up at once: a BYE to the killed node waits out its timeout,
        # and one after another those took 10 x 5 s (past the test's 300 s on a slow box)
        await asyncio.gather(*(line.call.hangup() for line in lines + more),
                             return_exceptions=True)
    # ---- no utterance lost: every question of every call is on record ---------------
    # (the first two asked twice; both questions were heard before the kill: the alerts)
    heard = caller_utterances(db)
    assert {k: len(v) for k, v in heard.items()} == \
        {c: 2 if c in asked_twice else 1 for c in calls_of(db)}, heard
    assert all(text.strip() for texts in heard.values() for text in texts)

    # ---- `cluster up` again restarts the killed Asterisk: probed back in, it takes calls
    await asyncio.to_thread(smartpbx, "up", env=cluster_env)
    await wait_for(lambda: all(d.active for d in cluster.kamailio.destinations() or []), 10,
                   "both nodes active again")
    before = set(calls_of(db))
    async with contextlib.AsyncExitStack() as stack:
        await asyncio.gather(*(greeted(caller, dial, stack) for _ in range(2)))
    back = sorted(c[:5] for c in set(calls_of(db)) - before)
    assert back == ["node1", "node2"], back


async def wait_for_alerts(http: aiohttp.ClientSession, calls: set[str]
                          ) -> list[dict[str, Any]]:
    """The console's live alerts once those of ``calls`` are among them (30 s at most)."""
    deadline = time.monotonic() + 30
    while True:
        alerts: list[dict[str, Any]] = (await get(http, "/api/v1/alerts"))["data"]
        if calls <= {a["call_id"] for a in alerts}:
            return alerts
        assert time.monotonic() < deadline, f"alerts of {calls} within 30 s: {alerts}"
        await asyncio.sleep(0.3)
