"""Ingest: raw mails → parsed messages in SQLite → derived facts rebuilt.

Used by `kvmarm ingest` and by the lore sync.  A mail whose Message-ID is already stored
is skipped before parsing (so re-ingesting an archive is cheap), unless the new copy comes
from the preferred list and the stored one does not.  Mails that cannot be parsed are
quarantined with the reason; nothing is dropped silently and nothing stops the run.

Large inputs are parsed by worker processes (parse, compress, git patch-id per chunk of
mails) while this process writes to SQLite; small ones are parsed in-process.
"""

from __future__ import annotations

import hashlib
import logging
import multiprocessing
import os
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime

from bot.live.record import record_live_facts
from bot.sync.derivation import DERIVE_VERSION, facts_out_of_date, rebuild_derived
from ingest.parse import parse_mail, peek_header
from ingest.patchid import compute_patch_ids
from ingest.records import MalformedMail, Message, Quarantined
from ingest.sources import RawMail
from storage.db import Database, database_file
from storage.derived import facts_outdated
from storage.lock import write_lock
from storage.messages import (
    KnownMessages,
    StoredMail,
    any_messages,
    count_messages,
    iso,
    iter_raw,
    known_messages,
    known_quarantine,
    prefer_copy,
    save_messages,
    save_quarantined,
    stored_mail,
)
from storage.state import get_state, set_state

__all__ = ["DERIVE_VERSION", "facts_out_of_date", "rebuild_derived"]  # re-exported for callers

log = logging.getLogger(__name__)

CHUNK = 256  # mails per worker task
BATCH = 2048  # mails per SQLite transaction
PARALLEL_MIN_BYTES = 8 << 20  # below this, worker start-up costs more than it saves
# Bump when parse rules change: `kvmarm reindex` re-parses the stored raw mails, and
# `kvmarm status` says when that is due.
PARSE_VERSION = 8


@dataclass
class IngestReport:
    seen: int = 0
    added: int = 0
    replaced: int = 0
    duplicates: int = 0
    quarantined: int = 0
    added_msgids: list[str] = field(default_factory=list)
    derived: int = 0  # mails (re-)derived: all of them, or the components new mail touched

    def as_dict(self) -> dict:
        return {
            "seen": self.seen,
            "added": self.added,
            "replaced": self.replaced,
            "duplicates": self.duplicates,
            "quarantined": self.quarantined,
        }


@dataclass(frozen=True, slots=True)
class _Failed:
    origin: str
    reason: str
    raw: bytes


def default_workers(total_bytes: int) -> int:
    """Parse processes for an input of this size (0: parse in this process)."""
    if total_bytes < PARALLEL_MIN_BYTES:
        return 0
    return max(1, min(4, os.cpu_count() or 1))


def workers_for_mails(count: int) -> int:
    return default_workers(count * 10_000)  # a kvmarm mail is ~10 kB on average


def ingest_mails(
    db: Database,
    mails: Iterable[RawMail],
    *,
    workers: int = 0,
    on_mail: Callable[[RawMail], None] | None = None,
    now: Callable[[], datetime] = lambda: datetime.now(UTC),
    rebuild: bool = True,
) -> IngestReport:
    """Store new mails, then bring the derived facts up to date with everything stored but
    not yet derived — this run's mail, or a crashed run's (unless ``rebuild=False``).

    Holds the write lock throughout.  ``workers`` > 0 parses in that many processes (see
    ``default_workers``).
    """
    with write_lock(database_file(db), "kvmarm ingest"):
        return _ingest_locked(db, mails, workers=workers, on_mail=on_mail, now=now, rebuild=rebuild)


def _ingest_locked(
    db: Database,
    mails: Iterable[RawMail],
    *,
    workers: int,
    on_mail: Callable[[RawMail], None] | None,
    now: Callable[[], datetime],
    rebuild: bool,
) -> IngestReport:
    report = IngestReport()
    known = known_messages(db)
    had_messages = any_messages(db)
    if not had_messages:
        set_state(db, "parse_version", PARSE_VERSION)
    bad = known_quarantine(db)
    new: dict[str, Message] = {}
    batch: dict[str, StoredMail] = {}  # a preferred copy replaces one in the same batch
    chunks = _chunks(_unseen(mails, known, report, on_mail), CHUNK)
    for results in _parse_chunks(chunks, workers):
        for item in results:
            if isinstance(item, _Failed):
                _quarantine(db, item, bad, report, now)
                continue
            if not _accept(item.message, known, report):
                continue
            new[item.message.msgid] = item.message
            batch[item.message.msgid] = item
        if len(batch) >= BATCH:
            save_messages(db, list(batch.values()), now())
            batch = {}
    if batch:
        save_messages(db, list(batch.values()), now())
    if rebuild and facts_outdated(db, DERIVE_VERSION):
        report.derived = rebuild_derived(db, None if had_messages else list(new.values()), now=now)
    if rebuild:
        record_live_facts(db, now())  # cheap when nothing is new; catches up after a crash
    set_state(db, "last_ingest", {"at": iso(now()), **report.as_dict()})
    return report


