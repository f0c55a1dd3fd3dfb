"""asterisk-config/ rendering and the local PBX's pre-start checks (no Asterisk needed)."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest
import yaml

from smartpbx_ari.config import load_settings
from smartpbx_ari.credentials import load_credentials
from smartpbx_ari.telephony.pbx import (
    LocalPbx,
    PbxError,
    _who_holds,
    config_source,
    render_config,
    template_values,
)

pytestmark = pytest.mark.unit
REPO = Path(__file__).resolve().parents[2]


def _render(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    settings = load_settings(environ={"SMARTPBX_DATA_DIR": str(tmp_path / "data")})
    values = template_values(settings, load_credentials(settings.data_dir, environ={}))
    out = tmp_path / "etc"
    render_config(config_source(), out, values)
    return out, values


def test_every_placeholder_is_filled_and_secrets_land(tmp_path: Path) -> None:
    out, values = _render(tmp_path)
    text = {p.name: p.read_text() for p in out.glob("*.conf")}
    assert not [n for n, t in text.items() if "{{" in t]
    assert f"password = {values['ari_password']}" in text["ari.conf"]
    assert f"secret = {values['ami_secret']}" in text["manager.conf"]
    assert text["pjsip.conf"].count(values["operator_password"]) == 3


def test_source_config_holds_no_secret_and_binds_loopback(tmp_path: Path) -> None:
    out, values = _render(tmp_path)
    for path in config_source().glob("*.conf"):
        body = path.read_text()
        assert not any(v in body for k, v in values.items() if k.endswith(("password", "secret")))
    assert "bind = 127.0.0.1:5060" in (out / "pjsip.conf").read_text()
    assert "bindaddr = 127.0.0.1" in (out / "http.conf").read_text()
    assert "bindaddr = 127.0.0.1" in (out / "manager.conf").read_text()


def test_dialplan_routes(tmp_path: Path) -> None:
    out, _ = _render(tmp_path)
    ext = (out / "extensions.conf").read_text()
    assert "exten => 1000,1" in ext and "Stasis(${AI_APP},lang=${SMARTPBX_LANGUAGE})" in ext
    assert "AI_APP = smartpbx" in ext
    assert "AGI_URL = agi://127.0.0.1:4573/route" in ext
    # the AI path is the default set before AGI: it stands when the AGI server is down
    assert ext.index("Set(SMARTPBX_ROUTE=ai)") < ext.index("AGI(${AGI_URL})")
    assert "exten => 0,1,Goto(operators,s,1)" in ext
    assert "Queue(operators" in ext


def test_unknown_placeholder_is_an_error(tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    (src / "x.conf").write_text("a = {{nope}}\n")
    with pytest.raises(PbxError, match=r"x.conf: unknown placeholder \{\{nope\}\}"):
        render_config(src, tmp_path / "out", {})


def test_taken_port_is_named_with_its_process(tmp_path: Path) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        env = {"SMARTPBX_DATA_DIR": str(tmp_path), "SMARTPBX_CACHE_DIR": str(tmp_path),
               "SMARTPBX_PBX__HTTP_PORT": str(port), "SMARTPBX_PBX__SIP_PORT": "5999",
               "SMARTPBX_PBX__AMI_PORT": "5998"}
        pbx = LocalPbx(load_settings(environ=env))
        taken = rf"port {port}/tcp on 127.0.0.1 is taken by .+ \(pid {os.getpid()}\)"
        with pytest.raises(PbxError, match=taken):
            pbx._check_ports()
        assert _who_holds(port, "tcp") is not None


def test_status_of_a_never_started_pbx(tmp_path: Path) -> None:
    env = {"SMARTPBX_DATA_DIR": str(tmp_path), "SMARTPBX_CACHE_DIR": str(tmp_path)}
    status = LocalPbx(load_settings(environ=env)).status()
    assert not status.running and not status.ari_ok and status.detail == "stopped"


def test_docker_compose_matches_the_sandbox() -> None:
    compose = yaml.safe_load((REPO / "docker-compose.yml").read_text())
    services = compose["services"]
    assert {"asterisk", "controller", "postgres"} <= set(services)
    assert all(s.get("network_mode") == "host" for s in services.values())
    pg = services["postgres"]
    assert "listen_addresses=127.0.0.1" in pg["command"]
    assert "?" in pg["environment"]["POSTGRES_PASSWORD"]  # required, never a stock value
