"""Alembic migrations on SQLite and PostgreSQL: the schema they make is the models', an
old database is adopted, and an unreachable database is one clear line."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import MetaData, Table, inspect

from smartpbx_ari.cli import main
from smartpbx_ari.store import migrate
from smartpbx_ari.store.db import Database, DatabaseError
from smartpbx_ari.store.models import Base, Knowledge

pytestmark = [pytest.mark.integration, pytest.mark.db]


def test_migrations_make_exactly_the_models_schema(db: Database) -> None:
    assert migrate.current(db) == migrate.head()
    with db.engine.connect() as conn:
        assert compare_metadata(MigrationContext.configure(conn), Base.metadata) == []


def test_downgrade_to_nothing_and_back(db: Database) -> None:
    with db.engine.begin() as conn:
        command.downgrade(migrate._config(conn), "base")
    assert set(inspect(db.engine).get_table_names()) <= {"alembic_version"}
    assert migrate.upgrade(db) is None
    assert migrate.current(db) == migrate.head()


def test_a_database_from_before_migrations_is_adopted(tmp_path: Path) -> None:
    db = Database(f"sqlite:///{tmp_path / 'old.db'}")
    # what create_all made before migrations: the knowledge table as in 0001
    old = Table("knowledge", MetaData(), *(c._copy() for c in Knowledge.__table__.columns
                                           if c.name not in ("alternates", "generated", "title")))
    with db.engine.begin() as conn:
        old.create(conn)
        conn.execute(old.insert().values(id="k1", question="Old question?", answer="Kept.",
                                         category="general", language="en", source="manual",
                                         status="approved", created_at=datetime.now(UTC),
                                         updated_at=datetime.now(UTC)))
    assert migrate.upgrade(db) == "0001"
    assert migrate.current(db) == migrate.head()
    with db.session() as session:
        assert session.get(Knowledge, "k1") is not None
    assert "calls" in inspect(db.engine).get_table_names()


def test_an_unreachable_database_is_one_line_without_the_password() -> None:
    db = Database("postgresql+psycopg://smartpbx:s3cret-pw@127.0.0.1:1/smartpbx")
    with pytest.raises(DatabaseError) as err:
        migrate.upgrade(db)
    message = str(err.value)
    assert message.startswith("database: cannot reach postgresql+psycopg://smartpbx:***@"
                              "127.0.0.1:1/smartpbx: ")
    assert "s3cret-pw" not in message and "\n" not in message


def test_db_cli_upgrade_and_current(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                    capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("SMARTPBX_DATA_DIR", str(tmp_path))
    monkeypatch.delenv("SMARTPBX_DATABASE_URL", raising=False)
    assert main(["db", "current"]) == 0
    assert "at revision none" in capsys.readouterr().out
    assert main(["db", "upgrade"]) == 0
    assert f"upgraded from empty to {migrate.head()}" in capsys.readouterr().out
    assert main(["db", "purge", "--days", "30"]) == 0
    assert "purged 0 call(s) older than 30 day(s)" in capsys.readouterr().out
