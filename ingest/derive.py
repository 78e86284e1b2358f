"""derive(messages) → threads and series with versions, trailers and status.  Pure.

This is the one place that turns per-mail facts into the facts maintainers read: which mails
form which posting, which postings are versions of one series, who gave which trailer on
which patch, and what happened to each version (applied, pulled, superseded, …) — always
with the message that proves it.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from ingest.applies import Undone, find_appliers, settle_notices
from ingest.ledger import (
    DraftEvents,
    SlotFacts,
    apply_replies,
    build_slots,
    cover_trailers_for,
    find_targets,
)
from ingest.postings import Draft, group_postings, posting_date
from ingest.records import Derived, Evidence, Message, PatchSlot, Posting, Series
from ingest.series import (
    carry_trailers,
    chain_drafts,
    draft_version,
    find_partial_reroll,
    is_pull,
)
from ingest.subjects import normalise_title
from ingest.threads import _EPOCH, group_threads


@dataclass(frozen=True)
class DeriveContext:
    """What deriving some mails takes from all stored mail: when the data ends (idle
    status) and who applies patches (whose notices count).  Deriving a part of the archive
    (incremental derivation) passes the whole archive's."""

    as_of: datetime | None
    appliers: frozenset[str]


def derive_context(messages: Iterable[Message]) -> DeriveContext:
    found = list(messages)
    return DeriveContext(_as_of(found), find_appliers(found))


def derive(messages: Sequence[Message], context: DeriveContext | None = None) -> Derived:
    by_id = {m.msgid: m for m in messages}
    threads = group_threads(by_id.values())
    thread_of = {msgid: t.root for t in threads for msgid in t.msgids}
    drafts = group_postings(by_id.values())
    member_of = {m.msgid: d for d in drafts for m in d.all_messages()}
    targets = find_targets(by_id.values(), member_of, by_id)
    slots_of = {id(d): build_slots(d) for d in drafts}
    replies = [by_id[msgid] for msgid in targets]
    events = apply_replies(replies, targets, slots_of)
    ctx = context if context is not None else derive_context(by_id.values())
    undone = settle_notices(events, slots_of, ctx.appliers)
    chains = chain_drafts(drafts, member_of, by_id)
    partial: dict[int, int] = {}
    for members, _how in chains:
        _complete_versions(members, slots_of, by_id, partial)
    _mark_pulled(drafts, slots_of, chains)

    series_list = []
    series_of: dict[str, str] = {}
    posting_of: dict[str, str] = {}
    for members, how in chains:
        postings = [
            _posting(
                d,
                slots_of[id(d)],
                events.get(id(d)),
                undone.get(id(d)),
                members,
                partial,
                thread_of,
            )
            for d in members
        ]
        first = min(members, key=lambda d: (posting_date(d) is None, posting_date(d)))
        latest = members[-1]
        s = Series(
            id=_posting_key(first),
            title=latest.first.subject.title,
            author=first.first.sender,
            change_id=next((p.change_id for p in postings if p.change_id), None),
            versions=tuple(postings),
            links=tuple(how),
        )
        series_list.append(s)
        for d, p in zip(members, postings, strict=True):
            for m in d.all_messages():
                series_of[m.msgid] = s.id
                posting_of[m.msgid] = p.key
    for msgid, target in targets.items():
        key = _posting_key(target.draft)
        posting_of[msgid] = key
        series_of[msgid] = series_of[target.draft.first.msgid]
    series_list = _with_last_activity(series_list, series_of, by_id)
    series_list = _with_idle(series_list, ctx.as_of)
    series_list.sort(key=lambda s: (s.versions[0].date is None, s.versions[0].date, s.id))
    return Derived(threads, series_list, thread_of, series_of, posting_of)


def _dated_by(date: datetime | None, when: datetime) -> bool:
    """Posted no later than ``when`` (an undated posting is not)."""
    return date is not None and date <= when


def _with_last_activity(series_list: list[Series], series_of, by_id) -> list[Series]:
    last: dict[str, datetime] = {}
    for msgid, sid in series_of.items():
        when = by_id[msgid].date
        if when is not None and (sid not in last or when > last[sid]):
            last[sid] = when
    return [replace(s, last_activity=last.get(s.id)) for s in series_list]


