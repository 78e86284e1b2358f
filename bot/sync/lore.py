"""Pull new mail from lore's HTTP API (``sync``; a public-inbox git mirror is bot/sync/git.py).

``sync`` works in two phases, so a sync that dies leaves nothing half-written:

1. **Ask lore** (no database writes): one search for every message lore received (``rt:``)
   from the high-water mark minus a two-day overlap — like ``lei up``'s fudge, for mail lore
   archived late — up to now (first run: the last 14 days).  The search returns only the
   hits.  Then, batched: the whole threads of new replies whose thread we lack (the cover
   letter is older than the window), and the earlier versions of new vN postings whose
   earlier versions we lack (b4's change-id / subject search), with their threads.
2. **Store** (one transaction): ingest everything (duplicates are skipped by Message-ID),
   move the mark to the newest received time seen, record ``last_sync``.

If lore fails in phase 1 the only write is the failure note in ``last_sync``; the mark stays
where it was, so the next run asks for the same window again.

The mark is a received-time range, from where the first sync started to the newest mail
stored.  ``since`` inside that range changes nothing (the sync starts from the mark); an
earlier ``since`` extends the range back.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta

from bot.config import Config
from bot.progress import Progress, Silent
from bot.sync.pipeline import IngestReport, default_workers, ingest_mails
from ingest.lore.client import LoreClient, LoreError, LoreMail, SeriesHead
from ingest.subjects import parse_subject
from storage.db import Database, writing
from storage.messages import iso
from storage.sync import (
    LoreMark,
    get_lore_mark,
    lowest_version,
    record_sync,
    set_lore_mark,
    stored_msgids,
)

__all__ = ["FIRST_RUN", "OVERLAP", "SyncReport", "sync"]

OVERLAP = timedelta(days=2)
FIRST_RUN = timedelta(days=14)


@dataclass(frozen=True)
class SyncReport:
    """What one lore sync asked and stored."""

    source: str  # the inbox URL
    since: datetime  # received-time window asked for: [since, until]
    until: datetime
    window: int  # messages lore returned for the window
    context_threads: int  # new replies whose thread was fetched
    earlier_lookups: int  # series whose earlier versions were looked up
    earlier_found: int  # earlier postings found (their threads were fetched)
    fetched: int  # distinct messages downloaded in all
    ingest: IngestReport
    requests: int
    high_water_before: datetime | None
    high_water: datetime | None  # mail received from covered_from to here is stored
    covered_from: datetime | None
    seconds: float

    def as_dict(self) -> dict:
        data = asdict(self)
        data["ingest"] = self.ingest.as_dict()
        for key in ("since", "until", "high_water_before", "high_water", "covered_from"):
            data[key] = iso(data[key])
        return data


@dataclass
class _Pulled:
    """Everything fetched in phase 1, by Message-ID (first copy wins)."""

    window: list[LoreMail]
    mails: dict[str, LoreMail] = field(default_factory=dict)
    context_threads: int = 0
    earlier_lookups: int = 0
    earlier_found: int = 0

    def add(self, mails: Iterable[LoreMail]) -> None:
        for mail in mails:
            self.mails.setdefault(mail.msgid or mail.raw.origin, mail)


# --- lore ---------------------------------------------------------------------------------


def sync(
    db: Database,
    config: Config,
    *,
    since: datetime | None = None,
    client: LoreClient | None = None,
    progress: Progress | None = None,
    now: datetime | None = None,
    overlap: timedelta = OVERLAP,
    first_run: timedelta = FIRST_RUN,
) -> SyncReport:
    """Pull what lore received since the last sync and store it; return what was done.

    ``since`` (aware datetime): make sure mail lore received since then is stored.  What
    earlier syncs already cover is not asked again, so a digest can pass its window's start
    on every run and only a first run (or an older window) costs a bigger search.  Windows
    select by Date and this by received time: pass the window start minus a day, for
    senders whose clocks run ahead.
    ``client`` defaults to a ``LoreClient`` for ``config.lore_url``; ``now`` ends the
    window.  Raises ``LoreError`` (nothing stored, mark unchanged) when lore fails.
    """
    until = (now or datetime.now(UTC)).astimezone(UTC)
    bar = progress or Silent()
    own_client = client is None
    lore = client or LoreClient(config.lore_url, git_config=True)
    clock = time.monotonic()
    before = get_lore_mark(db, lore.url)
    start = _window_start(since, before, until, overlap, first_run)
    try:
        pulled = _pull(db, lore, start, until, bar)
    except LoreError as exc:
        _record_failure(db, lore, start, before.high_water if before else None, until, exc)
        raise
    finally:
        if own_client:
            lore.close()
    return _store(db, lore, pulled, start, until, before, clock, bar)


def _store(
    db: Database,
    lore: LoreClient,
    pulled: _Pulled,
    start: datetime,
    until: datetime,
    before: LoreMark | None,
    clock: float,
    bar: Progress,
) -> SyncReport:
    """Phase 2: the mail, the mark and ``last_sync`` in one transaction."""
    bar.update(f"storing {len(pulled.mails)} messages")
    with writing(db, "kvmarm sync"):
        mails = [m.raw for m in pulled.mails.values()]
        workers = default_workers(sum(len(m.data) for m in mails))  # as `kvmarm ingest`
        report = ingest_mails(db, mails, workers=workers, on_mail=_advance(bar))
        mark = _move_lore_mark(db, lore.url, start, _high_water(pulled.window, until))
        result = SyncReport(
            source=lore.url,
            since=start,
            until=until,
            window=len(pulled.window),
            context_threads=pulled.context_threads,
            earlier_lookups=pulled.earlier_lookups,
            earlier_found=pulled.earlier_found,
            fetched=len(pulled.mails),
            ingest=report,
            requests=lore.requests,
            high_water_before=before.high_water if before else None,
            high_water=mark.high_water if mark else None,
            covered_from=mark.covered_from if mark else None,
            seconds=round(time.monotonic() - clock, 3),
        )
        record_sync(db, _last_sync(result))
    return result


def _window_start(
    since: datetime | None,
    mark: LoreMark | None,
    until: datetime,
    overlap: timedelta,
    first_run: timedelta,
) -> datetime:
    """From the mark (minus the overlap) unless ``since`` is earlier than what it covers."""
    if mark is not None and (since is None or since >= mark.covered_from):
        return mark.high_water - overlap
    if since is not None:
        return since.astimezone(UTC)
    return until - first_run


def _high_water(window: Sequence[LoreMail], until: datetime) -> datetime | None:
    """Newest received time in the window, never later than the window's end."""
    times = [m.received for m in window if m.received is not None]
    return min(max(times), until) if times else None


