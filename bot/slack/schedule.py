"""The weekly post from inside the app: ``--schedule "MON 09:00 Asia/Shanghai"``.

``parse_schedule`` reads weekday, local time and an IANA time zone (UTC when omitted);
occurrences come from a dateutil ``rrule`` in that zone, so 09:00 stays 09:00 across DST.
``run_schedule`` sleeps until each occurrence and calls the job with it; clock and sleep are
parameters so tests run a year of Mondays in a moment.  The job (the digest's idempotent
post) is safe to repeat, so a failed run is retried and a restart just after the hour
catches up.
"""

from __future__ import annotations

import logging
import re
import sqlite3
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, tzinfo

from dateutil import rrule, tz
from slack_sdk.errors import SlackApiError

from ingest.lore.client import LoreError
from storage.db import StorageError

log = logging.getLogger(__name__)

_DAYS = {
    "mon": rrule.MO,
    "tue": rrule.TU,
    "wed": rrule.WE,
    "thu": rrule.TH,
    "fri": rrule.FR,
    "sat": rrule.SA,
    "sun": rrule.SU,
}
_SPEC_RE = re.compile(r"^\s*([a-z]{3})[a-z]*\s+(\d{1,2}):(\d{2})(?:\s+(\S+))?\s*$", re.IGNORECASE)
# Failures worth retrying: Slack or the network down, the database busy.
RETRYABLE = (SlackApiError, OSError, sqlite3.Error, StorageError, LoreError)


class ScheduleError(ValueError):
    """A schedule that cannot be understood ("MON 09:00 Asia/Shanghai" is understood)."""


@dataclass(frozen=True)
class Schedule:
    text: str
    weekday: rrule.weekday
    hour: int
    minute: int
    zone: tzinfo

    def next_after(self, when: datetime) -> datetime:
        """The first occurrence strictly after ``when`` (aware), in UTC."""
        local = when.astimezone(self.zone)
        return self._utc(self._rule(local).after(local, inc=False))

    def previous_before(self, when: datetime) -> datetime:
        """The last occurrence at or before ``when`` (aware), in UTC."""
        local = when.astimezone(self.zone)
        return self._utc(self._rule(local).before(local, inc=True))

    def _rule(self, around: datetime) -> rrule.rrule:
        start = (around - timedelta(days=8)).replace(second=0, microsecond=0)
        return rrule.rrule(
            rrule.WEEKLY,
            byweekday=self.weekday,
            byhour=self.hour,
            byminute=self.minute,
            bysecond=0,
            dtstart=start,
        )

    @staticmethod
    def _utc(local: datetime | None) -> datetime:
        if local is None:  # cannot happen: the rule starts 8 days back and never ends
            raise ScheduleError("the schedule has no occurrence there")
        return tz.resolve_imaginary(local).astimezone(UTC)

    def describe(self) -> str:
        return self.text


def parse_schedule(text: str) -> Schedule:
    """``"MON 09:00 Asia/Shanghai"`` (also ``monday 9:00``, zone optional → UTC)."""
    m = _SPEC_RE.match(text)
    if not m or m.group(1).lower() not in _DAYS:
        raise ScheduleError(f'{text!r}: want "DAY HH:MM [ZONE]", e.g. "MON 09:00 Asia/Shanghai"')
    hour, minute = int(m.group(2)), int(m.group(3))
    if hour > 23 or minute > 59:
        raise ScheduleError(f"{text!r}: {hour:02d}:{minute:02d} is not a time of day")
    zone_name = m.group(4) or "UTC"
    zone = tz.UTC if zone_name.upper() in ("UTC", "Z") else tz.gettz(zone_name)
    if zone is None:
        raise ScheduleError(f"{text!r}: unknown time zone {zone_name!r} (use an IANA name)")
    return Schedule(" ".join(text.split()), _DAYS[m.group(1).lower()], hour, minute, zone)


def run_schedule(
    schedule: Schedule,
    job: Callable[[datetime], None],
    *,
    now: Callable[[], datetime] = lambda: datetime.now(UTC),
    sleep: Callable[[float], object] | None = None,
    stop: threading.Event | None = None,
    catch_up: timedelta = timedelta(hours=12),
    retry_delay: timedelta = timedelta(minutes=10),
    retries: int = 6,
    runs: int | None = None,
) -> int:
    """Call ``job(occurrence)`` at every occurrence until ``stop`` is set (or ``runs`` ran).

    On start, an occurrence missed by less than ``catch_up`` runs at once (the job is
    idempotent: nothing is posted twice).  A job failing with a RETRYABLE error is logged
    with its traceback and retried ``retries`` times, ``retry_delay`` apart.  Returns the
    number of occurrences handled.
    """
    stop = stop or threading.Event()
    sleep = sleep or (lambda seconds: stop.wait(seconds))
    handled = 0
    missed = schedule.previous_before(now())
    due = missed if now() - missed <= catch_up else schedule.next_after(now())
    while not stop.is_set() and (runs is None or handled < runs):
        if not _wait_until(due, now, sleep, stop):
            break
        _run_with_retries(job, due, sleep, stop, retry_delay, retries)
        handled += 1
        due = schedule.next_after(due)
    return handled


def _wait_until(
    due: datetime, now: Callable[[], datetime], sleep: Callable[[float], object], stop
) -> bool:
    while not stop.is_set():
        left = (due - now()).total_seconds()
        if left <= 0:
            return True
        sleep(min(left, 300.0))  # wake up now and then: clocks jump, laptops sleep
    return False


def _run_with_retries(job, due: datetime, sleep, stop, retry_delay: timedelta, retries: int):
    for attempt in range(retries + 1):
        try:
            job(due)
            return
        except RETRYABLE:
            log.exception(
                "scheduled digest for %s failed (attempt %d of %d)", due, attempt + 1, retries + 1
            )
            if attempt == retries or stop.is_set():
                return
            sleep(retry_delay.total_seconds())
