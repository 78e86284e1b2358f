"""Finding series and threads from what people type: words, names, addresses, Message-IDs, URLs.

User input never reaches FTS5 syntax: ``query_words`` splits it into words and
``fts_phrase`` quotes each one as an FTS string, so quotes, ``AND``/``OR``/``NEAR``, ``*``,
``:``, ``^`` and unbalanced parentheses are just characters of a word.

The index (``search_fts``, migration m004_search) holds one row per version (title, sender),
per patch (title: FEAT_ names live there) and per thread (subject, first sender).  A search
tries, in order, until something matches:

1. a Message-ID or lore / patch.msgid.link URL among the words (exact);
2. every word, in titles or senders (bm25, title weighted over people);
3. every word as a prefix;
4. every word in mail subjects or bodies (messages_fts).

``close_titles`` suggests what the user may have meant when nothing matches: titles sharing
any word, with words corrected against the index's vocabulary.
"""

from __future__ import annotations

import difflib
import functools
import json
import re
import unicodedata
import urllib.parse
from dataclasses import dataclass
from datetime import datetime

import sqlite_utils

# Same package: the row→dict helpers behind `kvmarm series --json`, so answers share its shape.
from storage.views import fetch_rows as _rows
from storage.views import series_json

MAX_WORDS = 12
MAX_WORD_CHARS = 80
_HITS = 400  # index rows ranked per query before grouping by series/thread

# Subject decorations people paste along with titles: "[PATCH v3 2/7]", "Re:", "RFC".
_NOISE_RE = re.compile(
    r"^(?:patch|rfc|resend|re|fwd?|v\d{1,3}|\d{1,4}/\d{1,4}|patchv\d{1,3})$", re.IGNORECASE
)
_STOP_WORDS = frozenset({"a", "an", "the", "of", "for", "to", "in", "on", "and", "or", "with"})
_EDGE_PUNCT = "<>()[]{}\"'`,;.!?|"
_URL_RE = re.compile(r"^https?://[^\s]+$", re.IGNORECASE)
_MSGID_HOSTS = ("lore.kernel.org", "lkml.kernel.org", "patch.msgid.link", "msgid.link")


@dataclass(frozen=True, slots=True)
class Target:
    """A series or a thread that a search found."""

    kind: str  # "series" | "thread"
    id: str  # series id, or thread root Message-ID
    title: str
    last_date: str | None
    how: str  # "message-id" | "words" | "prefix" | "cover" | "body" | "similar"
    # How weak the match is, in words, when it is ("… appears only in the text of one mail").
    note: str | None = None


@dataclass(frozen=True, slots=True)
class Reviewer:
    name: str
    email: str
    count: int  # review trailers given (Reviewed/Acked/Tested-by)


# ---- parsing what the user typed --------------------------------------------------------


def query_words(text: str) -> list[str]:
    """Words of a query, edge punctuation stripped, subject decorations and stop words dropped.

    At most MAX_WORDS words of at most MAX_WORD_CHARS characters each; a word needs a
    letter or digit to count.
    """
    words: list[str] = []
    for raw in text.split():
        word = raw.strip(_EDGE_PUNCT)[:MAX_WORD_CHARS]
        if not any(ch.isalnum() for ch in word):
            continue
        words.append(word)
    kept = [w for w in words if not _NOISE_RE.match(w) and w.casefold() not in _STOP_WORDS]
    return (kept or words)[:MAX_WORDS]


def fts_phrase(word: str, prefix: bool = False) -> str:
    """``word`` as an FTS5 string literal (``"..."`` with quotes doubled), optionally a prefix."""
    return '"' + word.replace('"', '""') + '"' + ("*" if prefix else "")


def msgid_in(word: str) -> str | None:
    """The Message-ID named by ``word``: ``<id@host>``, ``id@host`` or a lore-style URL."""
    word = word.strip().strip("<>")
    if _URL_RE.match(word):
        return _msgid_from_url(word)
    if "@" in word and " " not in word and not word.startswith("@") and not word.endswith("@"):
        return word
    return None


