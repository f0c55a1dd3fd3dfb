"""Alembic migrations, run from code: ``smartpbx db upgrade``, and ``open_database`` (which
serve, the knowledge base and the user commands open the database with).

A database made before migrations existed (the knowledge table only, by create_all) is
stamped at revision 0001 first, then upgraded like any other.
"""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import inspect
from sqlalchemy.engine import Connection
from sqlalchemy.exc import OperationalError

from smartpbx_ari.config import Settings
from smartpbx_ari.credentials import private_dir
from smartpbx_ari.store.db import Database, DatabaseError, database_url, safe_url

MIGRATIONS = Path(__file__).parent / "migrations"


def open_database(settings: Settings) -> Database:
    """The configured database (the data dir made if missing, 0700), upgraded to the head."""
    private_dir(settings.data_dir)
    db = Database(database_url(settings))
    upgrade(db)
    return db


def _config(connection: Connection) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["connection"] = connection
    return config


def head() -> str:
    return str(ScriptDirectory(str(MIGRATIONS)).get_current_head())


def current(db: Database) -> str | None:
    with db.engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def upgrade(db: Database, revision: str = "head") -> str | None:
    """Bring the schema to ``revision``; returns the revision it was at before."""
    try:
        with db.engine.begin() as conn:
            config = _config(conn)
            before = MigrationContext.configure(conn).get_current_revision()
            if before is None and inspect(conn).has_table("knowledge"):
                command.stamp(config, "0001")
                before = "0001"
            command.upgrade(config, revision)
    except OperationalError as err:
        raise DatabaseError(f"database: cannot reach {safe_url(db.url)}: "
                            f"{_first_line(err.orig or err)}") from None
    except Exception as err:
        raise DatabaseError(f"database: cannot upgrade {safe_url(db.url)}: "
                            f"{_first_line(err)}") from None
    return before


def _first_line(err: BaseException) -> str:
    return (str(err).strip().splitlines() or [type(err).__name__])[0][:300]
