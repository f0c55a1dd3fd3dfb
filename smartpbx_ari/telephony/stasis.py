"""The Stasis application: one :class:`CallSession` per caller channel.

A session owns everything of its call (bridge, External Media channel, RTP endpoint,
tasks) and is the only writer of its state. The app's single event reader only routes
events to sessions; it never waits on a call.
"""

from __future__ import annotations

import asyncio
import logging
import re
import secrets
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field

from smartpbx_ari.call.control import CallNotFound
from smartpbx_ari.call.ports import CallPort, Conversation, Leg, Pcm
from smartpbx_ari.config import Settings
from smartpbx_ari.events import (
    DEAD_PEER,
    AlertRaised,
    CallAnswered,
    CallEnded,
    CallEvent,
    CallStarted,
    DtmfReceived,
    EventBus,
    HandedBack,
    HandedOff,
    ListenEnded,
    ListeningIn,
    QueueChanged,
    StageFailed,
    TakenOver,
    TakeoverFailed,
)
from smartpbx_ari.media import codecs
from smartpbx_ari.media.endpoint import PortPool, RtpEndpoint, RtpStats
from smartpbx_ari.media.receiver import RtpReceiver
from smartpbx_ari.store.recordings import recordings_dir
from smartpbx_ari.telephony.ari import AriClient, AriError
from smartpbx_ari.telephony.ari_events import (
    AriEvent,
    Channel,
    ChannelDestroyed,
    ChannelDtmfReceived,
    ChannelEvent,
    ChannelHangupRequest,
    ChannelHold,
    ChannelUnhold,
    Connected,
    Disconnected,
    StasisEnd,
    StasisStart,
)
from smartpbx_ari.telephony.dead_peer import watch_peer
from smartpbx_ari.telephony.legs import LegTap, quietly, unicast_address
from smartpbx_ari.telephony.recording import CallRecordings

log = logging.getLogger(__name__)
EXTERNAL_SUFFIX = "-em"
OPERATOR_SUFFIX = "-op"
SNOOP_SUFFIX = "-sn"  # what an operator listening in hears: the caller's channel, both ways
EXTERNAL_SUFFIXES = (EXTERNAL_SUFFIX, "-emc", "-emo")  # the AI's; the caller's, operator's taps
LEG_SUFFIXES = (OPERATOR_SUFFIX, SNOOP_SUFFIX, "-snc", "-sno")
BRIDGE_PREFIX = "smartpbx-"
SETUP_TIMEOUT_S = 5.0
BUSY_LABEL = "busy"  # the dialplan's label for a call beyond capacity
ALL_BUSY = "all lines busy"
STARTING = "controller starting"  # its models still loading: the operators take the call
READY_LOG = "ready for calls"  # logged once the app takes calls (start-up waits for it)
PBX_LOST = "PBX lost"  # Asterisk went away (killed, its host down): its calls with it


@dataclass
class CallMedia:
    """The call's :class:`CallPort`: its External Media endpoint, receiver and controls."""

    call_id: str
    codec: str
    endpoint: RtpEndpoint
    receiver: RtpReceiver
    publish: Callable[[CallEvent], None]
    hand_off: Callable[[str], None]
    language: str = ""
    # set while an operator's phone is in the call: the AI listens (for the record) only
    operator: asyncio.Event = field(default_factory=asyncio.Event)
    digits: asyncio.Queue[str] = field(default_factory=lambda: asyncio.Queue(maxsize=8))
    legs: asyncio.Queue[Leg] = field(default_factory=asyncio.Queue)  # during a takeover

    async def recv(self) -> Pcm:
        return await self.receiver.recv()

    def send(self, packet: bytes) -> None:
        self.endpoint.send(packet)


ConversationFactory = Callable[[], Conversation]


def narrowband_only(native: str) -> str:
    """The G.711 codec a channel's native formats are ("(ulaw)"), or "" (G.722 among
    them, or anything else)."""
    names = set(re.findall(r"[a-z0-9]+", native.lower()))
    return next(iter(names)) if len(names) == 1 and names <= {"ulaw", "alaw"} else ""


class DrainConversation:
    """No AI: consume the caller's audio (counted in the endpoint's stats)."""

    async def run(self, port: CallPort) -> None:
        while True:
            await port.recv()