def _msgid_from_url(url: str) -> str | None:
    parts = urllib.parse.urlsplit(url)
    if (parts.hostname or "").lower() not in _MSGID_HOSTS:
        return None
    for segment in parts.path.split("/"):
        segment = urllib.parse.unquote(segment)
        if "@" in segment:
            return segment.strip("<>")
    return None


# ---- finding series and threads ---------------------------------------------------------


def find_targets(
    db: sqlite_utils.Database, text: str, *, series_only: bool = False, limit: int = 6
) -> list[Target]:
    """Series/threads matching ``text``, best first (empty when nothing matches)."""
    for word in text.split()[:MAX_WORDS]:
        msgid = msgid_in(word)
        target = target_of_message(db, msgid) if msgid else None
        if target is not None and not (series_only and target.kind != "series"):
            return [target]
    words = query_words(text)
    if not words:
        return []
    every = " AND ".join(_word_match(w) for w in words)
    prefixes = " AND ".join(_word_match(w, prefix=True) for w in words)
    in_text = "{subject body} : (" + every + ")"
    attempts = (
        ("words", lambda: _search_index(db, f"title : ({every})")),
        ("words", lambda: _search_recent(db, every, limit)),
        ("prefix", lambda: _search_index(db, f"title : ({prefixes})")),
        ("prefix", lambda: _search_recent(db, prefixes, limit)),
        ("cover", lambda: _search_bodies(db, in_text, covers_only=True)),
        ("body", lambda: _search_bodies(db, in_text)),
    )
    for how, search in attempts:
        if targets := _ranked_targets(db, search(), how, series_only, text):
            return targets[:limit]
    return []


def _word_match(word: str, prefix: bool = False) -> str:
    """One query word as FTS: its phrase, or any of its spellings ("stage-2" is also
    "stage2"; "stage2" is also "stage 2"; "vcpu_run" is also "vcpurun")."""
    forms = [word]
    joined = re.sub(r"[^\w]|_", "", word)
    if joined and joined != word:
        forms.append(joined)
    spaced = re.sub(r"(?<=[a-zA-Z])(?=\d)", " ", word)
    if spaced != word and " " in spaced and "_" not in word:
        forms.append(spaced)
    if len(forms) == 1:
        return fts_phrase(word, prefix)
    return "(" + " OR ".join(fts_phrase(f, prefix) for f in dict.fromkeys(forms)) + ")"


def _body_note(said: str, title: str, mails: int) -> str:
    """What a match found only in mail text is worth, in words."""
    if mails == 1:
        return f"{said} appears only in the text of one mail of {title}"
    return f"{said} appears only in the text of {mails} mails of {title}, in no title"


def close_titles(
    db: sqlite_utils.Database, text: str, *, series_only: bool = False, limit: int = 5
) -> list[Target]:
    """Titles sharing any word of ``text`` (typos corrected against the index vocabulary)."""
    words = [w for w in query_words(text) if any(ch.isalnum() for ch in w)]
    if not words:
        return []
    terms = set(words) | set(_corrected(db, words))
    expression = "title : (" + " OR ".join(fts_phrase(t, prefix=True) for t in sorted(terms)) + ")"
    return _ranked_targets(db, _search_index(db, expression), "similar", series_only)[:limit]


def target_of_message(db: sqlite_utils.Database, msgid: str) -> Target | None:
    """The series (else the thread) a Message-ID belongs to; also a thread's missing root."""
    row = db.execute(
        "SELECT thread_root, series_id FROM memberships WHERE msgid = ?", [msgid]
    ).fetchone()
    if row is None:
        row = db.execute("SELECT root, NULL FROM threads WHERE root = ?", [msgid]).fetchone()
    if row is None:
        return None
    root, series_id = row
    if series_id:
        return _series_target(db, series_id, "message-id")
    return _thread_target(db, root, "message-id")


def _search_index(db: sqlite_utils.Database, expression: str) -> list[tuple[str, str, float]]:
    sql = """
        SELECT kind, ref, bm25(search_fts, 0.0, 0.0, 10.0, 3.0) AS score
        FROM search_fts WHERE search_fts MATCH ? ORDER BY score LIMIT ?
    """
    return [(k, r, s) for k, r, s in db.execute(sql, [expression, _HITS]) if r]