IDLE_AFTER = timedelta(days=90)
_WAITING = ("new", "changes-requested")


AS_OF_RANK = 5


def _as_of(messages) -> datetime | None:
    """When the data ends: the fifth newest Date, so a few mails dated in the future (a
    wrong clock) do not make everything else look idle."""
    dates = sorted(m.date for m in messages if m.date is not None)
    return dates[-min(len(dates), AS_OF_RANK)] if dates else None


def _with_idle(series_list: list[Series], as_of: datetime | None) -> list[Series]:
    """Versions still waiting (new, changes requested) in a series without mail for 90 days
    before the data ends are ``idle``; the evidence is the series' last mail date."""
    if as_of is None:
        return series_list
    out = []
    for s in series_list:
        last = s.last_activity
        if last is None or as_of - last < IDLE_AFTER:
            out.append(s)
            continue
        quiet = Evidence(
            kind="idle",
            msgid=s.versions[-1].key,
            by=s.versions[-1].sender.email,
            where=f"no mail since {last.date().isoformat()}",
            when=last,
        )
        versions = tuple(
            replace(v, status="idle", evidence=(quiet, *v.evidence)) if v.status in _WAITING else v
            for v in s.versions
        )
        out.append(replace(s, versions=versions))
    return out


def _posting_key(d: Draft) -> str:
    return d.first.msgid


def _complete_versions(members, slots_of, by_id, partial: dict[int, int]) -> None:
    """Partial rerolls borrow the earlier version's patches; unchanged patches keep trailers."""
    earlier: list[tuple[int, dict[int, SlotFacts]]] = []
    previous: Draft | None = None
    for d in members:
        slots = slots_of[id(d)]
        if previous is not None and find_partial_reroll(d, previous, by_id):
            partial[id(d)] = draft_version(previous)
            donor = slots_of[id(previous)]
            for n, old in donor.items():
                if n not in slots:
                    slots[n] = SlotFacts(
                        n=n,
                        message=old.message,
                        from_version=draft_version(previous),
                        trailers=list(old.trailers),
                        applied=old.applied,
                        pulled=old.pulled,
                    )
            if d.cover is None:
                cover_trailers_for(slots, previous, donor)
            slots_of[id(d)] = dict(sorted(slots.items()))
        carry_trailers(slots_of[id(d)], earlier)
        earlier.append((draft_version(d), slots_of[id(d)]))
        previous = d


def _mark_pulled(drafts: list[Draft], slots_of, chains) -> None:
    """Patches listed in a later [GIT PULL]'s shortlog, matched by subject and author.

    Only the most recent posting of that patch before the pull is marked: v1..v6 of a
    series were not pulled just because v7's identical patch was.
    """
    chain_of = {id(d): i for i, (members, _how) in enumerate(chains) for d in members}
    position = {id(d): j for members, _how in chains for j, d in enumerate(members)}
    by_title: dict[str, list[tuple[Draft, SlotFacts]]] = defaultdict(list)
    for d in drafts:
        if not is_pull(d):
            for slot in slots_of[id(d)].values():
                by_title[normalise_title(slot.message.subject.title)].append((d, slot))
    dates = {id(d): posting_date(d) for d in drafts}
    for d in drafts:
        cover = d.cover
        if cover is None or cover.pull is None or not cover.pull.shortlog:
            continue
        when = dates[id(d)]
        for author, subject in cover.pull.shortlog:
            candidates = [
                (pd, slot)
                for pd, slot in by_title.get(normalise_title(subject), ())
                if when is None or _dated_by(dates[id(pd)], when)
            ]
            named = [c for c in candidates if _same_name(c[0].first.sender.name, author)]
            pool = named or candidates
            if len({chain_of[id(pd)] for pd, _slot in pool}) != 1:
                continue  # nobody by that name, and several series have that patch title
            _pd, slot = max(pool, key=lambda c: _recency(c[0], pool, position))
            if slot.pulled is None:
                slot.pulled = Evidence(
                    kind="pulled",
                    msgid=cover.msgid,
                    by=cover.sender.email,
                    where=cover.pull.url,
                    when=cover.date,
                )


