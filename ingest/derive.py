"""derive(messages) → threads and series with versions, trailers and status.  Pure.

This is the one place that turns per-mail facts into the facts maintainers read: which mails
form which posting, which postings are versions of one series, who gave which trailer on
which patch, and what happened to each version (applied, pulled, superseded, …) — always
with the message that proves it.

It works in two levels, so that new mail costs what it touches (bot/sync/derivation.py):
1. mails → threads and postings (``derive_postings``): what replies say of each patch, one
   summary per posting (ingest/summaries.py);
2. posting summaries → series (``chain_postings``, ``mark_pulled``, ``finish_series``):
   versions chained, trailers carried between them, patches named by pull requests marked,
   statuses decided.  It never reads a mail, only summaries.
Each step relates postings only through what ingest/components.py names, which is what lets
a part of the archive be re-derived alone with the same result.
"""

from __future__ import annotations

import hashlib
import json
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime

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
from ingest.pulls import Marks, PullCandidate, PullEntry, mark_pulled, pull_entries
from ingest.records import Derived, Evidence, Message, PatchSlot, Posting, Series, Thread
from ingest.series import (
    carry_trailers,
    chain_drafts,
    draft_version,
    find_partial_reroll,
    is_pull,
    replied_drafts,
    reroll_ancestors,
)
from ingest.subjects import normalise_title
from ingest.summaries import Summary, Unpacked, summarise, unpack, unpack_body
from ingest.threads import group_threads


@dataclass(frozen=True)
class DeriveContext:
    """What deriving some mails takes from all stored mail: who applies patches (whose
    notices count).  Deriving a part of the archive (incremental derivation) passes the
    whole archive's."""

    appliers: frozenset[str]


def derive_context(messages: Iterable[Message]) -> DeriveContext:
    return DeriveContext(find_appliers(messages))


@dataclass(frozen=True)
class Postings:
    """The first level of derivation over some mails: threads, and one summary per posting
    (ingest/summaries.py).  ``posting_of``: msgid → posting key, for the members of each
    posting and the replies aimed at them."""

    threads: list[Thread]
    thread_of: dict[str, str]
    posting_of: dict[str, str]
    summaries: list[Summary]


def derive_postings(messages: Iterable[Message], context: DeriveContext) -> Postings:
    """Level one: threads, postings, reply targets, trailers and settled notices."""
    by_id = {m.msgid: m for m in messages}
    threads = group_threads(by_id.values())
    thread_of = {msgid: t.root for t in threads for msgid in t.msgids}
    drafts = group_postings(by_id.values())
    member_of = {m.msgid: d for d in drafts for m in d.all_messages()}
    targets = find_targets(by_id.values(), member_of, by_id)
    slots_of = {id(d): build_slots(d) for d in drafts}
    replies = [by_id[msgid] for msgid in targets]
    events = apply_replies(replies, targets, slots_of)
    undone = settle_notices(events, slots_of, context.appliers)
    replied = replied_drafts(drafts, member_of, by_id)
    posting_of = {msgid: _posting_key(d) for msgid, d in member_of.items()}
    last: dict[int, datetime] = {}
    for d in drafts:
        for m in d.all_messages():
            _note_last(last, id(d), m.date)
    for msgid, target in targets.items():
        posting_of[msgid] = _posting_key(target.draft)
        _note_last(last, id(target.draft), by_id[msgid].date)
    summaries = [
        summarise(
            d,
            slots_of[id(d)],
            events.get(id(d)),
            undone.get(id(d)),
            replied={
                m.msgid: _posting_key(replied[m.msgid])
                for m in d.all_messages()
                if m.msgid in replied
            },
            ancestors=reroll_ancestors(d, by_id),
            thread_root=thread_of.get(d.first.msgid),
            last=last.get(id(d)),
        )
        for d in drafts
    ]
    return Postings(threads, thread_of, posting_of, summaries)


def _note_last(last: dict[int, datetime], key: int, when: datetime | None) -> None:
    if when is not None and (key not in last or when > last[key]):
        last[key] = when


@dataclass
class Chains:
    """Level two: postings chained into series.  A series is *completed* (partial rerolls
    filled in, trailers carried from earlier versions) once its postings' bodies are
    unpacked (``complete``), and then finished (``finish_series``)."""

    unpacked: Unpacked
    chains: list[tuple[list[Draft], list[str]]]
    partial: dict[int, int] = field(default_factory=dict)
    completed: set[int] = field(default_factory=set)  # indexes into ``chains``

    def shape(self, i: int) -> str:
        """What a series' facts depend on besides its postings' summaries and pull marks:
        which postings, in which order, chained how (a hash)."""
        members, how = self.chains[i]
        text = json.dumps([[_posting_key(d) for d in members], how], separators=(",", ":"))
        return hashlib.blake2b(text.encode(), digest_size=12).hexdigest()


def chain_postings(heads: list[Summary]) -> Chains:
    """Level two, first step: chain the postings of ``heads`` (summaries, or only their
    heads: ingest/summaries.py) into series."""
    u = unpack(heads)
    return Chains(u, chain_drafts(u.drafts, u.member_of, u.replied))