def _search_bodies(
    db: sqlite_utils.Database, expression: str, *, covers_only: bool = False
) -> list[tuple[str, str, float]]:
    """Mails whose subject or text match, one row per mail (cover letters only, if asked)."""
    cover = "JOIN versions cv ON cv.cover = g.msgid" if covers_only else ""
    sql = f"""
        SELECT CASE WHEN ms.series_id IS NULL THEN 'thread' ELSE 'series' END,
               coalesce(ms.series_id, ms.thread_root), hits.rank
        FROM (SELECT rowid, rank FROM messages_fts WHERE messages_fts MATCH ?
              ORDER BY rank LIMIT ?) AS hits
        JOIN messages g ON g.rowid = hits.rowid
        {cover}
        JOIN memberships ms ON ms.msgid = g.msgid
    """
    return list(db.execute(sql, [expression, _HITS]))


def _search_recent(
    db: sqlite_utils.Database, expression: str, limit: int
) -> list[tuple[str, str, float]]:
    """Matches in titles or senders ("maz", "Oliver Upton vgic"), most recent activity first."""
    series_sql = """
        SELECT 'series', id, 0.0 FROM series WHERE id IN (
            SELECT ref FROM search_fts WHERE search_fts MATCH ? AND kind IN ('series', 'patch'))
        ORDER BY last_date DESC LIMIT ?
    """
    thread_sql = """
        SELECT 'thread', root, 0.0 FROM threads WHERE root IN (
            SELECT ref FROM search_fts WHERE search_fts MATCH ? AND kind = 'thread')
        ORDER BY last_date DESC LIMIT ?
    """
    return [
        *db.execute(series_sql, [expression, limit * 4]),
        *db.execute(thread_sql, [expression, limit * 4]),
    ]


def _ranked_targets(
    db: sqlite_utils.Database,
    scored: list[tuple[str, str, float]],
    how: str,
    series_only: bool,
    text: str = "",
) -> list[Target]:
    """Group index hits by series (threads folded into their series), best first: a title
    the query spells out (exactly, then nearly), then originals before stable backports,
    AUTOSEL copies and pull requests, then bm25 score, then most recent activity."""
    best: dict[tuple[str, str], float] = {}
    hits: dict[tuple[str, str], int] = {}
    for kind, ref, score in scored:
        key = ("thread", ref) if kind == "thread" else ("series", ref)
        if key[0] == "thread" and (series_id := _series_of_thread(db, ref)):
            key = ("series", series_id)
        if series_only and key[0] != "series":
            continue
        best[key] = min(score, best.get(key, score))
        hits[key] = hits.get(key, 0) + 1
    # Titles and copies are weighed for the best-scored candidates only (speed); the rest
    # follow by score.
    by_score = sorted(best.items(), key=lambda ks: ks[1])
    head = by_score[:_WEIGHED]
    facts = _series_facts(db, [ref for (kind, ref), _score in head if kind == "series"])
    wanted = _title_words(text)
    ranked = []
    for position, ((kind, ref), score) in enumerate(by_score):
        target = _series_target(db, ref, how) if kind == "series" else _thread_target(db, ref, how)
        if target is None:
            continue
        titles, copy = facts.get(ref, ((target.title,), False))
        closeness = max((_closeness(wanted, t) for t in set(titles)), default=0)
        if position >= _WEIGHED:
            closeness, copy = -1, True
        if how == "body":
            note = _body_note(" ".join(query_words(text)), target.title, hits[kind, ref])
            target = Target(kind, target.id, target.title, target.last_date, how, note)
        # bm25 is negative, lower is better.
        ranked.append(((-closeness, copy, round(score, 1), _neg_date(target.last_date)), target))
    ranked.sort(key=lambda kt: kt[0])
    return [t for _, t in ranked]


