"""Answers to the commands, as plain frozen data built from storage queries.

Every fact comes from the database (trailer ledger, versions, evidence); nothing here asks an
LLM.  Renderers (``render_text`` for the terminal, ``bot.slack.blocks`` for Slack) turn these
into text; they escape, these do not.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime

from bot.commands.grammar import Command
from bot.commands.history import diff_steps
from bot.commands.results import (
    SUMMARY_CHARS,
    Answer,
    EarlierReviews,
    EvidenceInfo,
    Help,
    NoMatch,
    Participant,
    PatchReviews,
    PlainThread,
    PostingReviews,
    ReviewItem,
    Reviews,
    ReviewTally,
    SeriesHistory,
    SeriesThread,
    Status,
    Summarise,
    SummaryNote,
    TargetSummary,
    TrailerInfo,
    UncountedTrailer,
    VersionInfo,
    VersionStep,
    Who,
    WhoReviewed,
)
from bot.config import DEFAULT_LORE_URL
from bot.links import lore_link
from storage import search
from storage.db import Database
from storage.search import REVIEW_KINDS, Target
from storage.views import status_json

# ---- entry point ------------------------------------------------------------------------


@dataclass(frozen=True)
class Sources:
    """What answers need besides the database."""

    lore_url: str = DEFAULT_LORE_URL
    db_path: str = ""
    summarise: Summarise | None = None
    # "Now" for what depends on time (a series idle for 90 days reads "idle since …").
    clock: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))


def answer(db: Database, command: Command, sources: Sources = Sources()) -> Answer:
    """The answer to a parsed command (``digest`` is answered by the digest module)."""
    if command.name == "help":
        return Help()
    if command.name == "status":
        return Status(status_json(db, sources.db_path))
    if command.name == "reviews":
        return answer_reviews(db, command, sources)
    series_only = command.name in ("series", "who reviewed")
    targets = search.find_targets(db, command.query, series_only=series_only)
    if not targets:
        found = search.close_titles(db, command.query, series_only=series_only)
        what = "series" if series_only else "series or thread"
        return NoMatch(command, what, tuple(t.title for t in found))
    best, others = targets[0], tuple(targets[1:])
    result: SeriesHistory | WhoReviewed | SeriesThread | PlainThread
    if command.name == "series":
        result = answer_series(db, best.id, sources, others)
    elif command.name == "who reviewed":
        result = answer_who_reviewed(db, best.id, sources, others)
    elif best.kind == "series":
        result = answer_series_thread(db, best, sources, others)
    else:
        result = answer_plain_thread(db, best, sources, others)
    return replace(result, note=best.note) if best.note else result


def summary_target(result: object) -> Target | None:
    """What a `thread` answer is about, for a slower summary of it (else None)."""
    if isinstance(result, SeriesThread):
        return Target("series", result.series_id, result.title, result.last_date, "answer")
    if isinstance(result, PlainThread):
        return Target("thread", result.root, result.title, result.last_date, "answer")
    return None


def summary_note(db: Database, result: object, summarise: Summarise) -> SummaryNote | None:
    """The follow-up for a `thread` answer: ``summarise``'s text, or None."""
    target = summary_target(result)
    if target is None or not isinstance(result, SeriesThread | PlainThread):
        return None
    summary = summarise(db, target)
    if summary is None:
        return None
    return SummaryNote(target.title, result.link, summary)


# ---- thread -----------------------------------------------------------------------------


def answer_series_thread(
    db: Database, target: Target, sources: Sources, others: tuple[Target, ...] = ()
) -> SeriesThread:
    s = search.series_detail(db, target.id, sources.clock())
    assert s is not None, target
    versions = version_infos(db, s, sources.lore_url)
    latest_raw = _latest(s)
    latest = tuple(v for v in versions if v.key in {r["key"] for r in latest_raw})
    counts = search.mail_counts(db, series_id=s["id"])
    return SeriesThread(
        series_id=s["id"],
        title=s["title"],
        author=Who(s["author"]["name"], s["author"]["email"]),
        link=latest[-1].link,
        versions=versions,
        latest=latest,
        messages=counts["messages"],
        participants=_participants(search.participants(db, series_id=s["id"])),
        first_date=counts["first_date"],
        last_date=counts["last_date"],
        reviews=_tally(latest_raw),
        summary=_summary(db, target, sources, latest_raw),
        b4=f"b4 shazam {latest[-1].key}",
        others=others,
    )