class CallSession:
    def __init__(self, app: StasisApp, caller: Channel, args: Sequence[str] = ()) -> None:
        self.app = app
        self.caller = caller
        # Stasis(app,key=value,...) from the dialplan; lang= comes from the FastAGI rules
        self.options = dict(a.split("=", 1) for a in args if "=" in a)
        self.language = self.options.get("lang", "") or caller.variables.get(
            "SMARTPBX_LANGUAGE", "")
        self.call_id = caller.id
        self.ended = asyncio.Event()
        self.end_reason = ""
        self.hand_off = False
        self.bridge_id: str | None = None
        self.external_id = caller.id + EXTERNAL_SUFFIX
        self.external_ready = asyncio.Event()
        self.port: int | None = None
        self.endpoint: RtpEndpoint | None = None
        self.stats = RtpStats()
        self.media: CallMedia | None = None
        self.operator_id = caller.id + OPERATOR_SUFFIX  # the operator's leg, if taken over
        self.operator_endpoint = ""
        self.listening = False  # the operator's leg hears the call (snoop), unheard
        self.snoop_id = caller.id + SNOOP_SUFFIX
        self.snoop_ready = asyncio.Event()
        self.listen_bridge: str | None = None
        self.taps: list[LegTap] = []  # each party alone while an operator is on the call
        self.peer_held = False  # the caller's phone holds the call (its RTP may stop)

    # ---- events from the app's reader (never block) -------------------------------
    def on_event(self, event: AriEvent) -> None:
        if not isinstance(event, ChannelEvent):
            return
        if event.channel.id == self.external_id:
            if isinstance(event, StasisStart):
                self.external_ready.set()
            return
        if event.channel.id == self.operator_id:
            self._on_operator(event)
            return
        if event.channel.id == self.snoop_id:
            if isinstance(event, StasisStart):
                self.snoop_ready.set()
            return
        for tap in self.taps:
            if event.channel.id in tap.channel_ids:
                tap.on_event(event)
                return
        if event.channel.id != self.call_id:  # a leg already taken down
            return
        if isinstance(event, ChannelHangupRequest | ChannelDestroyed):
            self.finish("caller hung up")
        elif isinstance(event, StasisEnd):
            self.finish("caller left")
        elif isinstance(event, ChannelDtmfReceived):
            self._on_dtmf(event.digit)
        elif isinstance(event, ChannelHold | ChannelUnhold):
            self.peer_held = isinstance(event, ChannelHold)

    # ---- takeover: an operator's phone joins the bridge, the AI goes quiet -----------
    async def take_over(self, endpoint: str) -> None:
        if self.listening and endpoint == self.operator_endpoint:  # from listening in
            await self._stop_listening()
            await self._join_operator()
            return
        await self._ring(endpoint, "takeover")

    async def listen(self, endpoint: str) -> None:
        """Ring the operator's phone to hear the call (caller and AI) without being heard."""
        await self._ring(endpoint, "listen")

    async def _ring(self, endpoint: str, purpose: str) -> None:
        if self.media is None or self.bridge_id is None or self.ended.is_set():
            raise AriError(409, "the call is not with the AI")
        if self.operator_endpoint:
            raise AriError(409, f"operator {self.operator_endpoint} has the call already")
        self.operator_endpoint, self.listening = endpoint, purpose == "listen"
        number = self.caller.caller_number or "caller"
        try:
            await self.app.ari.originate(f"PJSIP/{endpoint}", f"{purpose},{self.call_id}",
                                         self.operator_id, f'"Caller {number}" <{number}>')
        except AriError:
            self.operator_endpoint, self.listening = "", False
            raise

    async def hand_back(self) -> None:
        """The operator leaves; the AI answers again."""
        if self.operator_endpoint:
            await quietly(self.app.ari.hangup(self.operator_id))

    def _on_operator(self, event: ChannelEvent) -> None:
        if isinstance(event, StasisStart):
            self._spawn(self._listen_in() if self.listening else self._join_operator())
        elif isinstance(event, ChannelHangupRequest | ChannelDestroyed | StasisEnd):
            if self.listening:
                self.listening = False
                self._spawn(self._stop_listening())
                self.app.publish(ListenEnded(call_id=self.call_id,
                                             endpoint=self.operator_endpoint))
            elif self.media is not None and self.media.operator.is_set():
                self.media.operator.clear()
                self._spawn(self._untap())
                self.app.publish(HandedBack(call_id=self.call_id,
                                            endpoint=self.operator_endpoint))
            elif self.operator_endpoint:
                self.app.publish(TakeoverFailed(call_id=self.call_id,
                                                endpoint=self.operator_endpoint))
            self.operator_endpoint = ""

    async def _join_operator(self) -> None:
        if self.bridge_id is None or self.media is None:
            return
        self.media.operator.set()
        await self.app.ari.add_channel(self.bridge_id, self.operator_id)
        self.app.publish(TakenOver(call_id=self.call_id, endpoint=self.operator_endpoint))
        await self._tap()

    async def _tap(self) -> None:
        """Each party alone for the record (the bridge mixes them for the AI's ear)."""
        cid = self.call_id
        self.taps = [LegTap(speaker, channel, f"{cid}-sn{speaker[0]}", f"{cid}-em{speaker[0]}",
                            f"{BRIDGE_PREFIX}leg-{speaker}-{cid}")
                     for speaker, channel in (("caller", cid), ("operator", self.operator_id))]
        self.app.route(self, *(i for tap in self.taps for i in tap.channel_ids))
        try:
            for tap in self.taps:
                await tap.open(self.app.ari, self.app.settings, self.app.ports)
        except (AriError, OSError, TimeoutError) as err:  # the record keeps the mix
            log.warning("call=%s legs apart failed: %s", cid, err)
            await self._untap()
            return
        if self.media is not None:
            for tap in self.taps:
                self.media.legs.put_nowait(tap)

    async def _untap(self) -> None:
        taps, self.taps = self.taps, []
        for tap in taps:
            await tap.close(self.app.ari, self.app.ports)
            self.app.unroute(*tap.channel_ids)

    async def _listen_in(self) -> None:
        """The operator answered: a bridge of their phone and a snoop on the caller's
        channel (spy both, whisper none): they hear caller and AI, nobody hears them."""
        ari = self.app.ari
        try:
            bridge = await ari.create_bridge("mixing",
                                             name=f"{BRIDGE_PREFIX}listen-{self.call_id}")
            self.listen_bridge = bridge.id
            await ari.snoop(self.call_id, self.snoop_id, spy="both", whisper="none")
            await asyncio.wait_for(self.snoop_ready.wait(), SETUP_TIMEOUT_S)
            await ari.add_channel(bridge.id, self.snoop_id)
            await ari.add_channel(bridge.id, self.operator_id)
        except (AriError, TimeoutError) as err:  # the operator hears nothing: hang them up
            log.warning("call=%s listen-in failed: %s", self.call_id, err)
            await quietly(ari.hangup(self.operator_id))
            return
        self.app.publish(ListeningIn(call_id=self.call_id, endpoint=self.operator_endpoint))

    async def _stop_listening(self) -> None:
        self.listening = False
        bridge, self.listen_bridge = self.listen_bridge, None
        if bridge is None:
            return
        await quietly(self.app.ari.remove_channel(bridge, self.operator_id))
        await quietly(self.app.ari.destroy_bridge(bridge))
        await quietly(self.app.ari.hangup(self.snoop_id))
        self.snoop_ready.clear()

    def _spawn(self, coro: Awaitable[None]) -> None:
        task = asyncio.ensure_future(coro)
        self.app._tasks.add(task)
        task.add_done_callback(self.app._tasks.discard)

    def _on_dtmf(self, digit: str) -> None:
        self.app.publish(DtmfReceived(call_id=self.call_id, digit=digit))
        if digit == "0":  # the operators see who is coming to the queue
            self.app.publish(AlertRaised(call_id=self.call_id, alert_id=secrets.token_hex(8),
                                         reason="dtmf_0"))
            self.request_hand_off("caller pressed 0")
        elif self.media is not None and not self.media.digits.full():
            self.media.digits.put_nowait(digit)  # e.g. 1/2 answer a clarifying question

    def request_hand_off(self, reason: str) -> None:
        """Leave Stasis so the dialplan sends the caller on (the operators' queue)."""
        self.hand_off = True
        self.finish(reason)

    def finish(self, reason: str) -> None:
        if not self.ended.is_set():
            self.end_reason = reason
            self.ended.set()

    # ---- lifecycle ----------------------------------------------------------------
    async def run(self) -> None:
        self.app.publish(CallStarted(call_id=self.call_id, caller=self.caller.caller_number,
                                     exten=self.caller.exten, language=self.language))
        try:
            await asyncio.wait_for(self._setup(), SETUP_TIMEOUT_S)
            assert self.media is not None
            async with asyncio.TaskGroup() as tg:
                talk = tg.create_task(self.app.conversation().run(self.media),
                                      name=f"call:{self.call_id}:conversation")
                peer = tg.create_task(self._watch_peer(), name=f"call:{self.call_id}:peer")
                await self.ended.wait()
                talk.cancel()
                peer.cancel()
        except* AriError as group:
            self.end_reason = f"ARI error: {group.exceptions[0]}"
            log.warning("call=%s setup/run failed: %s", self.call_id, group.exceptions[0])
            self.hand_off = True
        except* TimeoutError:
            self.end_reason = "setup timed out"
            self.hand_off = True
        finally:
            await asyncio.shield(self._teardown())

    async def _watch_peer(self) -> None:
        """End the call when the caller's phone sends no RTP for ``media.dead_peer_s``."""
        dead_s = self.app.settings.media.dead_peer_s
        if not dead_s:
            return
        silent = await watch_peer(self.app.ari, self.call_id, dead_s, lambda: self.peer_held)
        if silent is not None:
            log.warning("call=%s: no RTP from the caller for %.1f s: hanging up",
                        self.call_id, silent)
            self.finish(DEAD_PEER)

    async def _setup(self) -> None:
        ari, cfg = self.app.ari, self.app.settings.media
        await ari.answer(self.call_id)
        self.app.publish(CallAnswered(call_id=self.call_id))
        bridge = await ari.create_bridge("mixing", name=BRIDGE_PREFIX + self.call_id)
        self.bridge_id = bridge.id
        fmt = await self._line_format()
        pt = codecs.codec(fmt).payload_type
        self.port, self.endpoint = await RtpEndpoint.open_in(
            self.app.ports, cfg.bind_host, pt, cfg.inbound_queue_frames,
            self.app.settings.pbx.host)
        ext = await ari.external_media(f"{cfg.bind_host}:{self.port}", fmt,
                                       channel_id=self.external_id)
        self.endpoint.remote = unicast_address(ext)
        await self.external_ready.wait()  # adding it before its StasisStart gives 422
        await ari.add_channel(bridge.id, self.call_id)
        await ari.add_channel(bridge.id, self.external_id)
        await self.app.recordings.start(self.call_id, bridge.id)
        self.media = CallMedia(self.call_id, fmt, self.endpoint,
                               RtpReceiver(self.endpoint.queue, fmt),
                               self.app.publish, self.request_hand_off, language=self.language)

    async def _line_format(self) -> str:
        """The call's External Media format: ``media.format``, or the caller's own G.711
        codec when that is all its line carries (``media.follow_caller``)."""
        cfg = self.app.settings.media
        if not cfg.follow_caller:
            return cfg.format
        native = await self.app.ari.get_variable(self.call_id, "CHANNEL(audionativeformat)")
        return narrowband_only(native) or cfg.format

    async def _teardown(self) -> None:
        ari = self.app.ari
        if self.endpoint is not None:
            self.stats = self.endpoint.stats
            self.endpoint.close()
        await quietly(ari.hangup(self.external_id))
        await self._stop_listening()
        await self._untap()
        if self.operator_endpoint:
            await quietly(ari.hangup(self.operator_id))
        if self.bridge_id is not None:
            await quietly(ari.destroy_bridge(self.bridge_id))
            self.app.recordings.finish(self.call_id)  # the bridge's recording ends with it
        if self.port is not None:
            self.app.ports.release(self.port)
        await self._release_caller()
        self.app.publish(CallEnded(call_id=self.call_id, reason=self.end_reason,
                                   rx_packets=self.stats.rx_packets,
                                   rx_bytes=self.stats.rx_payload_bytes,
                                   tx_packets=self.stats.tx_packets))
        self.app.forget(self)

    async def _release_caller(self) -> None:
        """Hand the caller back to the dialplan (operators) or leave a hung-up call alone."""
        to_queue = self.end_reason not in ("caller hung up", "caller left") and \
            (self.hand_off or self.app.stopping)
        self.app.recordings.handed_off(self.call_id, to_queue)
        if self.end_reason in ("caller hung up", "caller left"):
            return
        if to_queue:
            await quietly(self.app.ari.continue_in_dialplan(self.call_id))
            self.app.publish(HandedOff(call_id=self.call_id, reason=self.end_reason))
        else:
            await quietly(self.app.ari.hangup(self.call_id))


