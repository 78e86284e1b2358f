"""Which series a report is about: a robot's build failure, a syzbot splat, a regression mail.

Known when the report's subject is the title of a patch or version posted in the year before
the period end, when the words of its mails name such a title with its subsystem prefix
("KVM: arm64: …", as in ``Fixes:`` and robots' ``commit:`` lines; the longest title named
wins), or else when they link to a mail of a series.  Unknown stays
unknown: a report is never guessed onto a series.
"""

from __future__ import annotations

import re
import urllib.parse
from collections.abc import Sequence
from datetime import timedelta

from bot.digest.period import Period
from ingest.subjects import normalise_title, parse_subject
from storage import digests as store
from storage.db import Database

LOOKBACK = timedelta(days=365)
MIN_TITLE = 16  # shorter titles ("Fix typo") name nothing reliably
_LINK_RE = re.compile(r"lore\.kernel\.org/(?:[\w.-]+/)?([^/\s<>\"']+@[^/\s<>\"']+)/?", re.I)
_MSGID_RE = re.compile(r"<([^<>\s@]+@[^<>\s@]+)>")


def link_reports(db: Database, period: Period, reports: Sequence[dict]) -> dict[str, str]:
    """Entry key → the id of the series it is about, for the reports where that is known."""
    if not reports:
        return {}
    own = {e["id"] for e in reports if e["kind"] == "series"}
    by_title: dict[str, str] = {}
    for title, sid, _key in store.posted_titles(db, period.until - LOOKBACK, period.until):
        if len(title) >= MIN_TITLE and sid not in own:
            by_title.setdefault(normalise_title(title), sid)
    out: dict[str, str] = {}
    for e in reports:
        found = _by_subject(e, by_title) or _by_words(db, e, by_title)
        if found:
            out[e["key"]] = found
    return out


def _by_subject(entry: dict, by_title: dict[str, str]) -> str | None:
    subjects = [entry["title"], *(m["subject"] for m in entry["mails"])]
    for subject in subjects:
        hit = by_title.get(parse_subject(subject).key)
        if hit:
            return hit
    return None


def _by_words(db: Database, entry: dict, by_title: dict[str, str]) -> str | None:
    texts = store.bodies(db, [m["msgid"] for m in entry["mails"]])
    words = " ".join(" ".join(t.split()) for t in texts.values())
    lowered = words.casefold()
    # "Fixes: abc ("KVM: arm64: Foo")", "commit: abc [2/3] KVM: arm64: Foo": the series that
    # brought the problem, named by a title with its subsystem prefix; the longest one named
    # wins ("Remove unneeded semicolon" alone names nothing).
    named = [title for title in by_title if ": " in title and title in lowered]
    if named:
        return by_title[max(named, key=len)]
    linked = {urllib.parse.unquote(m) for m in _LINK_RE.findall(words)}
    linked |= set(_MSGID_RE.findall(words))
    own = {m["msgid"] for m in entry["mails"]}
    series = store.series_of_msgids(db, sorted(linked - own))
    for msgid in sorted(series):
        return series[msgid]
    return None
