"""Series versions ("postings"): the cover letter and patches sent together as one version.

Grouping follows what the sender's tools wrote, strongest evidence first:
1. In-Reply-To: a numbered patch answering a cover/patch of an open posting joins it;
2. the git-send-email / format-patch / b4 run encoded in the Message-ID (``send_id``);
3. for mail without either (patchwork's "no references" cases): same sender, version, total
   and prefixes within 12 hours.
A patch never joins a posting that already has its number, whose explicit version differs,
or whose declared total differs from its own (two series sent in one git-send-email run).
Version + patch count alone never groups anything: that was the old report's bug.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from ingest.records import Message
from ingest.threads import sort_key

MARKER_WINDOW = timedelta(hours=12)
# A cover without "[PATCH 0/N]" is one only if its patches followed within minutes (one
# git send-email / b4 send run), not a discussion someone later answered with a patch.
NAKED_COVER_WINDOW = timedelta(minutes=5)


@dataclass
class Draft:
    """A posting under construction (mutable; turned into records.Posting later)."""

    members: dict[int, Message] = field(default_factory=dict)  # counter → message; 0 = cover
    cover: Message | None = None  # a 0/N cover, a [GIT PULL], or a "naked" cover
    resend_of: int | None = None  # an unlabelled RESEND: the version it re-posts
    # sort_key of the mail that opened it: postings are made (and kept) in this order
    order: tuple[datetime, str] | None = None
    # Set by ``freeze`` once complete (level two): what is asked of it again and again.
    _frozen: tuple[list[Message], datetime | None] | None = field(
        default=None, repr=False, compare=False
    )

    def freeze(self) -> None:
        """No member is added any more: remember its messages and date."""
        self._frozen = None
        messages = self.all_messages()
        dates = [m.date for m in messages if m.date is not None]
        self._frozen = (messages, min(dates) if dates else None)

    @property
    def first(self) -> Message:
        if self.cover is not None:
            return self.cover
        return self.members[min(self.members)]

    @property
    def sender(self) -> str:
        return self.first.sender.email

    @property
    def explicit_version(self) -> int | None:
        for m in self.all_messages():
            if m.subject.version_explicit:
                return m.subject.version
        return None

    @property
    def patch_total(self) -> int | None:
        for m in self.members.values():
            if m.subject.total is not None:
                return m.subject.total
        return None

    def all_messages(self) -> list[Message]:
        if self._frozen is not None:
            return self._frozen[0]
        head = [self.cover] if self.cover is not None else []
        return head + [self.members[n] for n in sorted(self.members)]


# stable maintainers' notices quote the patch but are not a posting of it
_STABLE_NOTICE_RE = re.compile(
    r'^(?:FAILED: )?patch ".*" (?:has been added to|failed to apply to) the ', re.I
)


def is_candidate(m: Message) -> bool:
    """Cover letters, patches and pull requests; replies, robots and notices never are."""
    if m.subject.is_reply or m.is_bot or _STABLE_NOTICE_RE.match(m.subject.full):
        return False
    s = m.subject
    if s.pull or m.has_diff:
        return True
    return s.counter is not None and (s.patch or s.rfc or s.counter == 0)


def group_postings(messages: Iterable[Message]) -> list[Draft]:
    """Group candidate messages into postings, in date order."""
    by_id = {m.msgid: m for m in messages}
    drafts: list[Draft] = []
    owner: dict[str, Draft] = {}  # msgid → draft it belongs to
    by_send_id: dict[str, list[Draft]] = defaultdict(list)
    by_sender: dict[str, list[Draft]] = defaultdict(list)  # in creation (date) order
    answering: dict[str, list[Draft]] = defaultdict(list)  # parent msgid → drafts answering it
    for m in sorted((m for m in by_id.values() if is_candidate(m)), key=sort_key):
        draft = _place(m, owner, by_send_id, by_sender, answering)
        if draft is None:
            draft = Draft(order=sort_key(m))
            drafts.append(draft)
            by_sender[m.sender.email].append(draft)
        _add(draft, m)
        if not _is_cover(m) and m.parent and all(d is not draft for d in answering[m.parent]):
            answering[m.parent].append(draft)
        owner[m.msgid] = draft
        if m.send_id and draft not in by_send_id[m.send_id]:
            by_send_id[m.send_id].append(draft)
    for draft in drafts:
        _adopt_naked_cover(draft, by_id, owner)
    return drafts


def _is_cover(m: Message) -> bool:
    return m.subject.counter == 0 or (m.subject.pull and not m.has_diff)


def _add(draft: Draft, m: Message) -> None:
    if _is_cover(m):
        draft.cover = m
    else:
        draft.members[_number(m)] = m


def _number(m: Message) -> int:
    return m.subject.counter or 1


def _place(m: Message, owner, by_send_id, by_sender, answering) -> Draft | None:
    """The open posting ``m`` belongs to, or None to start a new one.

    Only the sender's own postings are looked at (every rule below needs the same sender),
    never "the last N postings": what other people posted meanwhile changes nothing, so
    deriving a part of the archive gives what deriving all of it gives for that part.
    """
    own = by_sender.get(m.sender.email, ())
    if _is_cover(m):
        # A cover normally comes first; if its patches were dated earlier, they answer it
        # (the oldest such posting of the sender's still without a cover).
        waiting = [
            d for d in answering.get(m.msgid, ()) if d.cover is None and d.sender == m.sender.email
        ]
        if waiting:
            created = {id(d): i for i, d in enumerate(own)}
            return min(waiting, key=lambda d: created[id(d)])
        return None
    if m.subject.counter is None:
        return None  # an unnumbered patch is a posting of its own, even when it is a reply
    parent_draft = owner.get(m.parent) if m.parent else None
    if parent_draft is not None and _fits(m, parent_draft):
        return parent_draft
    # Sent in the same run as another open posting (e.g. the kvmtool half of a mixed send).
    for draft in reversed(by_send_id.get(m.send_id, ())) if m.send_id else ():
        if draft is not parent_draft and _fits(m, draft):
            return draft
    if parent_draft is not None:
        return None
    if m.parent is None:
        return _by_markers(m, own)
    return None


def _fits(m: Message, draft: Draft) -> bool:
    s = m.subject
    if draft.sender != m.sender.email or _number(m) in draft.members:
        return False
    version = draft.explicit_version
    if version is not None and s.version_explicit and s.version != version:
        return False
    total = draft.patch_total
    if total is not None:
        return s.total == total
    cover = draft.cover
    if cover is not None and cover.subject.total is not None and s.total != cover.subject.total:
        # "[PATCH 0/6]" over "[PATCH n/5]": the author miscounted, the patches still belong.
        return s.counter is not None and s.counter <= cover.subject.total
    return True


def _by_markers(m: Message, drafts: list[Draft]) -> Draft | None:
    """Mail without threading headers: same sender, version, total, prefixes, close in time
    (``drafts``: the sender's postings, oldest first)."""
    when = m.date
    if when is None or (m.subject.total or 0) < 2:
        return None
    for draft in reversed(drafts):
        first = draft.first
        if first.parent is not None or first.date is None or abs(when - first.date) > MARKER_WINDOW:
            continue
        if _prefix_key(first) != _prefix_key(m) or first.subject.version != m.subject.version:
            continue
        if _fits(m, draft):
            return draft
    return None


def _prefix_key(m: Message) -> tuple[str, ...]:
    return tuple(p.casefold() for p in m.subject.prefixes)


def _adopt_naked_cover(draft: Draft, by_id: dict[str, Message], owner) -> None:
    """b4's rule: a patch answering its own author's thread root (or a mail with a diffstat)
    that has no diff itself is the cover letter, even without "[PATCH 0/N]"."""
    if draft.cover is not None or len(draft.members) < 1:
        return
    for patch in draft.members.values():
        target = by_id.get(patch.parent or "")
        if target is None or target.msgid in owner or target.has_diff or target.subject.is_reply:
            continue
        same_author_root = target.parent is None and target.sender.email == patch.sender.email
        sent_together = (
            target.date is not None
            and patch.date is not None
            and timedelta(0) <= patch.date - target.date <= NAKED_COVER_WINDOW
        )
        if (target.has_diffstat or same_author_root) and sent_together:
            draft.cover = target
            owner[target.msgid] = draft
            return


def posting_date(draft: Draft) -> datetime | None:
    if draft._frozen is not None:
        return draft._frozen[1]
    dates = [m.date for m in draft.all_messages() if m.date is not None]
    return min(dates) if dates else None
