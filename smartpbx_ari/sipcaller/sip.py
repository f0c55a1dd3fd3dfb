"""SIP messages (RFC 3261) and digest authentication (RFC 2617 / RFC 7616): sans-IO.

Bytes or text in, typed :class:`SIPMessage` out, and back. No sockets and no clock: the
synthetic caller's UDP user agent (:mod:`smartpbx_ari.sipcaller.ua`) and the test phone
are thin shells around this module.

``SIPMessage.parse(m.serialize()) == m`` for every valid message; parsing canonicalises
compact header names (``v`` -> ``Via``) and recomputes ``Content-Length`` on output.
"""

from __future__ import annotations

import enum
import hashlib
import re
import secrets
from collections.abc import Iterable, Iterator, Mapping, MutableMapping
from dataclasses import dataclass, field

SIP_VERSION = "SIP/2.0"


class SIPMethod(enum.Enum):
    INVITE = "INVITE"
    ACK = "ACK"
    BYE = "BYE"
    CANCEL = "CANCEL"
    REGISTER = "REGISTER"
    OPTIONS = "OPTIONS"
    INFO = "INFO"
    UPDATE = "UPDATE"
    PRACK = "PRACK"
    NOTIFY = "NOTIFY"
    SUBSCRIBE = "SUBSCRIBE"
    REFER = "REFER"
    MESSAGE = "MESSAGE"
    PUBLISH = "PUBLISH"


# RFC 3261 §7.3.3 and later RFCs: one-letter forms, read on input, never written.
COMPACT_FORMS = {
    "a": "Accept-Contact", "b": "Referred-By", "c": "Content-Type", "d": "Request-Disposition",
    "e": "Content-Encoding", "f": "From", "i": "Call-ID", "j": "Reject-Contact",
    "k": "Supported", "l": "Content-Length", "m": "Contact", "n": "Identity-Info",
    "o": "Event", "r": "Refer-To", "s": "Subject", "t": "To", "u": "Allow-Events",
    "v": "Via", "x": "Session-Expires", "y": "Identity",
}
_TOKEN = re.compile(r"[A-Za-z0-9\-.!%*_+`'~]+")
_URI = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*:\S+")
_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")
_BLANK_LINE = re.compile(rb"\r?\n\r?\n")
_LINE_END = re.compile(r"\r?\n")


def canonical_name(name: str) -> str:
    """``i`` -> ``Call-ID``; any other name is returned as written."""
    return COMPACT_FORMS.get(name.lower(), name) if len(name) == 1 else name


def _key(name: str) -> str:
    return canonical_name(name).lower()


class SIPHeaders(MutableMapping[str, str]):
    """Ordered SIP headers with case-insensitive lookup that keep repeated fields.

    ``headers["via"]`` is the first (topmost) value; :meth:`get_all` gives every value in
    order and :meth:`add` appends one. Setting a name replaces all its values in place.
    """

    def __init__(self, items: Mapping[str, str] | Iterable[tuple[str, str]] = ()) -> None:
        self._items: list[tuple[str, str]] = []
        pairs = items.items() if isinstance(items, Mapping) else items
        for name, value in pairs:
            self.add(name, value)

    def add(self, name: str, value: str) -> None:
        self._items.append(_checked_header(name, value))

    def get_all(self, name: str) -> list[str]:
        key = _key(name)
        return [v for n, v in self._items if _key(n) == key]

    def pairs(self) -> list[tuple[str, str]]:
        return list(self._items)

    def copy(self) -> SIPHeaders:
        return SIPHeaders(self._items)

    def __getitem__(self, name: str) -> str:
        key = _key(name)
        for n, v in self._items:
            if _key(n) == key:
                return v
        raise KeyError(name)

    def __setitem__(self, name: str, value: str) -> None:
        new = _checked_header(name, value)
        key = _key(name)
        index = next((i for i, (n, _) in enumerate(self._items) if _key(n) == key), None)
        self._items = [(n, v) for n, v in self._items if _key(n) != key]
        self._items.insert(len(self._items) if index is None else index, new)

    def __delitem__(self, name: str) -> None:
        if name not in self:
            raise KeyError(name)
        key = _key(name)
        self._items = [(n, v) for n, v in self._items if _key(n) != key]

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and any(_key(n) == _key(name) for n, _ in self._items)

    def __iter__(self) -> Iterator[str]:
        seen: set[str] = set()
        for n, _ in self._items:
            if _key(n) not in seen:
                seen.add(_key(n))
                yield n

    def __len__(self) -> int:
        return len({_key(n) for n, _ in self._items})

    def __eq__(self, other: object) -> bool:
        if isinstance(other, SIPHeaders):
            return self._items == other._items
        if isinstance(other, Mapping):
            return {_key(k): v for k, v in self.items()} == {
                _key(str(k)): v for k, v in other.items()}
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"SIPHeaders({self._items!r})"


