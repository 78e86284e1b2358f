"""Post a digest to a Slack channel: each part exactly once per (period, channel), even across
crashes, retries and a Slack that answers 500 after it accepted a message.

The parts of a run are the parent message (part 0), its thread replies (1…) and the chart
(``CHART_PART``), each recorded in SQLite before its Slack call (``pending``) and after it
(``posted`` with its ts or file id).  A re-run skips what was posted and continues in the same
thread.  Whenever the outcome of a write is unknown — the process died during the call, a
timeout, a 5xx, a lost connection — the part is first looked up in Slack by the metadata every
message carries (``event_type: kvmarm_digest`` with period, run and part; the chart by its file
id among the thread's replies) and sent again only when it is not there.  Failures are retried
``retry_delays`` apart; the WebClient itself never repeats a write (bot.slack.client).

When the channel cannot be read (the workspace did not grant ``channels:history`` /
``groups:history``), a part whose outcome is unknown is never re-sent blindly: the parent stops
the run with what to do (``--thread TS`` to continue in a parent that is there, ``--force`` to
post a new one); a reply or the chart is reported as possibly missing and left open, and the
parts after it are still posted.  A run is ``done`` only when every part is posted; otherwise
the next run continues it (the chart after four 500s, for instance).

``force=True`` starts a new run: a new parent message, on purpose.
"""

from __future__ import annotations

import re
import sqlite3
import threading
import time
from collections.abc import Callable, Collection, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime

from slack_sdk import WebClient

from bot.config import DEFAULT_LORE_URL
from bot.digest import Period, Summariser, build_digest, render_slack
from bot.digest.chart import render_chart
from bot.processes import holder_alive, process_owner
from bot.slack.parts import EVENT_TYPE, Poster, PostError, PostLater, Retry
from storage import digests as store
from storage.db import Database

__all__ = ["EVENT_TYPE", "PostError", "PostLater", "PostResult", "post_digest"]

RETRY_DELAYS = (1.0, 2.0, 4.0)  # seconds before the 2nd, 3rd and 4th try of a failed call
_TS_RE = re.compile(r"\d{9,11}\.\d{1,6}")
_LOCKS: dict[tuple[str, str], threading.Lock] = {}
_LOCKS_GUARD = threading.Lock()


@dataclass(frozen=True, slots=True)
class PostResult:
    channel: str
    period_key: str
    run: int
    parent_ts: str | None
    replies: tuple[str, ...] = ()
    chart_file: str | None = None
    already_posted: bool = False  # nothing was sent: this (period, channel) was done before
    resumed: bool = False  # an interrupted run was continued in its thread
    warnings: tuple[str, ...] = ()
    missing: tuple[str, ...] = ()  # parts not (surely) posted: the run stays open

    @property
    def complete(self) -> bool:
        return not self.missing


def post_digest(
    db: Database,
    client: WebClient,
    channel: str,
    period: Period,
    *,
    lang: str = "en",
    summariser: Summariser | None = None,
    force: bool = False,
    allowed_channels: Collection[str] | None = None,
    chart: bool = True,
    now: datetime | None = None,
    lore_url: str = DEFAULT_LORE_URL,
    thread_ts: str | None = None,
    resend_unknown: bool = False,
    retry_delays: Sequence[float] = RETRY_DELAYS,
    sleep: Callable[[float], None] = time.sleep,
) -> PostResult:
    """Build, render and post the digest of ``period`` to ``channel`` (see module docstring).

    ``allowed_channels``: when given, any other channel is refused (KVMARM_CHANNEL(S)).
    An empty period is refused too, so a missed sync never marks a week as posted.
    ``thread_ts``: the parent of an interrupted run is this message (a person checked the
    channel); the run continues in its thread.  ``resend_unknown``: parts an interrupted run
    left open because Slack would not show whether they arrived are not there (a person
    checked): send them again.
    """
    if allowed_channels is not None and channel not in allowed_channels:
        allowed = ", ".join(allowed_channels) or "none configured"
        raise PostError(
            f"channel {channel} may not receive digests (allowed: {allowed}); "
            "add it to KVMARM_CHANNEL or KVMARM_CHANNELS"
        )
    now = now or datetime.now(UTC)
    retry = Retry(tuple(retry_delays), sleep)
    with _one_at_a_time(period.key, channel):
        return _post(
            db,
            client,
            channel,
            period,
            lang=lang,
            summariser=summariser,
            force=force,
            chart=chart,
            now=now,
            lore_url=lore_url,
            thread_ts=thread_ts,
            resend_unknown=resend_unknown,
            retry=retry,
        )


