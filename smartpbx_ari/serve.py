"""`smartpbx serve`: the controller against the local PBX, stopped cleanly by signals."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import AsyncIterator

from smartpbx_ari.config import Settings
from smartpbx_ari.credentials import load_credentials
from smartpbx_ari.store.db import Database
from smartpbx_ari.store.recorder import CallRecorder
from smartpbx_ari.telephony.ari import AriClient
from smartpbx_ari.telephony.stasis import ConversationFactory, StasisApp

log = logging.getLogger("smartpbx")


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
    recorder = CallRecorder(db, settings.store.buffer_limit).start()
    async with make_ari(settings) as ari, _stopping(recorder):
        app = StasisApp(settings, ari, conversation=conversation, sinks=[recorder.record])
        runner = asyncio.create_task(app.run(), name="stasis-app")
        log.info("serving Stasis app %r on %s", settings.ari.app, settings.ari_url)
        await stop.wait()
        log.info("stopping: handing back %d call(s)", len(app.sessions))
        runner.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await runner


@contextlib.asynccontextmanager
async def _stopping(recorder: CallRecorder) -> AsyncIterator[None]:
    try:
        yield
    finally:  # after the calls were handed back: their last events are queued
        await asyncio.to_thread(recorder.stop)


def run_serve(settings: Settings) -> int:
    setup_logging()
    asyncio.run(serve(settings))
    return 0