def _checked_header(name: str, value: str) -> tuple[str, str]:
    name = canonical_name(name)
    if not _TOKEN.fullmatch(name):
        raise ValueError(f"invalid SIP header name {name!r}")
    if _CONTROL.search(value):
        raise ValueError(f"SIP header {name} contains a control character")
    return name, value


@dataclass
class SIPMessage:
    """A SIP request (``method`` and ``uri`` set) or response (``status_code`` set)."""

    method: SIPMethod | None = None
    uri: str = ""
    status_code: int | None = None
    reason_phrase: str = ""
    headers: SIPHeaders = field(default_factory=SIPHeaders)
    body: str | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.headers, SIPHeaders):  # a plain dict from the caller
            self.headers = SIPHeaders(self.headers)

    # ---- parsing -------------------------------------------------------------------
    @classmethod
    def parse(cls, raw: str | bytes) -> SIPMessage:
        """Parse one message; ``ValueError`` says what is wrong with it."""
        data = raw.encode("utf-8") if isinstance(raw, str) else raw
        data = data.lstrip(b"\r\n")  # RFC 3261 §7.5: ignore leading blank lines
        if not data:
            raise ValueError("empty SIP message")
        head, body = _split_head_body(data)
        lines = _unfold(_LINE_END.split(_decode(head, "header section")))
        msg = _parse_start_line(lines[0])
        for line in lines[1:]:
            msg.headers.add(*_parse_header_line(line))
        msg.body = _parse_body(body, msg.headers)
        return msg

    @classmethod
    def parse_invite(cls, raw: str | bytes) -> SIPMessage:
        msg = cls.parse(raw)
        if msg.method is not SIPMethod.INVITE:
            raise ValueError(f"expected an INVITE, got {msg.summary()}")
        return msg

    # ---- building ------------------------------------------------------------------
    @classmethod
    def create_response(
        cls,
        request: SIPMessage,
        status_code: int,
        reason_phrase: str,
        contact: str | None = None,
        body: str | None = None,
        to_tag: str | None = None,
        content_type: str = "application/sdp",
    ) -> SIPMessage:
        """A response to ``request`` (RFC 3261 §8.2.6): Via/From/To/Call-ID/CSeq copied."""
        resp = cls(status_code=status_code, reason_phrase=reason_phrase, body=body)
        copied = ["Via", "From", "To", "Call-ID", "CSeq"]
        if 100 < status_code < 300:
            copied.insert(1, "Record-Route")  # §12.1.1: dialog-creating responses
        for name in copied:
            for value in request.headers.get_all(name):
                resp.headers.add(name, value)
        _add_to_tag(resp.headers, to_tag, status_code)
        if contact:
            resp.headers["Contact"] = contact if "<" in contact else f"<{contact}>"
        if body is not None:
            resp.headers["Content-Type"] = content_type
        resp.headers["Content-Length"] = str(len((body or "").encode("utf-8")))
        return resp

    # ---- inspecting ----------------------------------------------------------------
    @property
    def is_request(self) -> bool:
        return self.method is not None

    @property
    def is_response(self) -> bool:
        return self.status_code is not None

    def is_valid(self) -> bool:
        if self.status_code is not None:
            return self.method is None and 100 <= self.status_code <= 699
        return self.method is not None and bool(self.uri)

    @property
    def call_id(self) -> str:
        return self.headers.get("Call-ID", "")

    @property
    def cseq(self) -> tuple[int, str]:
        """``(number, method)`` of the CSeq header; ``ValueError`` if absent or malformed."""
        number, _, method = self.headers.get("CSeq", "").partition(" ")
        if not (number.isascii() and number.isdigit()) or not method.strip():
            raise ValueError(f"malformed CSeq {self.headers.get('CSeq')!r}")
        return int(number), method.strip()

    @property
    def branch(self) -> str | None:
        """The ``branch`` parameter of the topmost Via."""
        via = self.headers.get("Via")
        return None if via is None else header_param(via, "branch")

    def summary(self) -> str:
        if self.status_code is not None:
            return f"{self.status_code} {self.reason_phrase}".rstrip()
        return f"{self.method.value if self.method else '?'} {self.uri}"

    # ---- serializing ---------------------------------------------------------------
    def serialize(self) -> bytes:
        body = (self.body or "").encode("utf-8")
        headers = self.headers.copy()
        headers["Content-Length"] = str(len(body))
        lines = [self._start_line(), *(f"{n}: {v}" for n, v in headers.pairs()), "", ""]
        return "\r\n".join(lines).encode("utf-8") + body

    def _start_line(self) -> str:
        if not self.is_valid():
            raise ValueError(f"cannot serialize an invalid SIP message ({self.summary()})")
        if self.status_code is not None:
            return f"{SIP_VERSION} {self.status_code} {self.reason_phrase}"
        assert self.method is not None
        return f"{self.method.value} {self.uri} {SIP_VERSION}"


