"""The window a digest covers: an ISO week or any [since, until) range, in UTC.

A period is half-open like every window in kvmarm: a mail belongs to it when its Date header
(in UTC) is ``>= since`` and ``< until``.  ISO weeks start on Monday 00:00 UTC.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

from storage.messages import iso

_WEEK_RE = re.compile(r"^\s*(\d{4})-?W(\d{1,2})\s*$", re.I)
_DAYS_RE = re.compile(r"^\s*(\d{1,3})\s*d\s*$", re.I)


class PeriodError(ValueError):
    """A week, range or age that does not name a valid period."""


# Periods lie within these bounds: mail dates are checked against them, and a digest works a
# little before and after its period (a day early for the pull, earlier summaries).
EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
LATEST = datetime(9999, 1, 1, tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class Period:
    since: datetime  # inclusive, aware UTC
    until: datetime  # exclusive, aware UTC
    iso_week: str | None = None  # "2022-W07" when the period is exactly that ISO week

    def __post_init__(self) -> None:
        for value in (self.since, self.until):
            if value.tzinfo is None or value.utcoffset() != timedelta(0):
                raise PeriodError(f"period bounds must be aware UTC datetimes, not {value!r}")
        if self.until <= self.since:
            raise PeriodError(f"empty period: {self.since} .. {self.until}")
        if self.since < EARLIEST or self.until > LATEST:
            raise PeriodError(
                f"period {iso(self.since)} .. {iso(self.until)} is outside the dates kvmarm "
                f"handles ({EARLIEST.date()} .. {LATEST.date()})"
            )

    @property
    def key(self) -> str:
        """Stable name of the period: the ISO week, else ``since/until`` in ISO UTC."""
        return self.iso_week or f"{iso(self.since)}/{iso(self.until)}"

    @property
    def last_day(self) -> date:
        """The last calendar day (UTC) the period touches."""
        return (self.until - timedelta(microseconds=1)).date()

    def contains(self, when: datetime) -> bool:
        return self.since <= when < self.until

    def contains_iso(self, when: str) -> bool:
        """Same for an ISO UTC string as stored ("2022-02-07T15:20:29Z")."""
        return iso(self.since) <= when < iso(self.until)

    def as_dict(self) -> dict:
        return {
            "key": self.key,
            "iso_week": self.iso_week,
            "since": iso(self.since),
            "until": iso(self.until),
            "first_day": self.since.date().isoformat(),
            "last_day": self.last_day.isoformat(),
        }


def period_from_key(key: str) -> Period:
    """The period a ``Period.key`` names: "2022-W07" or "<since>/<until>" in ISO UTC."""
    if "/" not in key:
        return period_for_week(key)
    since, _, until = key.partition("/")
    try:
        bounds = [
            datetime.strptime(v, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC) for v in (since, until)
        ]
    except ValueError as exc:
        raise PeriodError(f"not a period: {key!r}") from exc
    return period_between(bounds[0], bounds[1])


def period_for_week(week: str) -> Period:
    """``"2022-W07"`` (or ``2022W07``) → Monday 2022-02-14 00:00 UTC .. the next Monday."""
    m = _WEEK_RE.match(week)
    if m is None:
        raise PeriodError(f"{week!r} is not an ISO week like 2022-W07")
    year, number = int(m.group(1)), int(m.group(2))
    try:
        monday = date.fromisocalendar(year, number, 1)
    except ValueError as exc:
        raise PeriodError(f"{week!r}: {year} has no ISO week {number}") from exc
    return _week_period(monday)


def period_this_week(now: datetime) -> Period:
    """The ISO week containing ``now`` (it may still be in progress)."""
    return _week_period(_utc(now).date() - timedelta(days=_utc(now).weekday()))


def period_last_week(now: datetime) -> Period:
    """The last complete ISO week before ``now``."""
    return _week_period(period_this_week(now).since.date() - timedelta(days=7))


def period_last_days(days: int, now: datetime) -> Period:
    """The ``days`` days up to ``now`` (to the second): [now - days, now)."""
    if days < 1:
        raise PeriodError("--last needs at least one day")
    end = _utc(now).replace(microsecond=0)
    try:
        start = end - timedelta(days=days)
    except OverflowError as exc:
        raise PeriodError(f"--last {days}d reaches before {EARLIEST.date()}") from exc
    return Period(start, end)


def period_between(since: datetime, until: datetime) -> Period:
    """Any half-open range; named as the ISO week when it is exactly one."""
    since, until = _utc(since), _utc(until)
    if since == _midnight(since) and since.weekday() == 0 and until - since == timedelta(days=7):
        return _week_period(since.date())
    return Period(since, until)


def parse_last(value: str, now: datetime) -> Period:
    """``"7d"`` → the last seven days up to ``now``."""
    m = _DAYS_RE.match(value)
    if m is None:
        raise PeriodError(f"{value!r} is not an age in days like 7d")
    return period_last_days(int(m.group(1)), now)


def iso_week_of(when: datetime) -> str:
    year, week, _ = _utc(when).isocalendar()
    return f"{year}-W{week:02d}"


def _week_period(monday: date) -> Period:
    start = datetime(monday.year, monday.month, monday.day, tzinfo=UTC)
    try:
        end = start + timedelta(days=7)
    except OverflowError:
        end = datetime.max.replace(tzinfo=UTC)  # refused by Period: past LATEST
    return Period(start, end, iso_week_of(start))


def _midnight(when: datetime) -> datetime:
    return when.replace(hour=0, minute=0, second=0, microsecond=0)


def _utc(when: datetime) -> datetime:
    if when.tzinfo is None:
        raise PeriodError(f"naive datetime {when!r}: pass an aware time (UTC)")
    return when.astimezone(UTC)
