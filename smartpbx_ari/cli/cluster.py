"""`smartpbx cluster up|down|status`: Kamailio in front of PBX nodes (Asterisk + controller
each) sharing one PostgreSQL and one Chroma server, all on loopback (telephony/cluster.py)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from smartpbx_ari.cli.kb import ensure_demo_knowledge
from smartpbx_ari.cli.users import ensure_demo_admin
from smartpbx_ari.config import Settings
from smartpbx_ari.telephony.cluster import (
    Cluster,
    ClusterStatus,
    check_shared_database,
    cluster_node,
)


def add_cluster_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("action", choices=["up", "down", "status", "serve", "render"])
    parser.add_argument("target", nargs="?",
                        help="serve: the node whose controller to run (node1, ...); "
                             "render: a directory")
    parser.add_argument("--demo", action="store_true",
                        help="up: import the demo knowledge base when it is empty, and the "
                             "console user admin (as `smartpbx demo` does)")


def run_cluster(args: argparse.Namespace, settings: Settings) -> int:
    if args.action in ("serve", "render") and not args.target:
        print(f"smartpbx: cluster {args.action} needs a "
              f"{'node' if args.action == 'serve' else 'directory'}", file=sys.stderr)
        return 2
    if args.action == "serve":
        from smartpbx_ari.cli.serve import run_serve

        check_shared_database(settings)
        return run_serve(cluster_node(settings, args.target).settings)
    cluster = Cluster(settings, config=args.config)
    if args.action == "render":
        for path in cluster.render(Path(args.target)):
            print(f"cluster: rendered {path}")
        return 0
    if args.action == "down":
        stopped = cluster.down()
        print("cluster: stopped " + (", ".join(stopped) if stopped else "nothing (not running)"))
        return 0
    if args.action == "up":
        up(cluster, args.demo)
    status = cluster.status()
    print(describe(status))
    healthy = all(n.pbx.ari_ok and n.controller_pid for n in status.nodes) and \
        status.kamailio_pid is not None and status.chroma_pid is not None
    return 0 if healthy else 3


def up(cluster: Cluster, demo: bool) -> None:
    from smartpbx_ari.store.db import safe_url  # the store when it runs: cli/users.py
    from smartpbx_ari.store.migrate import open_database

    check_shared_database(cluster.settings)
    first = cluster.nodes[0].settings
    print(f"cluster: chroma (pid {cluster.chroma_up()}) on {first.rag.chroma_url}")
    db = open_database(first)
    print(f"cluster: database {safe_url(db.url)} at the head revision")
    db.engine.dispose()
    if demo:
        print(f"cluster: {ensure_demo_knowledge(first)}")
        print(f"cluster: {ensure_demo_admin(first)}")
    for node in cluster.nodes:
        print(f"cluster: {node.name} asterisk {cluster.pbx(node).up().detail}")
        print(f"cluster: {node.name} controller (pid {cluster.controller_up(node)})")
    print(f"cluster: kamailio (pid {cluster.kamailio_up()})")


def describe(status: ClusterStatus) -> str:
    c = status
    lines = []
    for n in c.nodes:
        controller = f"pid {n.controller_pid}" if n.controller_pid else "stopped"
        lines.append(f"{n.name}: sip {n.sip}; asterisk {n.pbx.detail}; controller "
                     f"{controller}, console {n.web}")
    lines.append(f"kamailio: {f'pid {c.kamailio_pid}' if c.kamailio_pid else 'stopped'}")
    for d in c.destinations or []:
        lines.append(f"  {d.uri} {'active' if d.active else 'inactive'} (flags {d.flags})")
    lines.append(f"chroma: {f'pid {c.chroma_pid}' if c.chroma_pid else 'stopped'}")
    return "\n".join(lines)
