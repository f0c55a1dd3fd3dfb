"""TEST ONLY: fail points that make a model stage raise or hang, set by ``[faults]``.

``SMARTPBX_FAULTS__STT=hang`` (or ``search``, ``llm``; ``raise``) makes that stage's
blocking work fail inside its worker thread, as a broken model would, so a real
end-to-end test needs no patching of the running process. :func:`install` (at the voice
engine's load) arms them from the settings; off by default, and :func:`point` is then a
dictionary look-up. ``faults.times`` limits each stage to its first N calls.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass

from smartpbx_ari.config import FaultSettings

log = logging.getLogger(__name__)
STAGES = ("stt", "search", "llm")


class InjectedFault(RuntimeError):
    """What an armed ``raise`` fail point raises."""


@dataclass
class _Armed:
    mode: str
    left: int  # 0: every call fails


_armed: dict[str, _Armed] = {}
_hang_s = 60.0
_lock = threading.Lock()


def install(settings: FaultSettings) -> None:
    """Arm the fail points the settings name, and disarm the others."""
    global _hang_s
    with _lock:
        _armed.clear()
        _hang_s = settings.hang_s
        for stage in STAGES:
            mode = getattr(settings, stage)
            if mode:
                _armed[stage] = _Armed(mode, settings.times)
    if _armed:
        log.warning("TEST ONLY fault injection is on: %s (times=%d)",
                    ", ".join(f"{s}={a.mode}" for s, a in _armed.items()), settings.times)


def point(stage: str) -> None:
    """Blocking, in the stage's worker: fail as armed, else return at once."""
    with _lock:
        armed = _armed.get(stage)
        if armed is None:
            return
        if armed.left:
            armed.left -= 1
            if not armed.left:
                del _armed[stage]
        mode, hang_s = armed.mode, _hang_s
    if mode == "hang":
        time.sleep(hang_s)
        return
    raise InjectedFault(f"{stage}: injected fault (faults.{stage} = raise)")
