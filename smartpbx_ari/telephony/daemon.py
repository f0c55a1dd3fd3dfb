"""A background process of ours: started in its own session with a PID file, found again
only while that PID still runs our command, and stopped by that PID alone (never by name)."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

EXEC_TIMEOUT_S = 5.0


@dataclass(frozen=True)
class Daemon:
    name: str  # for messages: "kamailio", "chroma", "controller node1"
    pidfile: Path
    logfile: Path
    marker: str  # an argument of its command line that proves the PID is still ours

    def pid(self) -> int | None:
        try:
            pid = int(self.pidfile.read_text().strip())
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except (OSError, ValueError):
            return None
        if self.marker.encode() not in cmdline.split(b"\0") or _is_zombie(pid):
            return None
        return pid

    def start(self, argv: Sequence[str], env: Mapping[str, str] | None = None) -> int:
        """Spawn ``argv`` (stdin from /dev/null, output appended to the log file) in a
        session of its own so it outlives us; record its PID."""
        if self.marker not in argv:
            raise ValueError(f"{self.name}: the marker {self.marker!r} is not in its argv")
        self.pidfile.parent.mkdir(parents=True, exist_ok=True)
        log = os.open(self.logfile, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o640)
        null = os.open(os.devnull, os.O_RDONLY)
        try:
            actions = [(os.POSIX_SPAWN_DUP2, null, 0), (os.POSIX_SPAWN_DUP2, log, 1),
                       (os.POSIX_SPAWN_DUP2, log, 2)]
            pid = os.posix_spawnp(argv[0], list(argv), dict(env or os.environ),
                                  file_actions=actions, setsid=True)
        finally:
            os.close(log)
            os.close(null)
        self.pidfile.write_text(f"{pid}\n")
        deadline = time.monotonic() + EXEC_TIMEOUT_S  # until it runs our command (exec'd)
        while self.pid() != pid and not self.exited(pid) and time.monotonic() < deadline:
            time.sleep(0.01)
        return pid

    def exited(self, pid: int) -> bool:
        """Reaps our child if it has exited; True when ``pid`` no longer runs."""
        try:
            if os.waitpid(pid, os.WNOHANG)[0] == pid:
                return True
        except ChildProcessError:
            pass
        return not Path(f"/proc/{pid}").exists() or _is_zombie(pid)

    def stop(self, timeout: float = 10.0) -> bool:
        """SIGTERM, then SIGKILL after ``timeout``. False when it was not running."""
        pid = self.pid()
        if pid is None:
            self.pidfile.unlink(missing_ok=True)
            return False
        for sig, wait in ((signal.SIGTERM, timeout), (signal.SIGKILL, 5.0)):
            os.kill(pid, sig)
            deadline = time.monotonic() + wait
            while time.monotonic() < deadline and not self.exited(pid):
                time.sleep(0.1)
            if self.exited(pid):
                break
        self.pidfile.unlink(missing_ok=True)
        return True

    def log_tail(self, lines: int = 3) -> str:
        try:
            text = self.logfile.read_text("utf-8", "replace").strip().splitlines()
        except FileNotFoundError:
            return "(no log)"
        return " | ".join(text[-lines:])


def _is_zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] == "Z"
    except OSError:
        return True
