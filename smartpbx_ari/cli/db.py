"""`smartpbx db upgrade|current|purge`: the schema and the retention of call records."""

from __future__ import annotations

import argparse

from smartpbx_ari.config import Settings
from smartpbx_ari.credentials import private_dir

# the store (SQLAlchemy, Alembic) is imported when the command runs (cli/users.py: why)


def add_db_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("action", choices=["upgrade", "current", "purge"])
    parser.add_argument("--days", type=int, default=None,
                        help="purge: calls older than this (default: store.retention_days)")


def run_db(args: argparse.Namespace, settings: Settings) -> int:
    from smartpbx_ari.store import migrate
    from smartpbx_ari.store.calls import purge
    from smartpbx_ari.store.db import Database, database_url, safe_url
    from smartpbx_ari.store.recordings import recordings_dir

    private_dir(settings.data_dir)
    db = Database(database_url(settings))
    where = safe_url(db.url)
    if args.action == "current":
        print(f"db: {where} at revision {migrate.current(db) or 'none'} "
              f"(head {migrate.head()})")
        return 0
    before = migrate.upgrade(db)
    if args.action == "upgrade":
        print(f"db: {where} upgraded from {before or 'empty'} to {migrate.head()}")
        return 0
    days = settings.store.retention_days if args.days is None else args.days
    if days <= 0:
        print("db: retention is 0 (keep forever): nothing purged")
        return 0
    purged = purge(db, days, recordings=recordings_dir(settings))
    print(f"db: purged {purged} call(s) older than {days} day(s) from {where}, "
          "with their recordings")
    return 0
