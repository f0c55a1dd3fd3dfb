"""Secrets: generated once into a private file, overridable from the environment."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from smartpbx_ari.credentials import SECRET_NAMES, load_credentials, private_dir

pytestmark = pytest.mark.unit


def test_generated_once_private_and_stable(tmp_path: Path) -> None:
    first = load_credentials(tmp_path, environ={})
    path = tmp_path / "secrets.toml"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    second = load_credentials(tmp_path, environ={})
    assert first.as_template_values() == second.as_template_values()
    values = first.as_template_values()
    assert set(values) == set(SECRET_NAMES)
    assert len(set(values.values())) == len(SECRET_NAMES)  # no shared or stock password
    assert all(len(v) >= 24 for v in values.values())


def test_environment_wins(tmp_path: Path) -> None:
    creds = load_credentials(tmp_path, environ={"SMARTPBX_SECRET_ARI_PASSWORD": "from-env"})
    assert creds.ari_password == "from-env"
    assert "from-env" not in (tmp_path / "secrets.toml").read_text()


def test_missing_names_are_added_without_touching_others(tmp_path: Path) -> None:
    (tmp_path / "secrets.toml").write_text('ari_password = "kept"\n')
    creds = load_credentials(tmp_path, environ={})
    assert creds.ari_password == "kept"
    assert creds.jwt_secret


def test_repr_never_shows_a_secret(tmp_path: Path) -> None:
    creds = load_credentials(tmp_path, environ={})
    assert creds.ari_password not in repr(creds)



def test_the_data_dir_is_its_owners_only(tmp_path: Path) -> None:
    load_credentials(tmp_path / "fresh" / "dir")
    assert stat.S_IMODE((tmp_path / "fresh" / "dir").stat().st_mode) == 0o700
    older = tmp_path / "older"  # the data dir of an older install
    older.mkdir()
    older.chmod(0o755)
    assert private_dir(older) == older and stat.S_IMODE(older.stat().st_mode) == 0o700
