"""Packaged data: the demo knowledge base, intents, and the domain lexicon."""

from __future__ import annotations

from importlib import resources
from pathlib import Path


def packaged(name: str) -> Path:
    return Path(str(resources.files(__name__).joinpath(name)))


def read_text(path: str, default: str) -> str:
    """The file at ``path``, or the packaged ``default`` when ``path`` is empty."""
    return (Path(path) if path else packaged(default)).read_text("utf-8")