def answer_plain_thread(
    db: Database, target: Target, sources: Sources, others: tuple[Target, ...] = ()
) -> PlainThread:
    root = target.id
    facts = search.message_facts(db, [root]).get(root)
    counts = search.mail_counts(db, thread_root=root)
    summary = None
    if facts is not None:
        summary = _summary_from(db, target, sources, facts["body"], "first mail")
    return PlainThread(
        root=root,
        title=facts["title"] if facts else target.title,
        link=lore_link(sources.lore_url, root),
        author=Who(facts["name"], facts["email"]) if facts else None,
        messages=counts["messages"],
        participants=_participants(search.participants(db, thread_root=root)),
        first_date=counts["first_date"],
        last_date=counts["last_date"],
        series=tuple(search.series_in_thread(db, root)),
        summary=summary,
        b4=f"b4 mbox {root}",
        others=others,
    )


# ---- series -----------------------------------------------------------------------------


def answer_series(
    db: Database, series_id: str, sources: Sources, others: tuple[Target, ...] = ()
) -> SeriesHistory:
    s = search.series_detail(db, series_id, sources.clock())
    assert s is not None, series_id
    infos = {v.key: v for v in version_infos(db, s, sources.lore_url)}
    titles = _patch_titles(db, s)
    steps = []
    for group, change in diff_steps(s["versions"], titles):
        steps.append(
            VersionStep(
                versions=tuple(infos[v["key"]] for v in group),
                change=change,
                review_trailers=sum(_review_count(p) for v in group for p in v["patches"]),
            )
        )
    return SeriesHistory(
        series_id=s["id"],
        title=s["title"],
        author=Who(s["author"]["name"], s["author"]["email"]),
        linked_by=tuple(s["linked_by"]),
        steps=tuple(steps),
        others=others,
    )


# ---- who reviewed -----------------------------------------------------------------------


def answer_who_reviewed(
    db: Database, series_id: str, sources: Sources, others: tuple[Target, ...] = ()
) -> WhoReviewed:
    s = search.series_detail(db, series_id, sources.clock())
    assert s is not None, series_id
    base = sources.lore_url
    infos = {v.key: v for v in version_infos(db, s, base)}
    latest_raw = _latest(s)
    titles = _patch_titles(db, s)
    latest = tuple(
        PostingReviews(
            infos[v["key"]],
            tuple(
                PatchReviews(
                    n=p["n"],
                    title=titles.get(p["msgid"], p["subject"]),
                    msgid=p["msgid"],
                    link=lore_link(base, p["msgid"]),
                    trailers=tuple(_trailer_info(t, base) for t in _reviews_of(p)),
                )
                for p in v["patches"]
            ),
        )
        for v in latest_raw
    )
    latest_keys = [v["key"] for v in latest_raw]
    givers = {t["email"] for v in latest_raw for p in v["patches"] for t in _reviews_of(p)}
    authors = {v["sender"]["email"] for v in latest_raw}
    unresolved = _uncounted(
        [t for v in latest_raw for p in v["patches"] for t in p.get("scoped_trailers", [])], base
    )
    other_address = _other_address(db, latest_raw, base)
    shown = givers | authors | {u.email for u in unresolved} | {u.sender for u in other_address}
    without = [r for r in search.repliers(db, latest_keys) if r["email"] not in shown]
    earlier = tuple(
        EarlierReviews(infos[v["key"]], _names_by_kind(v))
        for v in s["versions"]
        if v["key"] not in latest_keys and _names_by_kind(v)
    )
    return WhoReviewed(
        series_id=s["id"],
        title=s["title"],
        author=Who(s["author"]["name"], s["author"]["email"]),
        latest=latest,
        earlier=earlier,
        without_trailer=tuple(Participant(r["name"], r["email"], r["replies"]) for r in without),
        mismatched=sum(
            1
            for v in latest_raw
            for p in v["patches"]
            for t in p["mismatched_trailers"]
            if t["type"] in REVIEW_KINDS
            and (t["type"], t["email"], t["msgid"]) not in {_key(o) for o in other_address}
        ),
        others=others,
        unresolved=unresolved,
        other_address=other_address,
    )


