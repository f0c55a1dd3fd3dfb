"""What the rest of the product may ask of live calls, and what it is told about operators.

``Telephony`` is the web layer's port to the calls (the Stasis app fills it); its failures
are ``TelephonyError``\\ s carrying an HTTP-like status, so callers need no PBX module.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from smartpbx_ari.errors import UserFacingError


class TelephonyError(UserFacingError):
    """The PBX refused or failed an action on a call: ``status`` says how (HTTP-like)."""

    code = "telephony-error"

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class CallNotFound(TelephonyError):
    """No live call with that id is with the AI here."""

    code = "call-not-found"

    def __init__(self, call_id: str) -> None:
        super().__init__(404, f"call_id: no call {call_id!r} with the AI")


class Telephony(Protocol):
    def has_call(self, call_id: str) -> bool: ...

    async def take_over(self, call_id: str, endpoint: str) -> None: ...

    async def listen(self, call_id: str, endpoint: str) -> None: ...

    def listener(self, call_id: str) -> str:
        """The endpoint listening in on the call, or ""."""
        ...

    async def hand_back(self, call_id: str) -> None: ...

    async def hang_up(self, call_id: str) -> None: ...


@dataclass(frozen=True)
class Presence:
    """An operator endpoint's reachability, as the PBX reports it."""

    endpoint: str
    state: str  # available | busy | unavailable | unknown
    detail: str  # Asterisk's device state
