"""Periods: ISO weeks, last week, last N days, in UTC, half-open."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from bot.digest import (
    Period,
    PeriodError,
    period_between,
    period_for_week,
    period_last_days,
    period_last_week,
    period_this_week,
)
from bot.digest.period import parse_last


def test_iso_week_is_monday_to_monday_utc():
    p = period_for_week("2022-W07")
    assert p.since == datetime(2022, 2, 14, tzinfo=UTC)
    assert p.until == datetime(2022, 2, 21, tzinfo=UTC)
    assert p.key == "2022-W07"
    assert p.as_dict()["last_day"] == "2022-02-20"


def test_week_53_and_year_boundary():
    assert period_for_week("2020-W53").since == datetime(2020, 12, 28, tzinfo=UTC)
    assert period_for_week("2021-W01").since == datetime(2021, 1, 4, tzinfo=UTC)
    with pytest.raises(PeriodError, match="no ISO week 53"):
        period_for_week("2021-W53")
    with pytest.raises(PeriodError):
        period_for_week("2022-07")


def test_half_open():
    p = period_for_week("2022-W07")
    assert p.contains(datetime(2022, 2, 14, tzinfo=UTC))
    assert not p.contains(datetime(2022, 2, 21, tzinfo=UTC))
    assert p.contains(datetime(2022, 2, 20, 23, 59, 59, tzinfo=UTC))
    assert p.contains_iso("2022-02-20T23:59:59Z") and not p.contains_iso("2022-02-21T00:00:00Z")


def test_this_and_last_week_from_a_non_utc_clock():
    # Monday 01:00 in UTC+8 is still Sunday in UTC: "this week" is the UTC week.
    now = datetime(2022, 2, 21, 1, 0, tzinfo=timezone(timedelta(hours=8)))
    assert period_this_week(now).key == "2022-W07"
    assert period_last_week(now).key == "2022-W06"


def test_last_days_and_parse():
    now = datetime(2022, 2, 21, 10, 30, 15, 999, tzinfo=UTC)
    p = period_last_days(7, now)
    assert p.until == datetime(2022, 2, 21, 10, 30, 15, tzinfo=UTC)
    assert p.until - p.since == timedelta(days=7)
    assert p.iso_week is None and "/" in p.key
    assert parse_last("7d", now) == p
    with pytest.raises(PeriodError):
        parse_last("seven", now)


def test_between_names_exact_weeks():
    week = period_between(datetime(2022, 2, 7, tzinfo=UTC), datetime(2022, 2, 14, tzinfo=UTC))
    assert week.iso_week == "2022-W06"
    other = period_between(datetime(2022, 2, 8, tzinfo=UTC), datetime(2022, 2, 15, tzinfo=UTC))
    assert other.iso_week is None


def test_naive_or_empty_periods_are_refused():
    with pytest.raises(PeriodError):
        Period(datetime(2022, 2, 7), datetime(2022, 2, 14))  # noqa: DTZ001
    with pytest.raises(PeriodError):
        period_between(datetime(2022, 2, 7, tzinfo=UTC), datetime(2022, 2, 7, tzinfo=UTC))
