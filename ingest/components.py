"""Which mails can change each other's derived facts.  Pure.

Derivation (ingest/derive.py) only ever relates two mails through something they share:
a Message-ID (threading, In-Reply-To chains, version links), a git-send-email run, a
change-id, a sender with a subject (chaining versions by author and title, or by patch
titles), a normalised patch title (a [GIT PULL]'s shortlog naming patches), or a sender
posting numbered patches without threading headers (grouped by sender and markers).
Each of those is a *key*; mails sharing a key, directly or through others, form one
*component*, and the facts of a component are derived from its mails alone: deriving
each component on its own gives exactly what deriving everything at once gives.

So new mail needs re-deriving only the components its keys touch (merged with it).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import timedelta

from ingest.postings import MARKER_WINDOW, is_candidate
from ingest.records import Message
from ingest.subjects import normalise_title


@dataclass(frozen=True, slots=True)
class Keys:
    """A mail's keys.  Mails holding a key strongly are related to every holder of it;
    weakly held keys relate a mail only to the strong holders (two weak holders of a key
    are not related through it: patches with one title are related only once a [GIT PULL]
    names that title)."""

    strong: frozenset[str]
    weak: frozenset[str] = frozenset()


def component_keys(m: Message) -> Keys:
    """The keys through which ``m`` can affect, or be affected by, another mail."""
    strong = {f"id:{m.msgid}"}
    weak: set[str] = set()
    strong.update(f"id:{r}" for r in m.references if r)
    if m.in_reply_to:
        strong.add(f"id:{m.in_reply_to}")
    strong.update(f"id:{link}" for link in m.version_links if link)
    if m.send_id:
        strong.add(f"send:{m.send_id}")
    if m.change_id:
        strong.add(f"cid:{m.change_id}")
    sender = m.sender.email
    if not m.subject.is_reply and m.subject.key:
        # series.chain_drafts: by author and title, and by shared patch titles (any mail
        # that is not a reply may end up the first mail of a posting: a naked cover).
        strong.add(f"at:{sender}|{m.subject.key}")
    if is_candidate(m):
        weak.add(f"pt:{normalise_title(m.subject.title)}")  # derive._mark_pulled
        if m.parent is None and m.date is not None:
            # postings._by_markers: a numbered patch without threading headers joins a
            # posting by the same sender, version and prefixes sent within 12 hours.
            markers = _markers(m)
            seeker = m.subject.counter is not None and (m.subject.total or 0) >= 2
            (strong if seeker else weak).update(markers)
        if not m.subject.pull and m.date is not None:
            newer, older = _retitle_keys(m)
            # Wildcards (an unlabelled RESEND may be any version) are held strongly by the
            # resend and weakly by the newer postings, so those do not relate to each other.
            strong.update(k for k in newer if "|*|" not in k)
            weak.update(k for k in newer if "|*|" in k)
            strong.update(k for k in older if "|*|" in k)
            weak.update(k for k in older if "|*|" not in k)
    if m.pull is not None:
        strong.update(f"pt:{normalise_title(subject)}" for _author, subject in m.pull.shortlog)
    return Keys(frozenset(strong), frozenset(weak - strong))


RETITLE_WINDOW = timedelta(days=180)


def _retitle_keys(m: Message) -> tuple[set[str], set[str]]:
    """series._retitled: a [PATCH vN] chains to the one posting of v(N-1) by its sender in
    the 180 days before (and must see all of them).  As the newer: its version, this period
    and the one before; as an older one: the next version, this period (an unlabelled
    RESEND may be any version: "*")."""
    assert m.date is not None
    period = int(m.date.timestamp() // RETITLE_WINDOW.total_seconds())
    base = f"rt:{m.sender.email}"
    newer: set[str] = set()
    s = m.subject
    if s.version_explicit and s.version >= 2:
        for p in (period - 1, period):
            newer |= {f"{base}|{s.version}|{p}", f"{base}|*|{p}"}
    after = "*" if s.resend and not s.version_explicit else str(s.version + 1)
    return newer, {f"{base}|{after}|{period}"}


def _markers(m: Message) -> set[str]:
    """Two keys, for this half-day and the next: mails up to 12 hours apart share one."""
    assert m.date is not None
    half_day = int(m.date.timestamp() // MARKER_WINDOW.total_seconds())
    prefixes = ",".join(p.casefold() for p in m.subject.prefixes)
    base = f"mk:{m.sender.email}|{m.subject.version}|{prefixes}"
    return {f"{base}|{half_day}", f"{base}|{half_day + 1}"}


class _UnionFind:
    def __init__(self) -> None:
        self.parent: dict[str, str] = {}

    def find(self, x: str) -> str:
        parent = self.parent.setdefault(x, x)
        while parent != x:
            grand = self.parent.setdefault(parent, parent)
            self.parent[x] = grand
            x, parent = parent, grand
        return x

    def union(self, a: str, b: str) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            self.parent[max(ra, rb)] = min(ra, rb)


def group_components(keys_of: dict[str, Keys]) -> list[list[str]]:
    """Message-IDs grouped into components (each sorted; the list by its first Message-ID)."""
    uf = _UnionFind()
    strong_keys = {k for keys in keys_of.values() for k in keys.strong}
    for msgid, keys in keys_of.items():
        node = f"msg:{msgid}"
        uf.find(node)
        for key in keys.strong:
            uf.union(node, key)
        for key in keys.weak & strong_keys:
            uf.union(node, key)
    groups: dict[str, list[str]] = {}
    for msgid in keys_of:
        groups.setdefault(uf.find(f"msg:{msgid}"), []).append(msgid)
    return sorted((sorted(g) for g in groups.values()), key=lambda g: g[0])


def keys_by_message(messages: Iterable[Message]) -> dict[str, Keys]:
    return {m.msgid: component_keys(m) for m in messages}