# ---- parsing helpers ---------------------------------------------------------------
def _split_head_body(data: bytes) -> tuple[bytes, bytes]:
    blank = _BLANK_LINE.search(data)
    if blank is None:
        return data.rstrip(b"\r\n"), b""
    return data[: blank.start()], data[blank.end() :]


def _decode(data: bytes, what: str) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as err:
        raise ValueError(f"SIP {what} is not valid UTF-8 (byte {err.start})") from None


def _unfold(lines: list[str]) -> list[str]:
    """Join continuation lines (leading whitespace) onto the header above (§7.3.1)."""
    out = [lines[0]]
    for line in lines[1:]:
        if line[:1] in (" ", "\t"):
            if len(out) == 1:
                raise ValueError("SIP header section starts with a continuation line")
            out[-1] = f"{out[-1].rstrip()} {line.strip()}"
        else:
            out.append(line)
    return out


def _parse_start_line(line: str) -> SIPMessage:
    if _CONTROL.search(line):
        raise ValueError("SIP start line contains a control character")
    if line.startswith("SIP/"):
        return _parse_status_line(line)
    parts = line.split(" ")
    if len(parts) != 3:
        raise ValueError(f"malformed SIP request line {line[:80]!r}")
    method, uri, version = parts
    _check_version(version)
    if not _URI.fullmatch(uri):
        raise ValueError(f"malformed Request-URI {uri[:80]!r}")
    try:
        return SIPMessage(method=SIPMethod(method), uri=uri)
    except ValueError:
        raise ValueError(f"unsupported SIP method {method[:20]!r}") from None


def _parse_status_line(line: str) -> SIPMessage:
    version, _, rest = line.partition(" ")
    _check_version(version)
    code, _, reason = rest.partition(" ")
    if not (len(code) == 3 and code.isascii() and code.isdigit() and "1" <= code[0] <= "6"):
        raise ValueError(f"malformed SIP status code {code[:20]!r}")
    return SIPMessage(status_code=int(code), reason_phrase=reason)


def _check_version(version: str) -> None:
    if version != SIP_VERSION:
        raise ValueError(f"unsupported SIP version {version[:20]!r} (want {SIP_VERSION})")


def _parse_header_line(line: str) -> tuple[str, str]:
    name, sep, value = line.partition(":")
    if not sep:
        raise ValueError(f"malformed SIP header line {line[:80]!r} (no colon)")
    return name.strip(), value.strip()


def _parse_body(body: bytes, headers: SIPHeaders) -> str | None:
    length = _content_length(headers)
    if length is not None:
        body = body[:length]  # a shorter datagram keeps what arrived
    return _decode(body, "body") if body else None


def _content_length(headers: SIPHeaders) -> int | None:
    value = headers.get("Content-Length")
    if value is None:
        return None
    if not (value.isascii() and value.isdigit()):
        raise ValueError(f"malformed Content-Length {value[:20]!r}")
    return int(value)


