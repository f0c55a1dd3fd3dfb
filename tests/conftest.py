"""Session fixtures shared by every layer: the real Asterisk, the settings, tmp audio; the
seed's small fixtures (a call id, access tokens, a G.711 frame, an RTP packet); and the
full run's coverage gates (tests/coverage_gate.py).

hypothesis' pytest plugin imports some of its modules lazily (at report time, at session
end); on CPython 3.11.7 compiling them then (assertion rewriting) can die with "AST
constructor recursion depth mismatch" (a CPython bug fixed in 3.11.8). Importing them
here, at collection, avoids that.
"""

from __future__ import annotations

import os
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import hypothesis.errors
import hypothesis.internal.conjecture.providers
import hypothesis.internal.escalation
import hypothesis.internal.healthcheck
import hypothesis.internal.observability
import hypothesis.reporting
import hypothesis.statistics  # noqa: F401
import jwt
import pytest

from smartpbx_ari.ai.knowledge_io import import_file
from smartpbx_ari.ai.rag import RAGEngine
from smartpbx_ari.cli.kb import demo_path
from smartpbx_ari.config import Settings, load_settings
from smartpbx_ari.credentials import Credentials, load_credentials
from smartpbx_ari.store import migrate
from smartpbx_ari.store.db import Database
from smartpbx_ari.telephony.pbx import LocalPbx
from smartpbx_ari.web.auth import ALGORITHM, Tokens
from tests.coverage_gate import (  # noqa: F401  (pytest hooks)
    pytest_configure,
    pytest_sessionfinish,
    pytest_terminal_summary,
)
from tests.fixtures.postgres import LocalPostgres, pg_bin

IN_CI = os.environ.get("CI", "").lower() == "true"


@pytest.fixture(scope="session")
def settings() -> Settings:
    return load_settings()


@pytest.fixture(scope="session")
def credentials(settings: Settings) -> Credentials:
    return load_credentials(settings.data_dir)


@pytest.fixture(scope="session")
def pbx(settings: Settings, credentials: Credentials) -> Iterator[LocalPbx]:
    """The real Asterisk, brought up once per run; stopped by its PID if we started it.

    There is no skip: a test that needs Asterisk fails when it cannot be had.
    """
    local = LocalPbx(settings, credentials)
    started_here = local.pid() is None
    local.up()
    yield local
    if started_here:
        local.down()


@pytest.fixture(scope="session")
def postgres() -> Iterator[LocalPostgres]:
    """A private PostgreSQL cluster (Debian's package) on 127.0.0.1, removed at the end.

    There is no skip: without PostgreSQL installed the tests that need it fail.
    """
    bindir = pg_bin()
    assert bindir is not None, "PostgreSQL is not installed: apt-get install postgresql"
    server = LocalPostgres(bindir)
    server.start()
    yield server
    server.remove()


@pytest.fixture(params=["sqlite", "postgresql"])
def db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Database]:
    """A migrated, empty database: a SQLite file, then a fresh PostgreSQL database."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'test.db'}"
    else:
        server: LocalPostgres = request.getfixturevalue("postgres")
        url = server.create_database(f"test_{os.urandom(6).hex()}")
    database = Database(url)
    migrate.upgrade(database)
    yield database
    database.engine.dispose()


@pytest.fixture
async def ari(pbx: LocalPbx, settings: Settings, credentials: Credentials) -> AsyncIterator:
    from smartpbx_ari.telephony.ari import AriClient

    async with AriClient(settings.ari_url, settings.ari.user, credentials.ari_password,
                         settings.ari.app) as client:
        yield client


@pytest.fixture
def audio_dir(tmp_path: Path) -> Path:
    path = tmp_path / "audio"
    path.mkdir()
    return path


@pytest.fixture(scope="session")
def kb_settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    """Settings whose data dir (knowledge base only) is a fresh tmp dir."""
    return load_settings(environ={"SMARTPBX_DATA_DIR": str(tmp_path_factory.mktemp("kb"))})


@pytest.fixture(scope="session")
def engine(kb_settings: Settings) -> RAGEngine:
    """The demo knowledge base: real embedding model, real Chroma, SQLite."""
    engine = RAGEngine.open(kb_settings)
    report = import_file(engine, demo_path())
    assert (report.added, report.skipped) == (20, [])
    return engine


# ---- the seed's fixtures (backend-testing-strategy.md, "Fixtures") ----------------------
TEST_JWT_SECRET = "test-secret-key-" + "x" * 32  # the seed's name, long enough for Tokens


@pytest.fixture
def sample_call_id() -> str:
    return "abc123-def456-ghi789"


@pytest.fixture
def tokens() -> Tokens:
    """The product's token issuer and checker, keyed with the tokens' test secret."""
    return Tokens(TEST_JWT_SECRET, ttl_s=3600)


@pytest.fixture
def auth_token(tokens: Tokens) -> str:
    """A valid operator's access token (for ``tokens``)."""
    return tokens.issue("user123", "operator")


@pytest.fixture
def viewer_token(tokens: Tokens) -> str:
    """A valid token of the viewer role (reads only)."""
    return tokens.issue("viewer123", "viewer")


@pytest.fixture
def expired_token() -> str:
    """Well signed, with every claim, expired an hour ago."""
    now = int(time.time())
    claims = {"sub": "user123", "role": "operator", "iat": now - 7200, "exp": now - 3600}
    return jwt.encode(claims, TEST_JWT_SECRET, algorithm=ALGORITHM)


@pytest.fixture
def sample_audio_data() -> bytes:
    """20 ms of G.711 mu-law silence at 8 kHz (160 bytes)."""
    return b"\xff" * 160


@pytest.fixture
def sample_rtp_packet(sample_audio_data: bytes) -> bytes:
    """RTP v2, PCMU, sequence 0x1234, timestamp 1, SSRC 0xAABBCCDD, then the audio."""
    header = bytes([0x80, 0x00, 0x12, 0x34, 0x00, 0x00, 0x00, 0x01,
                    0xAA, 0xBB, 0xCC, 0xDD])
    return header + sample_audio_data
