"""The controller's Prometheus metrics (``/metrics``), with ``prometheus_client``: HTTP
requests, call events, dispositions and hold time, how long each stage of an answered turn
took (histograms), the process's CPU, memory and file descriptors, and its asyncio tasks
and threads (which a soak watches for leaks).

Everything lives in a registry of this ``Metrics``'s own (never the library's global one),
so two apps in one process (the tests) count apart. The call path knows nothing of this:
the stages arrive as fields of its events (``Heard``, ``Said``), in milliseconds.
"""

from __future__ import annotations

import asyncio
import math
import threading

from aiohttp import web
from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    PlatformCollector,
    ProcessCollector,
)
from prometheus_client.exposition import choose_encoder

from smartpbx_ari.events import CallEvent, Heard, Said
from smartpbx_ari.store.disposition import Disposition, Dispositions

# 10 ms .. 10 s: a decoder slot free at once to a queue of many utterances
BUCKETS = (0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 1.5, 2.0,
           3.0, 5.0, 7.5, 10.0)
# stage -> what it times; each is the histogram smartpbx_turn_<stage>_seconds
STAGES = {
    "end_of_turn_wait": "the caller's silence waited out before the turn ended "
                        "(speech end -> turn ended)",
    "stt_queue_wait": "turn ended -> decoding began (0: an eager decode began first)",
    "stt": "decoding the utterance",
    "agent": "question -> reply chosen",
    "first_audio": "reply chosen -> its first audio sent",
}


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        ProcessCollector(registry=self.registry)
        PlatformCollector(registry=self.registry)
        self.requests = Counter("smartpbx_http_requests", "HTTP requests by route and status",
                                ["method", "route", "status"], registry=self.registry)
        self.events = Counter("smartpbx_call_events", "call events by kind", ["kind"],
                              registry=self.registry)
        self.dispositions = Counter("smartpbx_call_dispositions",
                                    "ended calls by disposition", ["disposition"],
                                    registry=self.registry)
        for disposition in Disposition:  # each at 0 from the start
            self.dispositions.labels(str(disposition))
        self.held = Counter("smartpbx_call_hold_seconds",
                            "time callers held for an operator's answer",
                            registry=self.registry)
        self.stages = {stage: Histogram(f"smartpbx_turn_{stage}_seconds", help_, buckets=BUCKETS,
                                        registry=self.registry)
                       for stage, help_ in STAGES.items()}
        self.outcomes = Dispositions()
        # read on each scrape (on the event loop): what a soak watches for leaks
        Gauge("smartpbx_asyncio_tasks", "asyncio tasks alive in the controller",
              registry=self.registry).set_function(_tasks)
        Gauge("smartpbx_threads", "threads alive in the controller",
              registry=self.registry).set_function(threading.active_count)

    def request(self, request: web.Request, status: int) -> None:
        route = request.match_info.route.resource
        name = route.canonical if route is not None else "unmatched"
        self.requests.labels(request.method, name, str(status)).inc()

    def event(self, event: CallEvent) -> None:
        self.events.labels(event.kind.value).inc()
        outcome = self.outcomes.observe(event)
        if outcome is not None:
            self.dispositions.labels(str(outcome.disposition)).inc()
            self.held.inc(outcome.hold_s or 0.0)
        match event:
            case Heard():
                self._stage("end_of_turn_wait", event.pause_ms)
                self._stage("stt_queue_wait", event.queue_ms)
                self._stage("stt", event.stt_ms)
            case Said():
                self._stage("agent", event.agent_ms)
                self._stage("first_audio", event.first_audio_ms)

    def _stage(self, stage: str, ms: int | None) -> None:
        if ms is not None:
            self.stages[stage].observe(ms / 1000)

    def exposition(self, accept: str = "") -> tuple[bytes, str]:
        """The registry in the format the ``Accept`` header asks for (Prometheus text,
        or OpenMetrics), and its content type."""
        encoder, content_type = choose_encoder(accept)
        return encoder(self.registry), content_type


def _tasks() -> float:
    try:
        return len(asyncio.all_tasks())
    except RuntimeError:  # scraped off the event loop (a test): unknown
        return math.nan