_WEIGHED = 30
_COPY_PREFIX_RE = re.compile(
    r"stable|autosel|^v?\d+\.\d+(?:\.\d+)?(?:\.y)?$|^git$|^pull$|^pull\b", re.I
)
# A pull request sent as a patch series: "[PATCH 0/4] KVM/arm64 fixes for 5.16, take #1".
_PULL_TITLE_RE = re.compile(
    r"^\S*(?:kvm|arm)\S*\s+(?:fixes|updates|changes)\s+for\s+(?:v?\d+\.\d+|-?rc)", re.I
)


def _series_facts(
    db: sqlite_utils.Database, series_ids: list[str]
) -> dict[str, tuple[tuple[str, ...], bool]]:
    """Per series: every title it carries (versions and patches), and whether it is a copy
    of other postings (a stable backport, an AUTOSEL pick, a pull request)."""
    if not series_ids:
        return {}
    marks = ",".join("?" * len(series_ids))
    titles: dict[str, list[str]] = {}
    copy: dict[str, bool] = {}
    for sid, title, prefixes, category in db.execute(
        f"SELECT series_id, title, prefixes, category FROM versions WHERE series_id IN ({marks})",
        series_ids,
    ):
        titles.setdefault(sid, []).append(title)
        is_copy = (
            category == "PULL"
            or bool(_PULL_TITLE_RE.match(title))
            or any(_COPY_PREFIX_RE.search(p) for p in json.loads(prefixes))
        )
        copy[sid] = copy.get(sid, False) or is_copy
    for sid, subject in db.execute(
        f"""SELECT v.series_id, p.subject FROM patches p JOIN versions v ON v.key = p.version_key
            WHERE v.series_id IN ({marks})""",
        series_ids,
    ):
        titles.setdefault(sid, []).append(_SUBJECT_PREFIX_RE.sub("", subject))
    return {sid: (tuple(ts), copy.get(sid, False)) for sid, ts in titles.items()}


_SUBJECT_PREFIX_RE = re.compile(r"^(?:\s*(?:re|fwd?)\s*:\s*|\s*\[[^\]]*\]\s*)+", re.I)


@functools.lru_cache(maxsize=1 << 16)
def _title_words(text: str) -> tuple[str, ...]:
    """A title (or what someone typed of one) as comparable words: decorations, prefixes
    like "[PATCH v3 2/7]" and punctuation dropped, case folded."""
    text = _SUBJECT_PREFIX_RE.sub("", text)
    return tuple(re.findall(r"[^\W_]+", unicodedata.normalize("NFKC", text).casefold()))


@functools.lru_cache(maxsize=1 << 16)
def _closeness(wanted: tuple[str, ...], title: str) -> int:
    """2: the query is the title (with or without its "KVM: arm64:" prefix); 1: nearly
    (the same words, or most of the title in order); 0: otherwise."""
    if len(wanted) < 2:
        return 0
    words = _title_words(title)
    tail = _title_words(title.rsplit(":", 1)[-1]) if ":" in title else words
    if "".join(wanted) in ("".join(words), "".join(tail)):
        return 2  # also "stage2 for the host" for "Stage-2 for the host"
    if set(wanted) == set(words) or set(wanted) == set(tail):
        return 1
    joined, asked = " ".join(words), " ".join(wanted)
    if len(wanted) >= 3 and asked in joined and len(wanted) * 4 >= len(tail) * 3:
        return 1
    return 0


def _neg_date(date: str | None) -> str:
    """A sort key that puts later ISO dates first (and undated last)."""
    return "".join(chr(0x10FFFF - ord(c)) for c in date) if date else "\U0010ffff"


def _series_of_thread(db: sqlite_utils.Database, root: str) -> str | None:
    row = db.execute("SELECT series_id FROM memberships WHERE msgid = ?", [root]).fetchone()
    if row and row[0]:
        return row[0]
    row = db.execute(
        "SELECT series_id FROM versions WHERE thread_root = ? ORDER BY date LIMIT 1", [root]
    ).fetchone()
    return row[0] if row else None


def _series_target(db: sqlite_utils.Database, series_id: str, how: str) -> Target | None:
    row = db.execute("SELECT title, last_date FROM series WHERE id = ?", [series_id]).fetchone()
    return Target("series", series_id, row[0], row[1], how) if row else None


