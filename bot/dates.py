"""Times given on the command line: ISO 8601 dates/times (UTC if no zone) or "7d"-style ages."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

from dateutil import parser as dateparser

_AGE_RE = re.compile(r"^(\d+)\s*([mhdw])$")
_UNITS = {"m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def parse_when(value: str, now: datetime) -> datetime:
    """'2022-03-01', '2022-03-01T12:00+08:00' or '7d' (before ``now``) → aware UTC datetime."""
    text = value.strip()
    if m := _AGE_RE.match(text):
        try:
            return now - timedelta(**{_UNITS[m.group(2)]: int(m.group(1))})
        except OverflowError as exc:
            raise ValueError(f"{value!r} reaches back before the year 1") from exc
    try:
        when = dateparser.isoparse(text)
    except ValueError as exc:
        raise ValueError(f"{value!r} is not an ISO 8601 date/time or an age like 7d") from exc
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return when.astimezone(UTC)


def iso_utc(when: datetime) -> str:
    """Aware datetime → '2022-03-07T18:49:35Z', the year always four digits (strftime's %Y
    gives '1-01-01' for the year 1 on glibc, which then does not parse back)."""
    w = when.astimezone(UTC)
    return f"{w.year:04d}-{w.month:02d}-{w.day:02d}T{w.hour:02d}:{w.minute:02d}:{w.second:02d}Z"
