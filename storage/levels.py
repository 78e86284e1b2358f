"""What the second level of derivation keeps between runs (migration m038).

Postings' summaries (ingest/summaries.py) with the unit and chain they belong to, the
second-level keys each holds, and what pull-request marking reads and decided.  Written in
full by a full derivation, then a part at a time by incremental derivation
(bot/sync/derivation.py); always inside the transaction that writes the facts.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Collection, Iterable
from dataclasses import dataclass
from datetime import datetime

import sqlite_utils

from ingest.components import Keys
from ingest.pulls import Marks, PullCandidate, PullEntry
from ingest.records import Evidence
from ingest.summaries import Summary, decode_evidence, encode_evidence, split
from storage.sqlbits import delete_in, rows_in, select_in


@dataclass(frozen=True, slots=True)
class DraftPlace:
    """Where a posting stands after a derivation: what derive_drafts holds besides its
    summary."""

    key: str
    unit: str
    chain: str
    series_id: str
    hash: str
    shape: str


@dataclass(frozen=True, slots=True)
class StoredDraft:
    place: DraftPlace
    digest: str  # of its summary
    head: Summary  # what chaining reads of it


LEVEL_TABLES = (
    "derive_appliers",
    "derive_drafts",
    "derive_chain_keys",
    "derive_pull_candidates",
    "derive_pull_entries",
    "derive_pull_marks",
)


def clear_levels(db: sqlite_utils.Database) -> None:
    for table in LEVEL_TABLES:
        db.execute(f"DELETE FROM {table}")


def summary_digest(summary: Summary) -> str:
    """What tells whether a posting's summary changed, in three parts: a hash of its head,
    a hash of its body but for its last mail's date, and that date (``same_head``,
    ``same_body``, ``digest_last``)."""
    head, body = split(summary)
    rest = {k: v for k, v in body.items() if k != "last"}
    hashed = (
        hashlib.blake2b(json.dumps(part, separators=(",", ":")).encode(), digest_size=16)
        for part in (head, rest)
    )
    return "".join(h.hexdigest() for h in hashed) + (body["last"] or "")


def _encoded(summary: Summary) -> tuple[str, str]:
    """Head and body as JSON (keys in the order ingest.summaries.summarise made them)."""
    head, body = split(summary)
    return json.dumps(head, separators=(",", ":")), json.dumps(body, separators=(",", ":"))


def same_head(a: str, b: str) -> bool:
    """Two summary digests agree on the head."""
    return a[:32] == b[:32]


def same_body(a: str, b: str) -> bool:
    """Two summary digests agree on the body, but maybe for the date of the last mail."""
    return a[32:64] == b[32:64]


def digest_last(digest: str) -> datetime | None:
    """The date of a posting's last mail, from its summary digest."""
    return datetime.fromisoformat(digest[64:]) if len(digest) > 64 else None


def save_drafts(
    db: sqlite_utils.Database,
    places: Iterable[DraftPlace],
    summaries: dict[str, Summary],
    digests: dict[str, str] | None = None,
) -> None:
    """Insert or replace postings: with their summary when in ``summaries``, else only
    their place (the summary stored stays).  ``digests``: the summaries' digests, when
    the caller has them."""
    full, moved = [], []
    for p in places:
        if p.key in summaries:
            head, body = _encoded(summaries[p.key])
            full.append(
                (
                    p.key,
                    p.unit,
                    p.chain,
                    p.series_id,
                    p.hash,
                    p.shape,
                    (digests or {}).get(p.key) or summary_digest(summaries[p.key]),
                    head,
                    body,
                )
            )
        else:
            moved.append((p.unit, p.chain, p.series_id, p.hash, p.shape, p.key))
    db.conn.executemany(
        "INSERT OR REPLACE INTO derive_drafts(key, unit, chain, series_id, hash, shape, digest, "
        "head, body) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        full,
    )
    db.conn.executemany(
        "UPDATE derive_drafts SET unit = ?, chain = ?, series_id = ?, hash = ?, shape = ? "
        "WHERE key = ?",
        moved,
    )


def delete_drafts(db: sqlite_utils.Database, keys: Collection[str]) -> None:
    delete_in(db, "DELETE FROM derive_drafts WHERE key IN ({})", keys)
    delete_in(db, "DELETE FROM derive_chain_keys WHERE draft IN ({})", keys)


def drafts_of_units(db: sqlite_utils.Database, units: Collection[str]) -> list[StoredDraft]:
    return _drafts(db, "unit", units)


def drafts_of_chains(db: sqlite_utils.Database, chains: Collection[str]) -> list[StoredDraft]:
    return _drafts(db, "chain", chains)


