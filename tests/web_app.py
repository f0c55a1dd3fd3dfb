"""The operators' web app on a real loopback port for the tests, wired as `serve` wires
it: a real RAG engine and agent (demo knowledge), SQLite, the call recorder, a HITL desk,
an event bus feeding the WebSocket feed; users of each role."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

from smartpbx_ari.ai.agent import AIAgentService
from smartpbx_ari.ai.knowledge_io import import_file
from smartpbx_ari.ai.rag import RAGEngine
from smartpbx_ari.cli.kb import demo_path
from smartpbx_ari.config import Settings, load_settings
from smartpbx_ari.events import CallEvent, EventBus
from smartpbx_ari.hitl import HitlDesk
from smartpbx_ari.store.recorder import CallRecorder
from smartpbx_ari.store.users import add_user
from smartpbx_ari.web.app import WebContext, create_app, start_site
from smartpbx_ari.web.auth import Tokens
from smartpbx_ari.web.feed import Relay

PASSWORD = "correct horse battery"
USERS = {"ada": "admin", "otto": "operator", "olga": "operator", "vic": "viewer"}


@dataclass
class WebUnderTest:
    url: str
    context: WebContext
    bus: EventBus

    def publish(self, event: CallEvent) -> None:
        """What the Stasis app does with a call event."""
        if self.context.recorder is not None:
            self.context.recorder.record(event)
        self.context.desk.observe(event)
        self.bus.publish(event)


def make_engine(data_dir: Path) -> tuple[Settings, RAGEngine]:
    settings = load_settings(environ={"SMARTPBX_DATA_DIR": str(data_dir)})
    engine = RAGEngine.open(settings)
    import_file(engine, demo_path())
    for name, role in USERS.items():
        add_user(engine.db, name, PASSWORD, role, f"{name}@example.com",
                 endpoint="2001" if name == "otto" else "")
    return settings, engine


@asynccontextmanager
async def running_web(settings: Settings, engine: RAGEngine, port: int = 0,
                      relay: Relay | None = None) -> AsyncIterator[WebUnderTest]:
    recorder = CallRecorder(engine.db).start()
    bus = EventBus()
    desk = HitlDesk(lambda e: None)
    context = WebContext(settings, engine.db, engine, AIAgentService(engine, settings.agent),
                         desk, Tokens(secrets.token_urlsafe(48), 600), recorder)
    context.feed.follow(bus.subscribe(10_000))
    context.feed.relay = relay
    runner = await start_site(create_app(context), "127.0.0.1", port)
    under_test = WebUnderTest(f"http://127.0.0.1:{runner.addresses[0][1]}", context, bus)
    desk.publish = under_test.publish
    try:
        yield under_test
    finally:
        await runner.cleanup()
        recorder.stop()
