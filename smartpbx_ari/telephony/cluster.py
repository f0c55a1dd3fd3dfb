"""A local cluster: Kamailio on ``cluster.sip_host`` dispatches calls to PBX nodes (each an
Asterisk from the shared root and a ``smartpbx serve`` of its own, on the node's address),
which share one PostgreSQL (``database_url``) and one Chroma server. Every process is ours,
found by its PID file under ``<data dir>/cluster`` and stopped by that PID."""

from __future__ import annotations

import dataclasses
import os
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from smartpbx_ari.config import ConfigError, Settings
from smartpbx_ari.credentials import Credentials, load_credentials
from smartpbx_ari.errors import UserFacingError
from smartpbx_ari.telephony.daemon import Daemon
from smartpbx_ari.telephony.kamailio import Destination, Kamailio
from smartpbx_ari.telephony.pbx import LocalPbx, PbxStatus, config_source, render_config
from smartpbx_ari.telephony.stasis import READY_LOG

CONTROLLER_READY = READY_LOG  # the Stasis app logs it once its models are loaded
CONTROLLER_TIMEOUT_S = 240.0  # models load on 2 shared cores
CHROMA_TIMEOUT_S = 30.0


class ClusterError(UserFacingError):
    """A part of the cluster could not be started; the message names it."""


@dataclass(frozen=True)
class Node:
    name: str  # node1, node2, ...: Asterisk's systemname, so call ids name their node
    settings: Settings  # the node's addresses and ports


def _split(start: int, end: int, parts: int, k: int, key: str) -> tuple[int, int]:
    size = (end - start + 1) // parts
    if size < 2:
        raise ConfigError(f"{key}: the range is too small for {parts} cluster nodes")
    return start + k * size, start + (k + 1) * size - 1


def chroma_url(settings: Settings) -> str:
    return f"http://{settings.cluster.sip_host}:{settings.cluster.chroma_port}"


def cluster_nodes(settings: Settings) -> list[Node]:
    """Node k (1, 2, ...) on its address: pbx/web/agi ports + k, its share of the pbx and
    media RTP ranges, the shared database and Chroma, live events over PostgreSQL."""
    hosts = settings.cluster.node_hosts
    nodes = []
    for k, host in enumerate(hosts):
        pbx, media = settings.pbx, settings.media
        rtp = _split(pbx.rtp_start, pbx.rtp_end, len(hosts), k, "pbx.rtp_start")
        ports = _split(media.port_start, media.port_end, len(hosts), k, "media.port_start")
        node = dataclasses.replace(
            settings,
            pbx=dataclasses.replace(pbx, host=host, sip_port=pbx.sip_port + k + 1,
                                    http_port=pbx.http_port + k + 1,
                                    ami_port=pbx.ami_port + k + 1,
                                    rtp_start=rtp[0], rtp_end=rtp[1]),
            media=dataclasses.replace(media, bind_host=host, port_start=ports[0],
                                      port_end=ports[1]),
            agi=dataclasses.replace(settings.agi, host=host, port=settings.agi.port + k + 1),
            web=dataclasses.replace(settings.web, host=host, port=settings.web.port + k + 1,
                                    events="postgres"),
            rag=dataclasses.replace(settings.rag, chroma_url=chroma_url(settings)))
        nodes.append(Node(f"node{k + 1}", node))
    return nodes


def check_shared_database(settings: Settings) -> None:
    if not settings.database_url.startswith("postgresql"):
        raise ConfigError("database_url: a cluster's nodes share one PostgreSQL "
                          "(postgresql+psycopg://...)")


def cluster_node(settings: Settings, name: str) -> Node:
    for node in cluster_nodes(settings):
        if node.name == name:
            return node
    names = ", ".join(n.name for n in cluster_nodes(settings))
    raise ConfigError(f"cluster.nodes: no node {name!r} (the nodes: {names})")


@dataclass(frozen=True)
class NodeStatus:
    name: str
    sip: str  # host:port
    pbx: PbxStatus
    controller_pid: int | None
    web: str  # http://host:port


@dataclass(frozen=True)
class ClusterStatus:
    nodes: list[NodeStatus]
    kamailio_pid: int | None
    destinations: list[Destination] | None  # Kamailio's view (None: it does not answer)
    chroma_pid: int | None