def _move_lore_mark(
    db: Database, url: str, start: datetime, high_water: datetime | None
) -> LoreMark | None:
    """Extend the covered range by this window; read inside the transaction (concurrent runs).

    The range only grows where it stays contiguous: a window that starts after the stored
    high-water mark (another run moved it meanwhile) leaves it alone.
    """
    current = get_lore_mark(db, url)
    if current is None:
        new = LoreMark(start, high_water) if high_water is not None else None
    elif start > current.high_water:
        new = current
    else:
        newest = max(current.high_water, high_water or current.high_water)
        new = LoreMark(min(current.covered_from, start), newest)
    if new is not None and new != current:
        set_lore_mark(db, url, new)
    return new


def _pull(
    db: Database, lore: LoreClient, start: datetime, until: datetime, bar: Progress
) -> _Pulled:
    bar.update(f"lore: mail received since {iso(start)}")
    pulled = _Pulled(window=lore.received_between(start, until))
    pulled.add(pulled.window)
    new = _new_mails(db, pulled.window)
    known = stored_msgids(db, _referenced(new)) | set(pulled.mails)
    context = threads_to_fetch(new, known)
    versions = _Versions.of(pulled.window)
    heads = [h for h in series_heads(new) if _lacks_first_version(db, h, versions)]
    earlier: list[str] = []
    if heads:
        bar.update(f"lore: earlier versions of {len(heads)} series")
        found = lore.find_earlier_versions([_as_head(h) for h in heads])
        earlier = [m.msgid for m in found if m.msgid and m.msgid not in known]
    if context or earlier:
        bar.update(f"lore: {len(context) + len(earlier)} threads from before the window")
        pulled.add(lore.threads([*context, *earlier]))  # one request per 40 threads
    pulled.context_threads, pulled.earlier_lookups = len(context), len(heads)
    pulled.earlier_found = len(earlier)
    return pulled


