"""`smartpbx users add NAME --role ROLE` (password from stdin), `users list`, and
`users disable EMAIL` / `users remove EMAIL` (a running console ends that user's tokens and
sockets within web.user_check_s)."""

from __future__ import annotations

import argparse
import getpass
import sys

from smartpbx_ari.config import Settings
from smartpbx_ari.credentials import load_credentials

DEMO_ADMIN = "admin"
# the store (SQLAlchemy, argon2) is imported when a command runs: every `smartpbx`
# command builds this parser, and a restarted `serve` must reach Asterisk first


def add_users_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("action", choices=["add", "list", "disable", "remove"])
    parser.add_argument("name", nargs="?", help="add: the user's name; disable, remove: "
                        "their e-mail (or name)")
    parser.add_argument("--role", choices=["admin", "operator", "viewer"], default="operator")
    parser.add_argument("--email", default="", help="default: NAME@localhost")
    parser.add_argument("--endpoint", default="", help="the operator's PJSIP phone, e.g. 2001")


def run_users(args: argparse.Namespace, settings: Settings) -> int:
    from sqlalchemy import select

    from smartpbx_ari.store.migrate import open_database
    from smartpbx_ari.store.models import User
    from smartpbx_ari.store.users import add_user, disable_user, remove_user

    db = open_database(settings)
    if args.action == "list":
        with db.session() as session:
            for user in session.scalars(select(User).order_by(User.name)):
                print(f"{user.name}\t{user.role}\t{user.email}\t{user.endpoint or '-'}")
        return 0
    if not args.name:
        print(f"smartpbx: users {args.action}: name: required", file=sys.stderr)
        return 2
    if args.action in ("disable", "remove"):
        user = (disable_user if args.action == "disable" else remove_user)(db, args.name)
        print(f"users: {args.action}d {user.name} ({user.email}); a running console ends "
              f"their sessions within {settings.web.user_check_s:g} s")
        return 0
    if sys.stdin.isatty():
        password = getpass.getpass(f"password for {args.name}: ")
    else:
        password = sys.stdin.readline().rstrip("\n")
    user = add_user(db, args.name, password, args.role, args.email, args.endpoint)
    print(f"users: added {user.name} ({user.role}, {user.email})")
    return 0


def ensure_demo_admin(settings: Settings) -> str:
    """The demo's console login: user ``admin``, password ``admin_password`` of the
    secrets file (or SMARTPBX_SECRET_ADMIN_PASSWORD)."""
    from smartpbx_ari.store.migrate import open_database
    from smartpbx_ari.store.users import add_user, get_user

    db = open_database(settings)
    if get_user(db, DEMO_ADMIN) is None:
        add_user(db, DEMO_ADMIN, load_credentials(settings.data_dir).admin_password, "admin",
                 endpoint="2001")
        return f"created console user {DEMO_ADMIN!r}"
    return f"console user {DEMO_ADMIN!r} exists"
