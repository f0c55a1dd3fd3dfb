"""The local Asterisk: provision (debootstrap from Debian unstable), start, stop, status.

Asterisk runs in a chroot kept in the cache dir, with ``asterisk-config/`` rendered into
it (secrets and ports filled in) at every start. It is stopped by its own PID only.
Synchronous by design: called from the CLI and test fixtures, never from the event loop.
A named node (``smartpbx cluster``) runs from the same root with its own etc, run, spool,
log and database directories (``asterisk-config/node/asterisk.conf``, ``-C``).
"""

from __future__ import annotations

import base64
import errno
import os
import pwd
import re
import shutil
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import NoReturn

from smartpbx_ari.config import Settings
from smartpbx_ari.credentials import Credentials, load_credentials
from smartpbx_ari.errors import UserFacingError
from smartpbx_ari.telephony.music import curate

# Music on hold: Debian's opsound tracks (CC-BY-SA 3.0) as WAV and G.722, so the queue
# and the hold never play silence.
MUSIC_PACKAGES = ("asterisk-moh-opsound-wav", "asterisk-moh-opsound-g722")
PACKAGES = ("asterisk", "asterisk-modules", "asterisk-core-sounds-en", *MUSIC_PACKAGES)
MUSIC_DIR = "usr/share/asterisk/moh"  # Debian's tracks: in the root, and on the host (dev.sh)
PLAYED_MUSIC_DIR = "var/lib/asterisk/moh"  # what the default class plays: quiet ends cut
SOUNDS_DIR = "usr/share/asterisk/sounds"  # asterisk-config/sounds/ lands in smartpbx/ here
MARKER = ".smartpbx-provisioned"
# Trees whose owner (the asterisk user inside) maps to another uid outside the chroot.
# (Debian's package makes no var/spool/asterisk/recording; ARI's bridge recordings need it.)
ROOT_OWNED = ("var/lib/asterisk", "var/run/asterisk", "var/log/asterisk",
              "var/spool/asterisk", "var/spool/asterisk/recording", "etc/asterisk")
PLACEHOLDER = re.compile(r"\{\{(\w+)\}\}")


class PbxError(UserFacingError):
    """A one-line, user-facing reason why the PBX could not be provisioned or started."""


@dataclass(frozen=True)
class PbxStatus:
    running: bool
    pid: int | None
    ari_ok: bool
    detail: str


def config_source() -> Path:
    """The admins' ``asterisk-config/`` (env override for installed copies)."""
    env = os.environ.get("SMARTPBX_ASTERISK_CONFIG")
    if env:
        return Path(env)
    return Path(__file__).resolve().parents[2] / "asterisk-config"


def template_values(settings: Settings, creds: Credentials) -> dict[str, str]:
    values = creds.as_template_values()
    pbx = settings.pbx
    values.update(
        host=pbx.host, sip_port=str(pbx.sip_port), http_port=str(pbx.http_port),
        ami_port=str(pbx.ami_port), rtp_start=str(pbx.rtp_start), rtp_end=str(pbx.rtp_end),
        ari_user=settings.ari.user, ari_app=settings.ari.app,
        agi_host=settings.agi.host, agi_port=str(settings.agi.port),
        record_calls="yes" if settings.store.record_calls else "no",
        identifier_order="username,ip",
    )
    return values


def render_config(src: Path, dest: Path, values: dict[str, str]) -> list[str]:
    """Copy every ``*.conf`` of ``src`` into ``dest`` with ``{{name}}`` filled in."""
    written: list[str] = []
    dest.mkdir(parents=True, exist_ok=True)
    for path in sorted(src.glob("*.conf")):
        target = dest / path.name
        target.write_text(fill_template(path.read_text("utf-8"), values, path.name), "utf-8")
        os.chmod(target, 0o640)
        written.append(path.name)
    return written


def fill_template(text: str, values: dict[str, str], name: str) -> str:
    """``{{name}}`` placeholders filled in; an unknown one is an error naming the file."""

    def fill(m: re.Match[str]) -> str:
        if m.group(1) not in values:
            raise PbxError(f"{name}: unknown placeholder {{{{{m.group(1)}}}}}")
        return values[m.group(1)]

    return PLACEHOLDER.sub(fill, text)


