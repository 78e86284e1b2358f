"""One digest entry per series (or per thread outside any series) active in the period.

Facts are taken as of the end of the period: versions, mail counts and trailers dated after
it are left out; a status whose evidence is dated after the period is kept (it is what we
know now) but each evidence item says ``after_period``, and so does the status when none of
its evidence is dated before the period end (it was decided after the period).
"""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

from bot.digest.collate import collate, mail_kind
from bot.digest.period import Period
from bot.digest.summary import EntryPerson, Facts, Posted, Review, SummaryRequest
from bot.links import lore_link
from storage import digests as store
from storage.db import Database
from storage.digests import MailRow
from storage.messages import iso
from storage.queue import status_as_of

REVIEW_ORDER = ("Reviewed-by", "Acked-by", "Tested-by")
SECTIONS = ("PATCH", "RFC", "PULL", "kvmtool", "kvm-unit-tests", "stable", "Other")
_TAG_SECTIONS = ("kvmtool", "kvm-unit-tests", "stable")
_REPLY_PREFIX_RE = re.compile(r"^(?:\s*(?:re|fwd?|aw)\s*:\s*)+", re.I)
EARLIER_BUDGET = 3000


@dataclass(frozen=True)
class DigestContext:
    """What every entry of one digest needs, loaded once."""

    db: Database
    period: Period
    lang: str
    lore_url: str
    window: frozenset[str]  # Message-IDs dated in the period
    series: dict[str, dict]
    versions: dict[str, list[dict]]
    patches: dict[str, list[dict]]
    trailers: dict[str, list[dict]]
    subjects: dict[str, str]
    names: dict[str, tuple[str, str]]  # evidence msgid → sender

    def link(self, msgid: str) -> str:
        return lore_link(self.lore_url, msgid)


def load_context(
    db: Database,
    period: Period,
    lang: str,
    lore_url: str,
    mails: Sequence[MailRow],
    extra_series: Sequence[str] = (),
) -> DigestContext:
    """``extra_series``: series to build entries for although quiet (the review queue)."""
    series_ids = sorted({m.series_id for m in mails if m.series_id} | set(extra_series))
    versions = store.version_rows(db, series_ids)
    keys = [v["key"] for vs in versions.values() for v in vs]
    evidence = [e["msgid"] for vs in versions.values() for v in vs for e in v["evidence"]]
    return DigestContext(
        db=db,
        period=period,
        lang=lang,
        lore_url=lore_url,
        window=frozenset(m.msgid for m in mails),
        series=store.series_rows(db, series_ids),
        versions=versions,
        patches=store.patch_rows(db, keys),
        trailers=store.review_trailers(db, keys, period.until),
        subjects=store.thread_subjects(db, sorted({m.thread_root for m in mails})),
        names=store.senders(db, evidence),
    )


def entry_key_of(mail: MailRow) -> str:
    return f"series:{mail.series_id}" if mail.series_id else f"thread:{mail.thread_root}"


def group_mails(mails: Sequence[MailRow]) -> dict[str, list[MailRow]]:
    groups: dict[str, list[MailRow]] = defaultdict(list)
    for m in mails:
        groups[entry_key_of(m)].append(m)
    return dict(groups)


def build_entry(
    ctx: DigestContext, key: str, mails: list[MailRow]
) -> tuple[dict, SummaryRequest | None]:
    """The entry of ``key`` and what to summarise (None: no mail this period to summarise —
    a series in the review queue that was quiet)."""
    if key.startswith("series:"):
        return _series_entry(ctx, key, mails)
    return _thread_entry(ctx, key, mails)


# ---- series ----------------------------------------------------------------------------------


