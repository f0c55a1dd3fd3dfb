"""`smartpbx cluster` without running it: the nodes' addresses and ports, their
controllers' environment, Kamailio's rendered configuration and its view of the nodes, a
node's Asterisk configuration, our processes by PID, and a vanished PBX's calls."""

from __future__ import annotations

import asyncio
import dataclasses
import os
import sys
from pathlib import Path

import pytest
import yaml

from smartpbx_ari.config import ConfigError, Settings, load_settings
from smartpbx_ari.credentials import load_credentials
from smartpbx_ari.telephony.ari_events import Disconnected
from smartpbx_ari.telephony.cluster import (
    Cluster,
    check_shared_database,
    cluster_node,
    cluster_nodes,
)
from smartpbx_ari.telephony.daemon import Daemon
from smartpbx_ari.telephony.kamailio import Kamailio, parse_destinations
from smartpbx_ari.telephony.pbx import LocalPbx
from smartpbx_ari.telephony.stasis import PBX_LOST, StasisApp

pytestmark = pytest.mark.unit
PG = "postgresql+psycopg://smartpbx:pw@127.0.0.1:5432/smartpbx"


def _settings(tmp_path: Path, **env: str) -> Settings:
    return load_settings(environ={"SMARTPBX_DATA_DIR": str(tmp_path / "data"),
                                  "SMARTPBX_CACHE_DIR": str(tmp_path / "cache"),
                                  "SMARTPBX_DATABASE_URL": PG, **env})


def test_nodes_get_their_address_ports_and_a_share_of_every_range(tmp_path: Path) -> None:
    settings = _settings(tmp_path)
    one, two = cluster_nodes(settings)
    assert (one.name, two.name) == ("node1", "node2")
    assert (one.settings.pbx.host, two.settings.pbx.host) == ("127.0.0.2", "127.0.0.3")
    assert [n.settings.pbx.sip_port for n in (one, two)] == [5061, 5062]
    assert [n.settings.web.port for n in (one, two)] == [8081, 8082]
    assert [n.settings.agi.port for n in (one, two)] == [4574, 4575]
    assert [(n.settings.pbx.rtp_start, n.settings.pbx.rtp_end) for n in (one, two)] == \
        [(10000, 10499), (10500, 10999)]
    assert [(n.settings.media.port_start, n.settings.media.port_end) for n in (one, two)] == \
        [(20000, 20499), (20500, 20999)]
    for node in (one, two):
        s = node.settings
        assert s.media.bind_host == s.agi.host == s.web.host == s.pbx.host
        assert s.web.events == "postgres" and s.database_url == PG
        assert s.rag.chroma_url == "http://127.0.0.1:8000"


def test_a_cluster_needs_postgresql_and_room_in_its_ranges(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="^database_url: a cluster's nodes share one "):
        check_shared_database(_settings(tmp_path, SMARTPBX_DATABASE_URL=""))
    check_shared_database(_settings(tmp_path))
    with pytest.raises(ConfigError, match="^pbx.rtp_start: the range is too small for 2"):
        cluster_nodes(_settings(tmp_path, SMARTPBX_PBX__RTP_START="10000",
                                SMARTPBX_PBX__RTP_END="10002"))


@pytest.mark.parametrize(("key", "value", "message"), [
    ("NODES", "127.0.0.2,127.0.0.2", "cluster.nodes: "),
    ("ALGORITHM", "random", "cluster.algorithm: 'random' is not"),
    ("PING_INTERVAL_S", "0", "cluster.ping_interval_s: "),
    ("FAILOVER_MS", "50", "cluster.failover_ms: "),
    ("SIP_PORT", "70000", "cluster.sip_port: 70000 is not a port"),
])
def test_bad_cluster_settings_name_the_key(tmp_path: Path, key: str, value: str,
                                           message: str) -> None:
    with pytest.raises(ConfigError, match="^" + message):
        _settings(tmp_path, **{f"SMARTPBX_CLUSTER__{key}": value})


def test_a_node_is_found_by_name(tmp_path: Path) -> None:
    settings = _settings(tmp_path)
    assert cluster_node(settings, "node2") == cluster_nodes(settings)[1]
    with pytest.raises(ConfigError, match=r"^cluster.nodes: no node 'node3' \(the nodes: "
                                          r"node1, node2\)"):
        cluster_node(settings, "node3")