def _drafts(db: sqlite_utils.Database, column: str, values: Collection[str]) -> list[StoredDraft]:
    sql = (
        "SELECT key, unit, chain, series_id, hash, shape, digest, head FROM derive_drafts "
        f"WHERE {column} IN ({{}})"
    )
    return [
        StoredDraft(DraftPlace(key, unit, chain, sid, rows, shape), digest, json.loads(head))
        for key, unit, chain, sid, rows, shape, digest, head in rows_in(db, sql, values)
    ]


def heads_of(db: sqlite_utils.Database, keys: Collection[str]) -> dict[str, Summary]:
    sql = "SELECT key, head FROM derive_drafts WHERE key IN ({})"
    return {key: json.loads(head) for key, head in rows_in(db, sql, keys)}


def places_of(db: sqlite_utils.Database, keys: Collection[str]) -> list[DraftPlace]:
    sql = "SELECT key, unit, chain, series_id, hash, shape FROM derive_drafts WHERE key IN ({})"
    return [DraftPlace(*row) for row in rows_in(db, sql, keys)]


def stored_chaining(
    db: sqlite_utils.Database, series: Collection[str]
) -> list[tuple[list[tuple[str, int]], list[str]]]:
    """Each series' postings (key, version) in order, and how they were chained: what
    ingest.series.chain_drafts decided, read back from the derived tables."""
    members: dict[str, list[tuple[int, str, int]]] = {}
    sql = "SELECT series_id, position, key, version FROM versions WHERE series_id IN ({})"
    for sid, pos, key, version in rows_in(db, sql, series):
        members.setdefault(sid, []).append((pos, key, version))
    links = dict(rows_in(db, "SELECT id, links FROM series WHERE id IN ({})", series))
    return [
        ([(key, version) for _pos, key, version in sorted(rows)], json.loads(links[sid]))
        for sid, rows in sorted(members.items())
    ]


def bodies_of(db: sqlite_utils.Database, keys: Collection[str]) -> dict[str, Summary]:
    sql = "SELECT key, body FROM derive_drafts WHERE key IN ({})"
    return {key: json.loads(body) for key, body in rows_in(db, sql, keys)}


def save_chain_keys(db: sqlite_utils.Database, keys: dict[str, Keys]) -> None:
    """Each posting's second-level keys (replacing what it held)."""
    delete_in(db, "DELETE FROM derive_chain_keys WHERE draft IN ({})", list(keys))
    db.conn.executemany(
        "INSERT OR IGNORE INTO derive_chain_keys(key, draft, strong) VALUES (?, ?, ?)",
        [
            (k, draft, strength)
            for draft, held in keys.items()
            for strength, ks in ((1, held.strong), (0, held.weak))
            for k in sorted(ks)
        ],
    )


def chains_holding(db: sqlite_utils.Database, keys: Iterable[Keys]) -> set[str]:
    """The chains a posting holding ``keys`` is related to: of the postings holding one of
    its strong keys, or holding one of its weak keys strongly (ingest.components.Keys)."""
    strong = {k for held in keys for k in held.strong}
    weak = {k for held in keys for k in held.weak} - strong
    sql = (
        "SELECT DISTINCT d.chain FROM derive_chain_keys k JOIN derive_drafts d ON d.key = k.draft "
        "WHERE k.key IN ({})"
    )
    return set(select_in(db, sql, strong)) | set(select_in(db, sql + " AND k.strong = 1", weak))


# ---- pull requests (ingest.derive.mark_pulled) ---------------------------------------------


