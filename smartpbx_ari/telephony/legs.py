"""One party's voice alone, while an operator talks with the caller: a snoop on that
party's channel (spy in: only what they say) bridged with an External Media channel of
its own, so the record keeps ``caller`` and ``operator`` apart (the call's own External
Media hears the bridge's mix of both).

``LegTap.open`` sets it up (the session routes the tap's channels' events to ``on_event``);
``close`` takes it down; ``recv`` gives the party's 20 ms frames, decoded.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable
from dataclasses import dataclass, field

from smartpbx_ari.call.ports import Pcm
from smartpbx_ari.config import Settings
from smartpbx_ari.media import codecs
from smartpbx_ari.media.endpoint import PortPool, RtpEndpoint
from smartpbx_ari.media.receiver import RtpReceiver
from smartpbx_ari.telephony.ari import AriClient, AriError
from smartpbx_ari.telephony.ari_events import Channel, StasisStart

READY_TIMEOUT_S = 5.0


@dataclass
class LegTap:
    speaker: str  # "caller" | "operator"
    channel_id: str  # the party's channel
    snoop_id: str
    external_id: str
    bridge_name: str
    ready: dict[str, asyncio.Event] = field(default_factory=dict)
    bridge_id: str | None = None
    port: int | None = None
    endpoint: RtpEndpoint | None = None
    receiver: RtpReceiver | None = None

    def __post_init__(self) -> None:
        self.ready = {self.snoop_id: asyncio.Event(), self.external_id: asyncio.Event()}

    @property
    def channel_ids(self) -> tuple[str, str]:
        return self.snoop_id, self.external_id

    def on_event(self, event: object) -> None:
        if isinstance(event, StasisStart) and event.channel.id in self.ready:
            self.ready[event.channel.id].set()

    async def open(self, ari: AriClient, settings: Settings, ports: PortPool) -> None:
        cfg = settings.media
        self.port, self.endpoint = await RtpEndpoint.open_in(
            ports, cfg.bind_host, codecs.codec(cfg.format).payload_type,
            cfg.inbound_queue_frames, settings.pbx.host)
        self.receiver = RtpReceiver(self.endpoint.queue, cfg.format)
        self.bridge_id = (await ari.create_bridge("mixing", name=self.bridge_name)).id
        ext = await ari.external_media(f"{cfg.bind_host}:{self.port}", cfg.format,
                                       channel_id=self.external_id)
        self.endpoint.remote = unicast_address(ext)
        await ari.snoop(self.channel_id, self.snoop_id, spy="in", whisper="none")
        async with asyncio.timeout(READY_TIMEOUT_S):  # added before StasisStart: 422
            for ready in self.ready.values():
                await ready.wait()
        await ari.add_channel(self.bridge_id, self.snoop_id)
        await ari.add_channel(self.bridge_id, self.external_id)

    async def recv(self) -> Pcm:
        if self.receiver is None:
            raise RuntimeError(f"the {self.speaker} leg is not open")
        return await self.receiver.recv()

    async def close(self, ari: AriClient, ports: PortPool) -> None:
        for channel_id in self.channel_ids:
            await quietly(ari.hangup(channel_id))
        if self.bridge_id is not None:
            await quietly(ari.destroy_bridge(self.bridge_id))
            self.bridge_id = None
        if self.endpoint is not None:
            self.endpoint.close()
            self.endpoint = None
        if self.port is not None:
            ports.release(self.port)
            self.port = None


def unicast_address(channel: Channel) -> tuple[str, int]:
    """Where Asterisk receives an External Media channel's RTP."""
    host = channel.variables.get("UNICASTRTP_LOCAL_ADDRESS", "")
    port = channel.variables.get("UNICASTRTP_LOCAL_PORT", "")
    if not host or not port.isdigit():
        raise AriError(500, "externalMedia answered without UNICASTRTP_LOCAL_ADDRESS/PORT")
    return host, int(port)


async def quietly(call: Awaitable[None]) -> None:
    """Teardown steps: a channel or bridge already gone is not an error."""
    with contextlib.suppress(AriError, OSError, TimeoutError):
        await call
