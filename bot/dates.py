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