def _series_entry(
    ctx: DigestContext, key: str, mails: list[MailRow]
) -> tuple[dict, SummaryRequest | None]:
    sid = key.split(":", 1)[1]
    until, since = iso(ctx.period.until), iso(ctx.period.since)
    every = ctx.versions.get(sid, [])
    versions = [v for v in every if v["date"] is None or v["date"] < until] or every
    current = versions[-1]
    previous = versions[-2] if len(versions) > 1 else None
    history = store.series_mails(ctx.db, sid, ctx.period.until)
    earlier = [m for m in history if (m.date or "") < since]
    trailers = [t for v in versions for t in ctx.trailers.get(v["key"], [])]
    status = _status(ctx, current, ctx.patches.get(current["key"], []))
    section, kind, tags = _section_of(current)
    entry = {
        "kind": "series",
        "key": key,
        "id": sid,
        "title": current["title"],
        "section": section,
        "type": kind,
        "tags": tags,
        "author": _person(ctx.series.get(sid, {}), "author") or _person(current, "sender"),
        "version": _version_ref(ctx, current),
        "previous_version": _version_ref(ctx, previous) if previous else None,
        "versions": [_version_ref(ctx, v) for v in versions],
        "patches": current["total"],
        "first_post": versions[0]["date"],
        "link": ctx.link(current["key"]),
        "status": status,
        "trailers": _patch_trailers(ctx, current),
        "review": {
            **review_coverage(
                ctx.trailers.get(current["key"], []), ctx.patches.get(current["key"], [])
            ),
            "total": current["total"],
        },
        "carried_over": _carried_over(ctx.trailers.get(current["key"], [])),
        "reviews_this_week": [_review_dict(r) for r in _reviews(ctx, versions)],
        "by_bot": False,
        **_activity(ctx, mails, history),
    }
    if not mails:  # in the review queue, quiet this period: nothing to summarise
        return entry, None
    facts = Facts(
        kind="series",
        title=current["title"],
        category=kind,
        posted=tuple(_posted(versions, ctx.period)),
        previous_version=_version_before(versions, since),
        reviews=tuple(_reviews(ctx, versions)),
        status=status["state"],
        status_by=status["evidence"][0]["by_name"] if status["evidence"] else None,
        status_where=status["evidence"][0]["where"] if status["evidence"] else None,
        status_msgid=status["evidence"][0]["msgid"] if status["evidence"] else None,
        status_in_period=any(e["in_period"] for e in status["evidence"]),
        first_post=versions[0]["date"],
        first_version=versions[0]["version"],
        first_author=versions[0]["sender_name"],
        latest_before=_latest_before(versions, since),
        earlier_mails=len(earlier),
        earlier_people=len({m.email for m in earlier if not m.is_bot}),
        earlier_reviews=sum(
            1 for t in trailers if t["source"] in ("reply", "cover") and (t["date"] or "") < since
        ),
        ledger=tuple(_ledger(versions, ctx)),
        status_people=tuple(
            dict.fromkeys(EntryPerson(e["by_name"], e["by"]) for e in status["evidence"])
        ),
    )
    people = _people(history, trailers, ctx.series.get(sid), status["evidence"])
    request = _request(
        ctx,
        key,
        mails,
        _earlier_picks(earlier, versions),
        facts,
        people,
        tuple(sorted({v["version"] for v in every})),
    )
    return entry, request


def _status(ctx: DigestContext, version: dict, patches: list[dict]) -> dict:
    """The version's status with its evidence.  A stored ``idle`` (derivation's view as of
    the end of the data) is read back to what lies under it: idleness depends on time and is
    decided as of the period end (storage/queue.py, bot/digest/model.py)."""
    since, until = iso(ctx.period.since), iso(ctx.period.until)
    state, proofs = version["status"], version["evidence"]
    if state == "idle":
        state = status_as_of(state, proofs, ctx.period.until)
        proofs = [e for e in proofs if e.get("kind") != "idle"]
    evidence = []
    for e in proofs:
        name, email = ctx.names.get(e["msgid"], (e["by"], e["by"]))
        when = e.get("date")
        evidence.append(
            {
                "msgid": e["msgid"],
                "by": email if "@" in email else e["by"],
                "by_name": name,
                "where": e.get("where"),
                "commit": e.get("commit"),
                "date": when,
                "link": ctx.link(e["msgid"]),
                "in_period": bool(when and since <= when < until),
                "after_period": bool(when and when >= until),
            }
        )
    done = [p["n"] for p in patches if p["applied"] or p["pulled"]]
    return {
        "state": state,
        "evidence": evidence,
        "patches_done": done,
        "after_period": decided_after(state, proofs, ctx.period),
    }