def _key(u: UncountedTrailer) -> tuple[str, str, str]:
    return (u.kind, u.email, u.msgid)


def _uncounted(trailers: list[dict], base: str) -> tuple[UncountedTrailer, ...]:
    """One line per (kind, person, mail) of trailers shown but not counted."""
    seen: dict[tuple, UncountedTrailer] = {}
    for t in trailers:
        if t["type"] in REVIEW_KINDS:
            key = (t["type"], t["email"], t["msgid"])
            seen.setdefault(
                key,
                UncountedTrailer(
                    t["type"],
                    t["name"],
                    t["email"],
                    t["msgid"],
                    lore_link(base, t["msgid"]),
                    scope=t.get("scope"),
                ),
            )
    return tuple(seen.values())


def _other_address(db: Database, versions: list[dict], base: str) -> tuple[UncountedTrailer, ...]:
    """Mismatched follow-up trailers whose name is the sender's own: one person writing from
    two addresses.  Still not counted (b4's rule), but said so instead of "no trailer"."""
    mismatched = [
        t
        for v in versions
        for p in v["patches"]
        for t in p["mismatched_trailers"]
        if t["type"] in REVIEW_KINDS and t["source"] in ("reply", "cover")
    ]
    facts = search.message_facts(db, sorted({t["msgid"] for t in mismatched}))
    out: dict[tuple, UncountedTrailer] = {}
    for t in mismatched:
        sender = facts.get(t["msgid"])
        if sender is None or not _same_person(
            sender["name"], sender["email"], t["name"], t["email"]
        ):
            continue
        out.setdefault(
            (t["type"], t["email"], t["msgid"]),
            UncountedTrailer(
                t["type"],
                t["name"],
                t["email"],
                t["msgid"],
                lore_link(base, t["msgid"]),
                sender=sender["email"],
            ),
        )
    return tuple(out.values())


def _same_person(sender_name: str, sender_email: str, name: str, email: str) -> bool:
    """The trailer names the sender under another address: the same display name, or (the
    sender showing no name) the same mailbox name ("zhangfei.gao@foxmail.com" giving
    "Zhangfei Gao <zhangfei.gao@linaro.org>")."""
    if sender_name.strip() and sender_name.strip().lower() != sender_email:
        return " ".join(sender_name.casefold().split()) == " ".join(name.casefold().split())
    return bool(email) and sender_email.split("@")[0] == email.split("@")[0]


# ---- reviews <person> -------------------------------------------------------------------

MAX_REVIEW_ITEMS = 15


def answer_reviews(db: Database, command: Command, sources: Sources) -> Answer:
    people = search.find_reviewers(db, command.query)
    if not people:
        return NoMatch(command, "reviewer", ())
    top = people[0]
    same = [p for p in people if p.name.casefold() == top.name.casefold()]
    emails = tuple(p.email for p in same)
    items: dict[tuple, dict] = {}
    for r in search.reviews_by(db, list(emails)):
        item = items.setdefault((r["version_key"], r["kind"], r["msgid"]), {**r, "patches": []})
        item["patches"].append(r["n"])
    counts = search.review_counts(db, list(emails))
    return Reviews(
        person=Who(top.name, top.email),
        emails=emails,
        items=tuple(
            ReviewItem(
                date=i["date"],
                kind=i["kind"],
                series_id=i["series_id"],
                series_title=i["series_title"],
                version=i["version"],
                patches=tuple(sorted(set(i["patches"]))),
                on_cover=i["source"] == "cover" and not i.get("scope"),
                msgid=i["msgid"],
                link=lore_link(sources.lore_url, i["msgid"]),
            )
            for i in list(items.values())[:MAX_REVIEW_ITEMS]
        ),
        given=counts.get("reply", 0) + counts.get("cover", 0),
        collected=counts.get("inline", 0),
        others=tuple(p for p in people if p not in same),
    )


