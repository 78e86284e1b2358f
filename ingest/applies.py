"""Which "Applied …" statements count, and what they do to a posting's patches.  Pure.

A statement found in a reply (ingest.notices) counts only when its sender applies patches:

- it is a b4 thank-you (commit hashes listed) or the stable team's "added to the 5.10-stable
  tree" mail;
- or its sender is known, anywhere in the mail given to derive(), to apply patches: they sent
  a ``[GIT PULL]``, an AUTOSEL pick for stable, a b4 thank-you, or a notice naming a
  tree/branch ("Applied to kvmarm/next", "Queued to …/arm/queue") — a tester names no tree,
  they say "applied and tested" (refused when parsing);
- or the statement itself names such a tree/branch.
The author of the patches never applies them by saying so, unless they are known to apply
patches and name a tree or commit ("Applied to kvmarm/next" under their own series).
Taking back ("dropped from my queue", "reverted") counts from anyone but the author: only
someone who keeps a queue says it.

Statements are replayed in date order: an apply marks the patches it names (a b4 ty list, "patches
1-3", the whole posting when said on the cover or of "the series", else the patch answered); a
later "dropped from my tree" / "reverted" takes those marks back and is kept as evidence.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field

from ingest.ledger import DraftEvents, SlotFacts
from ingest.records import AppliedNotice, Evidence, Message
from ingest.subjects import normalise_title

_NOT_A_TREE_RE = re.compile(
    r"^(?:v?\d+\.\d+(?:\.\d+)?(?:-rc\d+)?|my\b.*|it|this|that|the\b.*|top\b.*)$", re.I
)
_TAKE_BACK = ("dropped", "reverted")


@dataclass
class Undone:
    """Applies taken back on one posting: the statement that did it and what it undid."""

    by: list[Evidence] = field(default_factory=list)
    undone: list[Evidence] = field(default_factory=list)


def names_tree(notice: AppliedNotice) -> bool:
    """The notice says where it went: a branch/tree/URL, or commits (b4 ty)."""
    if any(commit for _n, _s, commit in notice.items):
        return True
    where = notice.where or ""
    return bool(where) and not _NOT_A_TREE_RE.match(where)


def find_appliers(messages: Iterable[Message]) -> frozenset[str]:
    """Addresses that apply patches: pull requests, b4 ty mails, notices naming a tree."""
    return frozenset(m.sender.email for m in messages if shows_applier(m))


def shows_applier(m: Message) -> bool:
    """``m`` shows its sender applies patches: a pull request, an AUTOSEL pick, a b4 ty
    mail, a stable-tree notice or a notice naming a tree."""
    if m.is_bot:
        return False
    if not m.subject.is_reply and (
        m.subject.pull or any(p.upper() == "AUTOSEL" for p in m.subject.prefixes)
    ):
        return True  # pull requests; the stable team's AUTOSEL picks
    notice = m.applied
    if notice is None or notice.verb in _TAKE_BACK:
        return False
    return notice.verb == "stable" or "b4-ty" in m.msgid or names_tree(notice)


def counts(m: Message, slots: Iterable[SlotFacts], appliers: frozenset[str]) -> bool:
    """Whether ``m``'s notice may change the status of the patches it is about."""
    notice = m.applied
    if notice is None:
        return False
    if notice.verb == "stable":
        return True
    authors = {s.message.patch_author.email for s in slots}  # in-body From:, else sender
    own = bool(authors) and authors <= {m.sender.email}
    if notice.verb in _TAKE_BACK:  # only whoever keeps a queue says they dropped from it
        return not own or m.sender.email in appliers
    if own:  # the author picking something up: only a maintainer naming where it went
        return m.sender.email in appliers and names_tree(notice)
    return m.sender.email in appliers or names_tree(notice) or "b4-ty" in m.msgid


def settle_notices(
    events: dict[int, DraftEvents],
    slots_of: dict[int, dict[int, SlotFacts]],
    appliers: frozenset[str],
) -> dict[int, Undone]:
    """Replay each posting's notices in date order onto its patches; what was taken back."""
    undone: dict[int, Undone] = {}
    for key, drafted in events.items():
        slots = slots_of[key]
        for m, aimed, on_cover in drafted.said:
            notice = m.applied
            assert notice is not None
            if not counts(m, slots.values(), appliers):
                continue
            named = _named(notice, slots, aimed, on_cover)
            if notice.verb in _TAKE_BACK:
                _take_back(m, notice, named, drafted, undone.setdefault(key, Undone()))
                continue
            for slot, commit in named:
                if slot.applied is None or _firmer(slot.applied, notice):
                    slot.applied = _evidence(m, notice, commit)
            drafted.notices.append(_evidence(m, notice, None))  # the posting's history
    return {k: u for k, u in undone.items() if u.by}


def _firmer(mark: Evidence, notice: AppliedNotice) -> bool:
    """A firm apply after a tentative one ("Queued" then "Applied to kvm/next") replaces it."""
    return mark.kind == "queued" and not notice.tentative and notice.verb in ("applied", "pulled")


def _take_back(
    m: Message,
    notice: AppliedNotice,
    named: list[tuple[SlotFacts, str | None]],
    drafted: DraftEvents,
    undone: Undone,
) -> None:
    if notice.whole or not notice.counters:
        undone.undone.extend(e for e in drafted.notices if e.kind not in _TAKE_BACK)
        drafted.notices.clear()
    for slot, _commit in named:
        if slot.applied is not None:
            undone.undone.append(slot.applied)
            slot.applied = None
    undone.by.append(_evidence(m, notice, None))


def _named(
    notice: AppliedNotice,
    slots: dict[int, SlotFacts],
    aimed: list[SlotFacts],
    on_cover: bool,
) -> list[tuple[SlotFacts, str | None]]:
    """The patches a notice is about: its b4 ty list, its "patches 1-3", else the whole
    posting (said on the cover, or "the series" said on one patch), else the patch answered."""
    if notice.items:
        named = []
        by_title = {normalise_title(s.message.subject.title): s for s in slots.values()}
        for counter, subject, commit in notice.items:
            slot = by_title.get(normalise_title(subject))
            if slot is None and len(notice.items) == len(slots) and counter in slots:
                slot = slots[counter]  # subject reworded when applied; numbering still agrees
            if slot is not None:
                named.append((slot, commit))
        return named
    if notice.counters:
        return [(slots[n], None) for n in notice.counters if n in slots]
    if on_cover or notice.whole:
        return [(slot, None) for n, slot in slots.items() if n not in notice.excluded]
    return [(slot, None) for slot in aimed]


def _evidence(m: Message, notice: AppliedNotice, commit: str | None) -> Evidence:
    kind = notice.verb
    if notice.tentative and kind in ("applied", "queued"):
        kind = "queued"
    return Evidence(
        msgid=m.msgid, by=m.sender.email, where=notice.where, commit=commit, when=m.date, kind=kind
    )
