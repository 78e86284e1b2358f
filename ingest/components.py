"""Which mails, and which postings, can change each other's derived facts.  Pure.

Derivation (ingest/derive.py) has two levels, and each relates things only through what
they share.  Each shared thing is a *key*; things sharing a key, directly or through
others, form one *component*, and deriving each component alone gives exactly what
deriving everything at once gives.  So new mail re-derives only the components it touches.

Level one (mails → postings) relates two mails through a Message-ID (threading, In-Reply-To
chains), a git-send-email run, or a sender posting numbered patches without threading
headers (grouped by sender and markers): ``component_keys``.  These components ("units")
are about threads, so they stay small however large the archive grows.

Level two (postings → series) relates two postings through a change-id, a reply or link
from one to the other, the sender with the posting's title or a patch title, a patch-id
(retitled versions), or title words (retitled versions): ``chain_keys``.  Pull requests
naming patches are not a key: ingest.pulls.mark_pulled decides them title by title.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import timedelta

from ingest.postings import MARKER_WINDOW, Draft, is_candidate, posting_date
from ingest.records import Message
from ingest.series import RETITLE_DAYS, is_pull, title_words


@dataclass(frozen=True, slots=True)
class Keys:
    """A mail's keys.  Mails holding a key strongly are related to every holder of it;
    weakly held keys relate a mail only to the strong holders (two weak holders of a key
    are not related through it: patches with one title are related only once a [GIT PULL]
    names that title)."""

    strong: frozenset[str]
    weak: frozenset[str] = frozenset()


def component_keys(m: Message) -> Keys:
    """The keys through which ``m`` can affect, or be affected by, another mail when mails
    are grouped into threads and postings (level one)."""
    strong = {f"id:{m.msgid}"}
    weak: set[str] = set()
    strong.update(f"id:{r}" for r in m.references if r)
    if m.in_reply_to:
        strong.add(f"id:{m.in_reply_to}")
    if m.send_id:
        strong.add(f"send:{m.send_id}")
    if is_candidate(m) and m.parent is None and m.date is not None:
        # postings._by_markers: a numbered patch without threading headers joins a
        # posting by the same sender, version and prefixes sent within 12 hours.
        markers = _markers(m)
        seeker = m.subject.counter is not None and (m.subject.total or 0) >= 2
        (strong if seeker else weak).update(markers)
    return Keys(frozenset(strong), frozenset(weak - strong))


# The words most frequent in kvmarm titles (after "KVM: arm64:"), ordered last so prefixes
# hold rarer words.  Any fixed order is correct; this one keeps chains small.  Never
# derived from the data at hand: every run must order words the same way.
_COMMON_TEXT = (
    "add support use hyp page from move vcpu fix introduce when remove stage guest host "
    "test nvhe code el2 make 2 allow register table at implement enable registers handle is "
    "check pmu into s vhe trap handling nested t tests state drop memory virtual don 1 "
    "fixes if generic userspace arm64 set counter arm helper up data cpu memslot out "
    "context function hypercall cache get save as mmio access only mmu refactor time id "
    "fault mode size provide 5 early new by all "
)
_COMMON_WORDS = frozenset(_COMMON_TEXT.split())


def retitle_word_prefix(words: Iterable[str]) -> list[str]:
    """The first |x| - ⌈2|x|/3⌉ + 1 words in one fixed order (rare before common): two
    sets with Jaccard similarity at least 2/3 share one of them (prefix filtering,
    Chaudhuri et al. 2006)."""
    ordered = sorted(set(words), key=lambda w: (w in _COMMON_WORDS, w))
    return ordered[: len(ordered) - (2 * len(ordered) + 2) // 3 + 1]


def _markers(m: Message) -> set[str]:
    """Two keys, for this half-day and the next: mails up to 12 hours apart share one."""
    assert m.date is not None
    half_day = int(m.date.timestamp() // MARKER_WINDOW.total_seconds())
    prefixes = ",".join(p.casefold() for p in m.subject.prefixes)
    base = f"mk:{m.sender.email}|{m.subject.version}|{prefixes}"
    return {f"{base}|{half_day}", f"{base}|{half_day + 1}"}


RETITLE_WINDOW = timedelta(days=RETITLE_DAYS)


def chain_keys(d: Draft, replied: Iterable[str]) -> Keys:
    """The keys through which posting ``d`` can be chained with another (level two), as
    ingest.series.chain_drafts decides; ``replied``: keys of the postings it answers."""
    sender = d.sender
    keys = {f"d:{d.first.msgid}"}
    keys.update(f"d:{key}" for key in replied)
    for m in d.all_messages():
        keys.add(f"m:{m.msgid}")  # version links name a member
        keys.update(f"m:{link}" for link in m.version_links if link)
    change_id = next((m.change_id for m in d.all_messages() if m.change_id), None)
    if change_id:
        keys.add(f"cid:{change_id}")
    if d.first.subject.key:
        keys.add(f"at:{sender}|{d.first.subject.key}")  # by title; cover-only first sends
    for m in d.members.values():
        if m.subject.key:
            keys.add(f"pk:{sender}|{m.subject.key}")  # shared patch titles
    weak: set[str] = set()
    if not is_pull(d):
        newer, older = _retitle_keys(d)
        keys |= newer
        weak |= older
    return Keys(frozenset(keys), frozenset(weak - keys))


def _retitle_keys(d: Draft) -> tuple[set[str], set[str]]:
    """series._retitled: a [PATCH vN] chains to the one posting of v(N-1) by its sender in
    the 180 days before that shares its patch-ids, patch titles (``pk:``, above) or most
    of its title words, and it must see every such posting.  Patch-ids as they are; title
    words by prefix filtering: two word sets with Jaccard similarity ≥ 2/3 share a word
    among the first |x| - ⌈2|x|/3⌉ + 1 of each (words in one fixed order), keyed by sender,
    the newer's version and the 180-day period (the newer's and the one before).  Held
    strongly as the newer, weakly as the older: two older postings are not related
    through a newer one's keys unless it exists.  Returns (strong, weak)."""
    sender = d.sender
    strong = {f"rp:{sender}|{m.patch_id}" for m in d.members.values() if m.patch_id}
    weak: set[str] = set()
    when = posting_date(d)
    words = title_words(d.first.subject.title)
    if when is None or len(words) < 2:
        return strong, weak
    period = int(when.timestamp() // RETITLE_WINDOW.total_seconds())
    version = d.explicit_version
    for w in retitle_word_prefix(words):
        # as the older: its version as series._retitled sees it, before chaining numbers
        # an unlabelled RESEND (draft_version would change once chain_drafts has run)
        weak.add(f"rw:{sender}|{(version or 1) + 1}|{period}|{w}")
        if version is not None and version >= 2:  # as the newer
            strong.update(f"rw:{sender}|{version}|{p}|{w}" for p in (period - 1, period))
    return strong, weak


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
