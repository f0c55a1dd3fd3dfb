"""One outgoing INVITE dialog (RFC 3261 §12), sans-IO: which requests to send, and to whom."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field

from smartpbx_ari.sipcaller.sip import (
    SIPHeaders,
    SIPMessage,
    SIPMethod,
    header_param,
    name_addr_uri,
    new_branch,
    new_tag,
    response_status,
    split_header_list,
    uri_host_port,
)
from smartpbx_ari.sipcaller.transport import Addr

USER_AGENT = "SmartPBX-caller"
ALLOW = "INVITE, ACK, BYE, CANCEL, OPTIONS, INFO, UPDATE, NOTIFY"


@dataclass
class Dialog:
    """One outgoing INVITE dialog (RFC 3261 §12) and the requests it sends."""

    call_id: str
    local_uri: str
    remote_uri: str
    contact: str
    sent_by: str  # our "host:port" for Via
    local_tag: str = field(default_factory=new_tag)
    cseq: int = 0
    remote_tag: str | None = None
    remote_target: str | None = None
    route_set: list[str] = field(default_factory=list)

    def invite(self, sdp: str, auth: tuple[str, str] | None = None) -> SIPMessage:
        self.cseq += 1
        msg = self._request(SIPMethod.INVITE, self.remote_uri, self.cseq, new_branch())
        msg.headers.add("Contact", f"<{self.contact}>")
        msg.headers.add("Allow", ALLOW)
        if auth is not None:
            msg.headers.add(*auth)
        msg.headers.add("Content-Type", "application/sdp")
        msg.body = sdp
        return msg

    def ack(self, invite: SIPMessage, response: SIPMessage) -> SIPMessage:
        """ACK for a 2xx (new transaction to the remote target) or, in the INVITE's
        transaction, for a failure response (RFC 3261 §13.2.2.4, §17.1.1.3)."""
        number, _ = invite.cseq
        if response_status(response) < 300:
            msg = self._request(SIPMethod.ACK, self.target, number, new_branch())
            return msg
        msg = SIPMessage(method=SIPMethod.ACK, uri=invite.uri)
        msg.headers = _copy(invite, "Via", "Max-Forwards", "From")
        msg.headers.add("To", response.headers.get("To", invite.headers["To"]))
        msg.headers.add("Call-ID", self.call_id)
        msg.headers.add("CSeq", f"{number} ACK")
        return msg

    def cancel(self, invite: SIPMessage) -> SIPMessage:
        msg = SIPMessage(method=SIPMethod.CANCEL, uri=invite.uri)
        msg.headers = _copy(invite, "Via", "Max-Forwards", "From", "To", "Call-ID", "Route")
        msg.headers.add("CSeq", f"{invite.cseq[0]} CANCEL")
        return msg

    def request(self, method: SIPMethod) -> SIPMessage:
        """A new in-dialog request (BYE, ...)."""
        self.cseq += 1
        return self._request(method, self.target, self.cseq, new_branch())

    def confirm(self, response: SIPMessage) -> None:
        """Adopt the remote tag, target and route set of a 2xx (§12.1.2)."""
        self.remote_tag = header_param(response.headers.get("To", ""), "tag")
        contact = response.headers.get("Contact")
        self.remote_target = name_addr_uri(contact) if contact else self.remote_uri
        routes = [r for v in response.headers.get_all("Record-Route")
                  for r in split_header_list(v)]
        self.route_set = routes[::-1]

    def matches(self, request: SIPMessage) -> bool:
        to_tag = header_param(request.headers.get("To", ""), "tag")
        return request.call_id == self.call_id and to_tag == self.local_tag

    def next_hop(self, default: Addr) -> Addr:
        """First route, else the remote target, when it names an IP; else ``default``."""
        uri = name_addr_uri(self.route_set[0]) if self.route_set else self.target
        host, port = uri_host_port(uri)
        try:
            ipaddress.ip_address(host)
        except ValueError:
            return default  # a name: leave resolution to the outbound proxy (the server)
        return host, port

    @property
    def target(self) -> str:
        return self.remote_target or self.remote_uri

    def _request(self, method: SIPMethod, uri: str, cseq: int, branch: str) -> SIPMessage:
        to = f"<{self.remote_uri}>" + (f";tag={self.remote_tag}" if self.remote_tag else "")
        headers = SIPHeaders([
            ("Via", f"SIP/2.0/UDP {self.sent_by};rport;branch={branch}"),
            ("Max-Forwards", "70"),
            ("From", f"<{self.local_uri}>;tag={self.local_tag}"),
            ("To", to),
            ("Call-ID", self.call_id),
            ("CSeq", f"{cseq} {method.value}"),
            ("User-Agent", USER_AGENT),
        ])
        for route in self.route_set:
            headers.add("Route", route)
        return SIPMessage(method=method, uri=uri, headers=headers)


def _copy(msg: SIPMessage, *names: str) -> SIPHeaders:
    headers = SIPHeaders()
    for name in names:
        for value in msg.headers.get_all(name)[:1] if name == "Via" else msg.headers.get_all(name):
            headers.add(name, value)
    return headers
