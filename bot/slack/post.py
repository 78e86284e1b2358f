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

import logging
import os
import socket
import sqlite3
import threading
import time
from collections.abc import Callable, Collection, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import sqlite_utils
from slack_sdk import WebClient

from bot.config import DEFAULT_LORE_URL
from bot.digest import Period, Summarizer, build_digest, render_slack
from bot.digest.chart import render_chart
from bot.digest.labels import parse_iso
from bot.slack.calls import CallFailed, NotSent, Refused, Unknown, call, find_file, find_message
from bot.slack.client import upload_bytes
from storage import digests as store
from storage.digests import CHART_PART

log = logging.getLogger(__name__)

EVENT_TYPE = "kvmarm_digest"
RETRY_DELAYS = (1.0, 2.0, 4.0)  # seconds before the 2nd, 3rd and 4th try of a failed call
INVITE = "invite the bot into the channel (/invite @kvmarm)"
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
    missing: tuple[str, ...] = ()  # parts not (surely) posted: the run stays open

    @property
    def complete(self) -> bool:
        return not self.missing


def post_digest(
    db: sqlite_utils.Database,
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
    thread_ts: str | None = None,
    retry_delays: Sequence[float] = RETRY_DELAYS,
    sleep: Callable[[float], None] = time.sleep,
) -> PostResult:
    """Build, render and post the digest of ``period`` to ``channel`` (see module docstring).

    ``allowed_channels``: when given, any other channel is refused (KVMARM_CHANNEL(S)).
    An empty period is refused too, so a missed sync never marks a week as posted.
    ``thread_ts``: the parent of an interrupted run is this message (a person checked the
    channel); the run continues in its thread.
    """
    if allowed_channels is not None and channel not in allowed_channels:
        allowed = ", ".join(allowed_channels) or "none configured"
        raise PostError(
            f"channel {channel} may not receive digests (allowed: {allowed}); "
            "add it to KVMARM_CHANNEL or KVMARM_CHANNELS"
        )
    now = now or datetime.now(UTC)
    retry = _Retry(tuple(retry_delays), sleep)
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
            thread_ts=thread_ts,
            retry=retry,
        )