# ---- shared pieces ----------------------------------------------------------------------


def version_infos(db: Database, s: dict, lore_url: str) -> tuple[VersionInfo, ...]:
    """Every version of a series (from ``series_detail``) with its status in words."""
    evidence_ids = [e["msgid"] for v in s["versions"] for e in v["evidence"] if e.get("msgid")]
    names = {k: f["name"] for k, f in search.message_facts(db, evidence_ids).items()}
    return tuple(_version_info(v, names, lore_url) for v in s["versions"])


def _version_info(v: dict, names: dict[str, str], base: str) -> VersionInfo:
    return VersionInfo(
        version=v["version"],
        key=v["key"],
        title=v["title"],
        date=v["date"],
        total=v["total"],
        received=len(v["patches"]),
        category=v["category"],
        tags=tuple(v["tags"]),
        resend=v["resend"],
        status=f"idle since {v['idle_since']}" if v.get("idle_since") else v["status"],
        evidence=tuple(_evidence(v, e, names, base) for e in v["evidence"]),
        link=lore_link(base, v["key"]),
    )


def _evidence(v: dict, e: dict, names: dict[str, str], base: str) -> EvidenceInfo:
    who = names.get(e.get("msgid") or "") or e.get("by") or "someone"
    day = (e.get("date") or "")[:10]
    where, commit = e.get("where"), e.get("commit")
    status, kind = v["status"], e.get("kind") or "applied"
    if kind == "idle":
        text = f"idle: {where or 'no mail for 90 days'}"
    elif kind in ("dropped", "reverted"):
        text = f"{kind} from {where or 'the tree'} by {who}" + (f", {day}" if day else "")
    elif kind != "newer-version" and status in ("dropped", "reverted"):
        text = f"earlier applied to {where or '?'} by {who}" + (f", {day}" if day else "")
    elif status == "superseded":
        text = f"superseded by {where or 'a newer version'}" + (f" ({day})" if day else "")
    elif status == "changes-requested":
        text = f"changes requested: {who}" + (f", {day}" if day else "")
        text += f': "{where}"' if where else ""
    elif where and (where.startswith(("git://", "http")) or "tags/" in where):
        text = f"in a pull request by {who}: {where}" + (f" ({day})" if day else "")
    elif kind == "stable":
        text = f"added to the {where} tree by {who}" + (f", {day}" if day else "")
    else:
        verb = "queued (tentative, may still change)" if kind == "queued" else "applied"
        text = verb + (f" to {where}" if where else "") + f" by {who}"
        text += (f", {day}" if day else "") + (f", commit {commit[:12]}" if commit else "")
    if status == "partially-applied":
        done = sum(1 for p in v["patches"] if p["applied"] or p["pulled"])
        text = f"{done} of {v['total']} patches: {text}"
    msgid = e.get("msgid")
    return EvidenceInfo(text, msgid, lore_link(base, msgid) if msgid else None)


def _latest(s: dict) -> list[dict]:
    """The postings of the highest version (several when one send was split in parts)."""
    top = max(v["version"] for v in s["versions"])
    tops = [v for v in s["versions"] if v["version"] == top]
    last_date = tops[-1]["date"] or ""
    # Only the parts sent together with the last one (a v1 and its RESEND are not parts).
    return [v for v in tops if _same_send(v["date"], last_date)] or tops[-1:]


def _same_send(a: str | None, b: str | None) -> bool:
    return bool(a and b and a[:13] == b[:13])  # same hour


