"""Record types that flow out of ingest/: one parsed mail, and the facts derived from many.

Everything here is a frozen dataclass of plain values so records can be compared, hashed,
stored and rebuilt from SQLite without surprises.  Datetimes are timezone-aware UTC.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

# Trailer kinds that count as review.  Order is the display order.
REVIEW_KINDS: tuple[str, ...] = ("Reviewed-by", "Acked-by", "Tested-by")


class IngestError(Exception):
    """Base class for errors raised by ingest/."""


class MalformedMail(IngestError):
    """A mail that cannot be stored as a message; ``reason`` says why (shown in `status`)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class Person:
    name: str
    email: str  # lower-cased address; the identity of a participant


@dataclass(frozen=True, slots=True)
class Scope:
    """What a follow-up trailer says it covers (see ingest.scope); the phrase is shown."""

    phrase: str  # the words that say so, as written
    series: bool = False  # every patch of the version ("for the whole series")
    exclude: tuple[int, ...] = ()  # … except these ("all but 5/7")
    numbers: tuple[int, ...] = ()  # "for patches 2-5", "to patch 1 and 2"
    first: int = 0  # "the first two"
    last: int = 0  # "the last three"
    others: bool = False  # "for the others": patches that do not carry it yet
    count: int | None = None  # "for the three KVM/arm patches", "for both patches"
    areas: tuple[str, ...] = ()  # subject-area words: "arm64", "kvm", "generic"
    elsewhere: bool = False  # "wrong thread", "for the formal patch": not for this posting
    tested_only: bool = False  # "tested the series": widens only a Tested-by


@dataclass(frozen=True, slots=True)
class Trailer:
    """One ``Kind: Name <email>`` line, as given in a patch or a reply."""

    kind: str  # canonical case, e.g. "Reviewed-by"
    name: str
    email: str  # lower-cased
    # True when a follow-up trailer names someone other than the sender (b4 ignores these).
    mismatch: bool = False
    scope: Scope | None = None  # follow-ups only: what the words around it say it covers


@dataclass(frozen=True, slots=True)
class Subject:
    """What a subject line says about a mail (see ingest.subjects.parse_subject)."""

    full: str  # decoded, whitespace collapsed
    title: str  # without Re:/Fwd: and [prefixes]
    key: str  # title normalised for matching versions of one series
    prefixes: tuple[str, ...] = ()  # bracket tokens except counters/versions, as written
    is_reply: bool = False
    version: int = 1
    version_explicit: bool = False
    counter: int | None = None  # n of [n/N]; None when the subject has no marker
    total: int | None = None
    rfc: bool = False
    resend: bool = False
    patch: bool = False
    pull: bool = False
    tags: tuple[str, ...] = ()  # project tags: kvmtool, kvm-unit-tests, stable, stable-<ver>


@dataclass(frozen=True, slots=True)
class AppliedNotice:
    """A maintainer's "Applied to …, thanks" (or b4 ty) statement found in a reply."""

    where: str | None  # branch/tree as written ("next", "kvmarm/next", "arm64 (for-next/misc)")
    # Patches the notice names: (counter, subject, commit) from a b4 ty list; empty = the
    # patch (or whole series, when replying to a cover) the reply answers.
    items: tuple[tuple[int | None, str, str | None], ...] = ()
    counters: tuple[int, ...] = ()  # "Queued patches 1-5" → (1, 2, 3, 4, 5)
    excluded: tuple[int, ...] = ()  # "… apart from patch 12", "minus #17" → (12,) / (17,)
    verb: str = "applied"  # applied | queued | pulled | dropped | reverted | stable
    # "queued", "applied to -next for now", "only locally until …": may still change.
    tentative: bool = False
    # Says it took the whole series ("Applied the series", "all of these") even when it
    # answers one patch.
    whole: bool = False


@dataclass(frozen=True, slots=True)
class PullRequest:
    """The parts of a ``[GIT PULL]`` that identify what it carries."""

    url: str | None  # "git://… tags/kvmarm-5.9"
    shortlog: tuple[tuple[str, str], ...] = ()  # (author name, commit subject)


