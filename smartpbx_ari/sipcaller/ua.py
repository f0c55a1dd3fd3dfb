"""The synthetic caller's SIP user agent (UAC only): one outgoing call over asyncio UDP.

Protocol decisions live in sans-IO pieces: :mod:`.sip` (messages, digest), :mod:`.sdp`,
:class:`~.dialog.Dialog` (which requests to send) and :mod:`.rtp` (20 ms ticks to packets,
what was heard). :class:`SipCall` drives them over :mod:`.transport`, :mod:`.transactions`
and :mod:`.rtp_stream`::

    async with SipCall.dial(user="caller", password=pw, exten="600") as call:
        await call.rtp.play(pcm)  # int16 at call.rtp.codec.sample_rate
        heard = call.rtp.first_voice_after(t0)
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from collections.abc import AsyncIterator

from smartpbx_ari.media.codecs import CODECS, Codec
from smartpbx_ari.sipcaller.dialog import ALLOW, USER_AGENT, Dialog
from smartpbx_ari.sipcaller.errors import SipError, SipTimeoutError
from smartpbx_ari.sipcaller.rtp import ULAW
from smartpbx_ari.sipcaller.rtp_stream import RtpStream
from smartpbx_ari.sipcaller.sdp import SdpAnswer, build_offer, parse_answer
from smartpbx_ari.sipcaller.sip import (
    SIPMessage,
    SIPMethod,
    authorization_for,
    response_status,
)
from smartpbx_ari.sipcaller.transactions import T1, ClientTransactions, next_response
from smartpbx_ari.sipcaller.transport import Addr, SipEndpoint

log = logging.getLogger(__name__)


class SipCall:
    """One outgoing call. Make it with :meth:`dial`; the context hangs up on exit."""

    def __init__(self, endpoint: SipEndpoint, rtp: RtpStream, dialog: Dialog, *,
                 server: Addr, user: str, password: str, t1: float = T1,
                 codec: Codec = ULAW) -> None:
        self.rtp = rtp
        self.dialog = dialog
        self.ended = asyncio.Event()
        self.provisional: list[int] = []  # 1xx statuses seen while dialling
        self.requests: list[SIPMessage] = []  # requests the peer sent us (BYE, re-INVITE...)
        self.answer: SIPMessage | None = None  # the 2xx that set the call up
        self.sdp_offer = build_offer(rtp.local_addr[0], rtp.local_addr[1], codec=codec,
                                     session_id=secrets.randbits(31))
        self._endpoint = endpoint
        self._server = server
        self._user = user
        self._password = password
        self._transactions = ClientTransactions(self._send, self._destination, t1)
        self._media: SdpAnswer | None = None
        self._ack: SIPMessage | None = None

    # ---- public API --------------------------------------------------------------
    @classmethod
    @contextlib.asynccontextmanager
    async def dial(
        cls, server: Addr = ("127.0.0.1", 5060), user: str = "caller", password: str = "",
        exten: str = "600", local_ip: str = "127.0.0.1", rtp_port: int = 0, *,
        answer_timeout: float = 30.0, t1: float = T1, keepalive: bool = True,
        codec: str = "ulaw",
    ) -> AsyncIterator[SipCall]:
        """Call ``exten`` at ``server`` offering ``codec`` (ulaw, alaw, or g722 for
        G.722 wideband); yields once answered (2xx ACKed, media flowing)."""
        rtp = await RtpStream.open(local_ip, rtp_port, keepalive=keepalive)
        try:
            call = await cls._open(rtp, server, user, password, exten, local_ip, t1,
                                   CODECS[codec])
        except BaseException:
            await rtp.close()
            raise
        try:
            await call._establish(answer_timeout)
            yield call
        finally:
            await call._shutdown()

    @property
    def media(self) -> SdpAnswer:
        if self._media is None:
            raise RuntimeError("the call has not been answered")
        return self._media

    @property
    def remote_rtp(self) -> Addr:
        return self.rtp.remote or (self.media.ip, self.media.port)

    @property
    def payload_type(self) -> int:
        return self.media.payload_type

    @property
    def dtmf_payload_type(self) -> int | None:
        return self.media.dtmf_payload_type

    @property
    def call_id(self) -> str:
        return self.dialog.call_id

    async def send_dtmf(self, digit: str, duration: float = 0.1) -> None:
        await self.rtp.send_dtmf(digit, duration)

    async def hangup(self, timeout: float = 5.0) -> SIPMessage | None:
        """Send BYE and return its final response; ``None`` if the call had already ended."""
        if self.ended.is_set():
            return None
        self.ended.set()
        try:
            async with asyncio.timeout(timeout):
                response = await self._request(self.dialog.request(SIPMethod.BYE))
        except SipTimeoutError:
            raise
        except TimeoutError:
            raise SipTimeoutError(f"no answer to BYE within {timeout} s") from None
        if response_status(response) >= 300:
            raise SipError(response_status(response), response.reason_phrase)
        return response

    # ---- setting up --------------------------------------------------------------
    @classmethod
    async def _open(cls, rtp: RtpStream, server: Addr, user: str, password: str, exten: str,
                    local_ip: str, t1: float, codec: Codec) -> SipCall:
        endpoint = await SipEndpoint.open(local_ip)
        host, port = endpoint.local_addr
        dialog = Dialog(call_id=f"{secrets.token_hex(10)}@{host}",
                        local_uri=f"sip:{user}@{server[0]}", remote_uri=f"sip:{exten}@{server[0]}",
                        contact=f"sip:{user}@{host}:{port}", sent_by=f"{host}:{port}")
        call = cls(endpoint, rtp, dialog, server=server, user=user, password=password, t1=t1,
                   codec=codec)
        endpoint.handler = call._on_message
        return call

    async def _establish(self, answer_timeout: float) -> None:
        invite = self.dialog.invite(self.sdp_offer)
        response = await self._invite(invite, answer_timeout)
        if response_status(response) in (401, 407):
            invite = self.dialog.invite(self.sdp_offer, self._authorization(response, invite))
            response = await self._invite(invite, answer_timeout)
        if response_status(response) >= 300:
            raise SipError(response_status(response), response.reason_phrase)
        self.answer = response
        self.dialog.confirm(response)
        self._ack = self.dialog.ack(invite, response)
        self._send(self._ack)
        self._start_media(response)

    def _authorization(self, challenge: SIPMessage, request: SIPMessage) -> tuple[str, str]:
        assert request.method is not None
        try:
            return authorization_for(challenge, method=request.method.value, uri=request.uri,
                                     username=self._user, password=self._password,
                                     cnonce=secrets.token_hex(8))
        except ValueError as err:
            raise SipError(response_status(challenge),
                           f"{challenge.reason_phrase} ({err})") from None

    def _start_media(self, response: SIPMessage) -> None:
        try:
            self._media = parse_answer(response.body or "")
        except ValueError as err:
            raise SipError(488, f"unusable SDP answer: {err}") from None
        self.rtp.start((self._media.ip, self._media.port), self._media.payload_type,
                       self._media.dtmf_payload_type)

    async def _shutdown(self) -> None:
        try:
            if self.answer is not None and not self.ended.is_set():
                try:
                    await self.hangup()
                except SipError as err:
                    log.warning("call %s: hangup failed: %s", self.call_id, err)
        finally:
            await self.rtp.close()
            await self._endpoint.close()

    # ---- client transactions -----------------------------------------------------
    async def _invite(self, invite: SIPMessage, answer_timeout: float) -> SIPMessage:
        """Run one INVITE transaction; return its final response, ACKed if non-2xx."""
        with self._transactions.open(invite) as queue:
            response = await self._transactions.exchange(invite, queue, final_only=False)
            deadline = asyncio.get_running_loop().time() + answer_timeout
            while response_status(response) < 200:
                self.provisional.append(response_status(response))
                response = await self._await_final(invite, queue, deadline)
        if response_status(response) >= 300:
            self._send(self.dialog.ack(invite, response))
        return response

    async def _await_final(self, invite: SIPMessage, queue: asyncio.Queue[SIPMessage],
                           deadline: float) -> SIPMessage:
        try:
            async with asyncio.timeout_at(deadline):
                return await queue.get()
        except TimeoutError:
            await self._cancel(invite, queue)
            raise SipTimeoutError("no answer before the answer timeout") from None
        except asyncio.CancelledError:
            self._send(self.dialog.cancel(invite))
            raise

    async def _cancel(self, invite: SIPMessage, queue: asyncio.Queue[SIPMessage]) -> None:
        """CANCEL a ringing INVITE and ACK its 487, best effort."""
        cancel = self.dialog.cancel(invite)
        with self._transactions.open(cancel) as cancel_queue, contextlib.suppress(SipError):
            await self._transactions.exchange(cancel, cancel_queue, final_only=True)
        final = await next_response(queue, 2.0, final_only=True)
        if final is not None:
            self._send(self.dialog.ack(invite, final))

    async def _request(self, request: SIPMessage) -> SIPMessage:
        """A non-INVITE transaction, answering one digest challenge if asked."""
        with self._transactions.open(request) as queue:
            response = await self._transactions.exchange(request, queue, final_only=True)
        if response_status(response) not in (401, 407):
            return response
        assert request.method is not None
        retry = self.dialog.request(request.method)
        retry.headers.add(*self._authorization(response, retry))
        with self._transactions.open(retry) as queue:
            return await self._transactions.exchange(retry, queue, final_only=True)

    def _send(self, msg: SIPMessage) -> None:
        self._endpoint.send(msg, self._destination())

    def _destination(self) -> Addr:
        return self.dialog.next_hop(self._server) if self.answer else self._server

    # ---- what the peer sends -----------------------------------------------------
    def _on_message(self, msg: SIPMessage, addr: Addr) -> None:
        if msg.is_response:
            self._on_response(msg)
        else:
            self._on_request(msg, addr)

    def _on_response(self, msg: SIPMessage) -> None:
        try:
            _, method = msg.cseq
        except ValueError:
            log.warning("call %s: response without a valid CSeq dropped", self.call_id)
            return
        if self._transactions.deliver(msg, method):
            return
        if method == "INVITE" and 200 <= response_status(msg) < 300 and self._ack is not None:
            self._send(self._ack)  # the 2xx was retransmitted: our ACK got lost
        else:
            log.debug("call %s: stray response %s", self.call_id, msg.summary())

    def _on_request(self, req: SIPMessage, addr: Addr) -> None:
        self.requests.append(req)
        method = req.method
        if method is SIPMethod.ACK:
            return
        if method is not SIPMethod.OPTIONS and not self.dialog.matches(req):
            self._reply(req, addr, 481, "Call/Transaction Does Not Exist")
        elif method is SIPMethod.BYE:
            self._reply(req, addr, 200, "OK")
            self.ended.set()
        elif method in (SIPMethod.INVITE, SIPMethod.UPDATE):
            self._on_offer(req, addr)
        elif method in (SIPMethod.OPTIONS, SIPMethod.INFO, SIPMethod.NOTIFY):
            self._reply(req, addr, 200, "OK")
        else:
            self._reply(req, addr, 501, "Not Implemented")

    def _on_offer(self, req: SIPMessage, addr: Addr) -> None:
        """A re-INVITE or UPDATE: follow a moved media address, answer with our SDP."""
        if req.body:
            with contextlib.suppress(ValueError):
                offer = parse_answer(req.body)
                self.rtp.remote = (offer.ip, offer.port)
        self._reply(req, addr, 200, "OK", body=self.sdp_offer)

    def _reply(self, req: SIPMessage, addr: Addr, status: int, reason: str,
               body: str | None = None) -> None:
        contact = f"<{self.dialog.contact}>" if req.method is SIPMethod.INVITE else None
        resp = SIPMessage.create_response(req, status, reason, contact=contact, body=body,
                                          to_tag=self.dialog.local_tag)
        resp.headers["Allow"] = ALLOW
        resp.headers["User-Agent"] = USER_AGENT
        self._endpoint.send(resp, addr)