def reindex(
    db: Database,
    *,
    workers: int = 0,
    on_mail: Callable[[RawMail], None] | None = None,
    now: Callable[[], datetime] = lambda: datetime.now(UTC),
    chunk: int = CHUNK,
    batch_size: int = BATCH,
) -> int:
    """Re-parse every stored mail from its raw bytes (after parse rules changed) and rebuild
    the derived facts.  Returns the number of mails re-parsed."""
    with write_lock(database_file(db), "kvmarm reindex"):
        return _reindex_locked(db, workers, on_mail, now, chunk, batch_size)


def _reindex_locked(db, workers, on_mail, now, chunk, batch_size) -> int:
    count = 0
    batch: list[StoredMail] = []
    raws = (RawMail(raw, origin) for raw, origin in iter_raw(db))
    for results in _parse_chunks(_chunks(_counted(raws, on_mail), chunk), workers):
        batch.extend(r for r in results if isinstance(r, StoredMail))
        if len(batch) >= batch_size:
            save_messages(db, batch, now())
            count, batch = count + len(batch), []
    if batch:
        save_messages(db, batch, now())
        count += len(batch)
    rebuild_derived(db, now=now, full=True)
    record_live_facts(db, now())
    set_state(db, "parse_version", PARSE_VERSION)
    return count


def parse_outdated(db: Database) -> bool:
    """Stored mails were parsed by older rules than this version's."""
    return count_messages(db) > 0 and get_state(db, "parse_version", 1) != PARSE_VERSION


def _counted(mails: Iterable[RawMail], on_mail) -> Iterator[RawMail]:
    for mail in mails:
        if on_mail is not None:
            on_mail(mail)
        yield mail


def _unseen(
    mails: Iterable[RawMail], known: KnownMessages, report: IngestReport, on_mail
) -> Iterator[RawMail]:
    """Mails whose Message-ID is not stored yet (read from the raw header, before parsing)."""
    for mail in _counted(mails, on_mail):
        report.seen += 1
        msgid = peek_header(mail.data, "message-id")
        if (
            msgid is not None
            and msgid in known
            and not prefer_copy(known[msgid], peek_header(mail.data, "list-id"))
        ):
            report.duplicates += 1
            continue
        yield mail


def _accept(m: Message, known: KnownMessages, report: IngestReport) -> bool:
    if m.msgid in known:
        if not prefer_copy(known[m.msgid], m.list_id):
            report.duplicates += 1
            return False
        report.replaced += 1
    else:
        report.added += 1
        report.added_msgids.append(m.msgid)
    known[m.msgid] = m.list_id
    return True


def _chunks(mails: Iterator[RawMail], size: int) -> Iterator[list[tuple[bytes, str]]]:
    chunk: list[tuple[bytes, str]] = []
    for mail in mails:
        chunk.append((mail.data, mail.origin))
        if len(chunk) >= size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def _parse_chunks(chunks: Iterator[list[tuple[bytes, str]]], workers: int):
    if workers <= 0:
        yield from map(parse_chunk, chunks)
        return
    # At most a few chunks in flight: input is read as workers free up and results are
    # consumed in order, so memory stays bounded however large the input is.
    ctx = multiprocessing.get_context("fork" if os.name == "posix" else "spawn")
    with ctx.Pool(workers) as pool:
        in_flight: deque = deque()
        for chunk in chunks:
            in_flight.append(pool.apply_async(parse_chunk, (chunk,)))
            if len(in_flight) >= 3 * workers:
                yield in_flight.popleft().get()
        while in_flight:
            yield in_flight.popleft().get()


def parse_chunk(chunk: list[tuple[bytes, str]]) -> list[StoredMail | _Failed]:
    """Parse, compress and patch-id one chunk of mails (runs in a worker process)."""
    out: list[StoredMail | _Failed] = []
    for data, origin in chunk:
        try:
            parsed = parse_mail(data)
        except MalformedMail as exc:
            out.append(_Failed(origin, exc.reason, data))
            continue
        except Exception as exc:  # a parser bug must not stop the run: keep the mail, say why
            log.debug("cannot parse %s", origin, exc_info=True)  # the traceback: debug log only
            out.append(_Failed(origin, f"parser error: {type(exc).__name__}: {exc}", data))
            continue
        out.append(replace(stored_mail(parsed, origin), diff=parsed.content.diff))
    stored = [m for m in out if isinstance(m, StoredMail)]
    ids = compute_patch_ids([m.diff for m in stored])
    for i, pid in enumerate(ids):
        if pid:
            stored[i] = replace(stored[i], message=replace(stored[i].message, patch_id=pid))
    it = iter(stored)
    return [item if isinstance(item, _Failed) else replace(next(it), diff="") for item in out]


def _quarantine(db, item: _Failed, bad: set[str], report: IngestReport, now) -> None:
    digest = hashlib.sha256(item.raw).hexdigest()
    if digest in bad:
        report.duplicates += 1
        return
    bad.add(digest)
    report.quarantined += 1
    log.warning("quarantined %s: %s", item.origin, item.reason[:200])
    save_quarantined(db, [Quarantined(item.origin, item.reason, item.raw)], now())
