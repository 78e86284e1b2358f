"""What a summary of one digest entry is made from and what it is: the request (facts and
mails), the summary, the ``Summariser`` interface, and the error a summariser raises.

    Summariser (Protocol)            summarise(request, deadline=) -> Summary, may raise
                                     SummaryError (OutOfTime when the deadline is near)
    ├── extractive.ExtractiveSummariser   default: facts + key sentences, no network
    └── llm.OpenAISummariser              any OpenAI-compatible Chat Completions endpoint

Orchestration (cache, grounding check, fallback) is in summarise.py.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

from bot.digest.collate import CollatedMail
from bot.digest.grounding import Directory
from storage import digests as store


class SummaryError(Exception):
    """A summariser could not produce a summary (timeout, HTTP error, malformed reply)."""

    def __init__(self, message: str, usage: Usage | None = None) -> None:
        super().__init__(message)
        self.usage = usage


class OutOfTime(SummaryError):
    """The digest's LLM time budget ran out before this entry was summarised."""


@dataclass(frozen=True, slots=True)
class Usage:
    prompt_tokens: int
    completion_tokens: int
    prompt_chars: int
    requests: int = 1


@dataclass(frozen=True, slots=True)
class EntryPerson:
    """Someone of a digest entry: the people a summary may name."""

    name: str
    email: str


@dataclass(frozen=True, slots=True)
class Review:
    kind: str  # Reviewed-by | Acked-by | Tested-by
    name: str
    email: str
    version: int
    patches: tuple[int, ...]  # () = the whole version (given on the cover)
    msgid: str


@dataclass(frozen=True, slots=True)
class Posted:
    version: int
    patches: int
    date: str
    name: str
    msgid: str
    resend: bool = False


@dataclass(frozen=True, slots=True)
class Facts:
    """What the database knows about an entry, for the extractive summary and the prompt."""

    kind: str  # series | thread
    title: str
    category: str = "PATCH"  # PATCH | RFC | PULL | Other
    posted: tuple[Posted, ...] = ()  # versions posted in the period
    previous_version: int | None = None
    reviews: tuple[Review, ...] = ()  # given in the period
    status: str | None = None
    status_by: str | None = None  # name
    status_where: str | None = None
    status_msgid: str | None = None
    status_in_period: bool = False
    first_post: str | None = None
    first_version: int | None = None
    first_author: str | None = None
    latest_before: tuple[int, str] | None = None  # (version, date) newest before the period
    earlier_mails: int = 0
    earlier_people: int = 0
    earlier_reviews: int = 0
    ledger: tuple[Review, ...] = ()  # every review trailer given by the end of the period
    status_people: tuple[EntryPerson, ...] = ()  # who the status evidence names (applied by …)


@dataclass(frozen=True, slots=True)
class SummaryRequest:
    entry_key: str  # series:<id> | thread:<root>
    lang: str  # en | zh
    period_key: str
    period_label: str
    last_msgid: str  # newest mail of the entry in the period (part of the cache key)
    facts: Facts
    mails: tuple[CollatedMail, ...]  # this period, labelled after ``earlier``
    earlier: tuple[CollatedMail, ...] = ()  # a few earlier mails (cover letters first)
    earlier_summary: store.StoredSummary | None = None
    people: tuple[EntryPerson, ...] = ()  # everyone a summary may name
    versions: tuple[int, ...] = ()  # every version a summary may name
    directory: Directory = field(default_factory=lambda: Directory({}), compare=False)

    @property
    def has_history(self) -> bool:
        return bool(self.earlier or self.earlier_summary or self.facts.earlier_mails)

    @property
    def own_text_chars(self) -> int:
        return sum(len(m.text) for m in self.mails if m.kind != "bot")

    def msgid_of(self, label: int) -> str | None:
        for m in (*self.earlier, *self.mails):
            if m.label == label:
                return m.msgid
        return None


@dataclass(frozen=True, slots=True)
class Summary:
    background: str | None
    this_week: str
    source: str  # llm | extractive
    model: str  # what produced the text
    cited: tuple[str, ...] = ()  # Message-IDs
    note: str | None = None  # why the extractive summary stands in for the LLM's
    people: tuple[str, ...] = ()  # names the summariser says it mentioned (LLM only)
    citations: tuple[int, ...] = ()  # labels as returned (LLM only)
    usage: Usage | None = None
    retry: bool = False  # a stand-in for a failed LLM call: ask again next run

    def as_dict(self) -> dict:
        return {
            "background": self.background,
            "this_week": self.this_week,
            "source": self.source,
            "model": self.model,
            "cited": list(self.cited),
            "note": self.note,
        }


class Summariser(Protocol):
    name: str  # part of the cache key: "extractive", "llm:<model>"
    prompt_version: str  # bump when the prompt or the algorithm changes
    budget: float | None  # seconds for all of one digest's calls (None: no limit)

    def summarise(self, request: SummaryRequest, *, deadline: float | None = None) -> Summary:
        """``deadline``: a ``time.monotonic()`` value the call must not run past."""
        ...