def _when(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def _date(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value is not None else None


def save_candidates(db: sqlite_utils.Database, candidates: Iterable[PullCandidate]) -> None:
    db.conn.executemany(_INSERT_CANDIDATE, [_candidate_row(c) for c in candidates])


_INSERT_CANDIDATE = (
    "INSERT INTO derive_pull_candidates(title, key, n, date, sender_name, series_id, "
    "position, order_date, order_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
)


def _candidate_row(c: PullCandidate) -> tuple:
    return (
        c.title,
        c.key,
        c.n,
        _when(c.date),
        c.sender_name,
        c.series,
        c.position,
        c.order[0].isoformat(),
        c.order[1],
    )


def replace_candidates(
    db: sqlite_utils.Database, keys: Collection[str], candidates: Iterable[PullCandidate]
) -> set[str]:
    """Make the candidates of postings ``keys`` be ``candidates``, touching only the rows
    that change; the titles of those rows (old and new)."""
    sql = (
        "SELECT title, key, n, date, sender_name, series_id, position, order_date, order_id "
        "FROM derive_pull_candidates WHERE key IN ({})"
    )
    old = set(rows_in(db, sql, keys))
    new = {_candidate_row(c) for c in candidates}
    gone, added = old - new, new - old
    db.conn.executemany(
        "DELETE FROM derive_pull_candidates WHERE key = ? AND n = ?",
        sorted({(row[1], row[2]) for row in gone}),
    )
    db.conn.executemany(_INSERT_CANDIDATE, sorted(added))
    return {row[0] for row in gone | added}


def _delete_titled(db: sqlite_utils.Database, table: str, keys: Collection[str]) -> set[str]:
    """Delete the rows of ``table`` whose posting key is in ``keys``; the titles they had."""
    titles = set(select_in(db, f"SELECT DISTINCT title FROM {table} WHERE key IN ({{}})", keys))
    delete_in(db, f"DELETE FROM {table} WHERE key IN ({{}})", keys)
    return titles


def candidates_titled(db: sqlite_utils.Database, titles: Collection[str]) -> list[PullCandidate]:
    sql = (
        "SELECT title, key, n, date, sender_name, series_id, position, order_date, order_id "
        "FROM derive_pull_candidates WHERE title IN ({})"
    )
    return [
        PullCandidate(t, key, n, _date(d), name, sid, pos, (datetime.fromisoformat(od), oid))
        for t, key, n, d, name, sid, pos, od, oid in rows_in(db, sql, titles)
    ]


def save_entries(db: sqlite_utils.Database, entries: Iterable[PullEntry]) -> None:
    db.conn.executemany(
        "INSERT INTO derive_pull_entries(title, author, key, idx, date, order_date, order_id, "
        "evidence) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        [
            (
                e.title,
                e.author,
                e.key,
                e.index,
                _when(e.date),
                e.order[0].isoformat(),
                e.order[1],
                json.dumps(encode_evidence(e.evidence)),
            )
            for e in entries
        ],
    )


def delete_entries(db: sqlite_utils.Database, keys: Collection[str]) -> set[str]:
    """Delete the shortlog lines of these pull requests; the titles they named."""
    return _delete_titled(db, "derive_pull_entries", keys)


def entries_titled(db: sqlite_utils.Database, titles: Collection[str]) -> list[PullEntry]:
    sql = (
        "SELECT title, author, key, idx, date, order_date, order_id, evidence "
        "FROM derive_pull_entries WHERE title IN ({})"
    )
    out = []
    for t, author, key, idx, d, od, oid, evidence in rows_in(db, sql, titles):
        proof = decode_evidence(json.loads(evidence))
        assert proof is not None
        out.append(
            PullEntry(t, author, key, idx, _date(d), (datetime.fromisoformat(od), oid), proof)
        )
    return out


def replace_marks(
    db: sqlite_utils.Database, titles: Collection[str], marks: Marks, title_of: dict
) -> set[tuple[str, int]]:
    """Make the stored marks of ``titles`` be ``marks``; the (posting, patch) whose mark
    changed."""
    sql = "SELECT key, n, evidence FROM derive_pull_marks WHERE title IN ({})"
    old = {(key, n): evidence for key, n, evidence in rows_in(db, sql, titles)}
    new = {slot: json.dumps(encode_evidence(e)) for slot, e in marks.items()}
    changed = {slot for slot in old.keys() | new.keys() if old.get(slot) != new.get(slot)}
    delete_in(db, "DELETE FROM derive_pull_marks WHERE title IN ({})", titles)
    db.conn.executemany(
        "INSERT OR REPLACE INTO derive_pull_marks(key, n, title, evidence) VALUES (?, ?, ?, ?)",
        [(key, n, title_of[(key, n)], evidence) for (key, n), evidence in sorted(new.items())],
    )
    return changed


def marks_of(db: sqlite_utils.Database, keys: Collection[str]) -> Marks:
    sql = "SELECT key, n, evidence FROM derive_pull_marks WHERE key IN ({})"
    out: Marks = {}
    for key, n, evidence in rows_in(db, sql, keys):
        proof: Evidence | None = decode_evidence(json.loads(evidence))
        assert proof is not None
        out[(key, n)] = proof
    return out


# ---- who applies patches (ingest.applies.shows_applier) -----------------------------------


def save_appliers(
    db: sqlite_utils.Database, msgids: Collection[str], shown: dict[str, str]
) -> None:
    """Of the mails ``msgids``, those in ``shown`` (msgid → sender) show an applier."""
    delete_in(db, "DELETE FROM derive_appliers WHERE msgid IN ({})", msgids)
    db.conn.executemany(
        "INSERT OR REPLACE INTO derive_appliers(msgid, sender) VALUES (?, ?)",
        sorted(shown.items()),
    )


def stored_appliers(db: sqlite_utils.Database) -> frozenset[str]:
    return frozenset(r[0] for r in db.execute("SELECT DISTINCT sender FROM derive_appliers"))
