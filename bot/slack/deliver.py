"""Deliver pending events to channel subscriptions and to people who turned alerts on
(`/kvmarm notify on`): exactly once per (event, channel or person).

For each event and each channel whose subscription matches it: the series' card is posted
first (one parent message per series per channel), later events go into its thread, and
the card is updated (``chat.update``) to the current version and status.

Every Slack call that creates a message is recorded before it is made (``pending``) and
after (``sent`` with its ``ts``) by the same exactly-once write as the digest's posting
(bot/slack/ledger.py; the ledger tables differ: ``deliveries`` and ``series_cards`` here), over
the same Slack-call layer (bot/slack/calls.py: ``post_tagged``, ``find_tagged``, what a
failure means).  A delivery found ``pending`` at the next run — the process died during the call, or
Slack answered 5xx — is looked up in the channel by the metadata each message carries
(``event_type: kvmarm_event``, event id, part; every page of the history or thread) before
anything is re-sent; when the lookup is impossible (no ``channels:history``), it is marked
``unknown`` and never re-sent blindly.  Slack refusing a message (not in channel, channel
gone, rate limited) is recorded as ``failed`` and tried again at most ``MAX_ATTEMPTS`` times.
Only channels the bot is a member of receive anything (``conversations.info``).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime

from slack_sdk import WebClient

from bot.config import DEFAULT_LORE_URL
from bot.live.cards import (
    CardFacts,
    card_facts,
    card_message,
    event_message,
    load_series,
    series_view,
)
from bot.live.filters import FilterError, SeriesView, matches, parse_filter
from bot.processes import holder_alive, process_owner
from bot.slack.calls import CallFailed, Refused, call, find_tagged, post_tagged
from bot.slack.ledger import Entry, write_once
from bot.slack.subscribe import CannotTell, membership
from storage import live as store
from storage.db import Database
from storage.messages import from_iso, iso

log = logging.getLogger(__name__)

EVENT_TYPE = "kvmarm_event"
MAX_ATTEMPTS = 3
_FINAL = ("sent", "skipped", "unknown")
_LOCK = threading.Lock()  # threads of one process (serve's sync loop) deliver in turn
_POSTING_KINDS = ("new_series", "new_version")


class DeliveryError(Exception):
    """Delivery cannot run now; the message says why (nothing is lost: it runs again)."""


class SlackUnreachable(DeliveryError):
    """Slack did not answer; what was being sent stays pending and is looked up next time."""


@dataclass
class DeliveryReport:
    events: int = 0  # deliverable events considered
    sent: int = 0  # messages created (cards and thread replies)
    updated: int = 0  # cards updated
    unknown: int = 0  # outcome unknown after a crash; not re-sent
    failed: int = 0
    skipped_channels: set[str] = field(default_factory=set)  # the bot is not a member
    errors: list[str] = field(default_factory=list)

    def describe(self) -> str:
        text = (
            f"{self.events} events to deliver: {self.sent} messages sent, {self.updated} cards "
            f"updated, {self.failed} failed, {self.unknown} of unknown outcome (not re-sent)"
        )
        if self.skipped_channels:
            text += f"; not a member of {', '.join(sorted(self.skipped_channels))}"
        return text


@dataclass
class _Series:
    id: str
    detail: dict
    view: SeriesView
    facts: CardFacts
    # version → addresses that reviewed an earlier version (loaded when needed)
    reviewers: dict[int, set[str]] = field(default_factory=dict)


def deliver_events(
    db: Database,
    client: WebClient,
    *,
    lore_url: str = DEFAULT_LORE_URL,
    now: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> DeliveryReport:
    """Deliver every pending event to the channels subscribed to it and the people who
    asked for alerts (see module docstring).  One delivery run at a time per database:
    DeliveryError when another process is delivering right now."""
    with _LOCK, _database_lock(db, now):
        return _deliver(db, client, lore_url=lore_url, now=now)


@contextmanager
def _database_lock(db: Database, now: Callable[[], datetime]) -> Iterator[None]:
    owner = process_owner()
    holder = store.claim_delivery_lock(
        db, owner, now(), lambda holder: holder_alive(holder, other_host_alive=True)
    )
    if holder is not None:
        raise DeliveryError(f"events are being delivered by process {holder} right now")
    try:
        yield
    finally:
        store.release_delivery_lock(db, owner)


def _deliver(db, client: WebClient, *, lore_url: str, now) -> DeliveryReport:
    report = DeliveryReport()
    subs = store.subscriptions(db)
    people = store.alert_subscribers(db)
    filters = []
    for sub in subs:
        try:
            filters.append((sub, parse_filter(sub.filter)))
        except FilterError as exc:  # stored by an older version with other rules
            report.errors.append(f"{sub.channel}: cannot read filter {sub.filter!r}: {exc}")
    afters = [sub.after_event for sub, _f in filters] + [after for _u, after, _e in people]
    if not afters:
        return report
    # Events up to ``settled`` reached every target they ever will: never read again.
    events = store.pending_events(db, after=max(min(afters), store.settled_events(db)))
    done = store.deliveries_of(db, [e.id for e in events])
    deliverer = _Deliverer(db, client, lore_url, now, report)
    series: dict[str, _Series | None] = {}
    for event in events:
        if not any(event.id > after for after in afters):
            continue
        sid = store.series_of_event(db, event)
        if sid is None:
            continue
        if sid not in series:
            series[sid] = _load(db, sid)
        s = series[sid]
        if s is None:
            continue
        channels = sorted(
            {
                sub.channel
                for sub, f in filters
                if event.id > sub.after_event and matches(f, s.view, event.kind)
            }
        )
        persons = sorted(
            user
            for user, after, emails in people
            if event.id > after and _alert_for(db, event, s, emails)
        )
        counted = False
        for target in channels + persons:
            previous = done.get((event.id, target))
            if previous is not None and _final(previous):
                continue
            if not counted:
                report.events, counted = report.events + 1, True
            if target in persons:
                deliverer.direct(event, target, s, previous)
                continue
            member = deliverer.member(target)
            if member is False:
                deliverer.save(event.id, target, "skipped", None, previous)
            elif member:
                deliverer.deliver(event, target, s, previous)
            else:
                deliverer.unsettled.add((event.id, target))
    if events:
        first_open = min((e for e, _t in deliverer.unsettled), default=events[-1].id + 1)
        store.set_settled_events(db, first_open - 1)
    return report


def _final(d: store.Delivery) -> bool:
    return d.state in _FINAL or (d.state == "failed" and d.attempts >= MAX_ATTEMPTS)


_ALERT_KINDS = ("review", "applied", "pulled", "dropped", "changes_requested")


def _alert_for(db: Database, event: store.Event, s: _Series, emails) -> bool:
    """A personal alert: your series got a review, was applied/pulled/dropped or asked to
    change; a series you reviewed got a new version.  Never about your own mail."""
    if event.actor_email.casefold() in emails:
        return False
    authors = {email.casefold() for _name, email in s.view.people}
    if event.kind in _ALERT_KINDS and authors & emails:
        return True
    if event.kind == "new_version":
        if event.version not in s.reviewers:
            s.reviewers[event.version] = store.reviewers_of_series(db, s.id, event.version)
        return bool(s.reviewers[event.version] & emails)
    return False


def _load(db: Database, series_id: str) -> _Series | None:
    detail = load_series(db, series_id)
    if detail is None or not detail["versions"]:
        return None
    return _Series(series_id, detail, series_view(db, detail), card_facts(db, detail))


class _Deliverer:
    def __init__(self, db, client: WebClient, lore_url: str, now, report: DeliveryReport):
        self.db, self.client, self.lore_url, self.now, self.report = (
            db,
            client,
            lore_url,
            now,
            report,
        )
        self.members: dict[str, bool | None] = {}
        self.unsettled: set[tuple[int, str]] = set()  # (event, target) left pending or to retry

    def member(self, channel: str) -> bool | None:
        """Is the bot in ``channel``?  None: Slack would not say now (tried next run)."""
        if channel not in self.members:
            try:
                member = membership(self.client, channel)
                self.members[channel] = True if member is None else member  # posting decides
            except CannotTell as exc:  # nothing goes there this time
                self.report.errors.append(f"{channel}: conversations.info: {exc}")
                self.members[channel] = None
            except OSError as exc:
                raise SlackUnreachable(f"Slack cannot be reached: {exc}") from exc
            if self.members[channel] is False:
                self.report.skipped_channels.add(channel)
        return self.members[channel]

    def save(self, event_id: int, target: str, state: str, ts: str | None, previous) -> None:
        attempts = (previous.attempts if previous is not None else 0) + (state == "failed")
        delivery = store.Delivery(event_id, target, state, ts, target, attempts, iso(self.now()))
        store.save_delivery(self.db, delivery)
        if _final(delivery):
            self.unsettled.discard((event_id, target))
        else:
            self.unsettled.add((event_id, target))

    # -- one event to one person (a direct message) -------------------------------------------
    def direct(self, event: store.Event, user: str, s: _Series, previous) -> None:
        if previous is not None and previous.state == "pending":  # died during the call:
            self.save(event.id, user, "unknown", None, previous)  # a DM is not looked up
            self.report.unknown += 1
            return
        message = event_message(event, self.lore_url, title=s.facts.title)
        meta = {"event": event.id, "part": "direct"}
        self._write(event, user, _Delivery(self, event.id, user, previous), message, None, meta)

    # -- one event to one channel ------------------------------------------------------------
    def deliver(self, event: store.Event, channel: str, s: _Series, previous) -> None:
        card = store.card_of(self.db, channel, s.id)
        if card is not None and card.state == "pending":
            card, by_event = self._recover_card(channel, card)
            if card is None:
                self.save(event.id, channel, "unknown", None, previous)
                self.report.unknown += 1
                return
            if by_event == event.id and event.kind in _POSTING_KINDS:
                self.save(event.id, channel, "sent", card.ts, previous)
                return
        if card is None or card.state != "sent" or not card.ts:
            ts = self._post_card(event, channel, s, previous)
            if ts is None or event.kind in _POSTING_KINDS:
                return
            card = store.card_of(self.db, channel, s.id)
            assert card is not None and card.ts
        self._post_reply(event, channel, card, previous)
        if card.shown != s.facts.shown:
            self._update_card(channel, card, s)

    def _post_card(self, event, channel: str, s: _Series, previous) -> str | None:
        key = s.detail["versions"][0]["key"]
        meta = {"event": event.id, "part": "card", "series": key}
        message = card_message(s.facts, self.lore_url)
        entry = _CardDelivery(_Delivery(self, event.id, channel, previous), event.kind, key, s)
        return self._write(event, channel, entry, message, None, meta)

    def _post_reply(self, event, channel: str, card: store.Card, previous) -> None:
        meta = {"event": event.id, "part": "reply"}
        recover = None
        if previous is not None and previous.state == "pending":  # died during the call

            def recover() -> str | None:
                found, _payload = self._find(channel, card.ts, meta, since=previous.at)
                if found is False:
                    raise _CannotTell
                return found if isinstance(found, str) else None

        message = event_message(event, self.lore_url)
        entry = _Delivery(self, event.id, channel, previous)
        try:
            self._write(event, channel, entry, message, card.ts, meta, recover=recover)
        except _CannotTell:  # never re-sent blindly
            self.save(event.id, channel, "unknown", None, previous)
            self.report.unknown += 1

    def _write(
        self,
        event,
        target: str,
        entry: Entry,
        message: dict,
        thread_ts: str | None,
        meta: dict,
        *,
        recover: Callable[[], str | None] | None = None,
    ) -> str | None:
        """One message to a channel or person, sent once (bot.slack.ledger); its ts, or None
        when it did not go: refused (recorded failed) or answered 5xx (left pending: the next
        run looks it up before anything is re-sent).  No answer at all stops the run."""
        try:
            return write_once(
                entry,
                send=lambda: post_tagged(
                    self.client, target, message, EVENT_TYPE, meta, thread_ts=thread_ts
                ),
                recover=recover,
            )
        except CallFailed as exc:
            if exc.status is None:  # no answer: it may have arrived; stays pending, looked up
                raise SlackUnreachable(exc.reason) from exc
            self.report.errors.append(f"{target}: event {event.id}: {exc.reason}")
            log.warning("cannot deliver event %s to %s: %s", event.id, target, exc.reason)
            return None

    def _update_card(self, channel: str, card: store.Card, s: _Series) -> None:
        if not card.ts:
            return
        message = card_message(s.facts, self.lore_url)
        try:
            call(
                "chat.update",
                self.client.chat_update,
                channel=channel,
                ts=card.ts,
                text=message["text"],
                blocks=message["blocks"],
            )
        except CallFailed as exc:
            if exc.status is None:
                raise SlackUnreachable(exc.reason) from exc
            self.report.errors.append(f"{channel}: card update: {exc.reason}")
            return
        store.save_card(
            self.db,
            store.Card(channel, card.series_key, "sent", card.ts, s.facts.shown, iso(self.now())),
        )
        self.report.updated += 1

    # -- after a crash -------------------------------------------------------------------
    def _recover_card(self, channel: str, card: store.Card) -> tuple[store.Card | None, int | None]:
        """A card left pending: found in the channel → sent; not there → post again (a card
        without ts); cannot look → None (unknown).  Also: the event that posted it."""
        meta = {"part": "card", "series": card.series_key}
        found, payload = self._find(channel, None, meta, since=card.at)
        if found is False:
            return None, None
        ts = found if isinstance(found, str) else None
        fixed = store.Card(channel, card.series_key, "sent" if ts else "failed", ts, None, card.at)
        store.save_card(self.db, fixed)
        return fixed, payload.get("event")

    def _find(
        self, channel: str, thread_ts, meta: dict, *, since: str
    ) -> tuple[str | bool | None, dict]:
        """The ts (and payload) of our message carrying ``meta`` (the same lookup as the
        digest's, bot.slack.calls); None: not there; False: cannot tell."""
        try:
            found = find_tagged(
                self.client,
                channel,
                EVENT_TYPE,
                meta,
                thread_ts=thread_ts,
                oldest=from_iso(since).timestamp() - 60 if thread_ts is None else 0.0,
                partial=True,
            )
        except Refused as exc:
            log.warning("cannot look up an interrupted delivery in %s: %s", channel, exc.reason)
            return False, {}
        except CallFailed as exc:  # Slack down, rate limited: try the lookup again next run
            prefix = "" if exc.status is None else "Slack is not answering: "
            raise SlackUnreachable(prefix + exc.reason) from exc
        return found if found else (None, {})


class _CannotTell(Exception):
    """An interrupted delivery cannot be looked up (the channel cannot be read)."""


@dataclass(frozen=True, slots=True)
class _Delivery:
    """One (event, channel or person) row of ``deliveries``, as bot.slack.ledger records it."""

    deliverer: _Deliverer
    event_id: int
    target: str
    previous: store.Delivery | None

    def pending(self) -> None:
        self.deliverer.save(self.event_id, self.target, "pending", None, self.previous)

    def sent(self, ts: str, *, found: bool) -> None:
        self.deliverer.save(self.event_id, self.target, "sent", ts, self.previous)
        if not found:
            self.deliverer.report.sent += 1

    def failed(self, exc: CallFailed, *, uncertain: bool) -> None:
        if uncertain or exc.status is None:  # it may be there: stays pending, looked up
            return
        self.deliverer.save(self.event_id, self.target, "failed", None, self.previous)
        self.deliverer.report.failed += 1


@dataclass(frozen=True, slots=True)
class _CardDelivery:
    """A series card (``series_cards``) and the delivery of the event that posts it."""

    delivery: _Delivery
    kind: str
    key: str
    series: _Series

    def pending(self) -> None:
        self._card("pending", None, None)
        self.delivery.pending()

    def sent(self, ts: str, *, found: bool) -> None:
        self._card("sent", ts, self.series.facts.shown)
        if self.kind in _POSTING_KINDS:  # the card announces the posting itself
            self.delivery.sent(ts, found=found)
        elif not found:
            self.delivery.deliverer.report.sent += 1

    def failed(self, exc: CallFailed, *, uncertain: bool) -> None:
        if uncertain or exc.status is None:  # the card may be there: looked up before a resend
            return
        self.delivery.failed(exc, uncertain=uncertain)
        self._card("failed", None, None)

    def _card(self, state: str, ts: str | None, shown: str | None) -> None:
        d = self.delivery.deliverer
        channel = self.delivery.target
        store.save_card(d.db, store.Card(channel, self.key, state, ts, shown, iso(d.now())))
