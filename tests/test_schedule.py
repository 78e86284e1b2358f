"""The in-app weekly schedule: parsing, occurrences across DST, and the loop with a fake clock."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import pytest
from slack_sdk.errors import SlackApiError

from bot.slack.schedule import ScheduleError, parse_schedule, run_schedule


class Clock:
    """Time that moves only when the loop sleeps."""

    def __init__(self, start: datetime) -> None:
        self.now = start
        self.slept: list[float] = []

    def __call__(self) -> datetime:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += timedelta(seconds=seconds)


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=UTC)


@pytest.mark.parametrize(
    ("text", "after", "expected"),
    [
        ("MON 09:00 Asia/Shanghai", utc(2022, 2, 20, 12), utc(2022, 2, 21, 1)),
        ("MON 09:00 Asia/Shanghai", utc(2022, 2, 21, 1), utc(2022, 2, 28, 1)),  # strictly after
        ("monday 9:00 Asia/Shanghai", utc(2022, 2, 21, 0, 59), utc(2022, 2, 21, 1)),
        ("FRI 17:30", utc(2022, 2, 21), utc(2022, 2, 25, 17, 30)),  # no zone: UTC
        # New York: 09:00 EST is 14:00 UTC, 09:00 EDT (from 13 March 2022) is 13:00 UTC
        ("MON 09:00 America/New_York", utc(2022, 3, 8), utc(2022, 3, 14, 13)),
        ("MON 09:00 America/New_York", utc(2022, 3, 1), utc(2022, 3, 7, 14)),
        # 02:30 does not exist in Berlin on 27 March 2022: it runs at 03:30 CEST
        ("SUN 02:30 Europe/Berlin", utc(2022, 3, 26), utc(2022, 3, 27, 1, 30)),
    ],
)
def test_next_occurrence(text, after, expected):
    assert parse_schedule(text).next_after(after) == expected


def test_previous_occurrence_includes_now():
    schedule = parse_schedule("MON 09:00 Asia/Shanghai")
    assert schedule.previous_before(utc(2022, 2, 21, 1)) == utc(2022, 2, 21, 1)
    assert schedule.previous_before(utc(2022, 2, 21, 0, 59)) == utc(2022, 2, 14, 1)


@pytest.mark.parametrize(
    ("text", "said"),
    [
        ("every monday", "want"),
        ("XYZ 09:00", "want"),
        ("MON 25:00", "not a time of day"),
        ("MON 09:61", "not a time of day"),
        ("MON 09:00 Mars/Olympus", "unknown time zone"),
    ],
)
def test_bad_schedules_say_why(text, said):
    with pytest.raises(ScheduleError, match=said):
        parse_schedule(text)


def test_loop_runs_the_job_at_each_occurrence():
    clock = Clock(utc(2022, 2, 16, 12))  # a Wednesday: last Monday's run is long past
    ran: list[datetime] = []
    handled = run_schedule(
        parse_schedule("MON 09:00 Asia/Shanghai"), ran.append, now=clock, sleep=clock.sleep, runs=3
    )
    assert handled == 3
    assert ran == [utc(2022, 2, 21, 1), utc(2022, 2, 28, 1), utc(2022, 3, 7, 1)]
    assert max(clock.slept) <= 300  # wakes up regularly


def test_a_restart_just_after_the_hour_catches_up():
    clock = Clock(utc(2022, 2, 21, 3))  # two hours after Monday 09:00 Shanghai
    ran: list[datetime] = []
    run_schedule(
        parse_schedule("MON 09:00 Asia/Shanghai"), ran.append, now=clock, sleep=clock.sleep, runs=2
    )
    assert ran == [utc(2022, 2, 21, 1), utc(2022, 2, 28, 1)]


def test_failed_runs_are_retried_then_given_up_until_next_week(caplog):
    clock = Clock(utc(2022, 2, 20))
    attempts: list[datetime] = []

    def job(due: datetime) -> None:
        attempts.append(clock.now)
        if due == utc(2022, 2, 21, 1) and len(attempts) <= 2:
            raise SlackApiError("rate limited", {"ok": False, "error": "ratelimited"})

    run_schedule(
        parse_schedule("MON 09:00 Asia/Shanghai"),
        job,
        now=clock,
        sleep=clock.sleep,
        runs=2,
        retry_delay=timedelta(minutes=10),
        retries=3,
    )
    assert attempts[:3] == [
        utc(2022, 2, 21, 1),
        utc(2022, 2, 21, 1, 10),
        utc(2022, 2, 21, 1, 20),
    ]
    assert attempts[3] == utc(2022, 2, 28, 1)
    assert "failed (attempt 1 of 4)" in caplog.text


def test_bugs_are_not_retried():
    clock = Clock(utc(2022, 2, 20))

    def job(due: datetime) -> None:
        raise KeyError("bug")

    with pytest.raises(KeyError):
        run_schedule(parse_schedule("MON 09:00"), job, now=clock, sleep=clock.sleep, runs=1)


def test_stop_ends_the_loop():
    stop = threading.Event()
    clock = Clock(utc(2022, 2, 20))

    def sleep(seconds: float) -> None:
        clock.sleep(seconds)
        stop.set()

    assert run_schedule(parse_schedule("MON 09:00"), print, now=clock, sleep=sleep, stop=stop) == 0
