"""The ``smartpbx`` command line: the product's front door."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from smartpbx_ari.cli.call_args import add_call_arguments
from smartpbx_ari.cli.cluster import add_cluster_arguments, run_cluster
from smartpbx_ari.cli.db import add_db_arguments, run_db
from smartpbx_ari.cli.kb import (
    add_ask_arguments,
    add_kb_arguments,
    ensure_demo_knowledge,
    run_ask,
    run_kb,
)
from smartpbx_ari.cli.users import add_users_arguments, ensure_demo_admin, run_users
from smartpbx_ari.config import ConfigError, Settings, load_settings
from smartpbx_ari.errors import UserFacingError
from smartpbx_ari.telephony.pbx import LocalPbx, config_source, render_config, template_values

Handler = Callable[[argparse.Namespace, Settings], int]

# `serve` (and `demo`) import the controller's wiring, and `call` the synthetic caller, only
# when they run: every other command, `--help` included, would pay seconds for the web
# stack and models they load (and a restarted controller rescues its callers first).


def _pbx(args: argparse.Namespace, settings: Settings) -> int:
    pbx = LocalPbx(settings)
    if args.action == "up":
        print(f"pbx: {pbx.up().detail}")
        return 0
    if args.action == "down":
        print("pbx: stopped" if pbx.down() else "pbx: was not running")
        return 0
    if args.action == "status":
        status = pbx.status()
        print(f"pbx: {status.detail}")
        return 0 if status.ari_ok else 3
    if args.action == "run":  # the foreground, for a supervisor: this process becomes Asterisk
        pbx.run(args.user)
    if args.action == "cli":
        print(pbx.cli(" ".join(args.command)), end="")
        return 0
    if args.action == "render":
        if len(args.command) != 1:
            print("smartpbx: pbx render needs one directory", file=sys.stderr)
            return 2
        written = render_config(config_source(), Path(args.command[0]),
                                template_values(settings, pbx.creds))
        print(f"pbx: rendered {len(written)} files into {args.command[0]}")
        return 0
    raise AssertionError(args.action)


def _serve(args: argparse.Namespace, settings: Settings) -> int:
    from smartpbx_ari.cli.serve import run_serve

    return run_serve(settings, web_only=args.web_only)


def _call(args: argparse.Namespace, settings: Settings) -> int:
    from smartpbx_ari.cli.call import run_call

    return run_call(args, settings)


def _demo(args: argparse.Namespace, settings: Settings) -> int:
    from smartpbx_ari.cli.serve import run_serve

    print(f"demo: {ensure_demo_knowledge(settings)}")
    print(f"demo: {ensure_demo_admin(settings)}")
    print("demo: starting the local Asterisk (the first time provisions it: about a minute)")
    status = LocalPbx(settings).up()
    print(f"demo: pbx {status.detail}")
    print(DEMO_HELP.format(host=settings.pbx.host, port=settings.pbx.sip_port,
                           secrets=settings.data_dir / "secrets.toml",
                           web=f"http://{settings.web.host}:{settings.web.port}"))
    return run_serve(settings)


DEMO_HELP = """
SmartPBX demo is starting. Then, in another terminal:
  smartpbx call 1000 --say "How do I get a refund?" --say "Which payment methods do you accept?"
or point a softphone at sip:{host}:{port} (UDP), user 2001 or caller, password
operator_password / caller_password from {secrets}, and dial 1000 (the AI), 0 (the
operators' queue) or 600 (echo test). The operators' console: {web} (user admin,
password admin_password from {secrets}). Ctrl-C stops the controller; `smartpbx pbx down`
stops Asterisk.
"""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="smartpbx", description=__doc__)
    parser.add_argument("--config", type=Path, help="TOML config file (default: $SMARTPBX_CONFIG)")
    sub = parser.add_subparsers(dest="command", required=True)

    pbx = sub.add_parser("pbx", help="the local Asterisk: up, down, status, cli, render, "
                                     "run (in the foreground, for systemd)")
    pbx.add_argument("action", choices=["up", "down", "status", "cli", "render", "run"])
    pbx.add_argument("command", nargs="*",
                     help="with cli: an Asterisk CLI command; with render: a directory")
    pbx.add_argument("--user", default="",
                     help="with run: the host user Asterisk runs as (default: root)")
    pbx.set_defaults(handler=_pbx)

    serve = sub.add_parser("serve", help="run the controller (calls, console, API, FastAGI)")
    serve.add_argument("--web-only", action="store_true",
                       help="only the console and API (a web node; no calls)")
    serve.set_defaults(handler=_serve)

    kb = sub.add_parser("kb", help="the knowledge base: import, search, reindex")
    add_kb_arguments(kb)
    kb.set_defaults(handler=run_kb)

    ask = sub.add_parser("ask", help="one agent turn, as a caller would get it")
    add_ask_arguments(ask)
    ask.set_defaults(handler=run_ask)

    db = sub.add_parser("db", help="the database: upgrade (migrations), current, purge")
    add_db_arguments(db)
    db.set_defaults(handler=run_db)

    users = sub.add_parser("users", help="console users: add (password from stdin), list, "
                           "disable, remove")
    add_users_arguments(users)
    users.set_defaults(handler=run_users)

    demo = sub.add_parser("demo", help="pbx up + serve with the embedded defaults")
    demo.set_defaults(handler=_demo)

    cluster = sub.add_parser("cluster", help="Kamailio + two PBX nodes on loopback: up, "
                                             "down, status")
    add_cluster_arguments(cluster)
    cluster.set_defaults(handler=run_cluster)

    call = sub.add_parser("call", help="the synthetic caller: dial, speak, listen, measure")
    add_call_arguments(call)
    call.set_defaults(handler=_call)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        settings = load_settings(args.config)
    except ConfigError as err:
        print(f"smartpbx: {err}", file=sys.stderr)
        return 2
    handler: Handler = args.handler
    try:
        return handler(args, settings)
    except KeyboardInterrupt:
        return 130
    except UserFacingError as err:  # one clear line for known user-facing errors
        print(f"smartpbx: {err}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