def _thread_target(db: sqlite_utils.Database, root: str, how: str) -> Target | None:
    row = db.execute("SELECT subject, last_date FROM threads WHERE root = ?", [root]).fetchone()
    return Target("thread", root, row[0], row[1], how) if row else None


def _corrected(db: sqlite_utils.Database, words: list[str]) -> list[str]:
    """Index terms close to each word (typos): 'stollen' → 'stolen'."""
    vocabulary = [
        r[0]
        for r in db.execute(
            "SELECT term FROM search_vocab WHERE col = 'title' AND length(term) > 2"
        )
    ]
    out: list[str] = []
    for word in words:
        out.extend(difflib.get_close_matches(word.casefold(), vocabulary, n=2, cutoff=0.75))
    return out


# ---- people -----------------------------------------------------------------------------

REVIEW_KINDS = ("Reviewed-by", "Acked-by", "Tested-by")


def find_reviewers(db: sqlite_utils.Database, text: str, *, limit: int = 5) -> list[Reviewer]:
    """People who gave review trailers, matched by address or by every word of their name."""
    rows = db.execute(
        f"""SELECT name, email, count(*) FROM trailers
            WHERE kind IN ({_marks(REVIEW_KINDS)}) AND mismatch = 0 AND unresolved = 0
            GROUP BY email, name""",
        REVIEW_KINDS,
    ).fetchall()
    wanted = text.strip().strip("<>").casefold()
    if "@" in wanted:
        matches = [r for r in rows if r[1] == wanted]
    else:
        words = [_fold(w) for w in query_words(text)]
        matches = [r for r in rows if words and all(w in _fold(r[0]).split() for w in words)]
        if not matches:  # partial words: "zyng"
            matches = [r for r in rows if words and all(w in _fold(r[0]) for w in words)]
    by_email: dict[str, Reviewer] = {}
    for name, email, count in sorted(matches, key=lambda r: -r[2]):
        known = by_email.get(email)
        by_email[email] = Reviewer(
            known.name if known else name, email, count + (known.count if known else 0)
        )
    return sorted(by_email.values(), key=lambda p: (-p.count, p.email))[:limit]


def reviews_by(
    db: sqlite_utils.Database, emails: list[str], *, sources=("reply", "cover"), limit: int = 200
) -> list[dict]:
    """Review trailers given by these addresses, newest first, with series and version.

    ``date`` is the date of the message carrying the trailer: the reviewer's own mail for
    ``reply``/``cover``, the posting that collected it for ``inline``.  ``carried`` copies
    repeat a trailer already given on an earlier version.
    """
    sql = f"""
        SELECT t.kind, t.n, t.source, t.msgid, t.name, t.email, g.date,
               v.key, v.version, v.series_id, s.title, p.subject, t.scope
        FROM trailers t
        JOIN versions v ON v.key = t.version_key
        JOIN series s ON s.id = v.series_id
        LEFT JOIN patches p ON p.version_key = t.version_key AND p.n = t.n
        LEFT JOIN messages g ON g.msgid = t.msgid
        WHERE t.email IN ({_marks(emails)}) AND t.kind IN ({_marks(REVIEW_KINDS)})
          AND t.mismatch = 0 AND t.unresolved = 0 AND t.source IN ({_marks(sources)})
        ORDER BY g.date DESC, v.key, t.n
        LIMIT ?
    """
    cols: tuple[str, ...] = ("kind", "n", "source", "msgid", "name", "email", "date")
    cols += ("version_key", "version", "series_id", "series_title", "subject", "scope")
    rows = db.execute(sql, [*emails, *REVIEW_KINDS, *sources, limit])
    return [dict(zip(cols, r, strict=True)) for r in rows]


def review_counts(db: sqlite_utils.Database, emails: list[str]) -> dict[str, int]:
    """How many review trailers these addresses have, by source (inline, reply, cover, carried)."""
    sql = f"""
        SELECT source, count(*) FROM trailers
        WHERE email IN ({_marks(emails)}) AND kind IN ({_marks(REVIEW_KINDS)})
          AND mismatch = 0 AND unresolved = 0
        GROUP BY source
    """
    return dict(db.execute(sql, [*emails, *REVIEW_KINDS]).fetchall())