def decided_after(state: str, evidence: list[dict], period: Period) -> bool:
    """A decision (applied, superseded, …) none of whose evidence is dated before the period
    end: as of then the version was still undecided (``storage.queue.status_as_of``)."""
    return state != "new" and status_as_of(state, evidence, period.until) == "new"


def _section_of(version: dict) -> tuple[str, str, list[str]]:
    tags = [t for t in version["tags"] if not t.startswith("stable-")]
    kind = version["category"]
    section = next((t for t in _TAG_SECTIONS if t in tags), kind)
    return section, kind, tags


def _version_ref(ctx: DigestContext, v: dict) -> dict:
    return {
        "number": v["version"],
        "key": v["key"],
        "date": v["date"],
        "total": v["total"],
        "resend": bool(v["resend"]),
        "status": v["status"],
        "link": ctx.link(v["key"]),
        "in_period": bool(v["date"] and ctx.period.contains_iso(v["date"])),
    }


def _patch_trailers(ctx: DigestContext, version: dict) -> list[dict]:
    given: dict[int, list[dict]] = defaultdict(list)
    for t in ctx.trailers.get(version["key"], []):
        given[t["n"]].append(
            {
                "type": t["kind"],
                "name": t["name"],
                "email": t["email"],
                "msgid": t["msgid"],
                "source": t["source"],
                "link": ctx.link(t["msgid"]),
                "this_week": t["msgid"] in ctx.window,
            }
        )
    return [
        {
            "n": p["n"],
            "subject": p["subject"],
            "msgid": p["msgid"],
            "link": ctx.link(p["msgid"]),
            "applied": p["applied"],
            "pulled": p["pulled"],
            "trailers": given.get(p["n"], []),
        }
        for p in ctx.patches.get(version["key"], [])
    ]


def _reviews(ctx: DigestContext, versions: list[dict]) -> list[Review]:
    """Trailers given in replies during the period, grouped per reviewer, kind and version."""
    grouped: dict[tuple, tuple[set[int], str, str, bool]] = {}
    for v in versions:
        every = {p["n"] for p in ctx.patches.get(v["key"], [])}
        for t in ctx.trailers.get(v["key"], []):
            if t["source"] not in ("reply", "cover") or t["msgid"] not in ctx.window:
                continue
            k = (t["kind"], t["email"], v["version"], v["key"])
            patches, msgid, name, whole = grouped.get(k, (set(), t["msgid"], t["name"], False))
            patches.add(t["n"])
            # a cover trailer is for the whole version unless its words narrowed it
            on_all = t["source"] == "cover" and (not t.get("scope") or patches >= every)
            grouped[k] = (patches, msgid, name, whole or on_all)
    out = []
    for (kind, email, version, _key), (patches, msgid, name, whole) in grouped.items():
        numbers = () if whole else tuple(sorted(patches))
        out.append(Review(kind, name, email, version, numbers, msgid))
    return sorted(out, key=lambda r: (r.kind, r.name.casefold(), r.version))