def _post(
    db, client, channel, period, *, lang, summarizer, force, chart, now, lore_url, thread_ts, retry
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
    if thread_ts and (previous is None or force):
        raise PostError("--thread continues an interrupted run; there is none to continue")
    model = build_digest(db, period, lang=lang, summarizer=summarizer, now=now, lore_url=lore_url)
    if not model["entries"]:
        raise PostError(
            f"no mail dated in {period.key} in the database: nothing posted (sync or ingest first)"
        )
    resumed = previous is not None and previous.state != "done" and not force
    run = _take_over(db, previous) if resumed else _start(db, period, channel, now)
    poster = _Poster(db, client, run, now, retry)
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


@dataclass(frozen=True, slots=True)
class _Retry:
    delays: tuple[float, ...]
    sleep: Callable[[float], None]


class _Unchecked(Exception):
    """A part's outcome is unknown and Slack cannot be asked: do not send it again."""


class _Poster:
    """Posts the parts of one run, recording each before and after its Slack call."""

    def __init__(self, db, client: WebClient, run: store.PostRun, now: datetime, retry: _Retry):
        self.db, self.client, self.run, self.now, self.retry = db, client, run, now, retry
        self.done = store.post_parts(db, run)
        self.warnings: list[str] = []
        self.missing: list[str] = []
        self._joined = False

    # -- the parts ------------------------------------------------------------------------
    def adopt_parent(self, ts: str) -> None:
        known = self.done.get(0)
        if known is not None and known.state == "posted" and known.ts != ts:
            raise PostError(
                f"this run's parent is {known.ts}, not {ts}: nothing to continue with --thread"
            )
        self._save(store.PostPart(0, "parent", "posted", ts))

    def message(self, part: int, kind: str, message: dict, *, thread_ts: str | None) -> str | None:
        """Post ``message`` as ``part`` (once); its ts, or None when it is left open."""
        name = "the parent message" if kind == "parent" else f"reply {part}"
        known = self.done.get(part)
        if known is not None and known.state == "posted" and known.ts:
            return known.ts
        try:
            if known is not None and known.state == "pending":
                found = self._look_for_message(part, thread_ts)
                if found:
                    self._save(store.PostPart(part, kind, "posted", found))
                    return found
            return self._write(
                part,
                kind,
                name,
                send=lambda: self._send_message(part, message, thread_ts),
                find=lambda: self._look_for_message(part, thread_ts),
            )
        except _Unchecked as exc:
            if kind == "parent":
                raise PostError(_parent_unchecked(self.run, str(exc))) from exc
            self._left_open(name, str(exc))
            return None

    def chart(self, png: bytes, thread_ts: str) -> str | None:
        """Upload the chart into the thread (once); its file id, or None when left open."""
        known = self.done.get(CHART_PART)
        if known is not None and known.state == "posted":
            return known.ts
        try:
            if known is not None and known.state == "pending" and known.file_id:
                if self._look_for_file(known.file_id, thread_ts):
                    self._save(store.PostPart(CHART_PART, "chart", "posted", known.file_id))
                    return known.file_id
                shared = self._share_again(known.file_id, thread_ts)
                if shared:
                    return shared
            file_id = self._upload(png)
            return self._write(
                CHART_PART,
                "chart",
                "the chart",
                send=lambda: self._complete(file_id, thread_ts),
                find=lambda: file_id if self._look_for_file(file_id, thread_ts) else None,
                file_id=file_id,
            )
        except (_Unchecked, PostError) as exc:
            self._left_open("the chart", str(exc))
            return None

    # -- one write, retried after a lookup ------------------------------------------------
    def _write(
        self,
        part: int,
        kind: str,
        name: str,
        *,
        send: Callable[[], str],
        find: Callable[[], str | None],
        file_id: str | None = None,
    ) -> str:
        """Record ``part`` pending, ``send`` it; after a failure whose outcome is unknown,
        ``find`` it before sending again.  Raises PostError when the tries are used up."""
        self._join()
        tries = len(self.retry.delays) + 1
        for attempt in range(tries):
            self._save(store.PostPart(part, kind, "pending", None, file_id))
            try:
                ts = send()
            except Refused as exc:
                self._save(store.PostPart(part, kind, "failed", None, file_id, exc.reason))
                raise PostError(_refused(self.run, name, exc)) from exc
            except (NotSent, Unknown) as exc:
                sure = isinstance(exc, NotSent)
                state = "failed" if sure else "pending"
                self._save(store.PostPart(part, kind, state, None, file_id, exc.reason))
                log.warning(
                    "%s of %s: %s (try %d of %d)",
                    name,
                    self.run.period_key,
                    exc.reason,
                    attempt + 1,
                    tries,
                )
                if attempt + 1 == tries:
                    raise PostError(_gave_up(self.run, name, exc, tries)) from exc
                self.retry.sleep(self.retry.delays[attempt])
                if not sure and (found := find()):
                    self._save(store.PostPart(part, kind, "posted", found, file_id))
                    return found
                continue
            self._save(store.PostPart(part, kind, "posted", ts, file_id))
            return ts
        raise AssertionError("unreachable")  # pragma: no cover

    def _send_message(self, part: int, message: dict, thread_ts: str | None) -> str:
        response = call(
            "chat.postMessage",
            self.client.chat_postMessage,
            channel=self.run.channel,
            text=message["text"],
            blocks=message["blocks"],
            thread_ts=thread_ts,
            unfurl_links=False,
            unfurl_media=False,
            metadata={"event_type": EVENT_TYPE, "event_payload": self._payload(part)},
        )
        return str(response["ts"])

    def _upload(self, png: bytes) -> str:
        """Upload the PNG (not yet visible anywhere); its file id.  Raises PostError."""
        self._join()
        name = f"kvmarm-{self.run.period_key.replace('/', '_')}.png"
        try:
            ticket = call(
                "files.getUploadURLExternal",
                self.client.files_getUploadURLExternal,
                filename=name,
                length=len(png),
                alt_txt="Mails per day and the most active series of the period",
            )
            call("upload", upload_bytes, client=self.client, url=ticket["upload_url"], data=png)
        except CallFailed as exc:
            raise PostError(f"could not upload the chart: {exc.reason}") from exc
        return str(ticket["file_id"])

    def _complete(self, file_id: str, thread_ts: str) -> str:
        call(
            "files.completeUploadExternal",
            self.client.files_completeUploadExternal,
            files=[{"id": file_id, "title": f"kvmarm activity {self.run.period_key}"}],
            channel_id=self.run.channel,
            thread_ts=thread_ts,
        )
        return file_id

    def _share_again(self, file_id: str, thread_ts: str) -> str | None:
        """Complete the recorded upload again (not a new file); None if Slack refuses it."""
        try:
            return self._write(
                CHART_PART,
                "chart",
                "the chart",
                send=lambda: self._complete(file_id, thread_ts),
                find=lambda: file_id if self._look_for_file(file_id, thread_ts) else None,
                file_id=file_id,
            )
        except PostError as exc:
            if isinstance(exc.__cause__, Refused) and exc.__cause__.error != "not_in_channel":
                return None  # the upload expired: upload the chart anew
            raise

    # -- looking up what Slack has ---------------------------------------------------------
    def _look_for_message(self, part: int, thread_ts: str | None) -> str | None:
        oldest = parse_iso(self.run.started_at).timestamp() - 60
        try:
            return find_message(
                self.client,
                self.run.channel,
                self._payload(part),
                EVENT_TYPE,
                thread_ts=thread_ts,
                oldest=oldest,
            )
        except Refused as exc:
            raise _Unchecked(_why_unchecked(self.run, exc)) from exc
        except CallFailed as exc:
            raise PostError(_cannot_ask(self.run, exc)) from exc

    def _look_for_file(self, file_id: str, thread_ts: str) -> bool:
        try:
            return find_file(self.client, self.run.channel, file_id, thread_ts=thread_ts)
        except Refused as exc:
            raise _Unchecked(_why_unchecked(self.run, exc)) from exc
        except CallFailed as exc:
            raise PostError(_cannot_ask(self.run, exc)) from exc

    # -- the channel -----------------------------------------------------------------------
    def _join(self) -> None:
        """Join a public channel before the first write (the chart needs membership)."""
        if self._joined:
            return
        self._joined = True
        try:
            call("conversations.join", self.client.conversations_join, channel=self.run.channel)
        except Refused as exc:
            if exc.error in ("channel_not_found", "is_archived"):
                raise PostError(
                    f"cannot post to {self.run.channel}: {exc.error} — check the channel id; "
                    f"a private channel is found only once you {INVITE}"
                ) from exc
            if exc.error == "missing_scope":
                self.warnings.append(
                    f"could not join {self.run.channel} (the app lacks channels:join); "
                    f"if the chart is refused, {INVITE}"
                )
            # method_not_supported_for_channel_type: private — posting works once invited
        except CallFailed as exc:
            raise PostError(
                f"{exc.reason} ({self.run.channel}); nothing was posted by this run: "
                "run again to continue"
            ) from exc

    # -- bookkeeping -----------------------------------------------------------------------
    def _left_open(self, name: str, why: str) -> None:
        self.missing.append(name)
        self.warnings.append(f"{name} may be missing: {why}")
        log.warning(
            "%s digest in %s: %s may be missing: %s",
            self.run.period_key,
            self.run.channel,
            name,
            why,
        )

    def _payload(self, part: int) -> dict[str, Any]:
        return {"period": self.run.period_key, "run": self.run.run, "part": part}

    def _save(self, part: store.PostPart) -> None:
        store.save_post_part(self.db, self.run, part, self.now)
        self.done[part.part] = part


def _refused(run: store.PostRun, name: str, exc: Refused) -> str:
    hint = "re-run to continue in the same thread"
    if exc.error in ("not_in_channel", "channel_not_found"):
        hint = f"{INVITE}, then re-run to continue"
    elif exc.error == "missing_scope":
        hint = f"add the {exc.needed or 'missing'} scope to the app (manifest.yml), then re-run"
    where = f"the {run.period_key} digest in {run.channel}"
    return f"Slack refused {name} of {where}: {exc.reason}; {hint}"


def _gave_up(run: store.PostRun, name: str, exc: CallFailed, tries: int) -> str:
    return (
        f"{exc.reason} — {name} of the {run.period_key} digest for {run.channel} not posted "
        f"after {tries} tries; run again later to continue (nothing is posted twice)"
    )


def _cannot_ask(run: store.PostRun, exc: CallFailed) -> str:
    return (
        f"{exc.reason} — cannot check what an interrupted try posted of the {run.period_key} "
        f"digest in {run.channel}; run again later to continue (nothing is posted twice)"
    )


def _why_unchecked(run: store.PostRun, exc: Refused) -> str:
    if exc.error == "missing_scope":
        scope = exc.needed or "channels:history (groups:history for a private channel)"
        return (
            f"an earlier try's outcome is unknown and {run.channel} cannot be read to check it "
            f"(the app lacks {scope}; add it from manifest.yml)"
        )
    if exc.error in ("not_in_channel", "channel_not_found"):
        return f"an earlier try's outcome is unknown and the channel cannot be read ({INVITE})"
    return f"an earlier try's outcome is unknown and Slack refused to show it ({exc.reason})"


def _parent_unchecked(run: store.PostRun, why: str) -> str:
    return (
        f"the parent message of the {run.period_key} digest in {run.channel} may already be "
        f"there: {why}.  Look in the channel: if it is there, run again with --thread <its ts> "
        "to finish the replies in it; if not, run again with --force"
    )
