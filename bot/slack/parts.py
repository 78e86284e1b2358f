"""The parts of one posting run, each sent to Slack exactly once (see bot.slack.post).

``Poster`` records a part ``pending`` before its Slack call and ``posted`` after it (the
exactly-once write of bot/slack/ledger.py, shared with live delivery); when a call's outcome
is unknown it looks the part up in Slack (by its metadata; the chart by its
file id in the thread) before sending it again, and when Slack cannot be asked it never sends
it blindly: the parent stops the run with what to do, a reply or the chart is left open.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from slack_sdk import WebClient

from bot.slack.calls import (
    CallFailed,
    Refused,
    call,
    find_file,
    find_message,
    post_tagged,
)
from bot.slack.client import upload_bytes
from bot.slack.ledger import Retry, write_once
from storage import digests as store
from storage.db import Database
from storage.digests import CHART_PART
from storage.messages import from_iso

log = logging.getLogger(__name__)

EVENT_TYPE = "kvmarm_digest"
INVITE = "invite the bot into the channel (/invite @kvmarm)"


class PostError(Exception):
    """The digest could not be (completely) posted; the message says what to do."""


class PostLater(PostError):
    """Slack could not be reached, or did not answer in time: a later run continues."""


class _Unchecked(Exception):
    """A part's outcome is unknown and Slack cannot be asked: do not send it again."""


class Poster:
    """Posts the parts of one run, recording each before and after its Slack call."""

    def __init__(
        self,
        db: Database,
        client: WebClient,
        run: store.PostRun,
        now: datetime,
        retry: Retry,
        *,
        resend_unknown: bool = False,
    ) -> None:
        self.db, self.client, self.run, self.now, self.retry = db, client, run, now, retry
        self.resend_unknown = resend_unknown
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
                text = message["text"]
                found = self._checked(lambda: self._look_for_message(part, thread_ts, text))
                if found:
                    self._save(store.PostPart(part, kind, "posted", found))
                    return found
            return self._write(
                part,
                kind,
                name,
                send=lambda: self._send_message(part, message, thread_ts),
                find=lambda: self._look_for_message(part, thread_ts, message["text"]),
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
                file_id = known.file_id
                if self._checked(lambda: self._look_for_file(file_id, thread_ts)):
                    self._save(store.PostPart(CHART_PART, "chart", "posted", known.file_id))
                    return known.file_id
                shared = self._share_again(file_id, thread_ts)
                if shared:
                    return shared
                if self._checked(lambda: self._look_for_file(file_id, thread_ts)):  # late share
                    self._save(store.PostPart(CHART_PART, "chart", "posted", file_id))
                    return file_id
            file_id = self._upload(png)
            return self._share(file_id, thread_ts)
        except (_Unchecked, PostError) as exc:
            self._left_open("the chart", str(exc))
            return None

    def _checked(self, look: Callable[[], Any]) -> Any:
        """``look()`` for a part an earlier run left pending; with ``resend_unknown`` (a person
        looked and it is not there) a lookup Slack refuses counts as "not found"."""
        try:
            return look()
        except _Unchecked:
            if not self.resend_unknown:
                raise
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
        """``send`` ``part`` once (bot.slack.ledger), retried; after a failure whose outcome
        is unknown, ``find`` it before sending again.  Raises PostError (refused) or
        PostLater (the tries are used up; a part whose outcome is unknown stays ``pending``,
        looked up by the next run)."""
        self._join()
        tries = len(self.retry.delays) + 1

        def on_retry(exc: CallFailed, attempt: int, tries: int) -> None:
            log.info(
                "%s of %s: %s (try %d of %d)", name, self.run.period_key, exc.reason, attempt, tries
            )

        try:
            return write_once(
                _PartEntry(self, part, kind, file_id),
                send=send,
                find=find,
                retry=self.retry,
                on_retry=on_retry,
            )
        except Refused as exc:
            raise PostError(_refused(self.run, name, exc)) from exc
        except CallFailed as exc:
            on_retry(exc, tries, tries)
            raise PostLater(_gave_up(self.run, name, exc, tries)) from exc

    def _send_message(self, part: int, message: dict, thread_ts: str | None) -> str:
        return post_tagged(
            self.client,
            self.run.channel,
            message,
            EVENT_TYPE,
            self._payload(part),
            thread_ts=thread_ts,
        )

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

    def _share(self, file_id: str, thread_ts: str) -> str | None:
        """Share an uploaded file into the thread: one recorded write, looked up when unsure."""
        return self._write(
            CHART_PART,
            "chart",
            "the chart",
            send=lambda: self._complete(file_id, thread_ts),
            find=lambda: file_id if self._look_for_file(file_id, thread_ts) else None,
            file_id=file_id,
        )

    def _share_again(self, file_id: str, thread_ts: str) -> str | None:
        """Complete the recorded upload again (not a new file); None if Slack refuses it."""
        try:
            return self._share(file_id, thread_ts)
        except PostError as exc:
            if isinstance(exc.__cause__, Refused) and exc.__cause__.error != "not_in_channel":
                return None  # the upload expired: upload the chart anew
            raise

    # -- looking up what Slack has ---------------------------------------------------------
    def _look_for_message(self, part: int, thread_ts: str | None, text: str) -> str | None:
        oldest = from_iso(self.run.started_at).timestamp() - 60
        try:
            return find_message(
                self.client,
                self.run.channel,
                self._payload(part),
                EVENT_TYPE,
                thread_ts=thread_ts,
                oldest=oldest,
                text=text,
            )
        except Refused as exc:
            raise _Unchecked(_why_unchecked(self.run, exc)) from exc
        except CallFailed as exc:
            raise PostLater(_cannot_ask(self.run, exc)) from exc

    def _look_for_file(self, file_id: str, thread_ts: str) -> bool:
        try:
            return find_file(self.client, self.run.channel, file_id, thread_ts=thread_ts)
        except Refused as exc:
            raise _Unchecked(_why_unchecked(self.run, exc)) from exc
        except CallFailed as exc:
            raise PostLater(_cannot_ask(self.run, exc)) from exc

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
            raise PostLater(
                f"{exc.reason} ({self.run.channel}); nothing more was posted: "
                "run again later to continue (nothing is posted twice)"
            ) from exc

    # -- bookkeeping -----------------------------------------------------------------------
    def _left_open(self, name: str, why: str) -> None:
        self.missing.append(name)
        self.warnings.append(
            f"{name} may be missing: {why}; if it is not in the thread, run again with "
            "--resend-unknown"
        )
        log.info(
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


@dataclass(frozen=True, slots=True)
class _PartEntry:
    """A part's row in post_parts, as bot.slack.ledger records it."""

    poster: Poster
    part: int
    kind: str
    file_id: str | None

    def pending(self) -> None:
        self.poster._save(store.PostPart(self.part, self.kind, "pending", None, self.file_id))

    def sent(self, ts: str, *, found: bool) -> None:
        self.poster._save(store.PostPart(self.part, self.kind, "posted", ts, self.file_id))

    def failed(self, exc: CallFailed, *, uncertain: bool) -> None:
        state = "pending" if uncertain else "failed"
        self.poster._save(
            store.PostPart(self.part, self.kind, state, None, self.file_id, exc.reason)
        )


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
        "to finish the replies in it; if not, run again with --resend-unknown"
    )
