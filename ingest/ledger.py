"""Who said what about which patch: reply targets, trailers and "Applied" notices per slot.

A reply's target is found like b4 does: walk up In-Reply-To through other replies until a
cover letter or patch of a posting.  Trailers given on a cover apply to every patch of that
posting; quoted trailers never reach us (parse drops quoted lines); trailers that name
someone other than the sender are kept but flagged ``mismatch`` and not counted.  Unlike
b4, what is said in answer to a reply carrying its own patch (a fixup) is about that fixup,
and nobody's trailer counts on their own patch.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field, replace

from ingest.postings import Draft
from ingest.records import REVIEW_KINDS, Evidence, GivenTrailer, Message, Scope, Trailer
from ingest.scope import resolve
from ingest.threads import sort_key


@dataclass
class SlotFacts:
    """Mutable per-patch facts while deriving."""

    n: int
    message: Message
    from_version: int | None = None
    trailers: list[GivenTrailer] = field(default_factory=list)
    applied: Evidence | None = None
    pulled: Evidence | None = None

    def has(self, trailer: GivenTrailer) -> bool:
        """The same trailer line is already there (b4's LoreTrailer equality: case-insensitive
        kind and "Name <address>"); one person under two names stays two lines, like b4."""
        key = _trailer_key(trailer)
        return any(_trailer_key(t) == key for t in self.trailers)

    def add(self, trailer: GivenTrailer) -> None:
        """Add unless the same line is there; a mismatched restatement of a trailer the
        patch already has is not a new claim (b4 does not flag it either)."""
        if self.has(trailer) or (trailer.mismatch and self.has(replace(trailer, mismatch=False))):
            return
        self.trailers.append(trailer)

    def ordered(self) -> tuple[GivenTrailer, ...]:
        """b4's order: the patch's own trailers, follow-ups to it, to the cover, carried."""
        return tuple(sorted(self.trailers, key=lambda t: _SOURCE_ORDER[t.source]))


_SOURCE_ORDER = {"inline": 0, "reply": 1, "cover": 2, "carried": 3}


def _trailer_key(t: GivenTrailer) -> tuple[str, str, str, bool, bool]:
    return (t.kind.lower(), t.name.casefold(), t.email, t.mismatch, t.unresolved)


@dataclass
class ReplyTarget:
    draft: Draft
    member: Message  # the cover or patch the reply (eventually) answers
    # Answered through a reply that carries its own patch (a fixup): the discussion is the
    # posting's, but trailers and "Applied" said there are about that fixup.
    via_fixup: bool = False


def find_targets(
    messages: Iterable[Message], member_of: dict[str, Draft], by_id: dict[str, Message]
) -> dict[str, ReplyTarget]:
    """Reply msgid → the posting member it answers (through any depth of replies)."""
    memo: dict[str, ReplyTarget | None] = {}

    def resolve(msgid: str, depth: int = 0) -> ReplyTarget | None:
        if msgid in memo:
            return memo[msgid]
        memo[msgid] = None  # cycle guard
        m = by_id.get(msgid)
        result = None
        if m is not None and m.parent and depth < 200:
            parent = m.parent
            up = by_id.get(parent)
            if parent in member_of:
                result = ReplyTarget(member_of[parent], by_id[parent])
            elif (found := resolve(parent, depth + 1)) is not None:
                fixup = found.via_fixup or (up is not None and up.has_diff)
                result = replace(found, via_fixup=fixup) if fixup != found.via_fixup else found
        memo[msgid] = result
        return result

    out = {}
    for m in messages:
        if m.msgid not in member_of and (target := resolve(m.msgid)) is not None:
            out[m.msgid] = target
    return out


def build_slots(draft: Draft) -> dict[int, SlotFacts]:
    slots = {}
    for n, m in sorted(draft.members.items()):
        slot = SlotFacts(n=n, message=m)
        for t in m.trailers:
            slot.add(GivenTrailer(t.kind, t.name, t.email, m.msgid, "inline", mismatch=t.mismatch))
        slots[n] = slot
    return slots


@dataclass
class DraftEvents:
    """Posting-level facts from replies: notices on the cover, requests for a new version."""

    notices: list[Evidence] = field(default_factory=list)
    respins: list[Evidence] = field(default_factory=list)
    # Status statements, in date order: (reply, the slots it answers, said on the cover);
    # ingest.applies decides which count and replays them onto the slots.
    said: list[tuple[Message, list[SlotFacts], bool]] = field(default_factory=list)


def apply_replies(
    replies: list[Message],
    targets: dict[str, ReplyTarget],
    slots_of: dict[int, dict[int, SlotFacts]],
) -> dict[int, DraftEvents]:
    """Attach follow-up trailers and applied notices, in date order (b4's order)."""
    events: dict[int, DraftEvents] = {}
    for m in sorted(replies, key=sort_key):
        target = targets.get(m.msgid)
        if target is None or m.is_bot:
            continue
        slots = slots_of[id(target.draft)]
        on_cover = target.draft.cover is not None and target.member is target.draft.cover
        aimed = list(slots.values()) if on_cover else _slot_for(slots, target.member)
        source = "cover" if on_cover else "reply"
        for t in m.trailers:
            if target.via_fixup and (t.scope is None or not t.scope.series):
                continue  # said about the fixup carried in the thread, not the posting
            given = GivenTrailer(t.kind, t.name, t.email, m.msgid, source, mismatch=t.mismatch)
            covered = aimed
            if t.scope is not None:
                given, covered = _scoped(given, t.scope, slots, aimed, on_cover)
            for slot in covered:
                if t.kind in REVIEW_KINDS and is_author(t, slot.message):
                    continue  # nobody reviews, acks or tests their own patch
                slot.add(given)
        drafted = events.setdefault(id(target.draft), DraftEvents())
        if m.applied is not None and not target.via_fixup:
            drafted.said.append((m, aimed, on_cover))
        if m.respin is not None:
            drafted.respins.append(_evidence(m, m.respin, kind="respin"))
    return events


def is_author(t: Trailer, patch: Message) -> bool:
    """The trailer is by the patch's author: its in-body From: (by address, or by that name),
    else its sender (by address) — whoever sent the mail."""
    author = patch.patch_author
    if t.email and t.email == author.email:
        return True
    return patch.author is not None and _same_person_name(t.name, patch.author.name)


def _same_person_name(a: str, b: str) -> bool:
    return bool(a.strip()) and " ".join(a.casefold().split()) == " ".join(b.casefold().split())


def _scoped(
    given: GivenTrailer,
    scope: Scope,
    slots: dict[int, SlotFacts],
    aimed: list[SlotFacts],
    on_cover: bool,
) -> tuple[GivenTrailer, list[SlotFacts]]:
    """The slots a trailer with scope words counts on; an unresolved scope stays on the slots
    b4 would use, marked ``unresolved`` (shown with its phrase, never counted)."""
    holders = {
        n
        for n, slot in slots.items()
        if any(
            x.email == given.email and x.kind == given.kind and not x.mismatch
            for x in slot.trailers
        )
    }
    replied = None if on_cover or not aimed else aimed[0].n
    done = resolve(
        scope,
        sorted(slots),
        {n: s.message.subject.title for n, s in slots.items()},
        replied=replied,
        kind=given.kind,
        holders=holders,
    )
    if done.unresolved:
        return replace(given, scope=scope.phrase, unresolved=True), aimed
    return replace(given, scope=scope.phrase), [slots[n] for n in done.numbers]


def _evidence(
    m: Message, where: str | None, commit: str | None = None, *, kind: str = "applied"
) -> Evidence:
    return Evidence(
        msgid=m.msgid, by=m.sender.email, where=where, commit=commit, when=m.date, kind=kind
    )


def cover_trailers_for(slots: dict[int, SlotFacts], donor: Draft, donor_slots) -> None:
    """A partial reroll without its own cover inherits the trailers given on the donor's cover."""
    if donor.cover is None:
        return
    for slot in donor_slots.values():
        for t in slot.trailers:
            if t.source == "cover":
                for target in slots.values():
                    target.add(t)
        break


def _slot_for(slots: dict[int, SlotFacts], member: Message) -> list[SlotFacts]:
    return [s for s in slots.values() if s.message is member]
