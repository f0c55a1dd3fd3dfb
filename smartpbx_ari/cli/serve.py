"""`smartpbx serve`: the controller against the local PBX, stopped cleanly by signals."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import AsyncIterator, Awaitable, Callable

from smartpbx_ari.ai.agent import AIAgentService, spoken_phrases
from smartpbx_ari.ai.llm import Phraser
from smartpbx_ari.ai.rag import RAGEngine
from smartpbx_ari.call.control import Presence
from smartpbx_ari.call.conversation import VoiceConversation
from smartpbx_ari.call.engine import VoiceEngine, warm_speech
from smartpbx_ari.call.hitl import CALLBACK, HitlDesk
from smartpbx_ari.config import ConfigError, Settings
from smartpbx_ari.credentials import Credentials, load_credentials
from smartpbx_ari.store.migrate import open_database
from smartpbx_ari.store.recorder import CallRecorder
from smartpbx_ari.store.rules import load_rules
from smartpbx_ari.telephony.agi import AgiServer, CallbackRequest, CallbackSink
from smartpbx_ari.telephony.ami import AmiClient
from smartpbx_ari.telephony.ari import AriClient
from smartpbx_ari.telephony.stasis import StasisApp
from smartpbx_ari.web.app import create_app, start_site
from smartpbx_ari.web.auth import Tokens
from smartpbx_ari.web.context import WebContext
from smartpbx_ari.web.relay import PgRelay

log = logging.getLogger("smartpbx")
AMI_USER = "smartpbx"  # asterisk-config/manager.conf


def setup_logging(level: int = logging.INFO) -> None:
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")


def make_ari(settings: Settings) -> AriClient:
    creds = load_credentials(settings.data_dir)
    return AriClient(settings.ari_url, settings.ari.user, creds.ari_password, settings.ari.app,
                     settings.ari.reconnect_max_s)


async def serve(settings: Settings) -> None:
    """Run until SIGINT/SIGTERM; then hand back every call before returning."""
    stop = _stop_on_signals()
    creds = load_credentials(settings.data_dir)
    async with _web_context(settings, creds) as web_ctx, contextlib.AsyncExitStack() as stack:
        desk, recorder = web_ctx.desk, web_ctx.recorder
        assert recorder is not None
        voice = await VoiceEngine.load(settings, web_ctx.agent, desk)
        voice.tune_to(web_ctx.agent.retriever)
        warming = asyncio.create_task(_warm_speech(voice, web_ctx.agent), name="speech-cache")
        stack.callback(warming.cancel)
        ari = await stack.enter_async_context(make_ari(settings))
        app = StasisApp(settings, ari, conversation=lambda: VoiceConversation(voice),
                        sinks=[recorder.record, desk.observe, web_ctx.metrics.event])
        desk.publish = app.publish
        web_ctx.calls = app
        web_ctx.feed.follow(app.events.subscribe(10_000))
        ami = await _start_ami(settings, creds.ami_secret, recorder, app, web_ctx)
        stack.callback(ami.close)
        web_ctx.presence = lambda: ami.presence
        if settings.agi.enabled:
            agi = await AgiServer(lambda: asyncio.to_thread(load_rules, web_ctx.db),
                                  settings.agi.host,
                                  settings.agi.port, settings.agi.timezone,
                                  on_callback=callback_alerts(desk)).start()
            stack.push_async_callback(agi.close)
        if settings.web.enabled:
            runner = await start_site(create_app(web_ctx), settings.web.host, settings.web.port)
            stack.push_async_callback(runner.cleanup)
        stasis = asyncio.create_task(app.run(), name="stasis-app")
        log.info("serving Stasis app %r on %s", settings.ari.app, settings.ari_url)
        await stop.wait()
        log.info("stopping: handing back %d call(s)", len(app.sessions))
        stasis.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await stasis


def callback_alerts(desk: HitlDesk) -> CallbackSink:
    """A number left in the operators' queue becomes a callback alert in the console."""

    def raise_callback(request: CallbackRequest) -> None:
        desk.raise_alert(request.call_id, CALLBACK, request.number)

    return raise_callback


