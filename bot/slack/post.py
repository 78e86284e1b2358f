"""Post a digest to a Slack channel: once per (period, channel), even across restarts.

Every Slack call is recorded in SQLite before it is made (``pending``) and after it
returned (``posted`` with its ``ts``).  A re-run therefore skips what was posted and continues
in the same thread.  A part left ``pending`` (the process died between Slack accepting the
message and us recording it) is looked up in the channel by the metadata every message
carries (``event_type: kvmarm_digest``, period, run, part) before anything is re-sent; if the
lookup itself is impossible, the parent is not re-posted — a human decides (``--force``).

``force=True`` starts a new run: a new parent message, on purpose.
The WebClient (bot.slack.client.make_web_client) already retries 429 after Retry-After and
5xx; what still fails becomes ``PostError``.
"""

from __future__ import annotations

import logging
import os
import socket
import sqlite3
import threading
from collections.abc import Collection, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from bot.config import DEFAULT_LORE_URL
from bot.digest import Period, Summarizer, build_digest, render_slack
from bot.digest.chart import render_chart
from storage import digests as store
from storage.db import Database
from storage.messages import from_iso

log = logging.getLogger(__name__)

EVENT_TYPE = "kvmarm_digest"
_LOCKS: dict[tuple[str, str], threading.Lock] = {}
_LOCKS_GUARD = threading.Lock()


class PostError(Exception):
    """The digest could not be (completely) posted; the message says what to do."""


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


def post_digest(
    db: Database,
    client: WebClient,
    channel: str,
    period: Period,
    *,
    lang: str = "en",
    summarizer: Summarizer | None = None,
    force: bool = False,
    allowed_channels: Collection[str] | None = None,
    chart: bool = True,
    now: datetime | None = None,
    lore_url: str = DEFAULT_LORE_URL,
) -> PostResult:
    """Build, render and post the digest of ``period`` to ``channel`` (see module docstring).

    ``allowed_channels``: when given, any other channel is refused (KVMARM_CHANNEL(S)).
    An empty period is refused too, so a missed sync never marks a week as posted.
    """
    if allowed_channels is not None and channel not in allowed_channels:
        allowed = ", ".join(allowed_channels) or "none configured"
        raise PostError(
            f"channel {channel} may not receive digests (allowed: {allowed}); "
            "add it to KVMARM_CHANNEL or KVMARM_CHANNELS"
        )
    now = now or datetime.now(UTC)
    with _one_at_a_time(period.key, channel):
        return _post(
            db,
            client,
            channel,
            period,
            lang=lang,
            summarizer=summarizer,
            force=force,
            chart=chart,
            now=now,
            lore_url=lore_url,
        )


def _post(db, client, channel, period, *, lang, summarizer, force, chart, now, lore_url):
    previous = store.latest_post_run(db, period.key, channel)
    if previous is not None and previous.state == "done" and not force:
        parts = store.post_parts(db, previous)
        return PostResult(
            channel=channel,
            period_key=period.key,
            run=previous.run,
            parent_ts=parts[0].ts if 0 in parts else None,
            already_posted=True,
        )
    model = build_digest(db, period, lang=lang, summarizer=summarizer, now=now, lore_url=lore_url)
    if not model["entries"]:
        raise PostError(
            f"no mail dated in {period.key} in the database: nothing posted (sync or ingest first)"
        )
    resumed = previous is not None and previous.state != "done" and not force
    run = _take_over(db, previous) if resumed and previous else _start(db, period, channel, now)
    poster = _Poster(db, client, run, now)
    messages = render_slack(model)
    parent = poster.message(0, "parent", messages[0], thread_ts=None)
    replies = tuple(
        poster.message(i, "reply", m, thread_ts=parent) for i, m in enumerate(messages[1:], 1)
    )
    png = render_chart(model) if chart else None
    file_id = poster.chart(len(messages), png, parent) if png else None
    store.finish_post_run(db, run, now)
    return PostResult(
        channel=channel,
        period_key=period.key,
        run=run.run,
        parent_ts=parent,
        replies=replies,
        chart_file=file_id,
        resumed=resumed,
        warnings=tuple(poster.warnings),
    )


def _owner() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


@contextmanager
def _one_at_a_time(period_key: str, channel: str) -> Iterator[None]:
    """Threads of one process (the Slack app: scheduler, button) post a week in turn."""
    with _LOCKS_GUARD:
        lock = _LOCKS.setdefault((period_key, channel), threading.Lock())
    with lock:
        yield


def _start(db, period: Period, channel: str, now: datetime) -> store.PostRun:
    try:
        return store.start_post_run(db, period.key, channel, now, _owner())
    except sqlite3.IntegrityError as exc:
        raise PostError(
            f"another process started posting {period.key} to {channel} just now"
        ) from exc