def test_render_writes_every_nodes_asterisk_and_kamailios_config(tmp_path: Path) -> None:
    settings = _settings(tmp_path)
    cluster = Cluster(settings, load_credentials(settings.data_dir, environ={}))
    out = tmp_path / "out"
    assert cluster.render(out) == [out / "node1", out / "node2", out / "kamailio"]
    for k, node in enumerate(("node1", "node2")):
        assert f"systemname = {node}" in (out / node / "asterisk.conf").read_text()
        assert f"bind = 127.0.0.{k + 2}:{5061 + k}" in (out / node / "pjsip.conf").read_text()
        assert "{{" not in (out / node / "extensions.conf").read_text()
    assert f"unix:{out / 'kamailio' / 'kamailio.ctl'}" in \
        (out / "kamailio" / "kamailio.cfg").read_text()


def test_kamailio_config_is_rendered_with_the_nodes(tmp_path: Path) -> None:
    settings = _settings(tmp_path, SMARTPBX_CLUSTER__SIP_PORT="6170",
                         SMARTPBX_CLUSTER__ALGORITHM="call-id")
    kamailio = Kamailio(settings.cluster, tmp_path / "state")
    kamailio.render([("127.0.0.2", 5061), ("127.0.0.3", 5062)])
    text = kamailio.config.read_text()
    assert "{{" not in text
    assert "listen=udp:127.0.0.1:6170" in text
    assert 'ds_select_dst("1", "0")' in text  # a hash over the Call-ID
    assert 'modparam("dispatcher", "ds_ping_interval", 1)' in text
    assert 'modparam("tm", "fr_timer", 1500)' in text
    assert f"unix:{tmp_path / 'state' / 'kamailio.ctl'}" in text
    assert kamailio.list_file.read_text() == \
        "1 sip:127.0.0.2:5061 0 0\n1 sip:127.0.0.3:5062 0 0\n"


KAMCMD = """{
\tNRSETS: 1
\tRECORDS: {
\t\tSET: {
\t\t\tID: 1
\t\t\tTARGETS: {
\t\t\t\tDEST: {
\t\t\t\t\tURI: sip:127.0.0.3:6162
\t\t\t\t\tFLAGS: AP
\t\t\t\t\tPRIORITY: 0
\t\t\t\t}
\t\t\t\tDEST: {
\t\t\t\t\tURI: sip:127.0.0.2:6161
\t\t\t\t\tFLAGS: IP
\t\t\t\t\tPRIORITY: 0
\t\t\t\t}
\t\t\t}
\t\t}
\t}
}
"""


def test_kamailios_view_of_the_nodes_is_read_from_kamcmd() -> None:
    one, two = parse_destinations(KAMCMD)
    assert (one.uri, one.flags, one.active) == ("sip:127.0.0.3:6162", "AP", True)
    assert (two.uri, two.flags, two.active) == ("sip:127.0.0.2:6161", "IP", False)
    assert parse_destinations("") == []


def test_a_node_renders_its_own_directories_and_trusts_the_dispatcher(tmp_path: Path
                                                                      ) -> None:
    settings = _settings(tmp_path, SMARTPBX_CLUSTER__SIP_PORT="6170")
    cluster = Cluster(settings, load_credentials(settings.data_dir, environ={}))
    node = cluster.nodes[0]
    pbx = cluster.pbx(node)
    pbx.render()
    etc = settings.asterisk_root / "etc/asterisk-node1"
    pjsip = (etc / "pjsip.conf").read_text()
    assert "endpoint_identifier_order = ip,username" in pjsip
    assert "bind = 127.0.0.2:5061" in pjsip and "#tryinclude pjsip_node.conf" in pjsip
    assert "match = 127.0.0.1:6170" in (etc / "pjsip_node.conf").read_text()
    conf = (etc / "asterisk.conf").read_text()
    assert "astetcdir => /etc/asterisk-node1" in conf
    assert "astrundir => /var/run/asterisk-node1" in conf and "systemname = node1" in conf
    assert pbx.conf_args == ["-C", "/etc/asterisk-node1/asterisk.conf"]
    assert pbx.pidfile != LocalPbx(settings).pidfile
    assert "var/spool/asterisk-node1/recording" in pbx.trees
    # the single PBX is as before: no node files, callers identified by user first
    single = LocalPbx(settings, cluster.creds)
    single.render()
    plain = settings.asterisk_root / "etc/asterisk"
    assert "endpoint_identifier_order = username,ip" in (plain / "pjsip.conf").read_text()
    assert not (plain / "pjsip_node.conf").exists() and single.conf_args == []


