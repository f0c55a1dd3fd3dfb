"""The soak's verdict (scripts/soak.py): what counts as a flat curve, and what fails it."""

from __future__ import annotations

import os

import pytest

from tests.fixtures.scripts import load_script

pytestmark = pytest.mark.unit
soak = load_script("soak")


def samples(values: list[float], name: str = "rss_mb") -> list[object]:
    return [soak.Sample(60.0 * i, {name: v}) for i, v in enumerate(values)]


def test_noise_around_a_level_is_flat_and_a_steady_climb_is_not() -> None:
    noisy = [500, 520, 490, 510, 505, 495, 515, 500]
    assert soak.trend(samples(noisy), "rss_mb")["flat"]
    climbing = [500 + 12 * i for i in range(8)]  # +84 MB over 7 minutes: 15 % of the mean
    verdict = soak.trend(samples(climbing), "rss_mb")
    assert not verdict["flat"]
    assert verdict["change"] == pytest.approx(84, abs=0.5)


def test_small_counts_are_judged_against_an_absolute_floor() -> None:
    # one more channel over the run is 50 % of a mean of 2, but within the floor of 2
    assert soak.trend(samples([1, 2, 2, 3, 2, 2, 3, 2], "channels"), "channels")["flat"]
    assert not soak.trend(samples([0, 1, 2, 3, 4, 5, 6, 7], "channels"), "channels")["flat"]


def test_too_few_samples_or_an_unknown_series_is_not_called_flat() -> None:
    assert not soak.trend(samples([1.0, 1.0]), "rss_mb")["flat"]
    assert not soak.trend(samples([1.0, float("nan"), 1.0, 1.0], "tasks"), "tasks")["flat"]


def report(**changes: object) -> dict[str, object]:
    flat = {"flat": True}
    base: dict[str, object] = {"unanswered": 0, "failed_calls": 0,
                               "trend": {key: flat for key in soak.SERIES},
                               "left_in_asterisk": {"channels": 0.0, "bridges": 0.0}}
    return {**base, **changes}


def test_the_verdict_needs_every_curve_flat_every_turn_answered_and_asterisk_empty() -> None:
    assert soak.passed(report())
    assert not soak.passed(report(unanswered=1))
    assert not soak.passed(report(failed_calls=1))
    assert not soak.passed(report(left_in_asterisk={"channels": 1.0, "bridges": 0.0}))
    trends = {key: {"flat": True} for key in soak.SERIES} | {"fds": {"flat": False}}
    assert not soak.passed(report(trend=trends))


def test_the_process_figures_are_read_from_proc() -> None:
    figures = soak.process_figures(os.getpid())
    assert figures["rss_mb"] > 10
    assert figures["threads"] >= 1
    assert figures["fds"] >= 3
