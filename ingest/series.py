"""Series: postings chained into versions v1 → vN.

Two postings are versions of one series when (strongest first):
- they carry the same b4 ``change-id``;
- the newer one was sent as a reply into the older one (a v2 answering v1, a partial
  reroll's "[PATCH v3 2/7]" answering v2's 2/7);
- the newer one's cover/notes link to the older one ("v1: https://lore.kernel.org/…");
- same author and same subject once [PATCH vN n/N], RFC and RESEND are stripped;
- a cover letter sent alone, then re-sent with its patches (same sender, title, version);
- retitled: a [PATCH vN] whose title changed, when exactly one posting of v(N-1) by the same
  sender in the 180 days before shares most of its patch-ids or patch titles, or two thirds
  of its title words (after "KVM: arm64:") — and nothing else already chains it.
Each needs the newer posting to have a higher version (or be a RESEND of the same one).
Pull requests are never chained.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import timedelta
from itertools import pairwise

from ingest.ledger import SlotFacts
from ingest.postings import Draft, posting_date
from ingest.records import Message
from ingest.threads import _UnionFind, sort_key

_STABLE_RE = re.compile(r"^\d+\.\d+(?:\.\d+)?(?:\.y|-stable)?$|^stable", re.I)


def draft_version(d: Draft) -> int:
    """The version a posting is of: as labelled; an unlabelled RESEND is a re-post of the
    version before it in its series (set when chaining)."""
    return d.explicit_version or d.resend_of or 1


def draft_title_key(d: Draft) -> str:
    return d.first.subject.key


def is_pull(d: Draft) -> bool:
    return any(m.subject.pull for m in d.all_messages())


def chain_drafts(
    drafts: list[Draft], member_of: dict[str, Draft], replied: dict[str, Draft]
) -> list[tuple[list[Draft], list[str]]]:
    """Group postings into series; each group sorted by (version, date), with link kinds.

    ``drafts`` in the order they were made (``Draft.order``); ``member_of``: member msgid →
    posting; ``replied``: member msgid → the other posting it was sent in reply to
    (``replied_drafts``)."""
    uf = _UnionFind()
    index = {id(d): str(i) for i, d in enumerate(drafts)}
    kinds: dict[str, set[str]] = defaultdict(set)

    def link(older: Draft, newer: Draft, kind: str) -> None:
        if older is newer or not _may_link(older, newer, kind):
            return
        uf.union(index[id(older)], index[id(newer)])
        kinds[index[id(newer)]].add(kind)

    for group in _by_change_id(drafts).values():
        for older, newer in pairwise(group):
            link(older, newer, "change-id")
    for d in drafts:
        for m in d.all_messages():
            if (answered := replied.get(m.msgid)) is not None:
                link(answered, d, "reply")
            for msgid in m.version_links:
                if (linked := member_of.get(msgid)) is not None:
                    link(linked, d, "link")
    for group in _by_author_and_title(drafts).values():
        for older, newer in pairwise(group):
            link(older, newer, "subject")
    for older, newer in _sharing_patch_titles(drafts):
        link(older, newer, "patches")
    for older, newer in _cover_only_first_sends(drafts):
        link(older, newer, "cover-only")
    lowest = _lowest_versions(drafts, uf, index)
    for older, newer in _retitled(drafts):
        if lowest[uf.find(index[id(newer)])] >= draft_version(newer):
            link(older, newer, "retitled")  # only when nothing earlier was found for it

    groups: dict[str, list[Draft]] = defaultdict(list)
    for d in drafts:
        groups[uf.find(index[id(d)])].append(d)
    out = []
    for members in groups.values():
        _number_unlabelled_resends(members)
        members.sort(key=lambda d: (draft_version(d), sort_key(d.first)))
        how = sorted({k for d in members for k in kinds.get(index[id(d)], ())})
        out.append((members, how))
    return out


def _number_unlabelled_resends(members: list[Draft]) -> None:
    latest = 0
    for d in sorted(members, key=lambda d: sort_key(d.first)):
        if d.explicit_version is None and _is_resend(d) and latest:
            d.resend_of = latest
        latest = max(latest, draft_version(d))


def _is_resend(d: Draft) -> bool:
    return any(m.subject.resend for m in d.all_messages())


def _stable_targets(d: Draft) -> frozenset[str]:
    """Prefixes naming a stable tree or AUTOSEL ("[PATCH AUTOSEL 4.19 20/45]"): backports of
    one patch to different trees are separate postings, not versions of each other."""
    first = d.first.subject
    return frozenset(
        p.casefold() for p in first.prefixes if p.upper() == "AUTOSEL" or _STABLE_RE.match(p)
    )


def _may_link(older: Draft, newer: Draft, kind: str) -> bool:
    if is_pull(older) or is_pull(newer):
        return False
    d_old, d_new = posting_date(older), posting_date(newer)
    if d_old is not None and d_new is not None and d_old > d_new:
        older, newer = newer, older
    if kind == "change-id":
        return True
    if kind == "cover-only":  # same sender, title and version: found by _cover_only_first_sends
        return True
    if _send_ids(older) & _send_ids(newer):
        return False  # sent together: two halves of one send, not two versions
    if _stable_targets(older) != _stable_targets(newer):
        return False
    if newer.explicit_version is None and _is_resend(newer) and kind != "patches":
        # "[PATCH RESEND]" of some earlier version, without saying which.
        return older.sender == newer.sender and draft_title_key(older) == draft_title_key(newer)
    v_old, v_new = draft_version(older), draft_version(newer)
    if v_old > v_new:
        return False
    if v_old == v_new:
        resend = _is_resend(newer)
        # An unlabeled re-post with the same subject is b4's "assumed new revision".
        both_unlabeled = older.explicit_version is None and newer.explicit_version is None
        if not (resend or (both_unlabeled and kind == "subject")):
            return False
    if kind == "subject":
        return True
    return older.sender == newer.sender or draft_title_key(older) == draft_title_key(newer)


def _send_ids(d: Draft) -> set[str]:
    return {m.send_id for m in d.all_messages() if m.send_id}


def _by_change_id(drafts: Iterable[Draft]) -> dict[str, list[Draft]]:
    groups: dict[str, list[Draft]] = defaultdict(list)
    for d in drafts:
        cid = next((m.change_id for m in d.all_messages() if m.change_id), None)
        if cid:
            groups[cid].append(d)
    return groups


def _by_author_and_title(drafts: Iterable[Draft]) -> dict[tuple[str, str], list[Draft]]:
    groups: dict[tuple[str, str], list[Draft]] = defaultdict(list)
    for d in sorted(drafts, key=lambda d: sort_key(d.first)):
        if d.first.subject.key:
            groups[(d.sender, draft_title_key(d))].append(d)
    return groups


def _sharing_patch_titles(drafts: list[Draft]) -> list[tuple[Draft, Draft]]:
    """Multi-patch postings by one author whose patch subjects mostly recur in a later one
    (the cover title changed, or one version has no cover): each later posting is paired
    with the latest earlier posting it shares at least half of its patches with."""
    pairs = []
    latest_by_title: dict[tuple[str, str], Draft] = {}
    for d in sorted(drafts, key=lambda d: sort_key(d.first)):
        keys = sorted({m.subject.key for m in d.members.values() if m.subject.key})
        if len(keys) >= 2:
            counts: dict[int, tuple[int, Draft]] = {}
            for key in keys:
                if (older := latest_by_title.get((d.sender, key))) is not None:
                    hits, _ = counts.get(id(older), (0, older))
                    counts[id(older)] = (hits + 1, older)
            best = max(counts.values(), key=lambda c: c[0], default=None)
            if best is not None and best[0] * 2 >= len(keys):
                pairs.append((best[1], d))
        for key in keys:
            latest_by_title[(d.sender, key)] = d
    return pairs


def _lowest_versions(drafts: list[Draft], uf: _UnionFind, index: dict[int, str]) -> dict[str, int]:
    lowest: dict[str, int] = {}
    for d in drafts:
        root = uf.find(index[id(d)])
        lowest[root] = min(lowest.get(root, draft_version(d)), draft_version(d))
    return lowest


def _cover_only_first_sends(drafts: list[Draft]) -> list[tuple[Draft, Draft]]:
    """A cover letter sent without its patches ("where are the patches?") and, within two
    days, the same sender's posting with the same title and version: one series."""
    pairs = []
    waiting: dict[tuple[str, str, int], Draft] = {}
    for d in sorted(drafts, key=lambda d: sort_key(d.first)):
        k = (d.sender, draft_title_key(d), draft_version(d))
        older = waiting.get(k)
        if older is not None and not d.members:
            continue
        if older is not None and d.members and _within(older, d, days=2):
            pairs.append((older, d))
        if d.cover is not None and not d.members and not is_pull(d):
            waiting[k] = d
    return pairs


