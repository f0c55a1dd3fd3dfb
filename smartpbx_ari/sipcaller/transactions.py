"""Client transactions over UDP (RFC 3261 §17.1): retransmit until answered (Timers A/E,
B/F), and route each response to the transaction its branch and method name."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Iterator

from smartpbx_ari.sipcaller.errors import SipTimeoutError
from smartpbx_ari.sipcaller.sip import SIPMessage, SIPMethod, response_status
from smartpbx_ari.sipcaller.transport import Addr

T1 = 0.5  # RFC 3261 §17.1.1.1: RTT estimate; retransmissions double from here
T2 = 4.0  # cap on non-INVITE retransmission intervals


class ClientTransactions:
    """The open client transactions of one UA; ``send`` puts a request on the wire and
    ``destination`` names where it goes (for the timeout's message)."""

    def __init__(self, send: Callable[[SIPMessage], None], destination: Callable[[], Addr],
                 t1: float = T1) -> None:
        self._send = send
        self._destination = destination
        self.t1 = t1
        self._pending: dict[tuple[str, str], asyncio.Queue[SIPMessage]] = {}

    @contextlib.contextmanager
    def open(self, request: SIPMessage) -> Iterator[asyncio.Queue[SIPMessage]]:
        """The queue that receives ``request``'s responses while the block runs."""
        assert request.method is not None
        key = (request.branch or "", request.method.value)
        queue: asyncio.Queue[SIPMessage] = asyncio.Queue(maxsize=32)
        self._pending[key] = queue
        try:
            yield queue
        finally:
            self._pending.pop(key, None)

    def deliver(self, response: SIPMessage, method: str) -> bool:
        """Hand a response to its transaction; False when none is open for it."""
        queue = self._pending.get((response.branch or "", method))
        if queue is None:
            return False
        with contextlib.suppress(asyncio.QueueFull):
            queue.put_nowait(response)
        return True

    async def exchange(self, request: SIPMessage, queue: asyncio.Queue[SIPMessage], *,
                       final_only: bool) -> SIPMessage:
        """Send with UDP retransmissions (Timers A/E) until a response; Timer B/F = 64*T1."""
        loop = asyncio.get_running_loop()
        interval, deadline = self.t1, loop.time() + 64 * self.t1
        while (remaining := deadline - loop.time()) > 0:
            self._send(request)
            response = await next_response(queue, min(interval, remaining), final_only=final_only)
            if response is not None:
                return response
            interval = interval * 2 if request.method is SIPMethod.INVITE else min(interval * 2, T2)
        host, port = self._destination()
        raise SipTimeoutError(f"no response to {request.summary()} from {host}:{port}")


async def next_response(queue: asyncio.Queue[SIPMessage], timeout: float, *,
                        final_only: bool) -> SIPMessage | None:
    """The next (final, if asked) response within ``timeout`` seconds, else ``None``."""
    try:
        async with asyncio.timeout(timeout):
            while True:
                response = await queue.get()
                if not final_only or response_status(response) >= 200:
                    return response
    except TimeoutError:
        return None
