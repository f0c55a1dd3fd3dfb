"""How a SIP call fails: a final status, or nothing answering in time (408)."""

from __future__ import annotations

from smartpbx_ari.errors import UserFacingError


class SipError(UserFacingError):
    """The call failed with a final SIP status (or a local equivalent such as 408)."""

    code = "sip-error"

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(f"SIP {status} {reason}")
        self.status = status
        self.reason = reason


class SipTimeoutError(SipError, TimeoutError):
    """Nothing answered in time (RFC 3261 Timer B/F, or the answer timeout): status 408."""

    code = "sip-timeout"

    def __init__(self, reason: str) -> None:
        super().__init__(408, reason)