RETITLE_DAYS = 180
_TITLE_STOP = frozenset({"a", "an", "the", "of", "for", "to", "in", "on", "and", "with", "kvm"})


def title_words(title: str) -> frozenset[str]:
    """Words of a title after its subsystem prefix ("KVM: arm64:", "kvm/arm64:")."""
    tail = title.rsplit(":", 1)[-1]
    return frozenset(w for w in re.findall(r"[a-z0-9_]+", tail.casefold()) if w not in _TITLE_STOP)


def _retitled(drafts: list[Draft]) -> list[tuple[Draft, Draft]]:
    """A "[PATCH v3]" whose title changed: the same sender's version 2 posted in the
    previous 180 days that it shares its patches (by patch-id or title) or most title
    words with.  Only one such earlier posting may qualify — two is a guess, not a link."""
    pairs = []
    by_sender: dict[tuple[str, int], list[Draft]] = defaultdict(list)  # (sender, version)
    likeness: dict[int, _Likeness] = {}

    def like(d: Draft) -> _Likeness:
        found = likeness.get(id(d))
        if found is None:
            found = likeness[id(d)] = _likeness(d)
        return found

    for d in sorted(drafts, key=lambda d: sort_key(d.first)):
        if is_pull(d):
            continue
        v = d.explicit_version
        if v is not None and v >= 2:
            earlier = by_sender.get((d.sender, v - 1), ())
            fits = [
                o
                for o in earlier
                if _within(o, d, days=RETITLE_DAYS) and _is_earlier_version(like(o), like(d))
            ]
            if len(fits) == 1:
                pairs.append((fits[0], d))
        by_sender[d.sender, draft_version(d)].append(d)
    return pairs


