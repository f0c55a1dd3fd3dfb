"""`smartpbx serve`: rescue a dead controller's callers first, then load the models and
serve calls until SIGINT/SIGTERM, handing every call back before returning.

Start-up order, for a controller its supervisor restarts after a crash: connect to ARI
and reconcile (callers orphaned in our Stasis app go on to the operators' queue) with no
model library imported yet; then the wiring (cli/wiring.py: the call record, the models,
the agent, the console, AMI, FastAGI). Callers arriving while the models load
go on to the operators too, as they do while no controller is connected at all.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import time
from collections.abc import Awaitable, Callable

from smartpbx_ari.config import Settings
from smartpbx_ari.credentials import load_credentials
from smartpbx_ari.events import CallEvent
from smartpbx_ari.telephony.ari import AriClient
from smartpbx_ari.telephony.stasis import StasisApp

log = logging.getLogger("smartpbx")
RECONCILE_WAIT_S = 5.0  # Asterisk not answering: load the models meanwhile (it reconciles later)
ServeCalls = Callable[[Settings, StasisApp, list[CallEvent], asyncio.Event, float],
                      Awaitable[None]]


def setup_logging(level: int = logging.INFO) -> None:
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")


def make_ari(settings: Settings) -> AriClient:
    creds = load_credentials(settings.data_dir)
    return AriClient(settings.ari_url, settings.ari.user, creds.ari_password, settings.ari.app,
                     settings.ari.reconnect_max_s)


async def serve(settings: Settings) -> None:
    """Run until SIGINT/SIGTERM; then hand back every call before returning."""
    stop = _stop_on_signals()
    async with make_ari(settings) as ari:
        early: list[CallEvent] = []  # for the call record, until the database is open
        app = StasisApp(settings, ari, sinks=[early.append], ready=False)
        stasis = asyncio.create_task(app.run(), name="stasis-app")
        try:
            try:
                await asyncio.wait_for(app.reconciled.wait(), RECONCILE_WAIT_S)
            except TimeoutError:
                log.warning("Asterisk at %s does not answer yet: loading the models "
                            "meanwhile (reconciling once it does)", settings.ari_url)
            log.info("loading the models; new callers go to the operators until then")
            loading = time.monotonic()
            serve_calls = await asyncio.to_thread(_wiring)  # the models' libraries: seconds
            await serve_calls(settings, app, early, stop, loading)
        finally:
            await _halt(app, stasis)


async def _halt(app: StasisApp, stasis: asyncio.Task[None]) -> None:
    """Stop routing events and hand every call back to the dialplan (the operators)."""
    if app.sessions:  # not handed back yet (start-up failed)
        log.info("stopping: handing back %d call(s)", len(app.sessions))
    stasis.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await stasis


def _wiring() -> ServeCalls:
    from smartpbx_ari.cli.wiring import serve_calls

    return serve_calls


async def _serve_web(settings: Settings) -> None:
    from smartpbx_ari.cli.wiring import serve_web

    await serve_web(settings, _stop_on_signals())


def _stop_on_signals() -> asyncio.Event:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    return stop


def run_serve(settings: Settings, web_only: bool = False) -> int:
    setup_logging()
    asyncio.run(_serve_web(settings) if web_only else serve(settings))
    return 0