class Cluster:
    def __init__(self, settings: Settings, creds: Credentials | None = None,
                 config: Path | None = None) -> None:
        self.settings = settings
        self.creds = creds or load_credentials(settings.data_dir)
        self.config = config  # the TOML file, passed on to the controllers
        self.state = settings.data_dir / "cluster"
        self.nodes = cluster_nodes(settings)
        self.kamailio = Kamailio(settings.cluster, self.state)
        self.chroma = Daemon("chroma", self.state / "chroma.pid", self.state / "chroma.log",
                             str(self.state / "chroma"))

    # ---- parts --------------------------------------------------------------------
    def pbx(self, node: Node) -> LocalPbx:
        cluster = self.settings.cluster
        return LocalPbx(node.settings, self.creds, node=node.name, node_values={
            "node": node.name, "identifier_order": "ip,username",
            "dispatcher_host": cluster.sip_host, "dispatcher_port": str(cluster.sip_port)})

    def controller(self, node: Node) -> Daemon:
        folder = self.state / node.name
        return Daemon(f"controller {node.name}", folder / "serve.pid", folder / "serve.log",
                      node.name)

    def chroma_up(self) -> int:
        pid = self.chroma.pid()
        if pid is None:
            c = self.settings.cluster
            exe = Path(sys.executable).with_name("chroma")
            (self.state / "chroma").mkdir(parents=True, exist_ok=True)
            pid = self.chroma.start([str(exe), "run", "--host", c.sip_host, "--port",
                                     str(c.chroma_port), "--path", str(self.state / "chroma")],
                                    {**os.environ, "ANONYMIZED_TELEMETRY": "False"})
        deadline = time.monotonic() + CHROMA_TIMEOUT_S
        while not _http_ok(chroma_url(self.settings) + "/api/v2/heartbeat"):
            if self.chroma.exited(pid):
                raise ClusterError(f"cluster: chroma exited at start: {self.chroma.log_tail()}")
            if time.monotonic() > deadline:
                raise ClusterError(f"cluster: chroma did not answer; see {self.chroma.logfile}")
            time.sleep(0.2)
        return pid

    def controller_up(self, node: Node) -> int:
        """Start the node's ``smartpbx serve`` and wait until it is connected to its ARI."""
        daemon = self.controller(node)
        pid = daemon.pid()
        if pid is not None:  # running: once its Asterisk (re)started, it reconnects
            self._wait_app(node, pid, daemon)
            return pid
        daemon.logfile.parent.mkdir(parents=True, exist_ok=True)
        offset = daemon.logfile.stat().st_size if daemon.logfile.exists() else 0
        env = dict(os.environ)
        if self.config is not None:
            env["SMARTPBX_CONFIG"] = str(self.config)
        pid = daemon.start([sys.executable, "-m", "smartpbx_ari", "cluster", "serve",
                            node.name], env)
        _wait_controller(node, pid, daemon, CONTROLLER_TIMEOUT_S, "connect",
                         lambda: CONTROLLER_READY in _read_from(daemon.logfile, offset))
        return pid

    def render(self, dest: Path) -> list[Path]:
        """For hosts of their own (docker-compose): each node's Asterisk configuration in
        ``dest/<node>/`` and Kamailio's in ``dest/kamailio/`` (its paths under there)."""
        written = []
        for node in self.nodes:
            pbx = self.pbx(node)
            render_config(config_source(), dest / node.name, pbx.values())
            render_config(config_source() / "node", dest / node.name, pbx.values())
            written.append(dest / node.name)
        Kamailio(self.settings.cluster, dest / "kamailio").render(self.addresses())
        return [*written, dest / "kamailio"]

    def addresses(self) -> list[tuple[str, int]]:
        return [(n.settings.pbx.host, n.settings.pbx.sip_port) for n in self.nodes]

    def _wait_app(self, node: Node, pid: int, daemon: Daemon) -> None:
        """Until the controller's Stasis app is registered with the node's Asterisk."""
        path = f"/applications/{node.settings.ari.app}"
        _wait_controller(node, pid, daemon, node.settings.ari.reconnect_max_s + 10.0,
                         "reconnect", lambda: self.pbx(node).ari_ok(path=path))

    def kamailio_up(self) -> int:
        return self.kamailio.up(self.addresses())

    # ---- the whole ----------------------------------------------------------------
    def down(self) -> list[str]:
        """Stop everything of ours (new calls first, then controllers, PBXs, Chroma)."""
        stopped = []
        if self.kamailio.down():
            stopped.append("kamailio")
        for node in self.nodes:
            if self.controller(node).stop(timeout=20.0):
                stopped.append(f"controller {node.name}")
            if self.pbx(node).down():
                stopped.append(f"asterisk {node.name}")
        if self.chroma.stop():
            stopped.append("chroma")
        return stopped

    def status(self) -> ClusterStatus:
        nodes = [NodeStatus(n.name, f"{n.settings.pbx.host}:{n.settings.pbx.sip_port}",
                            self.pbx(n).status(), self.controller(n).pid(),
                            f"http://{n.settings.web.host}:{n.settings.web.port}")
                 for n in self.nodes]
        return ClusterStatus(nodes, self.kamailio.daemon.pid(), self.kamailio.destinations(),
                             self.chroma.pid())


def _read_from(path: Path, offset: int) -> str:
    try:
        with path.open("rb") as f:
            f.seek(offset)
            return f.read().decode("utf-8", "replace")
    except FileNotFoundError:
        return ""


def _http_ok(url: str, timeout: float = 1.0) -> bool:
    try:
        # B310 (urlopen allows file://): an http:// URL built from our settings, not input
        with urllib.request.urlopen(url, timeout=timeout) as resp:  # nosec B310
            return bool(resp.status == 200)
    except (urllib.error.URLError, OSError):
        return False


def _wait_controller(node: Node, pid: int, daemon: Daemon, timeout_s: float, what: str,
                     ready: Callable[[], bool]) -> None:
    """Until ``ready()``; a controller that exits or takes too long is a ClusterError."""
    deadline = time.monotonic() + timeout_s
    while not ready():
        if daemon.exited(pid):
            raise ClusterError(f"cluster: the controller of {node.name} exited: "
                               f"{daemon.log_tail()}")
        if time.monotonic() > deadline:
            raise ClusterError(f"cluster: the controller of {node.name} did not {what} "
                               f"to its Asterisk; see {daemon.logfile}")
        time.sleep(0.3)
