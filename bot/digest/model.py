"""The digest model: one plain dict (the JSON of ``kvmarm digest --format json``) that both
renderers read.  Nothing here formats text for people; it states facts.

    {
      "schema": 2, "lang", "generated_at", "period": {key, iso_week, since, until, …},
      "summarizer": {"name", "prompt_version"},   # the JSON key keeps its published spelling
      "totals": {mails, threads, series, new_series, new_versions, participants, bot_mails,
                 entries, late_mails, categories: {section: {entries, mails}},
                 types: {PATCH|RFC|PULL|Other: {entries, mails}}},   # entries with mail
      "buckets": {applied, new_series, new_versions, waiting, discussion, reports: [entry
                  key, …]},   # every entry in exactly one (bot.digest.buckets), as shown
      "summaries": {llm, extractive, fallbacks, out_of_time},
      "participants": [{name, email, mails}],          # by address, bots excluded
      "activity": {"per_day": [{date, mails}]},
      "entries": [ … most active first, see bot.digest.entries; each with "bucket",
                   "number" (1.. within its bucket), "waiting", "idle_since", "about"; series
                   in the review queue without mail this period come last, "summary": null … ],
      "late_mails": [ … Date outside the period, received inside: flagged, not counted … ]
    }
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta

from bot.config import DEFAULT_LORE_URL
from bot.digest.buckets import assign_buckets
from bot.digest.entries import (
    SECTIONS,
    build_entry,
    entry_key_of,
    group_mails,
    load_context,
    lore_link,
)
from bot.digest.extractive import ExtractiveSummariser
from bot.digest.grounding import Directory
from bot.digest.period import Period
from bot.digest.reports import link_reports
from bot.digest.summarise import RunStats, summarise_entries
from bot.digest.summary import Summariser
from storage import digests as store
from storage.db import Database
from storage.digests import MailRow
from storage.messages import iso
from storage.queue import DONE_STATES, WaitingVersion, idle_series, waiting_versions

SCHEMA = 2  # 2: buckets; quiet series of the review queue are entries too
TYPES = ("PATCH", "RFC", "PULL", "Other")
MAX_CHART_DAYS = 62


@dataclass(frozen=True)
class DigestRun:
    model: dict
    stats: RunStats


def build_digest(
    db: Database,
    period: Period,
    *,
    lang: str = "en",
    summariser: Summariser | None = None,
    now: datetime | None = None,
    lore_url: str = DEFAULT_LORE_URL,
    workers: int = 4,
) -> dict:
    """The digest model for ``period`` (see the module docstring for its shape)."""
    return run_digest(
        db, period, lang=lang, summariser=summariser, now=now, lore_url=lore_url, workers=workers
    ).model


def run_digest(
    db: Database,
    period: Period,
    *,
    lang: str = "en",
    summariser: Summariser | None = None,
    now: datetime | None = None,
    lore_url: str = DEFAULT_LORE_URL,
    workers: int = 4,
) -> DigestRun:
    """``build_digest`` plus what the summaries cost (cache hits, LLM tokens)."""
    if lang not in ("en", "zh"):
        raise ValueError(f"lang must be 'en' or 'zh', not {lang!r}")
    now = (now or datetime.now(UTC)).astimezone(UTC)
    summariser = summariser or ExtractiveSummariser()
    mails = store.window_mails(db, period.since, period.until)
    # No mail at all is a missed sync, not a quiet week: then no queue either (an empty
    # digest is refused by post, so the week is not marked as posted).
    queue = {w.series_id: w for w in waiting_versions(db, period.until)} if mails else {}
    groups = group_mails(mails)
    quiet = sorted(sid for sid in queue if f"series:{sid}" not in groups)
    ctx = load_context(db, period, lang, lore_url, mails, quiet)
    built = [build_entry(ctx, key, group) for key, group in groups.items()]
    built += [build_entry(ctx, f"series:{sid}", []) for sid in quiet]
    entries = sorted((e for e, _ in built), key=_activity_order)
    directory = Directory.from_pairs(store.sender_directory(db)) if built else Directory({})
    requests = [replace(r, directory=directory) for _, r in built if r is not None]
    summaries, stats = summarise_entries(
        db,
        requests,
        summariser,
        period_until=period.until,
        now=now,
        workers=workers,
    )
    for rank, entry in enumerate(entries, start=1):
        entry["rank"] = rank
        made = summaries.get(entry["key"])
        entry["summary"] = made.as_dict() if made is not None else None
    _mark_idle(db, entries, period)
    _mark_waiting(entries, queue)
    bots = {m.email for m in mails if m.is_bot}
    buckets = assign_buckets(entries, {sid: w.days_waiting for sid, w in queue.items()}, bots)
    _link_reports(db, period, entries, ctx)
    active = [e for e in entries if e["mails_this_week"]]
    outside = store.outside_mails(db, period.since, period.until)
    late = [_late_dict(m, period, lore_url) for m in outside]
    model = {
        "schema": SCHEMA,
        "lang": lang,
        "generated_at": iso(now),
        "period": period.as_dict(),
        "lore_url": lore_url,
        "summarizer": {"name": summariser.name, "prompt_version": summariser.prompt_version},
        "totals": _totals(mails, active, late),
        "buckets": buckets,
        "summaries": {**_summary_counts(active), "out_of_time": stats.out_of_time},
        "participants": _participants(mails),
        "activity": {"per_day": _per_day(mails, period)},
        "entries": entries,
        "late_mails": late,
    }
    return DigestRun(model, stats)


def _mark_idle(db: Database, entries: list[dict], period: Period) -> None:
    """A series whose latest version is idle as of the period end says so in its status
    (``idle`` with ``idle_since``) — never "new" — unless a decision is known by now."""
    series = [e for e in entries if e["kind"] == "series"]
    idle = idle_series(db, [e["id"] for e in series], period.until)
    for e in series:
        e["idle_since"] = idle.get(e["id"])
        if e["idle_since"] and e["status"]["state"] not in DONE_STATES:
            e["status"] = {
                **e["status"],
                "state": "idle",
                "idle_since": e["idle_since"],
                "after_period": False,  # idle as of the period end
            }


def _mark_waiting(entries: list[dict], queue: dict[str, WaitingVersion]) -> None:
    for e in entries:
        w = queue.get(e["id"]) if e["kind"] == "series" else None
        e["waiting"] = (
            {"days": w.days_waiting, "since": w.date, "unreviewed": len(w.unreviewed)}
            if w
            else None
        )


def _link_reports(db: Database, period: Period, entries: list[dict], ctx) -> None:
    """Each report says which series it is about when that is known (bot.digest.reports)."""
    reports = [e for e in entries if e["bucket"] == "reports"]
    about = link_reports(db, period, reports)
    by_id = {e["id"]: e for e in entries if e["kind"] == "series"}
    rows = store.series_rows(db, sorted(set(about.values())))
    for e in entries:
        e["about"] = None
    for e in reports:
        sid = about.get(e["key"])
        if sid is None or sid not in rows:
            continue
        other = by_id.get(sid)
        e["about"] = {
            "series_id": sid,
            "title": rows[sid]["title"],
            "link": ctx.link(_latest_key(db, sid, period)),
            "bucket": other["bucket"] if other else None,
            "number": other["number"] if other else None,
        }


def _latest_key(db: Database, sid: str, period: Period) -> str:
    versions = store.version_rows(db, [sid]).get(sid, [])
    before = [v for v in versions if v["date"] is None or v["date"] < iso(period.until)]
    return (before or versions)[-1]["key"]


def _activity_order(entry: dict) -> tuple:
    return (
        -entry["mails_this_week"],
        -len(entry["participants"]),
        entry["first_mail_this_week"] or "",
        entry["key"],
    )


def _totals(mails: Sequence[MailRow], entries: list[dict], late: list[dict]) -> dict:
    series = [e for e in entries if e["kind"] == "series"]
    return {
        "mails": len(mails),
        "threads": len({m.thread_root for m in mails}),
        "series": len(series),
        "new_series": sum(1 for e in series if e["versions"] and e["versions"][0]["in_period"]),
        "new_versions": sum(sum(v["in_period"] for v in e["versions"][1:]) for e in series),
        "participants": len({m.email for m in mails if not m.is_bot}),
        "bot_mails": sum(m.is_bot for m in mails),
        "entries": len(entries),
        "late_mails": len(late),
        "categories": _split(entries, "section", SECTIONS),
        "types": _split(entries, "type", TYPES),
    }


def _split(entries: list[dict], field: str, names: Sequence[str]) -> dict[str, dict]:
    out = {name: {"entries": 0, "mails": 0} for name in names}
    for e in entries:
        bucket = out.setdefault(e[field], {"entries": 0, "mails": 0})
        bucket["entries"] += 1
        bucket["mails"] += e["mails_this_week"]
    return out


def _summary_counts(entries: list[dict]) -> dict:
    entries = [e for e in entries if e["summary"]]
    sources = Counter(e["summary"]["source"] for e in entries)
    return {
        "llm": sources.get("llm", 0),
        "extractive": sources.get("extractive", 0),
        "fallbacks": sum(1 for e in entries if e["summary"]["note"]),
    }


def _participants(mails: Sequence[MailRow]) -> list[dict]:
    counts = Counter(m.email for m in mails if not m.is_bot)
    names: dict[str, Counter] = {}
    for m in mails:
        if not m.is_bot:
            names.setdefault(m.email, Counter())[m.name or m.email] += 1
    ranked = sorted(counts, key=lambda e: (-counts[e], e))
    return [{"name": names[e].most_common(1)[0][0], "email": e, "mails": counts[e]} for e in ranked]


def _per_day(mails: Sequence[MailRow], period: Period) -> list[dict]:
    days = (period.last_day - period.since.date()).days + 1
    if days > MAX_CHART_DAYS:
        return []
    counts = Counter((m.date or "")[:10] for m in mails)
    first = period.since.date()
    out = []
    for i in range(days):
        day = (first + timedelta(days=i)).isoformat()
        out.append({"date": day, "mails": counts.get(day, 0)})
    return out


def _late_dict(m: MailRow, period: Period, lore_url: str) -> dict:
    if m.date is None:
        reason = "no usable Date header"
    elif m.date < iso(period.since):
        reason = "dated before the period"
    else:
        reason = "dated after the period"
    return {
        "msgid": m.msgid,
        "date": m.date,
        "received": m.received,
        "from": {"name": m.name, "email": m.email},
        "subject": m.subject,
        "link": lore_link(lore_url, m.msgid),
        "entry": entry_key_of(m),
        "reason": reason,
    }
