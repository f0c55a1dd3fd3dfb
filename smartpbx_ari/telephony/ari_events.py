"""Typed ARI events and resources: sans-IO, JSON text or dicts in, dataclasses out.

Anything not of the documented shape (not JSON, not an object, a field of the wrong type,
a channel without its id) raises :class:`AriEventError` naming the field; nothing else
comes out of :func:`parse_message`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any


class AriEventError(ValueError):
    """An ARI message or resource that is not of the documented shape."""


def _object(data: dict[str, Any], name: str, where: str) -> dict[str, Any]:
    value = data.get(name)
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise AriEventError(f"{where}{name}: expected an object, got {type(value).__name__}")
    return value


def _text(data: dict[str, Any], name: str, where: str = "") -> str:
    value = data.get(name)
    if value is None:
        return ""
    if isinstance(value, dict | list):
        raise AriEventError(f"{where}{name}: expected a string, got {type(value).__name__}")
    return str(value)


def _int(data: dict[str, Any], name: str) -> int:
    value = data.get(name, 0)
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str):
        try:
            return int(value)
        except ValueError:
            pass
    raise AriEventError(f"{name}: expected an integer, got {str(value)[:20]!r}")


def _texts(values: Any, where: str) -> tuple[str, ...]:
    if values is None:
        return ()
    if not isinstance(values, list) or any(isinstance(v, dict | list) for v in values):
        raise AriEventError(f"{where}: expected a list of strings")
    return tuple(str(v) for v in values)


def _resource(data: Any, where: str) -> dict[str, Any]:
    if not isinstance(data, dict):
        raise AriEventError(f"{where}: expected an object, got {type(data).__name__}")
    if _text(data, "id", f"{where}.") == "":
        raise AriEventError(f"{where}.id: missing")
    return data


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
        """``AriEventError`` naming the field if ``data`` is not a channel."""
        data = _resource(data, "channel")
        caller = _object(data, "caller", "channel.")
        dialplan = _object(data, "dialplan", "channel.")
        variables = _object(data, "channelvars", "channel.")
        return cls(
            id=_text(data, "id"),
            name=_text(data, "name"),
            state=_text(data, "state"),
            caller_number=_text(caller, "number", "channel.caller."),
            caller_name=_text(caller, "name", "channel.caller."),
            exten=_text(dialplan, "exten", "channel.dialplan."),
            context=_text(dialplan, "context", "channel.dialplan."),
            app_name=_text(dialplan, "app_name", "channel.dialplan."),
            app_data=_text(dialplan, "app_data", "channel.dialplan."),
            variables={str(k): _text(variables, k, "channel.channelvars.") for k in variables},
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
        """``AriEventError`` naming the field if ``data`` is not a bridge."""
        data = _resource(data, "bridge")
        return cls(id=_text(data, "id"), name=_text(data, "name"),
                   channels=_texts(data.get("channels"), "bridge.channels"))


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
class ChannelHold(ChannelEvent):
    """The channel's phone put the call on hold (its RTP may stop meanwhile)."""


@dataclass(frozen=True)
class ChannelUnhold(ChannelEvent):
    pass


@dataclass(frozen=True)
class Disconnected(AriEvent):
    """Not from Asterisk: the WebSocket of a connection closed; reconnecting goes on.

    If Asterisk itself is gone (killed, its host down), its calls went with it."""


@dataclass(frozen=True)
class Connected(AriEvent):
    """Not from Asterisk: the WebSocket is (re)connected, before any event of it.

    Reconcile here: Asterisk may hold channels we do not know (a drop, a restart)."""

    first: bool = True


def parse_message(text: str | bytes) -> AriEvent:
    """One ARI WebSocket text frame -> a typed event; ``AriEventError`` if it is none."""
    try:
        data = json.loads(text)
    except (ValueError, RecursionError) as err:  # RecursionError: nested too deeply
        raise AriEventError(f"ARI message is not JSON ({type(err).__name__})") from None
    if not isinstance(data, dict):
        raise AriEventError(f"ARI message: expected an object, got {type(data).__name__}")
    return parse_event(data)


def parse_event(data: dict[str, Any]) -> AriEvent:
    """Turn one ARI WebSocket message into a typed event (unknown types stay generic)."""
    kind = _text(data, "type")
    app = _text(data, "application")
    chan = data.get("channel")
    if chan is None:
        return AriEvent(type=kind, application=app, raw=data)
    channel = Channel.from_json(chan)
    common: dict[str, Any] = {"type": kind, "application": app, "raw": data, "channel": channel}
    if kind == "StasisStart":
        return StasisStart(**common, args=_texts(data.get("args"), "args"))
    if kind == "StasisEnd":
        return StasisEnd(**common)
    if kind == "ChannelDtmfReceived":
        return ChannelDtmfReceived(**common, digit=_text(data, "digit"),
                                   duration_ms=_int(data, "duration_ms"))
    if kind == "ChannelHangupRequest":
        return ChannelHangupRequest(**common, cause=_int(data, "cause"))
    if kind == "ChannelDestroyed":
        return ChannelDestroyed(**common, cause=_int(data, "cause"),
                                cause_txt=_text(data, "cause_txt"))
    if kind == "ChannelHold":
        return ChannelHold(**common)
    if kind == "ChannelUnhold":
        return ChannelUnhold(**common)
    return ChannelEvent(**common)
