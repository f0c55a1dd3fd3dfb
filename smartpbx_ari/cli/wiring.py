"""The controller's wiring behind `smartpbx serve` (cli/serve.py, once reconciled): the models,
the agent, the console and API, AMI and FastAGI, joined to the Stasis app; the console alone."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable

from smartpbx_ari.ai.agent import AIAgentService, spoken_phrases
from smartpbx_ari.ai.llm import Phraser
from smartpbx_ari.ai.rag import RAGEngine
from smartpbx_ari.call.control import Presence
from smartpbx_ari.call.conversation import VoiceConversation
from smartpbx_ari.call.engine import VoiceEngine, warm_speech
from smartpbx_ari.call.hitl import CALLBACK, HitlDesk
from smartpbx_ari.config import ConfigError, Settings
from smartpbx_ari.credentials import Credentials, load_credentials
from smartpbx_ari.events import CallEvent
from smartpbx_ari.store.db import Database
from smartpbx_ari.store.migrate import open_database
from smartpbx_ari.store.recorder import CallRecorder
from smartpbx_ari.store.rules import load_rules
from smartpbx_ari.telephony.agi import AgiServer, CallbackRequest, CallbackSink
from smartpbx_ari.telephony.ami import AmiClient
from smartpbx_ari.telephony.stasis import StasisApp
from smartpbx_ari.web.app import create_app, start_site
from smartpbx_ari.web.auth import Tokens
from smartpbx_ari.web.context import WebContext
from smartpbx_ari.web.relay import PgRelay

log = logging.getLogger("smartpbx")
AMI_USER = "smartpbx"  # asterisk-config/manager.conf


async def serve_calls(settings: Settings, app: StasisApp, early: list[CallEvent],
                      stop: asyncio.Event, loading: float) -> None:
    """Open the call record (``early``: the events before it, the app's sink until now),
    load the models, open ``app`` to calls, serve until ``stop``; then hand every call
    back to the dialplan before the console, AMI and FastAGI close, and the record last."""
    creds = load_credentials(settings.data_dir)
    db = await asyncio.to_thread(open_database, settings)
    recorder = CallRecorder(db, settings.store.buffer_limit).start()
    for event in early:
        recorder.record(event)
    app.sinks[:] = [recorder.record]
    try:
        web_ctx = await _web_context(settings, creds, db, recorder)
        async with contextlib.AsyncExitStack() as stack:
            await _wire(settings, app, web_ctx, creds, stack, loading)
            await stop.wait()
            log.info("stopping: handing back %d call(s)", len(app.sessions))
            await app.shutdown()
    finally:
        await app.shutdown()  # also when start-up failed: no caller left in silence
        await asyncio.to_thread(recorder.stop)


async def _wire(settings: Settings, app: StasisApp, web_ctx: WebContext, creds: Credentials,
                stack: contextlib.AsyncExitStack, loading: float) -> None:
    """The models, the desk, AMI, FastAGI and the console joined to ``app``, each closed
    by ``stack``; then ``app`` takes calls."""
    desk, recorder = web_ctx.desk, web_ctx.recorder
    assert recorder is not None
    voice = await VoiceEngine.load(settings, web_ctx.agent, desk)
    voice.tune_to(web_ctx.agent.retriever)
    warming = asyncio.create_task(_warm_speech(voice, web_ctx.agent), name="speech-cache")
    stack.callback(warming.cancel)
    app.sinks += [desk.observe, web_ctx.metrics.event]
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
    log.info("models loaded and the console, AMI and FastAGI up in %.1f s",
             time.monotonic() - loading)
    app.open_for_calls(lambda: VoiceConversation(voice))


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


async def serve_web(settings: Settings, stop: asyncio.Event) -> None:
    """The console and API alone (a web node, or load tests): no calls, no AMI/AGI."""
    db = await asyncio.to_thread(open_database, settings)
    recorder = CallRecorder(db, settings.store.buffer_limit).start()
    try:
        web_ctx = await _web_context(settings, load_credentials(settings.data_dir), db,
                                     recorder)
        runner = await start_site(create_app(web_ctx), settings.web.host, settings.web.port)
        try:
            await stop.wait()
        finally:
            await runner.cleanup()
    finally:
        await asyncio.to_thread(recorder.stop)


async def _web_context(settings: Settings, creds: Credentials, db: Database,
                       recorder: CallRecorder) -> WebContext:
    """The agent (its models) and the HITL desk (publishing once an app is given), around
    the database and the call recorder the caller opened (and stops, after the calls)."""
    tokens = Tokens(creds.jwt_secret, settings.web.token_ttl_s, settings.web.dev_mode)
    agent = await _agent(settings)
    desk = HitlDesk(lambda event: None)
    if settings.agent.llm_summary:
        writer = agent.phraser
        if writer is None:
            writer = await asyncio.to_thread(Phraser, settings.agent.llm_model,
                                             settings.cache_dir)
        desk.summarize = _summarizer(writer)
    web_ctx = WebContext(settings, db, agent.rag, agent, desk, tokens, recorder)
    web_ctx.feed.relay = _relay(settings)
    return web_ctx


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
    await asyncio.to_thread(rag.retriever.refresh_profile)  # not in the first call's turn
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
