"""Which patches a [GIT PULL] carried: its shortlog lines matched to postings' patches.  Pure.

A shortlog line names a commit by author and subject.  It marks the most recent posting of
a patch with that (normalised) title posted before the pull — v1..v6 of a series were not
pulled just because v7's identical patch was — when the candidates are in one series, or
the author's name picks one.  Every decision is per title, so incremental derivation
(bot/sync/derivation.py) recomputes only the titles whose candidates or lines changed.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from ingest.postings import Draft, posting_date
from ingest.records import Evidence
from ingest.subjects import normalise_title
from ingest.threads import _EPOCH


@dataclass(frozen=True, slots=True)
class PullCandidate:
    """A patch a [GIT PULL]'s shortlog may name: one slot of one
    posting, with what choosing among candidates looks at."""

    title: str  # normalised patch title
    key: str  # posting key
    n: int
    date: datetime | None  # the posting's date
    sender_name: str  # the posting's sender's name
    series: str
    position: int  # the posting's place in its series
    order: tuple[datetime, str]  # the posting's Draft.order


@dataclass(frozen=True, slots=True)
class PullEntry:
    """One shortlog line of one [GIT PULL]."""

    title: str  # normalised commit subject
    author: str
    key: str  # the pull's posting key
    index: int  # the line's place in the shortlog
    date: datetime | None  # the pull's posting date
    order: tuple[datetime, str]
    evidence: Evidence


def pull_entries(drafts: Iterable[Draft]) -> list[PullEntry]:
    """The shortlog lines of the pull requests among ``drafts``."""
    out = []
    for d in drafts:
        cover = d.cover
        if cover is None or cover.pull is None or not cover.pull.shortlog:
            continue
        assert d.order is not None
        proof = Evidence(
            kind="pulled",
            msgid=cover.msgid,
            by=cover.sender.email,
            where=cover.pull.url,
            when=cover.date,
        )
        when = posting_date(d)
        for i, (author, subject) in enumerate(cover.pull.shortlog):
            out.append(
                PullEntry(normalise_title(subject), author, d.first.msgid, i, when, d.order, proof)
            )
    return out


Marks = dict[tuple[str, int], Evidence]


def mark_pulled(entries: Iterable[PullEntry], candidates: Iterable[PullCandidate]) -> Marks:
    """Patches listed in a later [GIT PULL]'s shortlog, matched by subject and author: the
    first pull (in posting order) to name a patch marks it.

    Only the most recent posting of that patch before the pull is marked: v1..v6 of a
    series were not pulled just because v7's identical patch was.  A title whose
    candidates are in several series is skipped unless the author's name picks one.
    Every decision is per title, so marks can be recomputed one title at a time.
    """
    by_title: dict[str, list[PullCandidate]] = defaultdict(list)
    for c in sorted(candidates, key=lambda c: (c.order, c.n)):
        by_title[c.title].append(c)
    marks: Marks = {}
    for e in sorted(entries, key=lambda e: (e.order, e.index)):
        when = e.date
        pool = [c for c in by_title.get(e.title, ()) if when is None or _dated_by(c.date, when)]
        named = [c for c in pool if _same_name(c.sender_name, e.author)]
        pool = named or pool
        if len({c.series for c in pool}) != 1:
            continue  # nobody by that name, and several series have that patch title
        dated = all(c.date is not None for c in pool)
        best = max(pool, key=lambda c: (c.date or _EPOCH, 0) if dated else (_EPOCH, c.position))
        marks.setdefault((best.key, best.n), e.evidence)
    return marks


def _dated_by(date: datetime | None, when: datetime) -> bool:
    """Posted no later than ``when`` (an undated posting is not)."""
    return date is not None and date <= when


def _same_name(a: str, b: str) -> bool:
    return " ".join(a.casefold().split()) == " ".join(b.casefold().split())