def complete(chains: Chains, bodies: dict[str, Summary], which: Iterable[int]) -> None:
    """Unpack the bodies of the postings of series ``which`` and complete those series."""
    u = chains.unpacked
    for i in sorted(set(which) - chains.completed):
        members, _how = chains.chains[i]
        for d in members:
            unpack_body(u, d, bodies[_posting_key(d)])
        _complete_versions(members, u.slots_of, u.ancestors, chains.partial)
        chains.completed.add(i)


def pull_candidates(chains: Chains, which: Iterable[int]) -> list[PullCandidate]:
    """The patches of (completed) series ``which`` a pull request may name."""
    out = []
    for i in sorted(which):
        members, _how = chains.chains[i]
        sid = _series_key(members)
        for pos, d in enumerate(members):
            if is_pull(d):
                continue
            assert d.order is not None
            for slot in chains.unpacked.slots_of[id(d)].values():
                out.append(
                    PullCandidate(
                        title=normalise_title(slot.message.subject.title),
                        key=_posting_key(d),
                        n=slot.n,
                        date=posting_date(d),
                        sender_name=d.first.sender.name,
                        series=sid,
                        position=pos,
                        order=d.order,
                    )
                )
    return out


def finish_series(chains: Chains, marks: Marks, which: Iterable[int]) -> list[Series]:
    """Level two, last step: (completed) series ``which``, their versions' statuses decided."""
    u = chains.unpacked
    out = []
    for i in sorted(which):
        members, how = chains.chains[i]
        for d in members:
            for slot in u.slots_of[id(d)].values():
                if slot.pulled is None:
                    slot.pulled = marks.get((_posting_key(d), slot.n))
        postings = [
            _posting(
                d,
                u.slots_of[id(d)],
                u.events.get(id(d)),
                u.undone.get(id(d)),
                members,
                chains.partial,
                u.thread_root[id(d)],
            )
            for d in members
        ]
        first = _first_posted(members)
        latest = members[-1]
        dates = [w for d in members if (w := u.last[id(d)]) is not None]
        out.append(
            Series(
                id=_posting_key(first),
                title=latest.first.subject.title,
                author=first.first.sender,
                change_id=next((p.change_id for p in postings if p.change_id), None),
                versions=tuple(postings),
                links=tuple(how),
                last_activity=max(dates) if dates else None,
            )
        )
    return out


def _series_order(s: Series) -> tuple[bool, datetime | None, str]:
    return (s.versions[0].date is None, s.versions[0].date, s.id)


@dataclass(frozen=True)
class Derivation:
    """Both levels over some mails, with what each level made (kept for incremental
    derivation: bot/sync/derivation.py)."""

    derived: Derived
    postings: Postings
    chains: Chains
    candidates: list[PullCandidate]
    entries: list[PullEntry]
    marks: Marks


def derive_all(messages: Sequence[Message], context: DeriveContext | None = None) -> Derivation:
    """Both levels over ``messages``."""
    ctx = context if context is not None else derive_context(messages)
    level_one = derive_postings(messages, ctx)
    chains = chain_postings(level_one.summaries)
    everything = range(len(chains.chains))
    complete(chains, {s["key"]: s for s in level_one.summaries}, everything)
    candidates = pull_candidates(chains, everything)
    entries = pull_entries(chains.unpacked.drafts)
    marks = mark_pulled(entries, candidates)
    series_list = sorted(finish_series(chains, marks, everything), key=_series_order)
    derived = Derived(
        level_one.threads,
        series_list,
        level_one.thread_of,
        series_by_message(series_list, level_one.posting_of),
        level_one.posting_of,
    )
    return Derivation(derived, level_one, chains, candidates, entries, marks)


def derive(messages: Sequence[Message], context: DeriveContext | None = None) -> Derived:
    """Threads and series of ``messages`` (both levels)."""
    return derive_all(messages, context).derived


def series_by_message(series_list: Iterable[Series], posting_of: dict[str, str]) -> dict[str, str]:
    """msgid → series id, from msgid → posting key."""
    key_series = {v.key: s.id for s in series_list for v in s.versions}
    return {msgid: key_series[key] for msgid, key in posting_of.items()}


def _first_posted(members: list[Draft]) -> Draft:
    return min(members, key=lambda d: (posting_date(d) is None, posting_date(d)))


def _series_key(members: list[Draft]) -> str:
    return _posting_key(_first_posted(members))


def _posting_key(d: Draft) -> str:
    return d.first.msgid


def _complete_versions(members, slots_of, ancestors, partial: dict[int, int]) -> None:
    """Partial rerolls borrow the earlier version's patches; unchanged patches keep trailers."""
    earlier: dict[str, list[tuple[int, SlotFacts]]] = defaultdict(list)  # by patch-id
    previous: Draft | None = None
    for d in members:
        slots = slots_of[id(d)]
        if previous is not None and find_partial_reroll(d, previous, ancestors[id(d)]):
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
        for slot in slots_of[id(d)].values():
            if slot.message.patch_id:
                earlier[slot.message.patch_id].append((draft_version(d), slot))
        previous = d


def _posting(
    d: Draft,
    slots,
    events: DraftEvents | None,
    undone: Undone | None,
    members,
    partial,
    thread_root: str | None,
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
        thread_root=thread_root,
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