def _add_to_tag(headers: SIPHeaders, to_tag: str | None, status_code: int) -> None:
    to = headers.get("To")
    if to is None or header_param(to, "tag") is not None:
        return
    if to_tag is None and status_code == 100:
        return  # §8.2.6.2: a 100 Trying needs no tag
    headers["To"] = f"{to};tag={to_tag or new_tag()}"


# ---- header field helpers ----------------------------------------------------------
def response_status(response: SIPMessage) -> int:
    """The status code of a response; ``ValueError`` for a request."""
    if response.status_code is None:
        raise ValueError(f"not a SIP response: {response.summary()}")
    return response.status_code


def new_tag() -> str:
    return secrets.token_hex(6)


def new_branch() -> str:
    return "z9hG4bK" + secrets.token_hex(8)  # RFC 3261 magic cookie


def header_params(value: str) -> dict[str, str]:
    """Header parameters after a name-addr (``<sip:a@b>;tag=x``) or a Via, lower-cased names."""
    tail = value.rsplit(">", 1)[-1] if "<" in value else value  # no ">": all of it
    params: dict[str, str] = {}
    for part in tail.split(";")[1:]:
        name, _, val = part.partition("=")
        params[name.strip().lower()] = val.strip()
    return params


def header_param(value: str, name: str) -> str | None:
    return header_params(value).get(name.lower())


def name_addr_uri(value: str) -> str:
    """The URI inside ``"Name" <uri>;params``, or before the parameters of a bare addr-spec."""
    if "<" in value and ">" in value:
        return value.split("<", 1)[1].split(">", 1)[0].strip()
    return value.split(";", 1)[0].strip()


def split_header_list(value: str) -> list[str]:
    """Split ``<a>, <b;lr>`` on commas outside quotes and angle brackets."""
    items: list[str] = []
    current: list[str] = []
    quoted = angled = False
    for ch in value:
        if ch == '"':
            quoted = not quoted
        elif ch in "<>" and not quoted:
            angled = ch == "<"
        elif ch == "," and not (quoted or angled):
            items.append("".join(current).strip())
            current = []
            continue
        current.append(ch)
    items.append("".join(current).strip())
    return [item for item in items if item]


def uri_host_port(uri: str, default_port: int = 5060) -> tuple[str, int]:
    """``sip:user@host:port;params`` -> ``(host, port)``."""
    rest = uri.split(":", 1)[1] if ":" in uri else uri
    hostport = rest.split("@", 1)[-1].split(";", 1)[0].split("?", 1)[0]
    if hostport.startswith("["):  # IPv6 reference
        host, _, port = hostport[1:].partition("]")
        port = port.lstrip(":")
    else:
        host, _, port = hostport.partition(":")
    if port and not (port.isascii() and port.isdigit()):
        raise ValueError(f"malformed port in SIP URI {uri!r}")
    return host, int(port) if port else default_port


# ---- digest authentication (RFC 2617, RFC 7616, RFC 8760) -------------------------
_HASHES = {"MD5": "md5", "SHA-256": "sha256"}
_PREFERENCE = ("SHA-256", "SHA-256-SESS", "MD5", "MD5-SESS")
_AUTH_PARAM = re.compile(r'\s*([A-Za-z0-9_\-]+)\s*=\s*("(?:[^"\\]|\\.)*"|[^,\s]*)\s*(?:,|$)')


@dataclass(frozen=True)
class DigestChallenge:
    """One ``WWW-Authenticate`` / ``Proxy-Authenticate`` digest challenge."""

    realm: str
    nonce: str
    algorithm: str = "MD5"
    qop: tuple[str, ...] = ()
    opaque: str | None = None
    stale: bool = False

    @classmethod
    def parse(cls, value: str) -> DigestChallenge:
        scheme, _, rest = value.strip().partition(" ")
        if scheme.lower() != "digest":
            raise ValueError(f"not a Digest challenge: {scheme[:20]!r}")
        params = parse_auth_params(rest)
        missing = [k for k in ("realm", "nonce") if k not in params]
        if missing:
            raise ValueError(f"Digest challenge lacks {', '.join(missing)}")
        qop = tuple(q.strip() for q in params.get("qop", "").split(",") if q.strip())
        return cls(
            realm=params["realm"], nonce=params["nonce"],
            algorithm=params.get("algorithm", "MD5"), qop=qop, opaque=params.get("opaque"),
            stale=params.get("stale", "").lower() == "true",
        )

    @property
    def supported(self) -> bool:
        return _base_algorithm(self.algorithm) in _HASHES and (not self.qop or "auth" in self.qop)