def review_coverage(trailers: list[dict], patches: list[dict]) -> dict:
    """Counted Reviewed/Acked/Tested-by on a version's patches (1..N, not the cover): who gave
    which, and which patches have none — the review state shown once per entry."""
    numbers = [p["n"] for p in patches if p["n"] >= 1]
    given: dict[tuple[str, str], tuple[str, set[int]]] = {}
    for t in trailers:
        if t["n"] < 1:
            continue
        _name, ns = given.setdefault((t["kind"], t["email"]), (t["name"], set()))
        ns.add(t["n"])
    reviewed = {n for _name, ns in given.values() for n in ns}
    order = {k: i for i, k in enumerate(REVIEW_ORDER)}
    ranked = sorted(
        given.items(),
        key=lambda item: (order.get(item[0][0], 9), -len(item[1][1]), item[1][0].casefold()),
    )
    by = [
        {"type": kind, "name": name, "email": email, "patches": sorted(ns)}
        for (kind, email), (name, ns) in ranked
    ]
    return {
        "patches": len(numbers),
        "reviewed": sum(1 for n in numbers if n in reviewed),
        "unreviewed": [n for n in numbers if n not in reviewed],
        "by": by,
    }


def _carried_over(trailers: list[dict]) -> int:
    """Patches of a version that came with review trailers from before it was posted."""
    return len({t["n"] for t in trailers if t["n"] >= 1 and t["source"] in ("inline", "carried")})


def _ledger(versions: list[dict], ctx: DigestContext) -> list[Review]:
    """Every review trailer of the versions (in patches as posted, in replies, on covers)."""
    return [
        Review(t["kind"], t["name"], t["email"], v["version"], (t["n"],), t["msgid"])
        for v in versions
        for t in ctx.trailers.get(v["key"], [])
    ]


def _review_dict(r: Review) -> dict:
    return {
        "type": r.kind,
        "name": r.name,
        "email": r.email,
        "version": r.version,
        "patches": list(r.patches) or "all",
        "msgid": r.msgid,
    }


def _posted(versions: list[dict], period: Period) -> list[Posted]:
    return [
        Posted(
            version=v["version"],
            patches=v["total"],
            date=v["date"],
            name=v["sender_name"],
            msgid=v["key"],
            resend=bool(v["resend"]),
        )
        for v in versions
        if v["date"] and period.contains_iso(v["date"])
    ]


def _version_before(versions: list[dict], since: str) -> int | None:
    before = [v for v in versions if v["date"] and v["date"] < since]
    return before[-1]["version"] if before else None


def _latest_before(versions: list[dict], since: str) -> tuple[int, str] | None:
    before = [v for v in versions if v["date"] and v["date"] < since]
    return (before[-1]["version"], before[-1]["date"]) if before else None


def _earlier_picks(earlier: list[MailRow], versions: list[dict]) -> list[MailRow]:
    """The first version's cover (or first patch) and the latest earlier version's."""
    keys = [versions[0]["key"]]
    before = [v for v in versions if v["key"] in {m.msgid for m in earlier}]
    if before and before[-1]["key"] not in keys:
        keys.append(before[-1]["key"])
    return [m for m in earlier if m.msgid in keys]


# ---- threads outside any series -------------------------------------------------------------


def _thread_entry(
    ctx: DigestContext, key: str, mails: list[MailRow]
) -> tuple[dict, SummaryRequest]:
    root = key.split(":", 1)[1]
    since = iso(ctx.period.since)
    history = store.thread_mails(ctx.db, root, ctx.period.until) or mails
    earlier = [m for m in history if (m.date or "") < since]
    first = history[0]
    title = _REPLY_PREFIX_RE.sub("", ctx.subjects.get(root) or first.subject).strip()
    tags = sorted({t for m in history for t in m.tags if not t.startswith("stable-")})
    section = next((t for t in _TAG_SECTIONS if t in tags), "Other")
    starter = next((m for m in history if m.msgid == root), first)
    entry = {
        "kind": "thread",
        "key": key,
        "id": root,
        "title": title,
        "section": section,
        "type": "Other",
        "tags": tags,
        "author": {"name": starter.name, "email": starter.email},
        "version": None,
        "previous_version": None,
        "versions": [],
        "patches": None,
        "first_post": first.date,
        "link": ctx.link(starter.msgid),
        "status": None,
        "trailers": [],
        "review": None,
        "carried_over": 0,
        "reviews_this_week": [],
        "by_bot": starter.is_bot,
        **_activity(ctx, mails, history),
    }
    facts = Facts(
        kind="thread",
        title=title,
        category="Other",
        first_post=first.date,
        first_author=starter.name,
        earlier_mails=len(earlier),
        earlier_people=len({m.email for m in earlier if not m.is_bot}),
    )
    versions = tuple(sorted({m.version for m in history if m.version_explicit}))
    picks = [m for m in earlier if m.msgid == starter.msgid]
    request = _request(ctx, key, mails, picks, facts, _people(history, [], None, []), versions)
    return entry, request