def _post(
    db,
    client,
    channel,
    period,
    *,
    lang,
    summariser,
    force,
    chart,
    now,
    lore_url,
    thread_ts,
    resend_unknown,
    retry,
) -> PostResult:
    previous = store.latest_post_run(db, period.key, channel)
    if previous is not None and previous.state == "done" and not force:
        if thread_ts:
            raise PostError(f"{period.key} is already posted completely to {channel}")
        parts = store.post_parts(db, previous)
        return PostResult(
            channel=channel,
            period_key=period.key,
            run=previous.run,
            parent_ts=parts[0].ts if 0 in parts else None,
            already_posted=True,
        )
    if thread_ts and not _TS_RE.fullmatch(thread_ts):
        raise PostError(f"--thread wants a message ts such as 1700000000.000100, not {thread_ts!r}")
    if thread_ts and (previous is None or force):
        raise PostError("--thread continues an interrupted run; there is none to continue")
    model = build_digest(db, period, lang=lang, summariser=summariser, now=now, lore_url=lore_url)
    if not model["entries"]:
        raise PostError(
            f"no mail dated in {period.key} in the database: nothing posted (sync or ingest first)"
        )
    resumed = previous is not None and previous.state != "done" and not force
    if previous is not None and resumed:
        run = _take_over(db, previous)
    else:
        run = _start(db, period, channel, now)
    poster = Poster(db, client, run, now, retry, resend_unknown=resend_unknown)
    if thread_ts:
        poster.adopt_parent(thread_ts)
    messages = render_slack(model)
    parent = poster.message(0, "parent", messages[0], thread_ts=None)
    assert parent is not None  # the parent either posts or raises
    replies = [
        poster.message(i, "reply", m, thread_ts=parent) for i, m in enumerate(messages[1:], 1)
    ]
    png = render_chart(model) if chart else None
    file_id = poster.chart(png, parent) if png else None
    if not poster.missing:
        store.finish_post_run(db, run, now)
    return PostResult(
        channel=channel,
        period_key=period.key,
        run=run.run,
        parent_ts=parent,
        replies=tuple(r for r in replies if r),
        chart_file=file_id,
        resumed=resumed,
        warnings=tuple(poster.warnings),
        missing=tuple(poster.missing),
    )


@contextmanager
def _one_at_a_time(period_key: str, channel: str) -> Iterator[None]:
    """Threads of one process (the Slack app: scheduler, button) post a week in turn."""
    with _LOCKS_GUARD:
        lock = _LOCKS.setdefault((period_key, channel), threading.Lock())
    with lock:
        yield


def _start(db, period: Period, channel: str, now: datetime) -> store.PostRun:
    try:
        return store.start_post_run(db, period.key, channel, now, process_owner())
    except sqlite3.IntegrityError as exc:
        raise PostError(
            f"another process started posting {period.key} to {channel} just now"
        ) from exc


def _take_over(db, run: store.PostRun) -> store.PostRun:
    """Continue an interrupted run — unless the process that runs it is still alive."""
    holder = run.state.partition(" ")[2]
    if holder and holder != process_owner() and holder_alive(holder, other_host_alive=False):
        raise PostError(
            f"{run.period_key} is being posted to {run.channel} by process {holder} right now"
        )
    claimed = store.claim_post_run(db, run, process_owner())
    if claimed is None:
        raise PostError(f"another process took over posting {run.period_key} to {run.channel}")
    return claimed
