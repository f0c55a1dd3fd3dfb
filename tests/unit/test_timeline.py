"""The pure parts of the metrics timeline: spans like 24h and the bucketed window."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

from smartpbx_ari.store.window import Window, utc
from smartpbx_ari.web.route import span_s

pytestmark = pytest.mark.unit
SEOUL = ZoneInfo("Asia/Seoul")


@pytest.mark.parametrize(("text", "seconds"), [
    ("15m", 900), ("1h", 3600), ("24h", 86400), ("7d", 604800), ("90m", 5400)])
def test_spans(text: str, seconds: int) -> None:
    assert span_s(text) == seconds


@pytest.mark.parametrize("text", ["", "h", "0h", "-1h", "1.5h", "1w", "forever", "24",
                                  "１h", "1 h", "+1h"])
def test_not_spans(text: str) -> None:
    assert span_s(text) is None


def test_the_window_ends_with_the_bucket_holding_now_and_is_aligned() -> None:
    now = datetime(2026, 11, 28, 14, 55, 12, tzinfo=UTC)
    window = Window.ending_at(now, 86400, 3600)
    assert window.count == 24
    assert window.start == datetime(2026, 11, 27, 15, 0, tzinfo=UTC)
    assert window.end == datetime(2026, 11, 28, 15, 0, tzinfo=UTC)
    assert window.starts()[-1] == datetime(2026, 11, 28, 14, 0, tzinfo=UTC)
    assert window.index(now) == 23
    assert window.index(datetime(2026, 11, 27, 15, 0, tzinfo=UTC)) == 0
    assert window.index(datetime(2026, 11, 27, 14, 59, 59, tzinfo=UTC)) is None
    assert window.index(window.end) is None
    # SQLite's naive times mean UTC; another zone is converted
    assert window.index(datetime(2026, 11, 28, 3, 30)) == 12
    assert window.index(datetime(2026, 11, 28, 12, 30, tzinfo=SEOUL)) == 12


def test_a_period_not_a_whole_number_of_buckets_rounds_up() -> None:
    window = Window.ending_at(datetime(2026, 1, 1, 0, 10, tzinfo=UTC), 3600 * 7, 3600 * 2)
    assert window.count == 4 and window.start == datetime(2025, 12, 31, 18, 0, tzinfo=UTC)


def test_days_of_a_zone_ahead_or_behind_utc() -> None:
    now = datetime(2026, 11, 28, 16, 10, tzinfo=UTC)  # 01:10 on the 29th in Seoul
    seoul = Window.ending_at(now, 7 * 86400, 86400, 9 * 3600)
    assert seoul.count == 7
    assert seoul.end.astimezone(SEOUL) == datetime(2026, 11, 30, 0, 0, tzinfo=SEOUL)
    assert seoul.start.astimezone(SEOUL) == datetime(2026, 11, 23, 0, 0, tzinfo=SEOUL)
    assert seoul.index(now) == 6
    kolkata = Window.ending_at(now, 3 * 3600, 3600, 330 * 60)  # UTC+05:30: whole local hours
    assert kolkata.starts()[-1] == datetime(2026, 11, 28, 15, 30, tzinfo=UTC)
    new_york = Window.ending_at(now, 86400, 86400, -5 * 3600)  # 11:10 on the 28th there
    assert new_york.start == datetime(2026, 11, 28, 5, 0, tzinfo=UTC)


@pytest.mark.parametrize(("period", "bucket"), [(3600, 7200), (3600, 0)])
def test_a_bucket_longer_than_the_period_or_empty_is_refused(period: int, bucket: int) -> None:
    with pytest.raises(ValueError, match="bucket"):
        Window.ending_at(datetime(2026, 1, 1, tzinfo=UTC), period, bucket)


def test_utc_keeps_the_moment() -> None:
    seoul = datetime(2026, 11, 28, 16, 31, 6, tzinfo=UTC).astimezone(SEOUL)
    assert utc(seoul) == datetime(2026, 11, 28, 16, 31, 6, tzinfo=UTC)
    assert utc(seoul).tzinfo is UTC