# ---- shared ---------------------------------------------------------------------------------


def _activity(ctx: DigestContext, mails: list[MailRow], history: list[MailRow]) -> dict:
    counts = Counter(m.email for m in mails if not m.is_bot)
    names = _names(mails)
    participants = sorted(counts, key=lambda e: (-counts[e], names[e].casefold(), e))
    return {
        "mails_this_week": len(mails),
        "mails_total": max(len(history), len(mails)),
        "bot_mails": sum(m.is_bot for m in mails),
        "participants": [{"name": names[e], "email": e, "mails": counts[e]} for e in participants],
        "first_mail_this_week": mails[0].date if mails else None,
        "mails": [_mail_dict(ctx, m) for m in mails],
    }


def _mail_dict(ctx: DigestContext, m: MailRow) -> dict:
    return {
        "msgid": m.msgid,
        "date": m.date,
        "from": {"name": m.name, "email": m.email},
        "subject": m.subject,
        "link": ctx.link(m.msgid),
        "kind": mail_kind(m),
        "bot": m.is_bot,
        "received": m.received,
        "received_after_period": bool(m.received and m.received >= iso(ctx.period.until)),
    }


def _names(mails: Sequence[MailRow]) -> dict[str, str]:
    """The display name each address used most in ``mails`` (first seen on ties)."""
    seen: dict[str, Counter] = defaultdict(Counter)
    for m in mails:
        seen[m.email][m.name or m.email] += 1
    return {e: c.most_common(1)[0][0] for e, c in seen.items()}


def _person(row: dict, prefix: str) -> dict | None:
    if not row or not row.get(f"{prefix}_email"):
        return None
    return {"name": row[f"{prefix}_name"], "email": row[f"{prefix}_email"]}


def _people(history, trailers, series: dict | None, evidence) -> tuple[EntryPerson, ...]:
    people = {(m.name, m.email) for m in history if not m.is_bot}
    people |= {(t["name"], t["email"]) for t in trailers}
    people |= {(e["by_name"], e["by"]) for e in evidence}
    if series:
        people.add((series["author_name"], series["author_email"]))
    return tuple(EntryPerson(n, e) for n, e in sorted(people))


def _request(ctx, key, mails, earlier_mails, facts, people, versions) -> SummaryRequest:
    texts = store.bodies(ctx.db, [m.msgid for m in (*earlier_mails, *mails)])
    earlier = collate(earlier_mails, texts, budget=EARLIER_BUDGET)
    this_week = collate(mails, texts, start=len(earlier) + 1)
    return SummaryRequest(
        entry_key=key,
        lang=ctx.lang,
        period_key=ctx.period.key,
        period_label=f"{ctx.period.since.date()} .. {ctx.period.last_day} (UTC)",
        last_msgid=max(mails, key=lambda m: (m.date or "", m.msgid)).msgid,
        facts=facts,
        mails=this_week,
        earlier=earlier,
        earlier_summary=store.earlier_summary(ctx.db, key, ctx.lang, ctx.period.since),
        people=people,
        versions=versions,
    )