def _take_over(db, run: store.PostRun) -> store.PostRun:
    """Continue an interrupted run — unless the process that runs it is still alive."""
    holder = run.state.partition(" ")[2]
    if holder and holder != _owner() and _alive(holder):
        raise PostError(
            f"{run.period_key} is being posted to {run.channel} by process {holder} right now"
        )
    claimed = store.claim_post_run(db, run, _owner())
    if claimed is None:
        raise PostError(f"another process took over posting {run.period_key} to {run.channel}")
    return claimed


def _alive(holder: str) -> bool:
    """Is ``host:pid`` a live process on this host?  (Another host: assume it died.)"""
    host, _, pid = holder.rpartition(":")
    if host != socket.gethostname() or not pid.isdigit():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class _Poster:
    """Posts the parts of one run, recording each before and after its Slack call."""

    def __init__(self, db, client: WebClient, run: store.PostRun, now: datetime) -> None:
        self.db, self.client, self.run, self.now = db, client, run, now
        self.done = store.post_parts(db, run)
        self.warnings: list[str] = []

    def message(self, part: int, kind: str, message: dict, *, thread_ts: str | None) -> str:
        known = self.done.get(part)
        if known is not None and known.state == "posted" and known.ts:
            return known.ts
        if known is not None and known.state == "pending":
            found = self._find(part, thread_ts)
            if found:
                self._save(part, kind, "posted", found)
                return found
        self._save(part, kind, "pending", None)
        try:
            response = self.client.chat_postMessage(
                channel=self.run.channel,
                text=message["text"],
                blocks=message["blocks"],
                thread_ts=thread_ts,
                unfurl_links=False,
                unfurl_media=False,
                metadata={"event_type": EVENT_TYPE, "event_payload": self._payload(part)},
            )
        except SlackApiError as exc:
            status = exc.response.status_code if exc.response is not None else 0
            # A 5xx may or may not have posted: stay "pending" so a re-run looks first.
            self._save(part, kind, "pending" if status >= 500 else "failed", None)
            raise PostError(
                f"Slack refused {kind} {part} of the {self.run.period_key} digest in "
                f"{self.run.channel}: {_error(exc)}; re-run to continue in the same thread"
            ) from exc
        ts = response["ts"]
        self._save(part, kind, "posted", ts)
        return ts

    def chart(self, part: int, png: bytes, thread_ts: str) -> str | None:
        known = self.done.get(part)
        if known is not None and known.state == "posted":
            return known.ts
        self._save(part, "chart", "pending", None)
        try:
            response = self.client.files_upload_v2(
                channel=self.run.channel,
                thread_ts=thread_ts,
                file=png,
                filename=f"kvmarm-{self.run.period_key.replace('/', '_')}.png",
                title=f"kvmarm activity {self.run.period_key}",
                alt_txt="Mails per day and the most active series of the period",
            )
        except SlackApiError as exc:
            self._save(part, "chart", "failed", None)
            self.warnings.append(f"chart not uploaded: {_error(exc)}")
            log.warning("chart upload to %s failed: %s", self.run.channel, _error(exc))
            return None
        files = response.get("files") or [response.get("file") or {}]
        file_id = (files[0] or {}).get("id")
        self._save(part, "chart", "posted", file_id)
        return file_id

    def _find(self, part: int, thread_ts: str | None) -> str | None:
        """The ts of a message this run already posted as ``part``, from Slack itself."""
        try:
            if thread_ts is None:
                oldest = from_iso(self.run.started_at).timestamp() - 60
                response = self.client.conversations_history(
                    channel=self.run.channel, oldest=str(oldest), include_all_metadata=True
                )
            else:
                response = self.client.conversations_replies(
                    channel=self.run.channel, ts=thread_ts, include_all_metadata=True
                )
        except SlackApiError as exc:
            if thread_ts is None:
                raise PostError(
                    f"an earlier run was interrupted while posting the {self.run.period_key} "
                    f"digest to {self.run.channel} and Slack cannot tell whether it arrived "
                    f"({_error(exc)}): check the channel, then use --force to post anyway"
                ) from exc
            self.warnings.append(f"reply {part} may appear twice: lookup failed ({_error(exc)})")
            return None
        for m in response.get("messages") or []:
            meta = m.get("metadata") or {}
            if meta.get("event_type") == EVENT_TYPE and meta.get("event_payload") == self._payload(
                part
            ):
                return m.get("ts")
        return None

    def _payload(self, part: int) -> dict:
        return {"period": self.run.period_key, "run": self.run.run, "part": part}

    def _save(self, part: int, kind: str, state: str, ts: str | None) -> None:
        store.save_post_part(self.db, self.run, store.PostPart(part, kind, state, ts), self.now)


def _error(exc: SlackApiError) -> str:
    response = exc.response
    if response is None:
        return str(exc)
    error = response.get("error") if hasattr(response, "get") else None
    return f"{error or 'error'} (HTTP {response.status_code})"