def _recency(d: Draft, pool, position: dict[int, int]) -> tuple[datetime, int]:
    """How recent a posting is among ``pool`` (one series): by date when every posting
    has one, else by its place in the series (version order) — never None against a date."""
    if all(posting_date(c[0]) is not None for c in pool):
        return (posting_date(d) or _EPOCH, 0)  # ties: the first posted, as before
    return (_EPOCH, position[id(d)])


def _same_name(a: str, b: str) -> bool:
    return " ".join(a.casefold().split()) == " ".join(b.casefold().split())


def _posting(
    d: Draft,
    slots,
    events: DraftEvents | None,
    undone: Undone | None,
    members,
    partial,
    thread_of,
) -> Posting:
    first = d.first
    messages = d.all_messages()
    patches = tuple(
        PatchSlot(
            n=s.n,
            msgid=s.message.msgid,
            subject=s.message.subject.full,
            patch_id=s.message.patch_id,
            from_version=s.from_version,
            trailers=s.ordered(),
            applied=s.applied,
            pulled=s.pulled,
        )
        for s in slots.values()
    )
    status, evidence = _status(d, patches, events, undone, members)
    tags = tuple(dict.fromkeys(t for m in messages for t in m.subject.tags))
    return Posting(
        key=_posting_key(d),
        version=draft_version(d),
        date=posting_date(d),
        sender=first.sender,
        title=first.subject.title,
        cover=d.cover.msgid if d.cover is not None else None,
        total=d.patch_total
        or (d.cover.subject.total if d.cover is not None else None)
        or len(d.members),
        patches=patches,
        prefixes=first.subject.prefixes,
        tags=tags,
        category=_category(d),
        change_id=next((m.change_id for m in messages if m.change_id), None),
        resend=any(m.subject.resend for m in messages),
        partial_reroll_of=partial.get(id(d)),
        status=status,
        evidence=evidence,
        thread_root=thread_of.get(first.msgid),
    )


def _category(d: Draft) -> str:
    if is_pull(d):
        return "PULL"
    if any(m.subject.rfc for m in d.all_messages()):
        return "RFC"
    return "PATCH"


def _status(
    d: Draft, patches, events: DraftEvents | None, undone: Undone | None, members
) -> tuple[str, tuple]:
    applied = [p.applied for p in patches if p.applied is not None]
    if undone is not None and not applied:
        # Taken back after an apply: say so, and keep what was taken back as evidence.
        return undone.by[-1].kind, _unique(undone.by[::-1] + undone.undone)
    pulled = [p.pulled for p in patches if p.pulled is not None]
    done = [p for p in patches if p.applied is not None or p.pulled is not None]
    # Every statement that counted, in date order after the ones the marks rest on.
    history = list(events.notices) if events is not None else []
    history += undone.by if undone is not None else []
    if patches and len(done) == len(patches):
        state = "applied" if len(applied) == len(patches) else "pulled"
        return state, _unique(applied + pulled + history)
    if not patches and events is not None and events.notices:
        return "applied", _unique(events.notices)
    newer = [m for m in members if draft_version(m) > draft_version(d)]
    superseded: tuple[Evidence, ...] = ()
    if newer:
        n = min(newer, key=draft_version)
        superseded = (
            Evidence(
                kind="newer-version",
                msgid=n.first.msgid,
                by=n.sender,
                where=f"v{draft_version(n)}",
                when=posting_date(n),
            ),
        )
    if done:  # the rest of a partly applied version may also have been superseded
        return "partially-applied", _unique(applied + pulled + history) + superseded
    if superseded:
        return "superseded", superseded
    if events is not None and events.respins:
        return "changes-requested", _unique(events.respins)
    return "new", ()


def _unique(evidence: list[Evidence]) -> tuple[Evidence, ...]:
    seen: dict[tuple, Evidence] = {}
    for e in evidence:
        seen.setdefault((e.msgid, e.where), e)
    return tuple(seen.values())