class StasisApp:
    def __init__(self, settings: Settings, ari: AriClient, events: EventBus | None = None,
                 conversation: ConversationFactory = DrainConversation,
                 sinks: Sequence[Callable[[CallEvent], None]] = (), ready: bool = True) -> None:
        self.settings = settings
        self.sinks = list(sinks)  # called with every event, in order (the call record)
        self.ari = ari
        self.events = events or EventBus()
        self.conversation = conversation
        self.ports = PortPool(settings.media.port_start, settings.media.port_end)
        self.sessions: dict[str, CallSession] = {}
        self._routes: dict[str, CallSession] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self.stopping = False
        # False while the controller loads its models: new callers go to the operators
        self.ready = ready
        self.reconciled = asyncio.Event()  # set by each reconcile (the first: orphans rescued)
        self.recordings = CallRecordings(ari, recordings_dir(settings),
                                         settings.store.record_calls)

    def open_for_calls(self, conversation: ConversationFactory) -> None:
        """The models are loaded: new callers talk to ``conversation`` from now on."""
        self.conversation = conversation
        self.ready = True
        log.info("Stasis app %r on %s: %s", self.ari.app, self.ari.base_url, READY_LOG)

    def publish(self, event: CallEvent) -> None:
        log.log(logging.WARNING if isinstance(event, StageFailed) else logging.INFO, "%s",
                event.line())
        for sink in self.sinks:
            sink(event)
        self.events.publish(event)

    def has_call(self, call_id: str) -> bool:
        return call_id in self.sessions

    async def take_over(self, call_id: str, endpoint: str) -> None:
        """Ring ``PJSIP/<endpoint>``; when the operator answers, bridge them with the
        caller and silence the AI (it keeps transcribing for the record)."""
        session = self.sessions.get(call_id)
        if session is None:
            raise CallNotFound(call_id)
        await session.take_over(endpoint)

    async def listen(self, call_id: str, endpoint: str) -> None:
        """Ring ``PJSIP/<endpoint>`` to hear the call silently; ``take_over`` with the
        same endpoint then joins it to the call."""
        session = self.sessions.get(call_id)
        if session is None:
            raise CallNotFound(call_id)
        await session.listen(endpoint)

    def listener(self, call_id: str) -> str:
        session = self.sessions.get(call_id)
        return session.operator_endpoint if session is not None and session.listening else ""

    async def hand_back(self, call_id: str) -> None:
        session = self.sessions.get(call_id)
        if session is None:
            raise CallNotFound(call_id)
        await session.hand_back()

    async def hang_up(self, call_id: str) -> None:
        session = self.sessions.get(call_id)
        if session is None:
            raise CallNotFound(call_id)
        session.finish("an operator hung up")

    def active_tasks(self) -> list[asyncio.Task[None]]:
        """The task registry: every live call task (a hung-up call leaves none)."""
        return [t for t in self._tasks if not t.done()]

    async def run(self) -> None:
        """Route events until cancelled; on cancel, release every call first."""
        try:
            async for event in self.ari.events():
                await self.dispatch(event)
        finally:
            await self.shutdown()

    async def dispatch(self, event: AriEvent) -> None:
        if isinstance(event, Connected):  # before any event of this connection
            await self.reconcile()
            return
        if isinstance(event, Disconnected):
            task = asyncio.create_task(self._watch_pbx(), name="pbx-lost")
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
            return
        routed = self._routes.get(event.channel.id) if isinstance(event, ChannelEvent) else None
        if routed is not None:  # a leg of a call we run (External Media, an operator)
            routed.on_event(event)
            return
        if isinstance(event, StasisStart) and not event.channel.is_external_media:
            self._start(event.channel, event.args)

    def _start(self, caller: Channel, args: Sequence[str] = ()) -> None:
        if caller.id in self.sessions or self.stopping:
            return
        if not self.ready or len(self.sessions) >= self.settings.media.capacity:
            reason, label = (ALL_BUSY, BUSY_LABEL) if self.ready else (STARTING, None)
            task = asyncio.create_task(self._send_on(caller, reason, label),
                                       name=f"send-on:{caller.id}")
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
            return
        session = CallSession(self, caller, args)
        self.sessions[caller.id] = session
        self._routes[caller.id] = session
        self._routes[session.external_id] = session
        self._routes[session.operator_id] = session
        self._routes[session.snoop_id] = session
        task = asyncio.create_task(session.run(), name=f"call:{caller.id}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def route(self, session: CallSession, *channel_ids: str) -> None:
        """Events of these channels (legs the session added) go to ``session``."""
        for channel_id in channel_ids:
            self._routes[channel_id] = session

    def unroute(self, *channel_ids: str) -> None:
        for channel_id in channel_ids:
            self._routes.pop(channel_id, None)

    async def _send_on(self, caller: Channel, reason: str, label: str | None) -> None:
        """A caller the AI does not take, straight on to the operators' queue. Beyond
        capacity the dialplan's ``busy`` label first says "all our lines are busy"; while
        the models load (``label`` None) the dialplan's next step after Stasis, the queue,
        as when no controller is connected at all. The calls in progress go on."""
        self.publish(CallStarted(call_id=caller.id, caller=caller.caller_number,
                                 exten=caller.exten))
        self.recordings.handed_off(caller.id, to_queue=True)
        if label is None:
            await quietly(self.ari.continue_in_dialplan(caller.id))
        else:
            await quietly(self.ari.continue_in_dialplan(caller.id, caller.context,
                                                        caller.exten, label=label))
        self.publish(HandedOff(call_id=caller.id, reason=reason))

    async def _watch_pbx(self) -> None:
        """After the WebSocket drops: while Asterisk still answers REST, wait for the
        reconnect (and its reconcile); once it does not, its calls are over: each ends
        with PBX_LOST in the record instead of waiting for a PBX that is gone."""
        while not self.ari.connected.is_set():
            await asyncio.sleep(self.settings.ari.lost_after_s)
            if self.ari.connected.is_set() or await self.ari.reachable():
                continue
            if self.sessions:
                log.warning("Asterisk at %s is gone: ending its %d call(s)",
                            self.settings.ari_url, len(self.sessions))
            for session in list(self.sessions.values()):
                session.finish(PBX_LOST)
            return

    def ami_event(self, kind: str, fields: dict[str, str]) -> None:
        """An AMI event: a call's end (its CDR) keeps its queue part's recording; queue
        events (and any about our calls) go to the bus."""
        if kind == "Cdr":
            self.recordings.call_over(fields.get("UniqueID", ""))
        elif fields.get("Uniqueid") in self.sessions or kind.startswith("Queue"):
            self.events.publish(QueueChanged(call_id=fields.get("Uniqueid", ""), event=kind,
                                             queue=fields.get("Queue", ""),
                                             position=fields.get("Position", "")))

    def forget(self, session: CallSession) -> None:
        self.sessions.pop(session.call_id, None)
        self._routes.pop(session.call_id, None)
        self._routes.pop(session.external_id, None)
        self._routes.pop(session.operator_id, None)
        self._routes.pop(session.snoop_id, None)

    async def reconcile(self) -> None:
        """Match Asterisk's state to ours after (re)connecting.

        Sessions whose caller vanished end; callers left in our Stasis app by a dead
        controller go back to the dialplan (the operators), never left in silence; their
        orphaned External Media channels and bridges are removed. One controller per
        Asterisk is assumed: another controller's calls would look orphaned. Sets
        :attr:`reconciled` when done (or failed): start-up waits for that rescue.
        """
        try:
            await self._reconcile()
        finally:
            self.reconciled.set()

    async def _reconcile(self) -> None:
        try:
            channels = await self.ari.channels()
            bridges = await self.ari.bridges()
        except AriError as err:
            log.warning("reconcile failed: %s", err)
            return
        alive = {c.id for c in channels}
        for session in list(self.sessions.values()):
            if session.call_id not in alive:
                session.finish("caller hung up")
        for channel in channels:
            if channel.id in self._routes:
                continue
            if (channel.is_external_media and channel.id.endswith(EXTERNAL_SUFFIXES)) or \
                    channel.id.endswith(LEG_SUFFIXES):  # an operator's or a tap's, lost
                await quietly(self.ari.hangup(channel.id))
            elif channel.app_name == "Stasis" and channel.app_data.split(",")[0] == self.ari.app:
                log.warning("call=%s orphaned in Stasis: back to the dialplan", channel.id)
                await quietly(self.ari.continue_in_dialplan(channel.id))
        owned = {b for s in self.sessions.values()
                 for b in (s.bridge_id, s.listen_bridge, *(t.bridge_id for t in s.taps))}
        for bridge in bridges:
            if bridge.name.startswith(BRIDGE_PREFIX) and bridge.id not in owned:
                await quietly(self.ari.destroy_bridge(bridge.id))
        await self.recordings.collect(self.sessions)  # a dead controller's calls' too

    async def shutdown(self, timeout: float = 5.0) -> None:
        """Hand every call back to the dialplan, then wait for their tasks."""
        self.stopping = True
        for session in list(self.sessions.values()):
            session.finish("controller stopping")
        tasks = self.active_tasks()
        if tasks:
            await asyncio.wait(tasks, timeout=timeout)
        await self.recordings.drain(timeout)