async def _warm_speech(voice: VoiceEngine, agent: AIAgentService) -> None:
    """Stored answers and holding phrases into the speech cache, behind the calls."""
    try:
        new = await warm_speech(voice.tts, await asyncio.to_thread(spoken_phrases,
                                                                    agent.rag.db))
    except Exception as err:  # a failing voice must not stop the controller
        log.warning("speech cache: warming failed (%s: %s)", type(err).__name__, err)
        return
    log.info("speech cache: %d new phrase(s) synthesized; answers start from the cache", new)


async def serve_web(settings: Settings) -> None:
    """The console and API alone (a web node, or load tests): no calls, no AMI/AGI."""
    stop = _stop_on_signals()
    async with _web_context(settings, load_credentials(settings.data_dir)) as web_ctx:
        runner = await start_site(create_app(web_ctx), settings.web.host, settings.web.port)
        try:
            await stop.wait()
        finally:
            await runner.cleanup()


def _stop_on_signals() -> asyncio.Event:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    return stop


@contextlib.asynccontextmanager
async def _web_context(settings: Settings, creds: Credentials) -> AsyncIterator[WebContext]:
    """The database (schema upgraded), the agent, the call recorder (stopped last, after
    the calls were handed back) and the HITL desk (publishing once an app is given)."""
    tokens = Tokens(creds.jwt_secret, settings.web.token_ttl_s, settings.web.dev_mode)
    db = await asyncio.to_thread(open_database, settings)
    agent = await _agent(settings)
    recorder = CallRecorder(db, settings.store.buffer_limit).start()
    desk = HitlDesk(lambda event: None)
    if settings.agent.llm_summary:
        writer = agent.phraser
        if writer is None:
            writer = await asyncio.to_thread(Phraser, settings.agent.llm_model,
                                             settings.cache_dir)
        desk.summarize = _summarizer(writer)
    web_ctx = WebContext(settings, db, agent.rag, agent, desk, tokens, recorder)
    web_ctx.feed.relay = _relay(settings)
    try:
        yield web_ctx
    finally:
        await asyncio.to_thread(recorder.stop)


def _summarizer(writer: Phraser) -> Callable[[str], Awaitable[str]]:
    """agent.llm_summary: the LLM's faithful note on an alert's summary, off the loop."""
    async def summarize(notes: str) -> str:
        return await asyncio.to_thread(writer.summary_line, notes)
    return summarize


def _relay(settings: Settings) -> PgRelay | None:
    if settings.web.events != "postgres":
        return None
    if not settings.database_url.startswith("postgresql"):
        raise ConfigError("web.events: 'postgres' needs database_url = "
                          "postgresql+psycopg://... (the events travel through it)")
    return PgRelay(settings.database_url)


async def _agent(settings: Settings) -> AIAgentService:
    rag = await asyncio.to_thread(RAGEngine.open, settings)
    phraser = None
    if settings.agent.llm_phrasing:
        phraser = await asyncio.to_thread(Phraser, settings.agent.llm_model, settings.cache_dir)
    return AIAgentService(rag, settings.agent, phraser=phraser)


async def _start_ami(settings: Settings, secret: str, recorder: CallRecorder, app: StasisApp,
                     web_ctx: WebContext) -> AmiClient:
    """Presence into the database and to the console; CDRs next to their calls; queue
    events and calls' ends to the Stasis app."""
    pending: set[asyncio.Task[object]] = set()

    def on_presence(p: Presence) -> None:
        recorder.presence(p.endpoint, p.state, p.detail)
        task = asyncio.ensure_future(web_ctx.feed.push(
            {"type": "presence", "endpoint": p.endpoint, "state": p.state}))
        pending.add(task)
        task.add_done_callback(pending.discard)

    def on_event(kind: str, fields: dict[str, str]) -> None:
        if kind == "Cdr":
            recorder.cdr(fields)
        app.ami_event(kind, fields)

    client = AmiClient(settings.pbx.host, settings.pbx.ami_port, AMI_USER, secret,
                       on_event=on_event, on_presence=on_presence)
    return await client.start()


def run_serve(settings: Settings, web_only: bool = False) -> int:
    setup_logging()
    asyncio.run(serve_web(settings) if web_only else serve(settings))
    return 0
