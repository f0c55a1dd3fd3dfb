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
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from sqlalchemy import select

from smartpbx_ari.ai.clarify import PROMPTS
from smartpbx_ari.config import Settings, load_settings
from smartpbx_ari.credentials import load_credentials
from smartpbx_ari.sipcaller.caller import Dial, Line, SyntheticCaller
from smartpbx_ari.store.db import Database
from smartpbx_ari.store.models import Call, HitlAlert, Utterance
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
NEITHER = "No, neither of those."
# how the agent's clarifying questions begin: an offer, or a request to rephrase
ASKS = tuple(p.split("{")[0] if "{" in p else p for p in PROMPTS["en"].values())
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
        started = {c.call_id: c.start_time for c in live}
        asked_twice = {min(ids, key=started.__getitem__) for ids in per_node.values()}
        first = sorted(started, key=started.__getitem__)[:2]  # dialled one after another
        assert set(first) == asked_twice, (first, per_node)
        turns = dict(zip(first, await asyncio.gather(
            held(db, lines[0], first[0]), held(db, lines[1], first[1])), strict=True))

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
              f"killed node's calls on record as ended {lost_s:.2f} s after it; the "
              f"two asking what it does not know were held after {turns} (turns, noes)")
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
    # (the first two asked again until held: each of those turns was heard before the
    # kill, the alerts say; "No, neither of those." may be two turns, the comma an end)
    heard = caller_utterances(db)
    counts = {k: len(v) for k, v in heard.items()}
    for call_id, (said, no) in turns.items():
        assert 1 + said <= counts.pop(call_id) <= 1 + said + no, heard
    assert counts == {c: 1 for c in calls_of(db) if c not in turns}, heard
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


def agent_lines(db: Database, call_id: str, since: float) -> list[str]:
    """What the agent said in ``call_id`` since ``since`` (wall clock: an answer is on
    record once it has played)."""
    with db.session() as s:
        return list(s.scalars(select(Utterance.text).where(
            Utterance.call_id == call_id, Utterance.speaker == "agent",
            Utterance.start_time >= datetime.fromtimestamp(since, UTC))
            .order_by(Utterance.seq)))


def alerted(db: Database, call_id: str) -> bool:
    """Whether an operator alert of ``call_id`` is on record."""
    with db.session() as s:
        return s.scalar(select(HitlAlert.id).where(HitlAlert.call_id == call_id)
                        .limit(1)) is not None


async def held(db: Database, line: Line, call_id: str) -> tuple[int, int]:
    """Ask what the knowledge base does not hold until the call is held with an operator
    alert; the caller's turns taken, and how many of them were a "no" (which may be heard
    as two). A mishearing can lift such a question just over the floor of a clarifying
    question (see test_hold._held): the caller says neither of those and asks again, and
    after a "no" the agent does not offer twice. Read from the shared database: this caller
    does not transcribe (20 calls on 2 cores)."""
    said, no = 0, 0

    def holding() -> bool:
        return alerted(db, call_id)

    for text in (NOWHERE, NEITHER, NOWHERE):
        asked = time.time()
        spoke = await line.say(text)
        said, no = said + 1, no + (text == NEITHER)

        def replied(asked: float = asked) -> str | None:
            lines = agent_lines(db, call_id, asked)
            return "held" if alerted(db, call_id) else lines[0] if lines else None

        reply = await wait_for(replied, 60, f"a reply to {text!r} in {call_id}")
        if reply == "held":
            return said, no
        if not reply.startswith(ASKS):  # the holding phrase: then the alert is on record
            await wait_for(holding, 10, f"an alert after {reply!r} in {call_id}")
            return said, no
        # an offer, or (after the "no") a request to rephrase: the turn after the comma
        # may already be held; no music follows a question, so it ends in silence
        with contextlib.suppress(AssertionError):
            await wait_for(holding, 4, "an alert")
            return said, no
        await line.wait_quiet(await line.wait_voice(spoke, 10) or spoke)
    raise AssertionError(f"{call_id} was never held: {agent_lines(db, call_id, 0)}")


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
