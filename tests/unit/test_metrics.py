"""/metrics (web/metrics.py): the exposition parses as Prometheus text and OpenMetrics,
each stage of a turn has its histogram and each event's timings land in theirs, the
process's CPU, memory and fds are there, and the counters keep their names."""

from __future__ import annotations

import pytest
from prometheus_client.openmetrics.parser import (
    text_string_to_metric_families as openmetrics_families,
)
from prometheus_client.parser import text_string_to_metric_families

from smartpbx_ari.events import CallEnded, CallStarted, Heard, Said
from smartpbx_ari.web.metrics import BUCKETS, STAGES, Metrics

pytestmark = pytest.mark.unit
C = "1764320000.1"
HISTOGRAMS = {stage: f"smartpbx_turn_{stage}_seconds" for stage in STAGES}


def parsed(metrics: Metrics) -> dict[str, dict[tuple[str, tuple[tuple[str, str], ...]], float]]:
    """Family name -> (sample name, labels) -> value, from the Prometheus text format."""
    body, content_type = metrics.exposition()
    assert content_type.startswith("text/plain; version=0.0.4")
    return {family.name: {(s.name, tuple(sorted(s.labels.items()))): s.value
                          for s in family.samples}
            for family in text_string_to_metric_families(body.decode())}


def histogram(families: dict[str, dict[tuple[str, tuple[tuple[str, str], ...]], float]],
              name: str) -> tuple[float, float, dict[str, float]]:
    """count, sum and the cumulative buckets (by ``le``) of one histogram."""
    samples = families[name]
    buckets = {dict(labels)["le"]: value for (sample, labels), value in samples.items()
               if sample == f"{name}_bucket"}
    return samples[(f"{name}_count", ())], samples[(f"{name}_sum", ())], buckets


def test_each_stage_has_an_empty_histogram_and_the_process_is_measured() -> None:
    metrics = Metrics()
    body, _ = metrics.exposition()
    families = {f.name: f for f in text_string_to_metric_families(body.decode())}
    samples = parsed(metrics)
    for name in HISTOGRAMS.values():
        assert families[name].type == "histogram"
        assert families[name].documentation  # a HELP line that says what it times
        count, total, buckets = histogram(samples, name)
        assert (count, total) == (0, 0)
        assert [float(le) for le in buckets] == [*BUCKETS, float("inf")]
    assert BUCKETS[0] == 0.01 and BUCKETS[-1] == 10.0
    for name in ("process_cpu_seconds", "process_resident_memory_bytes", "process_open_fds"):
        assert families[name].samples[0].value > 0, name


def test_a_turns_timings_land_in_their_own_histograms() -> None:
    metrics = Metrics()
    metrics.event(Heard(call_id=C, text="How do I get a refund?", pause_ms=420, queue_ms=30,
                        stt_ms=260, wait_ms=290))
    metrics.event(Said(call_id=C, text="Refunds go to your card.", agent_ms=45,
                       first_audio_ms=1300))
    families = parsed(metrics)
    seen = {stage: histogram(families, name) for stage, name in HISTOGRAMS.items()}
    assert {stage: (count, total) for stage, (count, total, _) in seen.items()} == {
        "end_of_turn_wait": (1, 0.42), "stt_queue_wait": (1, 0.03), "stt": (1, 0.26),
        "agent": (1, 0.045), "first_audio": (1, 1.3)}
    _, _, first_audio = seen["first_audio"]
    assert (first_audio["1.0"], first_audio["1.5"], first_audio["+Inf"]) == (0, 1, 1)
    _, _, agent = seen["agent"]
    assert (agent["0.025"], agent["0.05"]) == (0, 1)


def test_events_without_timings_observe_nothing() -> None:
    """A key pressed (no decode), an operator's typed answer, a leg overheard in a takeover."""
    metrics = Metrics()
    metrics.event(Heard(call_id=C, text="1", wait_ms=5))
    metrics.event(Said(call_id=C, text="We do.", speaker="operator"))
    metrics.event(Heard(call_id=C, text="Hello", speaker="operator"))
    families = parsed(metrics)
    assert [histogram(families, name)[0] for name in HISTOGRAMS.values()] == [0] * len(STAGES)
    assert families["smartpbx_call_events"][("smartpbx_call_events_total",
                                             (("kind", "heard"),))] == 2


def test_the_counters_keep_their_names_and_dispositions_start_at_zero() -> None:
    metrics = Metrics()
    for event in (CallStarted(call_id=C, at=1.0), Said(call_id=C, at=2.0, text="Hi"),
                  CallEnded(call_id=C, at=3.0, reason="caller hung up")):
        metrics.event(event)
    families = parsed(metrics)
    dispositions = families["smartpbx_call_dispositions"]
    assert dispositions[("smartpbx_call_dispositions_total", (("disposition", "ai"),))] == 1
    assert dispositions[("smartpbx_call_dispositions_total",
                         (("disposition", "taken_over"),))] == 0
    assert families["smartpbx_call_hold_seconds"][("smartpbx_call_hold_seconds_total", ())] == 0
    assert "smartpbx_http_requests" in families


def test_two_apps_in_one_process_count_apart() -> None:
    first, second = Metrics(), Metrics()
    first.event(Said(call_id=C, text="Hi", agent_ms=10))
    count = [histogram(parsed(m), HISTOGRAMS["agent"])[0] for m in (first, second)]
    assert count == [1, 0]


def test_a_scraper_asking_for_openmetrics_gets_it() -> None:
    metrics = Metrics()
    metrics.event(Heard(call_id=C, text="Hi", pause_ms=400, queue_ms=0, stt_ms=200))
    body, content_type = metrics.exposition("application/openmetrics-text; version=1.0.0")
    assert content_type.startswith("application/openmetrics-text")
    families = {f.name: f for f in openmetrics_families(body.decode())}
    counts = [s.value for s in families[HISTOGRAMS["stt"]].samples
              if s.name.endswith("_count")]
    assert counts == [1]
