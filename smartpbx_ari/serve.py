"""`smartpbx serve`: the controller against the local PBX, stopped cleanly by signals."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal

from smartpbx_ari.config import Settings
from smartpbx_ari.credentials import load_credentials
from smartpbx_ari.events import CallEvent
from smartpbx_ari.store.db import Database
from smartpbx_ari.store.recorder import CallRecorder
from smartpbx_ari.store.rules import load_rules
from smartpbx_ari.telephony.agi import AgiServer
from smartpbx_ari.telephony.ami import AmiClient
from smartpbx_ari.telephony.ari import AriClient
from smartpbx_ari.telephony.stasis import ConversationFactory, StasisApp

log = logging.getLogger("smartpbx")
AMI_USER = "smartpbx"  # asterisk-config/manager.conf


def setup_logging(level: int = logging.INFO) -> None:
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")


def make_ari(settings: Settings) -> AriClient:
    creds = load_credentials(settings.data_dir)
    return AriClient(settings.ari_url, settings.ari.user, creds.ari_password, settings.ari.app,
                     settings.ari.reconnect_max_s)


async def serve(settings: Settings, conversation: ConversationFactory | None = None) -> None:
    """Run until SIGINT/SIGTERM; then hand back every call before returning."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    if conversation is None:
        from smartpbx_ari.voice import build_conversation_factory

        conversation = await build_conversation_factory(settings)
    db = await asyncio.to_thread(Database.from_settings, settings)  # upgrades the schema
    async with contextlib.AsyncExitStack() as stack:
        recorder = CallRecorder(db, settings.store.buffer_limit).start()
        stack.push_async_callback(asyncio.to_thread, recorder.stop)  # runs last
        ari = await stack.enter_async_context(make_ari(settings))
        app = StasisApp(settings, ari, conversation=conversation, sinks=[recorder.record])
        ami = await _start_ami(settings, recorder, app)
        stack.callback(ami.close)
        if settings.agi.enabled:
            agi = await AgiServer(lambda: asyncio.to_thread(load_rules, db), settings.agi.host,
                                  settings.agi.port, settings.agi.timezone).start()
            stack.push_async_callback(agi.close)
        runner = asyncio.create_task(app.run(), name="stasis-app")
        log.info("serving Stasis app %r on %s", settings.ari.app, settings.ari_url)
        await stop.wait()
        log.info("stopping: handing back %d call(s)", len(app.sessions))
        runner.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await runner


async def _start_ami(settings: Settings, recorder: CallRecorder, app: StasisApp) -> AmiClient:
    """Presence into the database; CDRs next to their calls; queue events to the bus."""

    def on_event(kind: str, fields: dict[str, str]) -> None:
        if kind == "Cdr":
            recorder.cdr(fields)
        elif fields.get("Uniqueid") in app.sessions or kind.startswith("Queue"):
            app.events.publish(CallEvent(fields.get("Uniqueid", ""), "queue", {
                "event": kind, "queue": fields.get("Queue", ""),
                "position": fields.get("Position", "")}))

    creds = load_credentials(settings.data_dir)
    client = AmiClient(settings.pbx.host, settings.pbx.ami_port, AMI_USER,
                       creds.ami_secret, on_event=on_event,
                       on_presence=lambda p: recorder.presence(p.endpoint, p.state, p.detail))
    return await client.start()


def run_serve(settings: Settings) -> int:
    setup_logging()
    asyncio.run(serve(settings))
    return 0