def _new_mails(db: Database, mails: Sequence[LoreMail]) -> list[LoreMail]:
    stored = stored_msgids(db, (m.msgid for m in mails if m.msgid))
    return [m for m in mails if m.msgid and m.msgid not in stored]


def _referenced(mails: Iterable[LoreMail]) -> Iterator[str]:
    for mail in mails:
        yield from mail.refs


def threads_to_fetch(new: Iterable[LoreMail], known: set[str]) -> list[str]:
    """One new message per thread we lack part of: its whole thread is then fetched.

    A new mail lacks context when it references a message we neither have nor just
    fetched; mails whose first unknown reference is the same share a thread, so one of
    them stands for it.  The new mail's own Message-ID is asked for (lore certainly has
    it), so its thread comes back even when the missing root was never on this list.
    """
    chosen: dict[str, str] = {}
    for mail in new:
        missing = next((r for r in mail.refs if r not in known), None)
        if missing is not None and mail.msgid:
            chosen.setdefault(missing, mail.msgid)
    return list(chosen.values())


@dataclass(frozen=True)
class _Head:
    mail: LoreMail
    key: str  # normalised title
    version: int


def series_heads(new: Iterable[LoreMail]) -> list[_Head]:
    """New postings of a version > 1: the cover letter, else patch 1 (one per series)."""
    heads: dict[tuple[str, str], tuple[int, _Head]] = {}
    for mail in new:
        subject = parse_subject(mail.subject)
        counter = subject.counter or 0
        if subject.is_reply or subject.version < 2 or counter > 1 or mail.date is None:
            continue
        head = _Head(mail, subject.key, subject.version)
        best = heads.get((subject.key, mail.sender))
        if best is None or counter < best[0]:
            heads[(subject.key, mail.sender)] = (counter, head)
    return [head for _, head in heads.values()]


@dataclass(frozen=True)
class _Versions:
    """Lowest version of each title / change-id among fetched postings (not replies)."""

    by_key: dict[str, int]
    by_change_id: dict[str, int]

    @classmethod
    def of(cls, mails: Iterable[LoreMail]) -> _Versions:
        by_key: dict[str, int] = {}
        by_change_id: dict[str, int] = {}
        for mail in mails:
            subject = parse_subject(mail.subject)
            if subject.is_reply:
                continue
            by_key[subject.key] = min(subject.version, by_key.get(subject.key, subject.version))
            if mail.change_id:
                low = by_change_id.get(mail.change_id, subject.version)
                by_change_id[mail.change_id] = min(subject.version, low)
        return cls(by_key, by_change_id)

    def lowest(self, head: _Head) -> int:
        low = self.by_key.get(head.key, head.version)
        if head.mail.change_id is not None:
            low = min(low, self.by_change_id.get(head.mail.change_id, low))
        return low


def _lacks_first_version(db: Database, head: _Head, fetched: _Versions) -> bool:
    """Is no version 1 of the head's series known (stored or just fetched)?

    Looking up whenever the chain does not reach v1 (not only when vN-1 is missing) lets a
    series first seen at v5 get v1-v4 in one search; once v1 is stored, no more lookups.
    """
    if fetched.lowest(head) <= 1:
        return False
    stored = lowest_version(db, head.key, head.mail.change_id)
    return stored is None or stored > 1


def _as_head(head: _Head) -> SeriesHead:
    assert head.mail.date is not None
    return SeriesHead(head.mail.subject, head.mail.sender, head.mail.date, head.mail.change_id)


def _advance(bar: Progress) -> Callable[[object], None]:
    return lambda _mail: bar.advance()


def _last_sync(report: SyncReport) -> dict:
    return {
        "at": iso(report.until),
        "source": report.source,
        "ok": True,
        "since": iso(report.since),
        "messages": report.ingest.added,
        "fetched": report.fetched,
        "requests": report.requests,
        "errors": [],
        "high_water": iso(report.high_water),
        "seconds": report.seconds,
    }


def _record_failure(
    db: Database,
    lore: LoreClient,
    start: datetime,
    mark: datetime | None,
    at: datetime,
    exc: LoreError,
) -> None:
    info = {
        "at": iso(at),
        "source": lore.url,
        "ok": False,
        "since": iso(start),
        "messages": 0,
        "fetched": 0,
        "requests": lore.requests,
        "errors": [str(exc)],
        "high_water": iso(mark),
    }
    record_sync(db, info)
