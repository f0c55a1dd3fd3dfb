"""asterisk-config/ rendering and the local PBX's pre-start checks (no Asterisk needed)."""

from __future__ import annotations

import os
import re
import socket
import wave
from pathlib import Path

import numpy as np
import pytest
import yaml

from smartpbx_ari.config import load_settings
from smartpbx_ari.credentials import load_credentials
from smartpbx_ari.media.codecs import encoder
from smartpbx_ari.telephony.pbx import (
    MUSIC_DIR,
    MUSIC_PACKAGES,
    PACKAGES,
    PLAYED_MUSIC_DIR,
    LocalPbx,
    PbxError,
    _who_holds,
    config_source,
    install_sounds,
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


def test_the_queue_plays_music_and_news_and_offers_a_callback(tmp_path: Path) -> None:
    out, _ = _render(tmp_path)
    moh = (out / "musiconhold.conf").read_text()
    assert re.search(r"^\[default\]\nmode = files\ndirectory = /var/lib/asterisk/moh$", moh,
                     re.M)
    queue = (out / "queues.conf").read_text().split("[operators]")[1]
    for line in ("musicclass = default", "announce-position = yes", "announce-holdtime = once",
                 "periodic-announce = smartpbx/callback-offer", "context = queue-exit"):
        assert f"\n{line}\n" in queue
    ext = (out / "extensions.conf").read_text()
    assert "AGI_CALLBACK = agi://127.0.0.1:4573/callback" in ext
    exit_ctx = ext.split("[queue-exit]")[1]
    assert exit_ctx.index("exten => 1,1,") < exit_ctx.index("Read(CALLBACK_NUMBER,")
    assert "AGI(${AGI_CALLBACK},${CALLBACK_NUMBER})" in exit_ctx
    assert "Goto(operators,s,queue)" in exit_ctx  # a refused number: back into the queue
    assert "load = app_read.so" in (out / "modules.conf").read_text()


def test_every_own_prompt_the_config_names_is_shipped_as_16_khz_wav() -> None:
    names = set()
    for path in config_source().glob("*.conf"):
        names |= set(re.findall(r"smartpbx/([\w-]+)", path.read_text()))
    shipped = {p.stem for p in (config_source() / "sounds").glob("*.wav16")}
    assert names and names <= shipped
    for name in names:
        with wave.open(str(config_source() / "sounds" / f"{name}.wav16")) as w:
            assert (w.getframerate(), w.getnchannels(), w.getsampwidth()) == (16000, 1, 2)
            assert 1.0 < w.getnframes() / 16000 < 10.0


def test_music_on_hold_is_in_every_install_path() -> None:
    assert set(MUSIC_PACKAGES) <= set(PACKAGES)  # a fresh root gets them from Debian
    for path in ("scripts/dev.sh", "docker/asterisk.Dockerfile"):
        assert all(pkg in (REPO / path).read_text() for pkg in MUSIC_PACKAGES), path
    assert "asterisk-config/sounds/" in (REPO / "docker/asterisk.Dockerfile").read_text()


def test_a_root_without_music_gets_the_hosts_or_says_what_to_install(tmp_path: Path) -> None:
    env = {"SMARTPBX_DATA_DIR": str(tmp_path), "SMARTPBX_CACHE_DIR": str(tmp_path)}
    pbx = LocalPbx(load_settings(environ=env))
    host = tmp_path / "host-moh"
    with pytest.raises(PbxError, match="apt-get install asterisk-moh-opsound-wav"):
        pbx.ensure_music(host)
    host.mkdir()
    tone = (np.sin(np.arange(8000) * 0.3) * 3000).astype(np.int16)
    _write_wav(host / "tune.wav", np.concatenate([np.zeros(16000, np.int16), tone]), 8000)
    (host / "tune.g722").write_bytes(encoder("g722")(np.repeat(tone, 2)))
    (host / "README").write_text("not music")
    assert pbx.ensure_music(host) == 2
    assert sorted(p.name for p in (pbx.root / MUSIC_DIR).iterdir()) == ["tune.g722", "tune.wav"]
    with wave.open(str(pbx.root / PLAYED_MUSIC_DIR / "tune.wav")) as w:
        assert w.getnframes() == 8000 + 1600  # the 2 s of silence cut, 0.2 s kept
    assert pbx.ensure_music(tmp_path / "gone") == 0  # the root has music now: nothing to do


def _write_wav(path: Path, pcm: np.ndarray, rate: int) -> None:
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(pcm.astype("<i2").tobytes())


def test_prompts_are_copied_in_by_language_and_a_missing_folder_is_no_error(
        tmp_path: Path) -> None:
    src = tmp_path / "sounds"
    (src / "ko/smartpbx").mkdir(parents=True)
    (src / "ko/digits").mkdir()
    (src / "hello.wav16").write_bytes(b"RIFF")
    (src / "ko/smartpbx/hello.wav16").write_bytes(b"RIFF-ko")
    (src / "ko/digits/7.wav16").write_bytes(b"RIFF-7")
    (src / ".hidden").write_bytes(b"x")
    assert install_sounds(src, tmp_path / "out") == ["hello.wav16", "ko/digits/7.wav16",
                                                     "ko/smartpbx/hello.wav16"]
    assert (tmp_path / "out/smartpbx/hello.wav16").read_bytes() == b"RIFF"
    assert (tmp_path / "out/ko/smartpbx/hello.wav16").read_bytes() == b"RIFF-ko"
    assert (tmp_path / "out/ko/digits/7.wav16").read_bytes() == b"RIFF-7"
    assert install_sounds(tmp_path / "none", tmp_path / "out2") == []


def test_korean_callers_have_every_prompt_the_dialplan_and_the_queue_speak() -> None:
    """Each sound named in the shipped dialplan and queues.conf, and each the queue speaks
    by itself (position, expected wait, in numbers up to 99), exists in Korean too; else
    Asterisk falls back to English for a Korean caller."""
    config = config_source()
    named = set(re.findall(r"smartpbx/[a-z-]+",
                           (config / "extensions.conf").read_text("utf-8")
                           + (config / "queues.conf").read_text("utf-8")))
    spoken = {"queue-thereare", "queue-callswaiting", "queue-youarenext", "queue-holdtime",
              "queue-minute", "queue-minutes", "queue-seconds", "queue-thankyou"}
    numbers = {f"digits/{n}" for n in (*range(20), *range(20, 100, 10))}
    korean = {p.relative_to(config / "sounds/ko").with_suffix("").as_posix()
              for p in (config / "sounds/ko").rglob("*.wav16")}
    assert named and named | spoken | numbers <= korean, (named | spoken | numbers) - korean
    english = {f"smartpbx/{p.stem}" for p in (config / "sounds").glob("*.wav16")}
    assert named <= english
