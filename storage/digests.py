"""SQL for the weekly digest: the window's mail, per-entry facts, the summary cache, LLM token
usage and the record of what was posted to which Slack channel.

Windows select by the Date header in UTC, half-open [since, until).  Facts are read "as of"
the end of the window where the data allows it (mail counts, versions, trailers), so a digest
of an old week does not change when later mail arrives — except statuses, which the caller
marks when their evidence is dated after the window.
"""

from __future__ import annotations

import hashlib
import json
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

import sqlite_utils

from ingest.records import REVIEW_KINDS
from storage.db import is_read_only
from storage.messages import iso


@dataclass(frozen=True, slots=True)
class MailRow:
    """One mail as the digest sees it (no body)."""

    msgid: str
    date: str | None  # ISO UTC "…Z"
    received: str | None
    name: str
    email: str
    is_bot: bool
    subject: str
    thread_root: str
    series_id: str | None
    version_key: str | None
    has_diff: bool
    counter: int | None  # n of [PATCH n/N]
    version: int
    version_explicit: bool
    tags: tuple[str, ...]
    rfc: bool
    pull: bool
    is_reply: bool


_MAIL_COLUMNS = """
    g.msgid, g.date, g.received, g.from_name, g.from_email, g.is_bot, g.subject,
    m.thread_root, m.series_id, m.version_key, g.has_diff, g.subject_info, g.is_reply
"""


def _mail(row: tuple) -> MailRow:
    (msgid, date, received, name, email, is_bot, subject, root, sid, vkey, diff, info, reply) = row
    _prefixes, version, explicit, counter, _total, rfc, _resend, _patch, pull, tags = json.loads(
        info
    )
    return MailRow(
        msgid=msgid,
        date=date,
        received=received,
        name=name,
        email=email,
        is_bot=bool(is_bot),
        subject=subject,
        thread_root=root,
        series_id=sid,
        version_key=vkey,
        has_diff=bool(diff),
        counter=counter,
        version=version,
        version_explicit=bool(explicit),
        tags=tuple(tags),
        rfc=bool(rfc),
        pull=bool(pull),
        is_reply=bool(reply),
    )


def window_mails(db: sqlite_utils.Database, since: datetime, until: datetime) -> list[MailRow]:
    """Every mail whose Date is in [since, until), oldest first."""
    sql = f"""
        SELECT {_MAIL_COLUMNS} FROM messages g JOIN memberships m ON m.msgid = g.msgid
        WHERE g.date >= ? AND g.date < ? ORDER BY g.date, g.msgid
    """
    return [_mail(r) for r in db.execute(sql, [iso(since), iso(until)])]


def outside_mails(db: sqlite_utils.Database, since: datetime, until: datetime) -> list[MailRow]:
    """Mail received in [since, until) whose Date lies outside it (late, backdated, or no
    usable Date at all)."""
    sql = f"""
        SELECT {_MAIL_COLUMNS} FROM messages g JOIN memberships m ON m.msgid = g.msgid
        WHERE g.received >= ? AND g.received < ? AND (g.date IS NULL OR g.date < ? OR g.date >= ?)
        ORDER BY g.received, g.msgid
    """
    s, u = iso(since), iso(until)
    return [_mail(r) for r in db.execute(sql, [s, u, s, u])]


def series_mails(db: sqlite_utils.Database, series_id: str, until: datetime) -> list[MailRow]:
    """Every mail of a series (versions and replies) dated before ``until``, oldest first."""
    sql = f"""
        SELECT {_MAIL_COLUMNS} FROM memberships m JOIN messages g ON g.msgid = m.msgid
        WHERE m.series_id = ? AND g.date < ? ORDER BY g.date, g.msgid
    """
    return [_mail(r) for r in db.execute(sql, [series_id, iso(until)])]


