"""An operator's SIP phone (our own UA, the receiving side): registers an extension,
answers qualify OPTIONS, auto-answers the PBX's INVITE with its RTP, plays and records
audio, hangs up. The tests' stand-in for the softphone an operator takes a call on.

    async with SipPhone.register(("127.0.0.1", 5060), "2001", password) as phone:
        call = await phone.incoming(timeout=20)
        await call.rtp.play(pcm)
        await call.hangup()
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from smartpbx_ari.media.codecs import codec_for_payload_type
from smartpbx_ari.sipcaller.errors import SipError
from smartpbx_ari.sipcaller.rtp_stream import RtpStream
from smartpbx_ari.sipcaller.sdp import build_offer, parse_answer
from smartpbx_ari.sipcaller.sip import (
    SIPHeaders,
    SIPMessage,
    SIPMethod,
    authorization_for,
    name_addr_uri,
    new_branch,
    new_tag,
)
from smartpbx_ari.sipcaller.transport import Addr, SipEndpoint

log = logging.getLogger(__name__)
USER_AGENT = "SmartPBX-phone"
RETRIES = 4
WAIT_S = 1.0


@dataclass
class IncomingCall:
    """An answered call on the phone."""

    invite: SIPMessage
    rtp: RtpStream
    local_tag: str
    ended: asyncio.Event = field(default_factory=asyncio.Event)
    cseq: int = 1


class SipPhone:
    def __init__(self, endpoint: SipEndpoint, server: Addr, user: str, password: str) -> None:
        self.endpoint, self.server, self.user, self.password = endpoint, server, user, password
        host, port = endpoint.local_addr
        self.contact = f"sip:{user}@{host}:{port}"
        self.call_id = f"{secrets.token_hex(8)}@{host}"
        self.tag = new_tag()
        self.cseq = 0
        self.calls: asyncio.Queue[IncomingCall] = asyncio.Queue()
        self.current: IncomingCall | None = None
        self._responses: asyncio.Queue[SIPMessage] = asyncio.Queue()
        self._tasks: set[asyncio.Task[None]] = set()

    @classmethod
    @contextlib.asynccontextmanager
    async def register(cls, server: Addr, user: str, password: str,
                       local_ip: str = "127.0.0.1", expires: int = 300
                       ) -> AsyncIterator[SipPhone]:
        endpoint = await SipEndpoint.open(local_ip)
        phone = cls(endpoint, server, user, password)
        endpoint.handler = phone._on_message
        try:
            await phone._register(expires)
            yield phone
        finally:
            with contextlib.suppress(SipError):
                if phone.current is not None and not phone.current.ended.is_set():
                    await phone.hangup()
                await phone._register(0)
            if phone.current is not None:
                await phone.current.rtp.close()
            await endpoint.close()

    async def incoming(self, timeout: float) -> IncomingCall:
        """The next call, already answered."""
        return await asyncio.wait_for(self.calls.get(), timeout)

    async def hangup(self) -> None:
        call = self.current
        if call is None or call.ended.is_set():
            return
        call.cseq += 1
        invite = call.invite
        bye = SIPMessage(method=SIPMethod.BYE,
                         uri=name_addr_uri(invite.headers.get("Contact", "")) or invite.uri)
        host, port = self.endpoint.local_addr
        bye.headers = SIPHeaders([
            ("Via", f"SIP/2.0/UDP {host}:{port};rport;branch={new_branch()}"),
            ("Max-Forwards", "70"),
            ("From", f"{invite.headers['To']};tag={call.local_tag}"),
            ("To", invite.headers["From"]), ("Call-ID", invite.call_id),
            ("CSeq", f"{call.cseq} BYE"), ("User-Agent", USER_AGENT)])
        await self._exchange(bye)
        call.ended.set()

    # ---- registration -------------------------------------------------------------
    async def _register(self, expires: int) -> None:
        request = self._register_request(expires)
        response = await self._exchange(request)
        if response.status_code in (401, 407):
            retry = self._register_request(expires)
            retry.headers.add(*authorization_for(
                response, method="REGISTER", uri=retry.uri or "", username=self.user,
                password=self.password, cnonce=secrets.token_hex(8)))
            response = await self._exchange(retry)
        if (response.status_code or 0) >= 300:
            raise SipError(response.status_code or 0, response.reason_phrase or "")

    def _register_request(self, expires: int) -> SIPMessage:
        self.cseq += 1
        host, port = self.endpoint.local_addr
        aor = f"sip:{self.user}@{self.server[0]}"
        msg = SIPMessage(method=SIPMethod.REGISTER, uri=f"sip:{self.server[0]}:{self.server[1]}")
        msg.headers = SIPHeaders([
            ("Via", f"SIP/2.0/UDP {host}:{port};rport;branch={new_branch()}"),
            ("Max-Forwards", "70"), ("From", f"<{aor}>;tag={self.tag}"), ("To", f"<{aor}>"),
            ("Call-ID", self.call_id), ("CSeq", f"{self.cseq} REGISTER"),
            ("Contact", f"<{self.contact}>"), ("Expires", str(expires)),
            ("User-Agent", USER_AGENT)])
        return msg

    async def _exchange(self, request: SIPMessage) -> SIPMessage:
        for _ in range(RETRIES):
            self.endpoint.send(request, self.server)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(WAIT_S):
                    while True:
                        response = await self._responses.get()
                        if response.cseq == request.cseq and (response.status_code or 0) >= 200:
                            return response
        raise SipError(408, f"no answer to {request.summary()}")

    # ---- what the PBX sends ----------------------------------------------------------
    def _on_message(self, msg: SIPMessage, addr: Addr) -> None:
        if msg.is_response:
            self._responses.put_nowait(msg)
        elif msg.method is SIPMethod.INVITE:
            task = asyncio.ensure_future(self._answer(msg, addr))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        elif msg.method is SIPMethod.BYE:
            self._reply(msg, addr, 200, "OK")
            if self.current is not None and msg.call_id == self.current.invite.call_id:
                self.current.ended.set()
        elif msg.method is SIPMethod.ACK:
            return
        elif msg.method in (SIPMethod.OPTIONS, SIPMethod.NOTIFY, SIPMethod.INFO,
                            SIPMethod.CANCEL):
            self._reply(msg, addr, 200, "OK")
        else:
            self._reply(msg, addr, 501, "Not Implemented")

    async def _answer(self, invite: SIPMessage, addr: Addr) -> None:
        if self.current is not None and not self.current.ended.is_set():
            self._reply(invite, addr, 486, "Busy Here")
            return
        try:
            offer = parse_answer(invite.body or "")
            codec = codec_for_payload_type(offer.payload_type)
        except ValueError as err:
            log.warning("phone %s: unusable offer: %s", self.user, err)
            self._reply(invite, addr, 488, "Not Acceptable Here")
            return
        if self.current is not None:  # the last call's media, ended
            await self.current.rtp.close()
        rtp = await RtpStream.open(self.endpoint.local_addr[0])
        host, port = rtp.local_addr
        answer = build_offer(host, port, codec=codec, session_id=secrets.randbits(31),
                             dtmf_payload_type=offer.dtmf_payload_type or 101)
        call = IncomingCall(invite, rtp, new_tag())
        self.current = call
        self._reply(invite, addr, 200, "OK", body=answer, tag=call.local_tag)
        rtp.start((offer.ip, offer.port), offer.payload_type, offer.dtmf_payload_type)
        self.calls.put_nowait(call)

    def _reply(self, request: SIPMessage, addr: Addr, status: int, reason: str,
               body: str | None = None, tag: str | None = None) -> None:
        response = SIPMessage.create_response(
            request, status, reason, contact=f"<{self.contact}>", body=body,
            to_tag=tag or new_tag())
        response.headers["User-Agent"] = USER_AGENT
        self.endpoint.send(response, addr)
