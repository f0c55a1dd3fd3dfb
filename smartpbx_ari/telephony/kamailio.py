"""The SIP dispatcher of a cluster: Kamailio (Debian's package) rendered from
``kamailio-config/kamailio.cfg``, run as a process of ours, asked for its view of the PBX
nodes over its control socket (``kamcmd dispatcher.list``)."""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from smartpbx_ari.config import CLUSTER_ALGORITHMS, ClusterSettings
from smartpbx_ari.errors import UserFacingError
from smartpbx_ari.telephony.daemon import Daemon
from smartpbx_ari.telephony.pbx import fill_template

DISPATCHER_SET = 1
START_TIMEOUT_S = 10.0


class KamailioError(UserFacingError):
    """Kamailio is missing, its configuration is refused, or it did not start."""


@dataclass(frozen=True)
class Destination:
    uri: str
    flags: str  # Kamailio's: A active, I inactive, D disabled, P probing

    @property
    def active(self) -> bool:
        return self.flags.startswith("A")


def template() -> Path:
    env = os.environ.get("SMARTPBX_KAMAILIO_CONFIG")
    if env:
        return Path(env)
    return Path(__file__).resolve().parents[2] / "kamailio-config" / "kamailio.cfg"


def dispatcher_list(nodes: list[tuple[str, int]]) -> str:
    """dispatcher.list: every node in one set, ``sip:host:port``, no flags."""
    return "".join(f"{DISPATCHER_SET} sip:{host}:{port} 0 0\n" for host, port in nodes)


def parse_destinations(text: str) -> list[Destination]:
    """The URI and flags of every destination in ``kamcmd dispatcher.list``'s output."""
    uris = re.findall(r"^\s*URI:\s*(\S+)", text, re.M)
    flags = re.findall(r"^\s*FLAGS:\s*(\S+)", text, re.M)
    return [Destination(u, f) for u, f in zip(uris, flags, strict=True)]


class Kamailio:
    def __init__(self, cluster: ClusterSettings, state: Path) -> None:
        self.cluster = cluster
        self.state = state
        self.config = state / "kamailio.cfg"
        self.list_file = state / "dispatcher.list"
        self.ctl = state / "kamailio.ctl"
        self.daemon = Daemon("kamailio", state / "kamailio.pid", state / "kamailio.log",
                             str(self.config))

    def render(self, nodes: list[tuple[str, int]]) -> None:
        c = self.cluster
        values = {"sip_host": c.sip_host, "sip_port": str(c.sip_port),
                  "algorithm": str(CLUSTER_ALGORITHMS[c.algorithm]),
                  "algorithm_name": c.algorithm, "ping_interval": str(c.ping_interval_s),
                  "failover_ms": str(c.failover_ms), "ctl_socket": str(self.ctl),
                  "list_file": str(self.list_file)}
        self.state.mkdir(parents=True, exist_ok=True)
        self.config.write_text(fill_template(template().read_text("utf-8"), values,
                                             "kamailio.cfg"), "utf-8")
        self.list_file.write_text(dispatcher_list(nodes), "utf-8")

    def up(self, nodes: list[tuple[str, int]]) -> int:
        """Render and start (or leave running); returns its PID."""
        if shutil.which("kamailio") is None:
            raise KamailioError("cluster: kamailio is not installed (apt-get install kamailio)")
        self.render(nodes)
        pid = self.daemon.pid()
        if pid is not None:
            return pid
        check = subprocess.run(["kamailio", "-c", "-f", str(self.config)], capture_output=True,
                               text=True, check=False)
        if check.returncode != 0:
            last = (check.stderr.strip().splitlines() or ["?"])[-1]
            raise KamailioError(f"cluster: kamailio refuses {self.config}: {last}")
        if not _udp_free(self.cluster.sip_host, self.cluster.sip_port):
            raise KamailioError(f"cluster: port {self.cluster.sip_port}/udp on "
                                f"{self.cluster.sip_host} is taken (cluster.sip_port)")
        self.ctl.unlink(missing_ok=True)
        pid = self.daemon.start(["kamailio", "-DD", "-E", "-f", str(self.config),
                                 "-Y", str(self.state)])
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.daemon.exited(pid):
                raise KamailioError(f"cluster: kamailio exited at start: {self.daemon.log_tail()}")
            if self.ctl.exists() and self.destinations() is not None:
                return pid
            time.sleep(0.2)
        self.daemon.stop()
        raise KamailioError(f"cluster: kamailio did not start; see {self.daemon.logfile}")

    def down(self) -> bool:
        return self.daemon.stop()

    def destinations(self) -> list[Destination] | None:
        """Kamailio's view of the nodes (None: it does not answer)."""
        if self.daemon.pid() is None or shutil.which("kamcmd") is None:
            return None
        res = subprocess.run(["kamcmd", "-s", f"unix:{self.ctl}", "dispatcher.list"],
                             capture_output=True, text=True, timeout=10, check=False)
        return parse_destinations(res.stdout) if res.returncode == 0 else None


def _udp_free(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True