def test_our_process_is_found_by_its_pid_file_and_stopped_by_that_pid(tmp_path: Path
                                                                      ) -> None:
    daemon = Daemon("sleeper", tmp_path / "s.pid", tmp_path / "s.log", "smartpbx-test-sleeper")
    assert daemon.pid() is None
    pid = daemon.start([sys.executable, "-c", "import time; time.sleep(60)",
                        "smartpbx-test-sleeper"])
    assert daemon.pid() == pid
    assert daemon.stop(timeout=5.0)
    assert daemon.pid() is None and not daemon.pidfile.exists()
    daemon.pidfile.write_text(f"{os.getpid()}\n")  # a PID that is not running our command
    assert daemon.pid() is None
    assert not daemon.stop()
    with pytest.raises(ValueError, match="sleeper: the marker"):
        daemon.start(["sleep", "1"])


class FakeAri:
    app = "smartpbx"

    def __init__(self, answers: bool) -> None:
        self.connected = asyncio.Event()
        self.answers = answers
        self.asked = 0

    async def reachable(self) -> bool:
        self.asked += 1
        return self.answers


class FakeSession:
    def __init__(self) -> None:
        self.reason = ""

    def finish(self, reason: str) -> None:
        self.reason = reason


async def _watched(tmp_path: Path, answers: bool) -> tuple[FakeAri, list[FakeSession],
                                                           StasisApp]:
    settings = dataclasses.replace(_settings(tmp_path, SMARTPBX_ARI__LOST_AFTER_S="0.1"))
    ari = FakeAri(answers)
    app = StasisApp(settings, ari)  # type: ignore[arg-type]
    sessions = [FakeSession(), FakeSession()]
    app.sessions.update({f"c{i}": s for i, s in enumerate(sessions)})  # type: ignore[misc]
    await app.dispatch(Disconnected(type="Disconnected", application="smartpbx"))
    return ari, sessions, app


async def test_calls_of_a_pbx_that_is_gone_end_as_pbx_lost(tmp_path: Path) -> None:
    ari, sessions, app = await _watched(tmp_path, answers=False)
    await asyncio.wait_for(asyncio.gather(*app.active_tasks()), 2)
    assert [s.reason for s in sessions] == [PBX_LOST, PBX_LOST] and ari.asked == 1


async def test_calls_wait_for_the_reconnect_while_the_pbx_still_answers(tmp_path: Path
                                                                        ) -> None:
    ari, sessions, app = await _watched(tmp_path, answers=True)
    await asyncio.sleep(0.35)
    assert ari.asked >= 2 and [s.reason for s in sessions] == ["", ""]
    ari.connected.set()  # the WebSocket is back: reconcile takes over from here
    await asyncio.wait_for(asyncio.gather(*app.active_tasks()), 2)
    assert [s.reason for s in sessions] == ["", ""]


def test_docker_compose_has_the_same_cluster_as_a_profile(tmp_path: Path) -> None:
    repo = Path(__file__).resolve().parents[2]
    services = yaml.safe_load((repo / "docker-compose.yml").read_text())["services"]
    cluster = {n: s for n, s in services.items() if "cluster" in s.get("profiles", [])}
    nodes = [n.name for n in cluster_nodes(_settings(tmp_path))]
    assert set(cluster) == {"cluster-config", "chroma", "kamailio",
                            *(f"asterisk-{n}" for n in nodes),
                            *(f"controller-{n}" for n in nodes)}
    assert all(s["network_mode"] == "host" for s in cluster.values())
    assert cluster["cluster-config"]["command"][1:3] == ["cluster", "render"]
    for n in nodes:
        assert cluster[f"controller-{n}"]["command"] == ["smartpbx", "cluster", "serve", n]
        assert cluster[f"asterisk-{n}"]["environment"] == {"NODE": n}
    assert "--host" in cluster["chroma"]["command"] and "127.0.0.1" in cluster["chroma"]["command"]
    assert "kamailio" in (repo / "docker/kamailio.Dockerfile").read_text()
    assert "kamailio" in (repo / "scripts/dev.sh").read_text()
