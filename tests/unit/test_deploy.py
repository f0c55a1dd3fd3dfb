"""The deployment files: the systemd units pass `systemd-analyze verify`, restart always,
are hardened and hold no secret; docker-compose restarts every long-running service; and
`pbx run --user` names the host user inside the Asterisk root."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from smartpbx_ari.telephony.pbx import enter_user

pytestmark = pytest.mark.unit
REPO = Path(__file__).resolve().parents[2]
UNITS = REPO / "deploy" / "systemd"
INSTALLED = "/opt/smartpbx/bin/smartpbx"  # where the units expect the console script
ONE_SHOTS = {"asterisk-config", "cluster-config"}  # renderers the others wait for


def unit(name: str) -> dict[str, list[str]]:
    """``Key`` -> its values, in order, over all sections (systemd repeats keys)."""
    keys: dict[str, list[str]] = {}
    for line in (UNITS / name).read_text().splitlines():
        if "=" in line and not line.lstrip().startswith(("#", ";", "[")):
            key, value = line.split("=", 1)
            keys.setdefault(key.strip(), []).append(value.strip())
    return keys


def verify(tmp_path: Path, *names: str, text: dict[str, str] | None = None
           ) -> subprocess.CompletedProcess[str]:
    """`systemd-analyze verify` on copies whose ExecStart is this venv's smartpbx (it
    checks that the command exists); works offline, without a running systemd."""
    tool = shutil.which("systemd-analyze")
    assert tool, "systemd-analyze is missing: apt-get install systemd"
    exe = str(Path(sys.executable).with_name("smartpbx"))
    paths = []
    for name in names:
        body = (text or {}).get(name) or (UNITS / name).read_text()
        path = tmp_path / name
        path.write_text(body.replace(INSTALLED, exe))
        paths.append(str(path))
    return subprocess.run([tool, "verify", *paths], capture_output=True, text=True,
                          check=False, timeout=60, cwd=tmp_path)


def test_the_units_pass_systemd_analyze_verify(tmp_path: Path) -> None:
    done = verify(tmp_path, "smartpbx-pbx.service", "smartpbx.service")
    assert (done.returncode, done.stdout + done.stderr) == (0, "")


def test_verify_does_find_a_broken_unit(tmp_path: Path) -> None:
    """The check can fail: a misspelt key and a command that is not there."""
    broken = (UNITS / "smartpbx.service").read_text().replace(
        "NoNewPrivileges=yes", "NoNewPrivilege=yes").replace(INSTALLED, "/nonexistent/smartpbx")
    done = verify(tmp_path, "smartpbx.service", text={"smartpbx.service": broken})
    assert "Unknown key 'NoNewPrivilege'" in done.stderr
    assert done.returncode != 0 and "/nonexistent/smartpbx" in done.stderr


@pytest.mark.parametrize("name", ["smartpbx-pbx.service", "smartpbx.service"])
def test_a_unit_restarts_always_and_is_hardened(name: str) -> None:
    keys = unit(name)
    assert keys["Restart"] == ["always"]
    assert keys["RestartSec"] == ["1"]  # bench_recovery.py's --restart-after
    assert keys["StartLimitIntervalSec"] == ["0"]  # never gives up
    for key, value in (("NoNewPrivileges", "yes"), ("ProtectSystem", "strict"),
                       ("ProtectHome", "yes"), ("PrivateTmp", "yes"),
                       ("PrivateDevices", "yes"), ("RestrictSUIDSGID", "yes")):
        assert keys[key] == [value], key
    assert keys["EnvironmentFile"] == ["-/etc/smartpbx/smartpbx.env"]
    inline = " ".join(keys.get("Environment", []))
    assert "SECRET" not in inline and "PASSWORD" not in inline.upper()
    assert "postgresql" not in inline


def test_the_controller_runs_as_smartpbx_with_no_capabilities() -> None:
    keys = unit("smartpbx.service")
    assert keys["ExecStart"] == [f"{INSTALLED} serve"]
    assert (keys["User"], keys["Group"]) == (["smartpbx"], ["smartpbx"])
    assert keys["CapabilityBoundingSet"] == [""]
    assert keys["StateDirectory"] == ["smartpbx"] and keys["CacheDirectory"] == ["smartpbx"]
    assert "smartpbx-pbx.service" in keys["After"][0]


def test_the_pbx_unit_drops_asterisk_to_smartpbx() -> None:
    """It starts as root (render, chroot, chown), with only the capabilities for that;
    its cache dir (the Asterisk root) is apart from the controller's, which systemd
    would chown to smartpbx."""
    keys = unit("smartpbx-pbx.service")
    assert keys["ExecStart"] == [f"{INSTALLED} pbx run --user smartpbx"]
    assert "User" not in keys
    assert set(keys["CapabilityBoundingSet"][0].split()) == {
        "CAP_SYS_CHROOT", "CAP_CHOWN", "CAP_FOWNER", "CAP_DAC_OVERRIDE", "CAP_SETUID",
        "CAP_SETGID"}
    cache = [e for e in keys["Environment"] if e.startswith("SMARTPBX_CACHE_DIR=")]
    assert cache == ["SMARTPBX_CACHE_DIR=/var/cache/smartpbx-pbx"]
    assert keys["CacheDirectory"] == ["smartpbx-pbx"]


def test_docker_compose_restarts_every_long_running_service() -> None:
    services = yaml.safe_load((REPO / "docker-compose.yml").read_text())["services"]
    policies = {name: service.get("restart") for name, service in services.items()}
    assert {n for n, p in policies.items() if p == "no"} == ONE_SHOTS
    assert {p for n, p in policies.items() if n not in ONE_SHOTS} == {"unless-stopped"}


def test_enter_user_names_the_host_uid_inside_the_root(tmp_path: Path) -> None:
    etc = tmp_path / "etc"
    etc.mkdir()
    (etc / "passwd").write_text("root:x:0:0:root:/root:/bin/bash\n"
                                "smartpbx:x:5:5::/old:/bin/sh\n"
                                "asterisk:x:101:101:Asterisk PBX daemon:/var/lib/asterisk:"
                                "/usr/sbin/nologin\n")
    (etc / "group").write_text("root:x:0:\nasterisk:x:101:\n")
    enter_user(tmp_path, "smartpbx", 998, 997)
    enter_user(tmp_path, "smartpbx", 998, 997)  # idempotent
    passwd = (etc / "passwd").read_text().splitlines()
    assert passwd == ["root:x:0:0:root:/root:/bin/bash",
                      "asterisk:x:101:101:Asterisk PBX daemon:/var/lib/asterisk:"
                      "/usr/sbin/nologin",
                      "smartpbx:x:998:997::/var/lib/asterisk:/usr/sbin/nologin"]
    assert (etc / "group").read_text().splitlines() == [
        "root:x:0:", "asterisk:x:101:", "smartpbx:x:997:"]
