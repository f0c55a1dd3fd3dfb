"""Typed ARI events and resources: sans-IO, JSON dicts in, dataclasses out."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Channel:
    id: str
    name: str = ""
    state: str = ""
    caller_number: str = ""
    caller_name: str = ""
    exten: str = ""
    context: str = ""
    app_name: str = ""  # the dialplan application it is in (e.g. "Stasis") ...
    app_data: str = ""  # ... and its argument (the Stasis app name)
    variables: dict[str, str] = field(default_factory=dict)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Channel:
        caller = data.get("caller") or {}
        dialplan = data.get("dialplan") or {}
        return cls(
            id=str(data["id"]),
            name=str(data.get("name", "")),
            state=str(data.get("state", "")),
            caller_number=str(caller.get("number", "")),
            caller_name=str(caller.get("name", "")),
            exten=str(dialplan.get("exten", "")),
            context=str(dialplan.get("context", "")),
            app_name=str(dialplan.get("app_name", "")),
            app_data=str(dialplan.get("app_data", "")),
            variables={str(k): str(v) for k, v in (data.get("channelvars") or {}).items()},
        )

    @property
    def is_external_media(self) -> bool:
        return self.name.startswith("UnicastRTP/")


@dataclass(frozen=True)
class Bridge:
    id: str
    name: str = ""
    channels: tuple[str, ...] = ()

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Bridge:
        return cls(id=str(data["id"]), name=str(data.get("name", "")),
                   channels=tuple(data.get("channels") or ()))


@dataclass(frozen=True)
class AriEvent:
    """Any event; the subclasses below are the ones the Stasis app acts on."""

    type: str
    application: str = ""
    raw: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)


@dataclass(frozen=True)
class ChannelEvent(AriEvent):
    channel: Channel = field(default_factory=lambda: Channel(id=""))


@dataclass(frozen=True)
class StasisStart(ChannelEvent):
    args: tuple[str, ...] = ()


@dataclass(frozen=True)
class StasisEnd(ChannelEvent):
    pass


@dataclass(frozen=True)
class ChannelDtmfReceived(ChannelEvent):
    digit: str = ""
    duration_ms: int = 0


@dataclass(frozen=True)
class ChannelHangupRequest(ChannelEvent):
    cause: int = 0


@dataclass(frozen=True)
class ChannelDestroyed(ChannelEvent):
    cause: int = 0
    cause_txt: str = ""


@dataclass(frozen=True)
class Disconnected(AriEvent):
    """Not from Asterisk: the WebSocket of a connection closed; reconnecting goes on.

    If Asterisk itself is gone (killed, its host down), its calls went with it."""


@dataclass(frozen=True)
class Connected(AriEvent):
    """Not from Asterisk: the WebSocket is (re)connected, before any event of it.

    Reconcile here: Asterisk may hold channels we do not know (a drop, a restart)."""

    first: bool = True


def parse_event(data: dict[str, Any]) -> AriEvent:
    """Turn one ARI WebSocket message into a typed event (unknown types stay generic)."""
    kind = str(data.get("type", ""))
    app = str(data.get("application", ""))
    chan = data.get("channel")
    if chan is None:
        return AriEvent(type=kind, application=app, raw=data)
    channel = Channel.from_json(chan)
    common: dict[str, Any] = {"type": kind, "application": app, "raw": data, "channel": channel}
    if kind == "StasisStart":
        return StasisStart(**common, args=tuple(data.get("args") or ()))
    if kind == "StasisEnd":
        return StasisEnd(**common)
    if kind == "ChannelDtmfReceived":
        return ChannelDtmfReceived(**common, digit=str(data.get("digit", "")),
                                   duration_ms=int(data.get("duration_ms", 0)))
    if kind == "ChannelHangupRequest":
        return ChannelHangupRequest(**common, cause=int(data.get("cause", 0)))
    if kind == "ChannelDestroyed":
        return ChannelDestroyed(**common, cause=int(data.get("cause", 0)),
                                cause_txt=str(data.get("cause_txt", "")))
    return ChannelEvent(**common)
