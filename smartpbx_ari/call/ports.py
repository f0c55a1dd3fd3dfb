"""The call's ports to the PBX: what a conversation needs of its call, and what runs one.

The Stasis app gives each call's conversation a :class:`CallPort`; the conversation never
sees ARI, channels or sockets, so it is unit tested with a port of plain lists.
"""

from __future__ import annotations

import asyncio
from typing import Protocol

import numpy as np
import numpy.typing as npt

from smartpbx_ari.events import CallEvent

Pcm = npt.NDArray[np.int16]


class Leg(Protocol):
    """One party's voice alone while an operator is on the call (``speaker``: caller or
    operator), for the record."""

    @property
    def speaker(self) -> str: ...

    async def recv(self) -> Pcm: ...


class CallPort(Protocol):
    @property
    def call_id(self) -> str: ...

    @property
    def codec(self) -> str:
        """The call's media codec name (g722, ulaw, alaw)."""
        ...

    @property
    def language(self) -> str:
        """The call's language tag from routing ("" = the default)."""
        ...

    @property
    def operator(self) -> asyncio.Event:
        """Set while an operator's phone is in the call: listen (for the record) only."""
        ...

    @property
    def digits(self) -> asyncio.Queue[str]:
        """DTMF keys the caller pressed (1-9; 0 is a hand-over the PBX side handles)."""
        ...

    @property
    def legs(self) -> asyncio.Queue[Leg]:
        """Each party's voice alone, as it becomes available during a takeover (none: the
        record has only the mix, speaker ``call``)."""
        ...

    async def recv(self) -> Pcm:
        """The caller's next 20 ms of audio, decoded, at the codec's rate."""
        ...

    def send(self, packet: bytes) -> None:
        """One RTP datagram of our audio to the caller."""
        ...

    def publish(self, event: CallEvent) -> None: ...

    def hand_off(self, reason: str) -> None:
        """Leave the AI: the dialplan sends the caller on (the operators' queue)."""
        ...


class Conversation(Protocol):
    async def run(self, port: CallPort) -> None: ...
