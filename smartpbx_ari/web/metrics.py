"""In-process counters in the Prometheus text format (``/metrics``)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable

from aiohttp import web

from smartpbx_ari.events import CallEvent
from smartpbx_ari.store.disposition import Disposition, Dispositions


class Metrics:
    def __init__(self) -> None:
        self.requests: Counter[tuple[str, str, int]] = Counter()
        self.events: Counter[str] = Counter()
        self.gauges: dict[str, Callable[[], float]] = {}
        self.outcomes = Dispositions()
        self.dispositions: Counter[str] = Counter({str(d): 0 for d in Disposition})
        self.held_s = 0.0  # seconds callers held for an operator's answer, all calls

    def request(self, request: web.Request, status: int) -> None:
        route = request.match_info.route.resource
        name = route.canonical if route is not None else "unmatched"
        self.requests[(request.method, name, status)] += 1

    def event(self, event: CallEvent) -> None:
        self.events[event.kind] += 1
        outcome = self.outcomes.observe(event)
        if outcome is not None:
            self.dispositions[outcome.disposition] += 1
            self.held_s += outcome.hold_s or 0.0

    def render(self) -> str:
        lines = ["# HELP smartpbx_http_requests_total HTTP requests by route and status",
                 "# TYPE smartpbx_http_requests_total counter"]
        for (method, route, status), n in sorted(self.requests.items()):
            lines.append(f'smartpbx_http_requests_total{{method="{method}",route="{route}",'
                         f'status="{status}"}} {n}')
        lines += ["# HELP smartpbx_call_events_total call events by kind",
                  "# TYPE smartpbx_call_events_total counter"]
        lines += [f'smartpbx_call_events_total{{kind="{k}"}} {n}'
                  for k, n in sorted(self.events.items())]
        lines += ["# HELP smartpbx_call_dispositions_total ended calls by disposition",
                  "# TYPE smartpbx_call_dispositions_total counter"]
        lines += [f'smartpbx_call_dispositions_total{{disposition="{d}"}} {n}'
                  for d, n in sorted(self.dispositions.items())]
        lines += ["# HELP smartpbx_call_hold_seconds_total time callers held for an "
                  "operator's answer", "# TYPE smartpbx_call_hold_seconds_total counter",
                  f"smartpbx_call_hold_seconds_total {round(self.held_s, 3)}"]
        for name, read in sorted(self.gauges.items()):
            lines += [f"# TYPE smartpbx_{name} gauge", f"smartpbx_{name} {read()}"]
        return "\n".join(lines) + "\n"
