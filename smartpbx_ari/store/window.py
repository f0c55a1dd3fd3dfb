"""A time window cut into equal buckets aligned to the bucket (whole hours, whole days) in
UTC or at a given offset from it (the viewer's local days), the last one holding now:
pure, no clock (``now`` is given)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta


def utc(moment: datetime) -> datetime:
    """``moment`` as an aware UTC time (SQLite gives naive times, meaning UTC)."""
    return moment.astimezone(UTC) if moment.tzinfo else moment.replace(tzinfo=UTC)


@dataclass(frozen=True)
class Window:
    start: datetime  # aware UTC, a multiple of bucket_s since the epoch (+ offset)
    bucket_s: int
    count: int

    @classmethod
    def ending_at(cls, now: datetime, period_s: int, bucket_s: int,
                  offset_s: int = 0) -> Window:
        """The ceil(period / bucket) buckets up to the one holding ``now``, aligned where
        the clock ``offset_s`` ahead of UTC (UTC+09:00: 32400) shows whole buckets."""
        if bucket_s < 1 or period_s < bucket_s:
            raise ValueError("the bucket must be 1 s or more and at most the period")
        count = -(-period_s // bucket_s)
        last = (int(utc(now).timestamp()) + offset_s) // bucket_s * bucket_s - offset_s
        return cls(datetime.fromtimestamp(last - (count - 1) * bucket_s, UTC), bucket_s, count)

    @property
    def end(self) -> datetime:
        return self.start + timedelta(seconds=self.bucket_s * self.count)

    def starts(self) -> list[datetime]:
        return [self.start + timedelta(seconds=self.bucket_s * i) for i in range(self.count)]

    def index(self, moment: datetime) -> int | None:
        """The bucket holding ``moment``, None when outside the window."""
        # naive means UTC: compared as it is (no conversion for each of many rows)
        since = moment - (self.start if moment.tzinfo else self.start.replace(tzinfo=None))
        i = int(since.total_seconds() // self.bucket_s)
        return i if 0 <= i < self.count else None