@dataclass(frozen=True, slots=True)
class Message:
    """Header and body facts of one mail: everything derivation needs, nothing bulky."""

    msgid: str
    subject: Subject
    sender: Person
    date: datetime | None  # Date header in UTC; None when missing or unparseable
    received: datetime | None = None  # topmost Received: header, UTC
    list_id: str | None = None
    in_reply_to: str | None = None
    references: tuple[str, ...] = ()
    has_diff: bool = False
    has_diffstat: bool = False
    is_bot: bool = False
    trailers: tuple[Trailer, ...] = ()  # inline (patch) or given (reply) trailers
    change_id: str | None = None
    # Message-IDs of earlier versions named by lore / patch.msgid.link URLs ("v1: https://…").
    version_links: tuple[str, ...] = ()
    applied: AppliedNotice | None = None
    respin: str | None = None  # "I'll fix that in v3" / "please respin" (replies only)
    pull: PullRequest | None = None
    patch_id: str | None = None  # git patch-id --stable of the diff
    send_id: str | None = None  # the git-send-email/b4 run this mail belongs to, from its msgid
    # A patch's in-body "From:" (someone else's patch sent by, e.g., a maintainer): its author.
    author: Person | None = None
    # The files a patch's diff touches (``diff --git`` paths, in order); () for non-patches.
    paths: tuple[str, ...] = ()
    # What could not be parsed, e.g. "Date: unparseable 'Wg>'"; the rest is still stored.
    problems: tuple[str, ...] = ()

    @property
    def patch_author(self) -> Person:
        """Who wrote the patch: the in-body From: when there is one (as b4), else the sender."""
        return self.author or self.sender

    @property
    def parent(self) -> str | None:
        """The message this one answers: In-Reply-To, else the last References entry."""
        if self.in_reply_to:
            return self.in_reply_to
        return self.references[-1] if self.references else None


@dataclass(frozen=True, slots=True)
class Content:
    """The bulky parts of a mail, stored but not needed to derive facts."""

    body: str  # own text: no quotes, attribution lines, signature, list footer or diff
    diff: str  # the patch itself, if any
    raw: bytes  # the mail as received


@dataclass(frozen=True, slots=True)
class ParsedMail:
    message: Message
    content: Content


@dataclass(frozen=True, slots=True)
class Quarantined:
    """A mail we could not store as a message; kept with the reason."""

    origin: str
    reason: str
    raw: bytes


# ---- derived facts ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Thread:
    root: str  # msgid of the root (may be a message we do not have)
    subject: str
    msgids: tuple[str, ...]  # messages we have, by date
    missing: tuple[str, ...] = ()  # referenced ancestors we do not have
    first_date: datetime | None = None
    last_date: datetime | None = None


@dataclass(frozen=True, slots=True)
class GivenTrailer:
    """A trailer attached to one patch of one posting, with the message that gave it."""

    kind: str
    name: str
    email: str
    msgid: str  # the message containing the trailer line
    source: str  # "inline" | "reply" | "cover" (reply to the cover) | "carried" (earlier version)
    from_version: int | None = None  # for "carried": the version it was given on
    mismatch: bool = False
    scope: str | None = None  # the words that limited (or widened) it, as written
    unresolved: bool = False  # a scope named but not mapped to patches: shown, never counted


@dataclass(frozen=True, slots=True)
class PatchSlot:
    n: int  # 1..N (0 never appears here; the cover is Posting.cover)
    msgid: str
    subject: str
    patch_id: str | None = None
    from_version: int | None = None  # set when a partial reroll reuses an earlier version's patch
    trailers: tuple[GivenTrailer, ...] = ()
    applied: Evidence | None = None  # a maintainer's "Applied to …" naming this patch
    pulled: Evidence | None = None  # listed in a later [GIT PULL]'s shortlog


@dataclass(frozen=True, slots=True)
class Evidence:
    """Why a status holds: the message that says so, who sent it and what it says."""

    msgid: str
    by: str  # sender address
    where: str | None = None  # branch / tree / pull request URL / "v3" / the sentence
    commit: str | None = None
    when: datetime | None = None
    # applied | queued | pulled | stable | dropped | reverted | newer-version | respin
    kind: str = "applied"


@dataclass(frozen=True, slots=True)
class Posting:
    """One series version: a cover (optional) and the patches sent together."""

    key: str  # msgid of the cover, else of the lowest-numbered patch
    version: int
    date: datetime | None
    sender: Person
    title: str
    cover: str | None
    total: int
    patches: tuple[PatchSlot, ...]
    prefixes: tuple[str, ...] = ()
    tags: tuple[str, ...] = ()
    category: str = "PATCH"  # PATCH | RFC | PULL
    change_id: str | None = None
    resend: bool = False
    partial_reroll_of: int | None = None
    # applied | partially-applied | pulled | dropped | reverted | superseded | changes-requested
    # | new  (idle is decided when read: storage/queue.py)
    status: str = "new"
    evidence: tuple[Evidence, ...] = ()
    thread_root: str | None = None


@dataclass(frozen=True, slots=True)
class Series:
    id: str  # key of its first version
    title: str
    author: Person
    change_id: str | None
    versions: tuple[Posting, ...] = field(default_factory=tuple)
    links: tuple[str, ...] = ()  # how versions were chained: change-id, reply, link, subject
    last_activity: datetime | None = None  # newest Date of any version or reply


@dataclass(frozen=True)
class Derived:
    """What ``ingest.derive.derive`` makes of a set of messages (storage/derived.py saves it)."""

    threads: list[Thread]
    series: list[Series]
    thread_of: dict[str, str]  # msgid → thread root
    series_of: dict[str, str]  # msgid → series id, for members and replies to them
    posting_of: dict[str, str]  # msgid → posting key, likewise