def parse_auth_params(text: str) -> dict[str, str]:
    """``a="x", b=y`` -> ``{"a": "x", "b": "y"}`` (names lower-cased, quotes removed)."""
    params: dict[str, str] = {}
    pos = 0
    text = text.strip()
    while pos < len(text):
        m = _AUTH_PARAM.match(text, pos)
        if m is None or m.end() == pos:
            raise ValueError(f"malformed auth parameters at {text[pos:pos + 30]!r}")
        params[m.group(1).lower()] = _unquote(m.group(2))
        pos = m.end()
    return params


def _unquote(value: str) -> str:
    if len(value) >= 2 and value[0] == value[-1] == '"':
        return re.sub(r"\\(.)", r"\1", value[1:-1])
    return value


def _quote(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _base_algorithm(algorithm: str) -> str:
    return algorithm.upper().removesuffix("-SESS")


def choose_challenge(values: Iterable[str]) -> DigestChallenge:
    """The strongest supported challenge among a response's authenticate headers."""
    parsed = [DigestChallenge.parse(v) for v in values]
    usable = [c for c in parsed if c.supported]
    if not usable:
        offered = ", ".join(c.algorithm for c in parsed) or "none"
        raise ValueError(f"no supported Digest challenge (offered: {offered})")
    return min(usable, key=lambda c: _PREFERENCE.index(c.algorithm.upper()))


def digest_response(
    challenge: DigestChallenge, *, method: str, uri: str, username: str, password: str,
    cnonce: str, nc: int = 1,
) -> str:
    """The ``response`` value: qop=auth when offered, else the RFC 2069 form."""
    algo = challenge.algorithm.upper()
    hname = _HASHES[_base_algorithm(algo)]

    def h(text: str) -> str:
        return hashlib.new(hname, text.encode("utf-8")).hexdigest()

    ha1 = h(f"{username}:{challenge.realm}:{password}")
    if algo.endswith("-SESS"):
        ha1 = h(f"{ha1}:{challenge.nonce}:{cnonce}")
    ha2 = h(f"{method}:{uri}")
    if "auth" in challenge.qop:
        return h(f"{ha1}:{challenge.nonce}:{nc:08x}:{cnonce}:auth:{ha2}")
    return h(f"{ha1}:{challenge.nonce}:{ha2}")


def build_authorization(
    challenge: DigestChallenge, *, method: str, uri: str, username: str, password: str,
    cnonce: str, nc: int = 1,
) -> str:
    """The value of an ``Authorization`` / ``Proxy-Authorization`` header."""
    response = digest_response(challenge, method=method, uri=uri, username=username,
                               password=password, cnonce=cnonce, nc=nc)
    parts = [f"username={_quote(username)}", f"realm={_quote(challenge.realm)}",
             f"nonce={_quote(challenge.nonce)}", f"uri={_quote(uri)}",
             f"response={_quote(response)}", f"algorithm={challenge.algorithm}"]
    if challenge.opaque is not None:
        parts.append(f"opaque={_quote(challenge.opaque)}")
    if "auth" in challenge.qop:
        parts += [f"qop=auth, nc={nc:08x}", f"cnonce={_quote(cnonce)}"]
    return "Digest " + ", ".join(parts)


def authorization_for(
    response: SIPMessage, *, method: str, uri: str, username: str, password: str, cnonce: str,
    nc: int = 1,
) -> tuple[str, str]:
    """``(header name, value)`` answering a 401 or 407 ``response``."""
    proxy = response.status_code == 407
    challenges = response.headers.get_all("Proxy-Authenticate" if proxy else "WWW-Authenticate")
    if not challenges:
        raise ValueError(f"{response.summary()} carries no authenticate challenge")
    value = build_authorization(choose_challenge(challenges), method=method, uri=uri,
                                username=username, password=password, cnonce=cnonce, nc=nc)
    return ("Proxy-Authorization" if proxy else "Authorization"), value