def _reviews_of(patch: dict) -> list[dict]:
    return [t for t in patch["trailers"] if t["type"] in REVIEW_KINDS]


def _review_count(patch: dict) -> int:
    return len(_reviews_of(patch))


def _trailer_info(t: dict, base: str) -> TrailerInfo:
    return TrailerInfo(
        kind=t["type"],
        name=t["name"],
        email=t["email"],
        source=t["source"],
        from_version=t["from_version"],
        msgid=t["msgid"],
        link=lore_link(base, t["msgid"]),
        scope=t.get("scope"),
    )


def _tally(postings: list[dict]) -> tuple[ReviewTally, ...]:
    total = sum(len(v["patches"]) for v in postings)
    out = []
    for kind in REVIEW_KINDS:
        people: dict[str, str] = {}
        patches = 0
        for v in postings:
            for p in v["patches"]:
                given = [t for t in p["trailers"] if t["type"] == kind]
                patches += bool(given)
                for t in given:
                    people.setdefault(t["email"], t["name"] or t["email"])
        if people:
            out.append(ReviewTally(kind, tuple(people.values()), patches, total))
    return tuple(out)


def _names_by_kind(v: dict) -> tuple[tuple[str, tuple[str, ...]], ...]:
    out = []
    for kind in REVIEW_KINDS:
        names: dict[str, str] = {}
        for p in v["patches"]:
            for t in p["trailers"]:
                if t["type"] == kind:
                    names.setdefault(t["email"], t["name"] or t["email"])
        if names:
            out.append((kind, tuple(names.values())))
    return tuple(out)


def _participants(rows: list[dict]) -> tuple[Participant, ...]:
    return tuple(Participant(r["name"], r["email"], r["messages"]) for r in rows)


def _patch_titles(db: Database, s: dict) -> dict[str, str]:
    msgids = [p["msgid"] for v in s["versions"] for p in v["patches"]]
    return {k: f["title"] for k, f in search.message_facts(db, msgids).items()}


def _cover_or_first(postings: list[dict]) -> tuple[str | None, str]:
    """The mail that best says what the latest version is about, and what it is."""
    v = postings[-1]
    label = f"v{v['version']}"
    if v["cover"]:
        return v["cover"], f"{label} cover letter"
    return (v["patches"][0]["msgid"] if v["patches"] else None), f"{label} first patch"


def _summary(
    db: Database, target: Target, sources: Sources, postings: list[dict]
) -> TargetSummary | None:
    msgid, where = _cover_or_first(postings)
    facts = search.message_facts(db, [msgid]).get(msgid) if msgid else None
    if facts is None:
        return None
    return _summary_from(db, target, sources, facts["body"], where)


def _summary_from(
    db: Database, target: Target, sources: Sources, body: str, where: str
) -> TargetSummary | None:
    if sources.summarise is not None and (given := sources.summarise(db, target)) is not None:
        return given
    text = extract_summary(body)
    return TargetSummary(text, f"from the {where}") if text else None


def extract_summary(body: str, limit: int = SUMMARY_CHARS) -> str:
    """The first paragraph(s) of a mail's own words, cut at a sentence end near ``limit``."""
    paragraphs = []
    for block in body.replace("\r", "").split("\n\n"):
        line = " ".join(block.split())
        if not line or _is_boilerplate(line):
            continue
        paragraphs.append(line)
        if sum(len(p) for p in paragraphs) >= limit:
            break
    text = " ".join(paragraphs)
    if len(text) <= limit:
        return text
    cut = text[:limit]
    end = max(cut.rfind(". "), cut.rfind("? "), cut.rfind("! "))
    return cut[: end + 1] if end > limit // 3 else cut.rstrip() + "…"


def _is_boilerplate(line: str) -> bool:
    lowered = line.casefold()
    return (lowered.startswith(("hi", "hello", "dear")) and len(line) < 40) or (
        ":" in line[:25]
        and lowered.split(":", 1)[0].strip()
        in ("signed-off-by", "cc", "reviewed-by", "acked-by", "tested-by", "link", "fixes")
    )
