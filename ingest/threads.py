"""Threads: messages connected through Message-ID / In-Reply-To / References.

Tolerant of missing parents (a thread whose root we never received still forms through the
References its replies share) and of broken headers (cycles, self-references).
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from itertools import pairwise

from ingest.records import Message, Thread

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_REPLY_PREFIX_RE = re.compile(r"^\s*(?:(?:re|fwd?|aw|sv)(?:\[\d+\])?\s*:\s*)+", re.I)


class _UnionFind:
    def __init__(self) -> None:
        self.parent: dict[str, str] = {}

    def find(self, x: str) -> str:
        parent = self.parent
        root = parent.setdefault(x, x)
        while root != parent[root]:
            root = parent[root]
        while x != root:  # path compression
            parent[x], x = root, parent[x]
        return root

    def union(self, a: str, b: str) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            self.parent[max(ra, rb)] = min(ra, rb)


def sort_key(message: Message) -> tuple[datetime, str]:
    return (message.date or message.received or _EPOCH, message.msgid)


def group_threads(messages: Iterable[Message]) -> list[Thread]:
    """All threads, oldest first; each lists its messages by date."""
    by_id = {m.msgid: m for m in messages}
    uf = _UnionFind()
    for m in by_id.values():
        uf.find(m.msgid)
        for ref in m.references:
            uf.union(m.msgid, ref)
    members: dict[str, list[Message]] = defaultdict(list)
    for m in by_id.values():
        members[uf.find(m.msgid)].append(m)
    parents = _parent_map(by_id.values())
    threads = [_make_thread(sorted(ms, key=sort_key), parents, by_id) for ms in members.values()]
    threads.sort(key=lambda t: (sort_key(by_id[t.msgids[0]]), t.root))
    return threads


def _parent_map(messages: Iterable[Message]) -> dict[str, str]:
    """Child → parent, from In-Reply-To and from each References chain (ancestors too)."""
    parents: dict[str, str] = {}
    for m in messages:
        if m.parent and m.parent != m.msgid:
            parents[m.msgid] = m.parent
    for m in messages:
        chain = m.references
        for older, newer in pairwise(chain):
            if older != newer:
                parents.setdefault(newer, older)
    return parents


def find_root(msgid: str, parents: dict[str, str]) -> str:
    seen = {msgid}
    while (up := parents.get(msgid)) is not None and up not in seen:
        seen.add(up)
        msgid = up
    return msgid


def _make_thread(ordered: Sequence[Message], parents: dict[str, str], by_id) -> Thread:
    root = find_root(ordered[0].msgid, parents)
    present = {m.msgid for m in ordered}
    missing = sorted({r for m in ordered for r in m.references if r not in present})
    if root in by_id:
        subject = by_id[root].subject.full
    else:
        subject = _REPLY_PREFIX_RE.sub("", ordered[0].subject.full)
    dates = [m.date for m in ordered if m.date is not None]
    return Thread(
        root=root,
        subject=subject,
        msgids=tuple(m.msgid for m in ordered),
        missing=tuple(missing),
        first_date=min(dates) if dates else None,
        last_date=max(dates) if dates else None,
    )