def _fold(text: str) -> str:
    decomposed = unicodedata.normalize("NFKD", text.casefold())
    return "".join(ch for ch in decomposed if not unicodedata.combining(ch))


def _marks(values) -> str:
    return ", ".join("?" * len(values))


# ---- details for answers ----------------------------------------------------------------


def series_detail(
    db: sqlite_utils.Database, series_id: str, as_of: datetime | None = None
) -> dict | None:
    """One series in the `kvmarm series --json` shape, read by id only (idle as of
    ``as_of``, when given)."""
    found = series_json(db, ids=[series_id], as_of=as_of)
    return found[0] if found else None


def thread_row(db: sqlite_utils.Database, root: str) -> dict | None:
    rows = _rows(db, "SELECT * FROM threads WHERE root = ?", [root])
    return rows[0] if rows else None


def series_in_thread(db: sqlite_utils.Database, root: str) -> list[tuple[str, str]]:
    """(series id, title) of the series with a message in the thread."""
    sql = """
        SELECT DISTINCT s.id, s.title FROM memberships m JOIN series s ON s.id = m.series_id
        WHERE m.thread_root = ? ORDER BY s.first_date
    """
    return [tuple(r) for r in db.execute(sql, [root])]


def participants(
    db: sqlite_utils.Database, *, series_id: str | None = None, thread_root: str | None = None
) -> list[dict]:
    """Senders (bots left out) of a series' or a thread's mail, by address, busiest first."""
    column, value = ("series_id", series_id) if series_id else ("thread_root", thread_root)
    sql = f"""
        SELECT g.from_email, max(g.from_name), count(*), min(g.date), max(g.date)
        FROM memberships m JOIN messages g ON g.msgid = m.msgid
        WHERE m.{column} = ? AND g.is_bot = 0
        GROUP BY g.from_email ORDER BY count(*) DESC, min(g.date)
    """
    cols = ("email", "name", "messages", "first_date", "last_date")
    return [dict(zip(cols, r, strict=True)) for r in db.execute(sql, [value])]


def mail_counts(
    db: sqlite_utils.Database, *, series_id: str | None = None, thread_root: str | None = None
) -> dict:
    """Number of mails, bot mails, first and last Date of a series or a thread."""
    column, value = ("series_id", series_id) if series_id else ("thread_root", thread_root)
    sql = f"""
        SELECT count(*), sum(g.is_bot), min(g.date), max(g.date)
        FROM memberships m JOIN messages g ON g.msgid = m.msgid WHERE m.{column} = ?
    """
    total, bots, first, last = db.execute(sql, [value]).fetchone()
    return {"messages": total, "bot_messages": bots or 0, "first_date": first, "last_date": last}


def repliers(db: sqlite_utils.Database, version_keys: list[str]) -> list[dict]:
    """People (not bots) who replied to these versions' mails, with how many replies."""
    sql = f"""
        SELECT g.from_email, max(g.from_name), count(*), max(g.date)
        FROM memberships m JOIN messages g ON g.msgid = m.msgid
        WHERE m.version_key IN ({_marks(version_keys)}) AND g.is_reply = 1 AND g.is_bot = 0
        GROUP BY g.from_email ORDER BY count(*) DESC, max(g.date) DESC
    """
    cols = ("email", "name", "replies", "last_date")
    return [dict(zip(cols, r, strict=True)) for r in db.execute(sql, version_keys)]


def message_facts(db: sqlite_utils.Database, msgids: list[str]) -> dict[str, dict]:
    """Message-ID → title, sender name/address, date and own words (body) of stored mails."""
    out: dict[str, dict] = {}
    for i in range(0, len(msgids), 500):
        part = msgids[i : i + 500]
        sql = f"""SELECT msgid, title, from_name, from_email, date, body FROM messages
                  WHERE msgid IN ({_marks(part)})"""
        for msgid, title, name, email, date, body in db.execute(sql, part):
            out[msgid] = {"title": title, "name": name, "email": email, "date": date, "body": body}
    return out