def install_sounds(src: Path, sounds: Path) -> list[str]:
    """Copy the admins' prompts (``asterisk-config/sounds/``) into the PBX's sounds: the
    top level's into ``smartpbx/``; a language's folder (``ko/``: its own ``smartpbx/``
    prompts, and Asterisk's queue prompts and digits in that language) as it is into
    ``<language>/``, where Asterisk looks first for a caller of that language."""
    if not src.is_dir():
        return []
    copied = []
    for path in sorted(p for p in src.rglob("*") if p.is_file()):
        relative = path.relative_to(src)
        if any(part.startswith(".") for part in relative.parts):
            continue
        target = sounds / (relative if len(relative.parts) > 1 else Path("smartpbx", path.name))
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, target)
        copied.append(relative.as_posix())
    return copied


def _tracks(folder: Path) -> list[Path]:
    return sorted(folder.glob("*.wav")) + sorted(folder.glob("*.g722")) if folder.is_dir() else []


class LocalPbx:
    def __init__(self, settings: Settings, creds: Credentials | None = None, node: str = "",
                 node_values: dict[str, str] | None = None) -> None:
        """``node``: a cluster node's name (its own directories in the shared root);
        ``node_values``: the placeholders of ``asterisk-config/node/`` (and overrides)."""
        self.settings = settings
        self.creds = creds or load_credentials(settings.data_dir)
        self.root = settings.asterisk_root
        self.node = node
        self.node_values = node_values or {}
        suffix = f"-{node}" if node else ""
        self.pidfile = settings.cache_dir / f"asterisk{suffix}.pid"
        self.logfile = settings.cache_dir / f"asterisk{suffix}.log"
        self.etc = f"etc/asterisk{suffix}"
        self.trees = tuple(t.replace("asterisk", "asterisk" + suffix, 1) for t in ROOT_OWNED)
        self.conf_args = ["-C", f"/{self.etc}/asterisk.conf"] if node else []

    # ---- provisioning -------------------------------------------------------------
    def provisioned(self) -> bool:
        return (self.root / MARKER).exists() and (self.root / "usr/sbin/asterisk").exists()

    def provision(self) -> None:
        if self.provisioned():
            return
        if os.geteuid() != 0:
            raise PbxError("pbx: provisioning Asterisk needs root (debootstrap and chroot)")
        if shutil.which("debootstrap") is None:
            raise PbxError("pbx: debootstrap is not installed (apt-get install debootstrap)")
        partial = self.root.with_name(self.root.name + ".partial")
        shutil.rmtree(partial, ignore_errors=True)
        partial.parent.mkdir(parents=True, exist_ok=True)
        cmd = ["debootstrap", "--variant=minbase", "--include=" + ",".join(PACKAGES),
               self.settings.pbx.suite, str(partial), self.settings.pbx.mirror]
        log = self.settings.cache_dir / "debootstrap.log"
        with log.open("wb") as out:
            rc = subprocess.run(cmd, stdout=out, stderr=subprocess.STDOUT, check=False).returncode
        if rc != 0:
            raise PbxError(f"pbx: debootstrap failed (exit {rc}); see {log}")
        for tree in ROOT_OWNED:
            _chown_tree(partial / tree)
        (partial / MARKER).write_text("ok\n")
        shutil.rmtree(self.root, ignore_errors=True)
        partial.rename(self.root)

    # ---- process ------------------------------------------------------------------
    def pid(self) -> int | None:
        """Our Asterisk's PID, only if that process is alive and is ours."""
        try:
            pid = int(self.pidfile.read_text().strip())
        except (FileNotFoundError, ValueError):
            return None
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
            root = os.readlink(f"/proc/{pid}/root")
        except OSError:
            return None
        if b"asterisk" not in cmdline or Path(root) != self.root.resolve():
            return None
        if self.node and self.conf_args[1].encode() not in cmdline.split(b"\0"):
            return None
        return pid

    def ari_ok(self, timeout: float = 1.0, path: str = "/asterisk/info") -> bool:
        pbx = self.settings.pbx
        url = f"http://{pbx.host}:{pbx.http_port}/ari{path}"
        token = f"{self.settings.ari.user}:{self.creds.ari_password}".encode()
        req = urllib.request.Request(
            url, headers={"Authorization": "Basic " + base64.b64encode(token).decode()})
        try:
            # B310 (urlopen allows file://): the scheme is ours, http:// above, never input
            with urllib.request.urlopen(req, timeout=timeout) as resp:  # nosec B310
                return bool(resp.status == 200)
        except (urllib.error.URLError, OSError):
            return False

    def status(self) -> PbxStatus:
        pid = self.pid()
        ok = pid is not None and self.ari_ok()
        if pid is None:
            detail = "stopped"
        else:
            detail = f"running (pid {pid}), ARI {'answers' if ok else 'does not answer'}"
        return PbxStatus(pid is not None, pid, ok, detail)

    def values(self) -> dict[str, str]:
        return {**template_values(self.settings, self.creds), **self.node_values}

    def render(self) -> list[str]:
        values = self.values()
        install_sounds(config_source() / "sounds", self.root / SOUNDS_DIR)
        written = render_config(config_source(), self.root / self.etc, values)
        if self.node:
            written += render_config(config_source() / "node", self.root / self.etc, values)
        return written

    def ensure_music(self, host_music: Path = Path("/") / MUSIC_DIR) -> int:
        """Music on hold in the root, quiet ends cut (telephony/music.py). A root
        provisioned before the music was one of its packages gets the host's copy
        (``scripts/dev.sh`` installs it). Returns the tracks curated now (0: done before)."""
        debian = self.root / MUSIC_DIR
        if not _tracks(debian):
            tracks = _tracks(host_music)
            if not tracks:
                raise PbxError(f"pbx: no music on hold in {debian} nor in {host_music}: "
                               f"apt-get install {' '.join(MUSIC_PACKAGES)}")
            debian.mkdir(parents=True, exist_ok=True)
            for track in tracks:
                shutil.copy2(track, debian / track.name)
        return len(curate(debian, self.root / PLAYED_MUSIC_DIR))

    def up(self) -> PbxStatus:
        """Provision if needed, render config, start, wait for ARI. Idempotent."""
        if os.geteuid() != 0:
            raise PbxError("pbx: starting Asterisk in its chroot needs root")
        self.provision()
        self.ensure_music()
        if self.pid() is not None:
            self.render()
            self.cli("core reload")
            self._wait_ari()
            return self.status()
        self._prepare()
        pid = self._spawn()
        self.pidfile.write_text(f"{pid}\n")
        try:
            self._wait_ari(pid)
        except PbxError:
            self.down()
            raise
        return self.status()

    def run(self, user: str = "") -> NoReturn:
        """For a supervisor (systemd, a container): prepare as :meth:`up` does, then become
        Asterisk in the foreground, this PID (stopping the service stops Asterisk; it logs
        to stdout). ``user``: a host user Asterisk drops to once started (entered in the
        root's passwd with its host uid, its trees chowned to it), else it stays root."""
        if os.geteuid() != 0:
            raise PbxError("pbx: starting Asterisk in its chroot needs root")
        self.provision()
        self.ensure_music()
        if self.pid() is not None:
            raise PbxError(f"pbx: Asterisk already runs (pid {self.pid()}): smartpbx pbx down")
        owner = (0, 0)
        if user:
            try:
                entry = pwd.getpwnam(user)
            except KeyError:
                raise PbxError(f"pbx run --user: no user {user!r} on this host") from None
            owner = (entry.pw_uid, entry.pw_gid)
            enter_user(self.root, user, *owner)
        self._prepare(owner)
        self.pidfile.write_text(f"{os.getpid()}\n")
        as_user = ["-U", user, "-G", user] if user else ["-U", "root", "-G", "root"]
        os.execvp("chroot", ["chroot", str(self.root), "asterisk", *self.conf_args, "-f", "-n",
                             *as_user])

    def _prepare(self, owner: tuple[int, int] = (0, 0)) -> None:
        """Ports free, config rendered, Asterisk's trees made and owned by ``owner``:
        Asterisk's -U drops every capability (root's too), so it writes only what it owns,
        also after a run as another user."""
        self._check_ports()
        self.render()
        for tree in self.trees:
            (self.root / tree).mkdir(parents=True, exist_ok=True)
            _chown_tree(self.root / tree, *owner)
        _chown_tree(self.root / self.etc, *owner)
        self.settings.cache_dir.mkdir(parents=True, exist_ok=True)

    def _spawn(self) -> int:
        """Start Asterisk in its own session; it outlives us, so no Popen object is kept."""
        argv = ["chroot", str(self.root), "asterisk", *self.conf_args, "-f", "-n", "-U", "root",
                "-G", "root"]
        log = os.open(self.logfile, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o640)
        null = os.open(os.devnull, os.O_RDONLY)
        try:
            actions = [(os.POSIX_SPAWN_DUP2, null, 0), (os.POSIX_SPAWN_DUP2, log, 1),
                       (os.POSIX_SPAWN_DUP2, log, 2)]
            return os.posix_spawnp("chroot", argv, os.environ, file_actions=actions,
                                   setsid=True)
        finally:
            os.close(log)
            os.close(null)

    def _wait_ari(self, pid: int | None = None) -> None:
        deadline = time.monotonic() + self.settings.pbx.start_timeout_s
        while time.monotonic() < deadline:
            if self.ari_ok():
                return
            if pid is not None and _exited(pid):
                raise PbxError(f"pbx: Asterisk exited at start; last log: {self._log_tail()}")
            time.sleep(0.2)
        raise PbxError(f"pbx: ARI did not answer within {self.settings.pbx.start_timeout_s:.0f} s;"
                       f" see {self.logfile}")

    def _log_tail(self) -> str:
        try:
            lines = self.logfile.read_text("utf-8", "replace").strip().splitlines()
        except FileNotFoundError:
            return "(no log)"
        return " | ".join(lines[-3:])

    def _check_ports(self) -> None:
        pbx = self.settings.pbx
        checks = [(pbx.sip_port, socket.SOCK_DGRAM, "udp"),
                  (pbx.http_port, socket.SOCK_STREAM, "tcp"),
                  (pbx.ami_port, socket.SOCK_STREAM, "tcp")]
        for port, kind, proto in checks:
            if not _port_free(pbx.host, port, kind):
                who = _who_holds(port, proto)
                raise PbxError(f"pbx: port {port}/{proto} on {pbx.host} is taken"
                               + (f" by {who}" if who else ""))

    def down(self) -> bool:
        """Stop our Asterisk by its PID. Returns False when it was not running."""
        pid = self.pid()
        if pid is None:
            self.pidfile.unlink(missing_ok=True)
            return False
        self.cli("core stop now", check=False)
        if not _wait_exit(pid, 10.0):
            os.kill(pid, signal.SIGTERM)
            if not _wait_exit(pid, 5.0):
                os.kill(pid, signal.SIGKILL)
                _wait_exit(pid, 5.0)
        self.pidfile.unlink(missing_ok=True)
        return True

    def cli(self, command: str, check: bool = True) -> str:
        if self.pid() is None:
            if check:
                raise PbxError("pbx: Asterisk is not running (smartpbx pbx up)")
            return ""
        res = subprocess.run(["chroot", str(self.root), "asterisk", *self.conf_args, "-rx",
                              command],
                             capture_output=True, text=True, timeout=30, check=False)
        return res.stdout + res.stderr


