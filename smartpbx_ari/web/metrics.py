"""In-process counters in the Prometheus text format (``/metrics``)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable

from aiohttp import web

from smartpbx_ari.events import CallEvent


class Metrics:
    def __init__(self) -> None:
        self.requests: Counter[tuple[str, str, int]] = Counter()
        self.events: Counter[str] = Counter()
        self.gauges: dict[str, Callable[[], float]] = {}

    def request(self, request: web.Request, status: int) -> None:
        route = request.match_info.route.resource
        name = route.canonical if route is not None else "unmatched"
        self.requests[(request.method, name, status)] += 1

    def event(self, event: CallEvent) -> None:
        self.events[event.kind] += 1

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
        for name, read in sorted(self.gauges.items()):
            lines += [f"# TYPE smartpbx_{name} gauge", f"smartpbx_{name} {read()}"]
        return "\n".join(lines) + "\n"