def thread_mails(db: sqlite_utils.Database, root: str, until: datetime) -> list[MailRow]:
    """Mails of a thread that belong to no series, dated before ``until``, oldest first."""
    sql = f"""
        SELECT {_MAIL_COLUMNS} FROM memberships m JOIN messages g ON g.msgid = m.msgid
        WHERE m.thread_root = ? AND m.series_id IS NULL AND g.date < ? ORDER BY g.date, g.msgid
    """
    return [_mail(r) for r in db.execute(sql, [root, iso(until)])]


def bodies(db: sqlite_utils.Database, msgids: Sequence[str]) -> dict[str, str]:
    """The stored own words (no quotes, signature or diff) of each message."""
    out: dict[str, str] = {}
    for part in _chunks(list(dict.fromkeys(msgids))):
        sql = f"SELECT msgid, body FROM messages WHERE msgid IN ({_marks(part)})"
        out.update(db.execute(sql, part).fetchall())
    return out


def thread_subjects(db: sqlite_utils.Database, roots: Sequence[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for part in _chunks(list(dict.fromkeys(roots))):
        sql = f"SELECT root, subject FROM threads WHERE root IN ({_marks(part)})"
        out.update(db.execute(sql, part).fetchall())
    return out


def series_rows(db: sqlite_utils.Database, ids: Sequence[str]) -> dict[str, dict]:
    out: dict[str, dict] = {}
    for part in _chunks(list(dict.fromkeys(ids))):
        rows = _rows(db, f"SELECT * FROM series WHERE id IN ({_marks(part)})", part)
        out.update((r["id"], r) for r in rows)
    return out


def version_rows(db: sqlite_utils.Database, series_ids: Sequence[str]) -> dict[str, list[dict]]:
    """Versions of each series in chain order (position), evidence decoded."""
    out: dict[str, list[dict]] = defaultdict(list)
    for part in _chunks(list(dict.fromkeys(series_ids))):
        sql = f"""SELECT * FROM versions WHERE series_id IN ({_marks(part)})
                  ORDER BY series_id, position"""
        for r in _rows(db, sql, part):
            r["evidence"] = json.loads(r["evidence"])
            r["tags"] = json.loads(r["tags"])
            r["prefixes"] = json.loads(r["prefixes"])
            out[r["series_id"]].append(r)
    return dict(out)


def patch_rows(db: sqlite_utils.Database, version_keys: Sequence[str]) -> dict[str, list[dict]]:
    out: dict[str, list[dict]] = defaultdict(list)
    for part in _chunks(list(dict.fromkeys(version_keys))):
        sql = f"""SELECT version_key, n, msgid, subject, applied, pulled FROM patches
                  WHERE version_key IN ({_marks(part)}) ORDER BY version_key, n"""
        for r in _rows(db, sql, part):
            r["applied"] = json.loads(r["applied"]) if r["applied"] else None
            r["pulled"] = json.loads(r["pulled"]) if r["pulled"] else None
            out[r["version_key"]].append(r)
    return dict(out)


def review_trailers(
    db: sqlite_utils.Database, version_keys: Sequence[str], until: datetime
) -> dict[str, list[dict]]:
    """Reviewed/Acked/Tested-by per version, given in a message dated before ``until``.

    Mismatched trailers (a follow-up naming someone other than its sender) are left out, as
    b4 does.  Each row carries ``date`` of the message that gave it.
    """
    out: dict[str, list[dict]] = defaultdict(list)
    kinds = list(REVIEW_KINDS)
    for part in _chunks(list(dict.fromkeys(version_keys))):
        sql = f"""
            SELECT t.version_key, t.n, t.kind, t.name, t.email, t.msgid, t.source,
                   t.from_version, t.scope, g.date
            FROM trailers t LEFT JOIN messages g ON g.msgid = t.msgid
            WHERE t.version_key IN ({_marks(part)}) AND t.mismatch = 0 AND t.unresolved = 0
              AND t.kind IN ({_marks(kinds)}) AND (g.date IS NULL OR g.date < ?)
            ORDER BY t.version_key, t.n, t.position
        """
        for r in _rows(db, sql, [*part, *kinds, iso(until)]):
            out[r["version_key"]].append(r)
    return dict(out)


def senders(db: sqlite_utils.Database, msgids: Sequence[str]) -> dict[str, tuple[str, str]]:
    """Message-ID → (name, address) of its sender."""
    out: dict[str, tuple[str, str]] = {}
    for part in _chunks(list(dict.fromkeys(msgids))):
        sql = f"SELECT msgid, from_name, from_email FROM messages WHERE msgid IN ({_marks(part)})"
        out.update((m, (n, e)) for m, n, e in db.execute(sql, part))
    return out


def sender_directory(db: sqlite_utils.Database) -> list[tuple[str, str]]:
    """Every (display name, address) pair that sent a mail: the people we know of."""
    sql = "SELECT DISTINCT from_name, from_email FROM messages WHERE is_bot = 0"
    return [(n, e) for n, e in db.execute(sql)]


def raw_sizes(db: sqlite_utils.Database, msgids: Sequence[str]) -> int:
    """Total size of the mails as received (decompressed bytes) — the bench's baseline."""
    import zlib

    total = 0
    for part in _chunks(list(dict.fromkeys(msgids))):
        sql = f"SELECT raw FROM message_content WHERE msgid IN ({_marks(part)})"
        total += sum(len(zlib.decompress(r[0])) for r in db.execute(sql, part))
    return total


# ---- summary cache ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CacheKey:
    entry_key: str  # "series:<id>" | "thread:<root>"
    last_msgid: str  # the newest mail of the entry in the window
    lang: str
    model: str
    prompt_version: str

    @property
    def digest(self) -> str:
        parts = (self.entry_key, self.last_msgid, self.lang, self.model, self.prompt_version)
        return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class StoredSummary:
    background: str | None
    this_week: str
    source: str  # llm | extractive
    model: str
    cited: tuple[str, ...]
    note: str | None
    period_key: str
    retry: bool = False  # stands in for a failed LLM call: ask again next run


def get_summary(db: sqlite_utils.Database, key: CacheKey) -> StoredSummary | None:
    row = db.execute(
        "SELECT background, this_week, source, summary_model, cited, note, period_key, retry "
        "FROM digest_summaries WHERE cache_key = ?",
        [key.digest],
    ).fetchone()
    return _stored(row) if row else None


def save_summary(
    db: sqlite_utils.Database,
    key: CacheKey,
    summary: StoredSummary,
    *,
    period_until: datetime,
    now: datetime,
) -> None:
    """Upsert on the cache key: saving the same summary twice changes nothing, and a stored
    summary is replaced only while it is marked ``retry`` (a good one is never overwritten).
    A read-only database (opened with ``readonly=True``) keeps no cache: nothing is saved."""
    if is_read_only(db):
        return
    db.execute(
        """INSERT INTO digest_summaries (cache_key, entry_key, last_msgid, lang, model,
               prompt_version, period_key, period_until, background, this_week, source,
               summary_model, cited, note, created_at, retry)
           VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
           ON CONFLICT(cache_key) DO UPDATE SET
               background = excluded.background, this_week = excluded.this_week,
               source = excluded.source, summary_model = excluded.summary_model,
               cited = excluded.cited, note = excluded.note, created_at = excluded.created_at,
               retry = excluded.retry
           WHERE digest_summaries.retry = 1""",
        [
            key.digest,
            key.entry_key,
            key.last_msgid,
            key.lang,
            key.model,
            key.prompt_version,
            summary.period_key,
            iso(period_until),
            summary.background,
            summary.this_week,
            summary.source,
            summary.model,
            json.dumps(list(summary.cited)),
            summary.note,
            iso(now),
            int(summary.retry),
        ],
    )
    db.conn.commit()


def earlier_summary(
    db: sqlite_utils.Database, entry_key: str, lang: str, before: datetime
) -> StoredSummary | None:
    """The newest stored summary of the same entry for a period that ended by ``before``."""
    row = db.execute(
        """SELECT background, this_week, source, summary_model, cited, note, period_key, retry
           FROM digest_summaries WHERE entry_key = ? AND lang = ? AND period_until <= ?
           ORDER BY period_until DESC, source = 'llm' DESC, created_at DESC LIMIT 1""",
        [entry_key, lang, iso(before)],
    ).fetchone()
    return _stored(row) if row else None


def forget_summaries(db: sqlite_utils.Database, period_key: str) -> int:
    """Drop the cached summaries made for one period (``kvmarm digest --refresh``)."""
    cur = db.execute("DELETE FROM digest_summaries WHERE period_key = ?", [period_key])
    db.conn.commit()
    return cur.rowcount


def _stored(row: tuple) -> StoredSummary:
    background, this_week, source, model, cited, note, period_key, retry = row
    return StoredSummary(
        background=background,
        this_week=this_week,
        source=source,
        model=model,
        cited=tuple(json.loads(cited)),
        note=note,
        period_key=period_key,
        retry=bool(retry),
    )


# ---- LLM token usage ------------------------------------------------------------------------


def record_usage(
    db: sqlite_utils.Database,
    *,
    entry_key: str,
    model: str,
    prompt_tokens: int,
    completion_tokens: int,
    prompt_chars: int,
    outcome: str,
    now: datetime,
) -> None:
    if is_read_only(db):
        return
    db.execute(
        """INSERT INTO llm_usage (at, entry_key, model, prompt_tokens, completion_tokens,
               prompt_chars, outcome) VALUES (?, ?, ?, ?, ?, ?, ?)""",
        [iso(now), entry_key, model, prompt_tokens, completion_tokens, prompt_chars, outcome],
    )
    db.conn.commit()


def usage_since(db: sqlite_utils.Database, since: datetime) -> dict[str, int]:
    """Requests and tokens recorded at or after ``since`` (a run's start)."""
    row = db.execute(
        """SELECT count(*), coalesce(sum(prompt_tokens), 0), coalesce(sum(completion_tokens), 0),
                  coalesce(sum(prompt_chars), 0)
           FROM llm_usage WHERE at >= ?""",
        [iso(since)],
    ).fetchone()
    keys = ("requests", "prompt_tokens", "completion_tokens", "prompt_chars")
    return dict(zip(keys, row, strict=True))


# ---- what was posted where ----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PostRun:
    period_key: str
    channel: str
    run: int
    state: str  # "posting <host>:<pid>" (who is posting it) | done
    started_at: str


@dataclass(frozen=True, slots=True)
class PostPart:
    part: int  # 0 = the parent message, then the thread replies; the chart is CHART_PART
    kind: str  # parent | reply | chart
    state: str  # pending (call made, outcome not known) | posted | failed (surely not posted)
    ts: str | None  # the message's ts; for the chart, the file id once shared
    file_id: str | None = None  # the chart's file, recorded before it is shared
    note: str | None = None  # why the part is not posted yet


CHART_PART = 1000  # after any number of replies


def latest_post_run(db: sqlite_utils.Database, period_key: str, channel: str) -> PostRun | None:
    row = db.execute(
        """SELECT period_key, channel, run, state, started_at FROM digest_posts
           WHERE period_key = ? AND channel = ? ORDER BY run DESC LIMIT 1""",
        [period_key, channel],
    ).fetchone()
    return PostRun(*row) if row else None


def start_post_run(
    db: sqlite_utils.Database, period_key: str, channel: str, now: datetime, owner: str = ""
) -> PostRun:
    """A new run for (period, channel): the first, or the next one for ``--force``.

    Raises sqlite3.IntegrityError when another process started the same run meanwhile.
    """
    previous = latest_post_run(db, period_key, channel)
    number = (previous.run + 1) if previous else 1
    run = PostRun(period_key, channel, number, f"posting {owner}".strip(), iso(now))
    db.execute(
        "INSERT INTO digest_posts (period_key, channel, run, state, started_at) "
        "VALUES (?, ?, ?, ?, ?)",
        [run.period_key, run.channel, run.run, run.state, run.started_at],
    )
    db.conn.commit()
    return run


def claim_post_run(db: sqlite_utils.Database, run: PostRun, owner: str) -> PostRun | None:
    """Take over an unfinished run from its (dead) owner; None if someone else just did."""
    cur = db.execute(
        "UPDATE digest_posts SET state = ? "
        "WHERE period_key = ? AND channel = ? AND run = ? AND state = ?",
        [f"posting {owner}", run.period_key, run.channel, run.run, run.state],
    )
    db.conn.commit()
    if cur.rowcount != 1:
        return None
    return PostRun(run.period_key, run.channel, run.run, f"posting {owner}", run.started_at)


def finish_post_run(db: sqlite_utils.Database, run: PostRun, now: datetime) -> None:
    db.execute(
        "UPDATE digest_posts SET state = 'done', finished_at = ? "
        "WHERE period_key = ? AND channel = ? AND run = ?",
        [iso(now), run.period_key, run.channel, run.run],
    )
    db.conn.commit()


def post_parts(db: sqlite_utils.Database, run: PostRun) -> dict[int, PostPart]:
    """The recorded parts of ``run`` by part number (a chart recorded before m020 as the part
    after the last reply is returned as ``CHART_PART``)."""
    rows = db.execute(
        """SELECT part, kind, state, ts, file_id, note FROM digest_post_parts
           WHERE period_key = ? AND channel = ? AND run = ? ORDER BY part""",
        [run.period_key, run.channel, run.run],
    )
    parts = [PostPart(*r) for r in rows]
    return {CHART_PART if p.kind == "chart" else p.part: p for p in parts}


def save_post_part(db: sqlite_utils.Database, run: PostRun, part: PostPart, now: datetime) -> None:
    """Record a part before the Slack call (``pending``) and again after it (``posted``)."""
    db.execute(
        """INSERT INTO digest_post_parts
               (period_key, channel, run, part, kind, state, ts, file_id, note, at)
           VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
           ON CONFLICT(period_key, channel, run, part) DO UPDATE SET
               kind = excluded.kind, state = excluded.state, ts = excluded.ts,
               file_id = excluded.file_id, note = excluded.note, at = excluded.at""",
        [
            run.period_key,
            run.channel,
            run.run,
            part.part,
            part.kind,
            part.state,
            part.ts,
            part.file_id,
            part.note,
            iso(now),
        ],
    )
    db.conn.commit()


# ---- helpers -------------------------------------------------------------------------------


def _rows(db: sqlite_utils.Database, sql: str, params: Sequence = ()) -> list[dict]:
    cur = db.execute(sql, list(params))
    cols = [c[0] for c in cur.description]
    return [dict(zip(cols, r, strict=True)) for r in cur]


def _chunks(items: list[str], size: int = 500) -> Iterable[list[str]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


def _marks(items: Sequence) -> str:
    return ", ".join("?" * len(items))


# ---- what a report is about -----------------------------------------------------------------


def series_of_msgids(db: sqlite_utils.Database, msgids: Sequence[str]) -> dict[str, str]:
    """Message-ID → the series it belongs to (mails outside any series are absent)."""
    out: dict[str, str] = {}
    for part in _chunks(list(dict.fromkeys(msgids))):
        sql = f"""SELECT msgid, series_id FROM memberships
                  WHERE msgid IN ({_marks(part)}) AND series_id IS NOT NULL"""
        out.update(db.execute(sql, part).fetchall())
    return out


def posted_titles(
    db: sqlite_utils.Database, since: datetime, until: datetime
) -> list[tuple[str, str, str]]:
    """(title, series id, version key) of every version and patch posted in [since, until),
    newest first: what a robot's report may name."""
    sql = """
        SELECT v.title, v.series_id, v.key, v.date FROM versions v
        WHERE v.date >= ? AND v.date < ?
        UNION ALL
        SELECT g.title, v.series_id, v.key, v.date FROM patches p
        JOIN versions v ON v.key = p.version_key JOIN messages g ON g.msgid = p.msgid
        WHERE v.date >= ? AND v.date < ?
        ORDER BY 4 DESC
    """
    s, u = iso(since), iso(until)
    return [(t, sid, key) for t, sid, key, _d in db.execute(sql, [s, u, s, u])]
