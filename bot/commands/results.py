"""What the commands answer: plain frozen data, built by bot.commands.answers from storage.

Renderers (``render_text`` for the terminal, ``bot.slack.blocks`` for Slack) turn these into
text; they escape, these do not.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from bot.commands.grammar import USAGE, Command
from bot.commands.history import VersionChange
from storage import search
from storage.db import Database
from storage.search import Target

# A summariser: (db, target) → (text, where it came from), or None to use the extract.
Summarise = Callable[[Database, Target], "TargetSummary | None"]

SUMMARY_CHARS = 400


@dataclass(frozen=True, slots=True)
class Who:
    name: str
    email: str

    @property
    def label(self) -> str:
        return self.name or self.email


@dataclass(frozen=True, slots=True)
class Participant:
    name: str
    email: str
    messages: int


@dataclass(frozen=True, slots=True)
class EvidenceInfo:
    """Why a version has its status: a sentence and the message that says so."""

    text: str
    msgid: str | None
    link: str | None


@dataclass(frozen=True, slots=True)
class VersionInfo:
    version: int
    key: str  # cover Message-ID, else first patch's
    title: str
    date: str | None
    total: int  # N of [n/N]
    received: int  # patches we have
    category: str
    tags: tuple[str, ...]
    resend: bool
    status: str
    evidence: tuple[EvidenceInfo, ...]
    link: str

    @property
    def label(self) -> str:
        kind = " RFC" if self.category == "RFC" else ""
        return f"v{self.version}{kind}{' RESEND' if self.resend else ''}"


@dataclass(frozen=True, slots=True)
class TargetSummary:
    text: str
    source: str  # "v8 cover letter", "LLM (model)", …


@dataclass(frozen=True, slots=True)
class ReviewTally:
    kind: str
    people: tuple[str, ...]
    patches: int  # patches with at least one trailer of this kind
    total: int  # patches in the latest version


@dataclass(frozen=True, slots=True)
class SeriesThread:
    """`thread` answered with a patch series."""

    series_id: str
    title: str
    author: Who
    link: str
    versions: tuple[VersionInfo, ...]
    latest: tuple[VersionInfo, ...]  # the postings of the highest version
    messages: int
    participants: tuple[Participant, ...]
    first_date: str | None
    last_date: str | None
    reviews: tuple[ReviewTally, ...]
    summary: TargetSummary | None
    b4: str
    others: tuple[Target, ...] = ()
    note: str | None = None  # how weak the match was ("FEAT_X appears only in the text of …")

    @property
    def share(self) -> str:
        return f"thread {self.series_id}"


@dataclass(frozen=True, slots=True)
class PlainThread:
    """`thread` answered with a discussion that is not (only) a patch series."""

    root: str
    title: str
    link: str
    author: Who | None  # None when the root mail is not stored
    messages: int
    participants: tuple[Participant, ...]
    first_date: str | None
    last_date: str | None
    series: tuple[tuple[str, str], ...]  # (series id, title) carried in the thread
    summary: TargetSummary | None
    b4: str
    others: tuple[Target, ...] = ()
    note: str | None = None  # how weak the match was ("FEAT_X appears only in the text of …")

    @property
    def share(self) -> str:
        return f"thread {self.root}"


@dataclass(frozen=True, slots=True)
class VersionStep:
    versions: tuple[VersionInfo, ...]  # one posting, or the parts of one split send
    change: VersionChange | None  # None for the first
    review_trailers: int


@dataclass(frozen=True, slots=True)
class SeriesHistory:
    series_id: str
    title: str
    author: Who
    linked_by: tuple[str, ...]
    steps: tuple[VersionStep, ...]
    others: tuple[Target, ...] = ()
    note: str | None = None  # how weak the match was ("FEAT_X appears only in the text of …")

    @property
    def share(self) -> str:
        return f"series {self.series_id}"


@dataclass(frozen=True, slots=True)
class TrailerInfo:
    kind: str
    name: str
    email: str
    source: str  # inline | reply | cover | carried
    from_version: int | None
    msgid: str
    link: str
    scope: str | None = None  # the words that limited it ("For patches 2-3:"), as written


@dataclass(frozen=True, slots=True)
class UncountedTrailer:
    """A review trailer given on the latest version that is shown but not counted."""

    kind: str
    name: str
    email: str  # the address in the trailer
    msgid: str
    link: str
    scope: str | None = None  # scope words that could not be mapped to patches
    sender: str | None = None  # the sender's own address, when the trailer names another


@dataclass(frozen=True, slots=True)
class PatchReviews:
    n: int
    title: str
    msgid: str
    link: str
    trailers: tuple[TrailerInfo, ...]


@dataclass(frozen=True, slots=True)
class PostingReviews:
    version: VersionInfo
    patches: tuple[PatchReviews, ...]


@dataclass(frozen=True, slots=True)
class EarlierReviews:
    version: VersionInfo
    by_kind: tuple[tuple[str, tuple[str, ...]], ...]  # (kind, names)


@dataclass(frozen=True, slots=True)
class WhoReviewed:
    series_id: str
    title: str
    author: Who
    latest: tuple[PostingReviews, ...]
    earlier: tuple[EarlierReviews, ...]
    without_trailer: tuple[Participant, ...]  # replied to the latest version, gave no trailer
    mismatched: int  # follow-up trailers naming someone else than the sender (not counted)
    others: tuple[Target, ...] = ()
    # scoped to something we could not map to patches: shown with the phrase, not counted
    unresolved: tuple[UncountedTrailer, ...] = ()
    # the sender's own name with another address ("Tested-by given from another address")
    other_address: tuple[UncountedTrailer, ...] = ()
    note: str | None = None  # how weak the match was ("FEAT_X appears only in the text of …")

    @property
    def share(self) -> str:
        return f"who reviewed {self.series_id}"


@dataclass(frozen=True, slots=True)
class ReviewItem:
    """Trailers one person gave in one mail (a reply to a patch, or to a cover letter)."""

    date: str | None
    kind: str
    series_id: str
    series_title: str
    version: int
    patches: tuple[int, ...]
    on_cover: bool
    msgid: str
    link: str


@dataclass(frozen=True, slots=True)
class Reviews:
    person: Who
    emails: tuple[str, ...]
    items: tuple[ReviewItem, ...]  # given on the list, newest first
    given: int  # trailers given on the list (replies to patches or covers)
    collected: int  # trailers authors put into their postings (given earlier or off-list)
    others: tuple[search.Reviewer, ...] = ()

    @property
    def share(self) -> str:
        return f"reviews {self.emails[0]}"


@dataclass(frozen=True, slots=True)
class Status:
    facts: dict = field(hash=False)

    share = "status"


@dataclass(frozen=True, slots=True)
class Help:
    usage: str = USAGE
    share = ""


@dataclass(frozen=True, slots=True)
class SummaryNote:
    """A summary that came later than its answer (an LLM's), sent as a follow-up."""

    title: str
    link: str
    summary: TargetSummary
    share = ""


@dataclass(frozen=True, slots=True)
class NoMatch:
    command: Command
    what: str  # "series or thread", "series", "reviewer"
    suggestions: tuple[str, ...]  # titles or names
    share = ""


Answer = (
    SeriesThread
    | PlainThread
    | SeriesHistory
    | WhoReviewed
    | Reviews
    | Status
    | Help
    | NoMatch
    | SummaryNote
)
