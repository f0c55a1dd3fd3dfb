"""Engine and sessions (a SQLite file is its owner's only, 0600). Blocking by nature: call
from threads (``asyncio.to_thread``)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import create_engine, event
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.orm import Session, sessionmaker

from smartpbx_ari.config import Settings
from smartpbx_ari.credentials import private_file
from smartpbx_ari.errors import UserFacingError


class DatabaseError(UserFacingError):
    code = "database"


def database_url(settings: Settings) -> str:
    return settings.database_url or f"sqlite:///{settings.data_dir / 'smartpbx.db'}"


def safe_url(url: str) -> str:
    """The URL without its password, for messages and logs."""
    return make_url(url).render_as_string(hide_password=True)


class Database:
    def __init__(self, url: str) -> None:
        self.url = url
        path = make_url(url).database if url.startswith("sqlite") else None
        if path and path != ":memory:" and not path.startswith("file:") \
                and Path(path).parent.is_dir():
            private_file(Path(path))  # its journals (-wal, -shm) take its mode: 0600 too
        self.engine: Engine = create_engine(url, pool_pre_ping=True)
        if url.startswith("sqlite"):
            event.listen(self.engine, "connect", _sqlite_pragmas)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)

    @contextmanager
    def session(self) -> Iterator[Session]:
        with self._sessions() as session, session.begin():
            yield session


def _sqlite_pragmas(conn: object, _record: object) -> None:
    cursor = conn.cursor()  # type: ignore[attr-defined]
    cursor.execute("PRAGMA journal_mode=WAL")  # readers never wait for the writer
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()