def enter_user(root: Path, name: str, uid: int, gid: int) -> None:
    """``name`` in the root's passwd and group with its host uid and gid (Asterisk's -U
    and -G look names up inside the chroot; the root's own ``asterisk`` uid is some other
    host user's, e.g. postgres')."""
    for table, line in (("etc/passwd", f"{name}:x:{uid}:{gid}::/var/lib/asterisk:"
                                       "/usr/sbin/nologin"),
                        ("etc/group", f"{name}:x:{gid}:")):
        path = root / table
        kept = [row for row in path.read_text().splitlines()
                if not row.startswith(f"{name}:")]
        path.write_text("\n".join([*kept, line]) + "\n")


def _chown_tree(path: Path, uid: int = 0, gid: int = 0) -> None:
    if not path.exists():
        return
    for dirpath, dirnames, filenames in os.walk(path):
        for name in [dirpath, *(os.path.join(dirpath, n) for n in dirnames + filenames)]:
            os.lchown(name, uid, gid)


def _exited(pid: int) -> bool:
    try:
        return os.waitpid(pid, os.WNOHANG)[0] == pid
    except ChildProcessError:
        return not Path(f"/proc/{pid}").exists()


def _wait_exit(pid: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            waited, _ = os.waitpid(pid, os.WNOHANG)
            if waited == pid:
                return True
        except ChildProcessError:
            pass
        if not Path(f"/proc/{pid}").exists() or _is_zombie(pid):
            return True
        time.sleep(0.1)
    return False


def _is_zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] == "Z"
    except OSError:
        return True


def _port_free(host: str, port: int, kind: socket.SocketKind) -> bool:
    with socket.socket(socket.AF_INET, kind) as sock:
        if kind == socket.SOCK_STREAM:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as err:
            if err.errno in (errno.EADDRINUSE, errno.EACCES):
                return False
            raise
    return True


def _who_holds(port: int, proto: str) -> str | None:
    """Name the process bound to ``port`` (from /proc), when we can see it."""
    inodes: set[str] = set()
    for table in (f"/proc/net/{proto}", f"/proc/net/{proto}6"):
        try:
            rows = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for row in rows:
            cols = row.split()
            if len(cols) > 9 and int(cols[1].rsplit(":", 1)[1], 16) == port:
                inodes.add(cols[9])
    if not inodes:
        return None
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            for fd in (proc / "fd").iterdir():
                link = os.readlink(fd)
                if link.startswith("socket:[") and link[8:-1] in inodes:
                    name = (proc / "comm").read_text().strip()
                    return f"{name} (pid {proc.name})"
        except OSError:
            continue
    return None