@dataclass(frozen=True, slots=True)
class _Likeness:
    """What tells an earlier version of a posting: its patch-ids, patch titles, title words."""

    ids: frozenset[str]
    keys: frozenset[str]
    words: frozenset[str]


def _likeness(d: Draft) -> _Likeness:
    return _Likeness(
        frozenset(m.patch_id for m in d.members.values() if m.patch_id),
        frozenset(m.subject.key for m in d.members.values() if m.subject.key),
        title_words(d.first.subject.title),
    )


def _is_earlier_version(older: _Likeness, newer: _Likeness) -> bool:
    """``older`` shares most of ``newer``'s patches (patch-id or title), or its title."""
    if newer.ids and len(newer.ids & older.ids) * 2 >= len(newer.ids):
        return True
    if len(newer.keys) >= 2 and len(newer.keys & older.keys) * 2 >= len(newer.keys):
        return True
    a, b = older.words, newer.words
    return len(a) >= 2 and len(b) >= 2 and len(a & b) * 3 >= len(a | b) * 2


def _within(older: Draft, newer: Draft, *, days: int) -> bool:
    d_old, d_new = posting_date(older), posting_date(newer)
    if d_old is None or d_new is None:
        return False
    return timedelta(0) <= d_new - d_old <= timedelta(days=days)


def replied_drafts(
    drafts: Iterable[Draft], member_of: dict[str, Draft], by_id: dict[str, Message]
) -> dict[str, Draft]:
    """Member msgid → the other posting it was sent in reply to (through replies, if need
    be): the first posting member up its In-Reply-To chain, when not its own posting."""
    out: dict[str, Draft] = {}
    for d in drafts:
        for m in d.all_messages():
            seen: set[str] = set()
            parent = m.parent
            while parent and parent not in seen and len(seen) < 100:
                seen.add(parent)
                owner = member_of.get(parent)
                if owner is not None:
                    if owner is not d:
                        out[m.msgid] = owner
                    break
                up = by_id.get(parent)
                parent = up.parent if up is not None else None
    return out


REROLL_DEPTH = 50


def reroll_ancestors(d: Draft, by_id: dict[str, Message]) -> dict[str, tuple[str, ...]]:
    """For an incomplete posting (fewer patches than its total), each patch's ancestors up
    its In-Reply-To chain (at most REROLL_DEPTH): what ``find_partial_reroll`` looks at."""
    total = d.patch_total
    if not d.members or total is None or len(d.members) >= total:
        return {}
    out = {}
    for patch in d.members.values():
        chain: list[str] = []
        parent = patch.parent
        for _ in range(REROLL_DEPTH):
            if parent is None:
                break
            chain.append(parent)
            up = by_id.get(parent)
            parent = up.parent if up is not None else None
        out[patch.msgid] = tuple(chain)
    return out


def find_partial_reroll(newer: Draft, older: Draft, ancestors: dict[str, tuple[str, ...]]) -> bool:
    """b4's rule: every patch of the incomplete newer version answers the same n/N of the
    older (``ancestors``: ``reroll_ancestors`` of the newer)."""
    total = newer.patch_total
    if not newer.members or total is None or len(newer.members) >= total:
        return False
    if older.patch_total != total:
        return False
    older_ids = {m.msgid: n for n, m in older.members.items()}
    for n, patch in newer.members.items():
        if not any(older_ids.get(up) == n for up in ancestors.get(patch.msgid, ())):
            return False
    return True


def carry_trailers(
    slots: dict[int, SlotFacts], earlier: dict[str, list[tuple[int, SlotFacts]]]
) -> None:
    """Follow-up trailers given on an earlier version of an unchanged patch (same patch-id;
    ``earlier``: patch-id → (version, slot) of the earlier versions, in version order)."""
    for slot in slots.values():
        pid = slot.message.patch_id
        if not pid or slot.from_version is not None:
            continue
        for version, old in earlier.get(pid, ()):
            for t in old.trailers:
                if t.source == "reply" and not t.mismatch and not t.unresolved:
                    slot.add(replace(t, source="carried", from_version=version))
