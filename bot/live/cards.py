"""The compact series card (channel subscriptions, lore link unfurls) and one line per event.

Plain Block Kit data; every piece of mail text is escaped (``&``, ``<``, ``>``) so a mail can
neither mention anyone nor make a link.
"""

from __future__ import annotations

from dataclasses import dataclass

from bot.links import lore_link
from bot.live.filters import SeriesView
from bot.mrkdwn import cut_mrkdwn, escape_mrkdwn
from storage.db import Database
from storage.live import Event, series_paths
from storage.search import message_facts, series_detail

SECTION_LIMIT = 3000
_SHORT = {"Reviewed-by": "R-b", "Acked-by": "A-b", "Tested-by": "T-b"}
_STATUS_ICON = {
    "applied": ":white_check_mark:",
    "partially-applied": ":ballot_box_with_check:",
    "pulled": ":truck:",
    "superseded": ":arrows_counterclockwise:",
    "changes-requested": ":repeat:",
    "new": ":new:",
    "dropped": ":x:",
    "reverted": ":leftwards_arrow_with_hook:",
    "idle": ":zzz:",
}


@dataclass(frozen=True, slots=True)
class CardFacts:
    series_id: str
    title: str
    author: str
    version: int
    n_versions: int
    total: int
    coverage: tuple[tuple[str, int], ...]  # ("R-b", patches with one) in display order
    patches: int
    status: str
    evidence: str  # "by Marc Zyngier in next, 2022-02-08" (escaped later)
    last_activity: str | None
    link_msgid: str

    @property
    def shown(self) -> str:
        """What a posted card says that can change (compared before chat.update)."""
        tally = ",".join(f"{k}{n}" for k, n in self.coverage)
        return f"v{self.version}/{self.n_versions} {self.status} {tally} {self.last_activity}"


def load_series(db: Database, series_id: str) -> dict | None:
    return series_detail(db, series_id)


def series_view(db: Database, series: dict) -> SeriesView:
    people = {(series["author"]["name"], series["author"]["email"])}
    titles = [series["title"]]
    msgids: set[str] = set()
    for v in series["versions"]:
        people.add((v["sender"]["name"], v["sender"]["email"]))
        titles.append(v["title"])
        msgids.add(v["key"])
        if v["cover"]:
            msgids.add(v["cover"])
        msgids.update(p["msgid"] for p in v["patches"])
    return SeriesView(
        titles=tuple(dict.fromkeys(titles)),
        people=tuple(sorted(people)),
        paths=frozenset(series_paths(db, series["id"])),
        msgids=frozenset(msgids),
    )


def card_facts(db: Database, series: dict) -> CardFacts:
    latest = series["versions"][-1]
    patches = [p for p in latest["patches"] if p["n"] >= 1]
    coverage = tuple(
        (short, sum(1 for p in patches if any(t["type"] == kind for t in p["trailers"])))
        for kind, short in _SHORT.items()
    )
    return CardFacts(
        series_id=series["id"],
        title=latest["title"] or series["title"],
        author=series["author"]["name"] or series["author"]["email"],
        version=latest["version"],
        n_versions=len(series["versions"]),
        total=latest["total"] or len(patches),
        coverage=tuple((k, n) for k, n in coverage if n),
        patches=len(patches),
        status=latest["status"],
        evidence=_evidence_text(db, latest),
        last_activity=(series["last_date"] or "")[:10] or None,
        link_msgid=latest["cover"] or latest["key"],
    )


def _evidence_text(db: Database, version: dict) -> str:
    wanted = {
        "applied": ("applied", "queued"),
        "partially-applied": ("applied", "queued", "pulled"),
        "pulled": ("pulled", "applied"),
        "changes-requested": ("respin",),
        "superseded": ("newer-version",),
        "dropped": ("dropped",),
        "reverted": ("reverted",),
        "idle": ("idle",),
    }.get(version["status"], ())
    found = [e for e in version["evidence"] if e.get("kind") in wanted]
    if not found:
        return ""
    e = found[0]
    name = message_facts(db, [e["msgid"]]).get(e["msgid"], {}).get("name") or e.get("by", "")
    parts = [f"by {name}" if e.get("kind") not in ("newer-version", "idle") else ""]
    if e.get("where"):
        where = e["where"]
        kind = e.get("kind")
        parts.append(
            f"“{where}”" if kind == "respin" else where if kind == "idle" else f"in {where}"
        )
    if e.get("commit"):
        parts.append(f"commit {e['commit'][:12]}")
    if e.get("date"):
        parts.append(e["date"][:10])
    return ", ".join(p for p in parts if p)


def coverage_text(facts: CardFacts) -> str:
    if not facts.coverage:
        return "no reviews yet"
    return " · ".join(f"{k} {n}/{facts.patches}" for k, n in facts.coverage)


def card_message(facts: CardFacts, lore_url: str, *, note: str | None = None) -> dict:
    """The compact card: title, vN of M, author, reviews per patch, status, last activity."""
    link = lore_link(lore_url, facts.link_msgid)
    title = escape_mrkdwn(facts.title).replace("|", "¦")
    versions = f"v{facts.version} of {_count(facts.n_versions, 'version')}"
    if facts.version != facts.n_versions:  # earlier versions went elsewhere, or RESENDs
        versions = f"v{facts.version} ({_count(facts.n_versions, 'version')} on the list)"
    size = _count(facts.total, "patch") if facts.total else "no patches"
    if facts.total and facts.patches < facts.total:
        size += f" ({facts.patches} on the list)"
    status = f"{_STATUS_ICON.get(facts.status, '')} {facts.status}".strip()
    if facts.evidence:
        status += f" ({escape_mrkdwn(facts.evidence)})"
    lines = [
        f"*<{link}|{title}>*",
        f"{versions} · {size} · by {escape_mrkdwn(facts.author)}",
        f"{coverage_text(facts)} · {status}",
    ]
    if facts.last_activity:
        lines[-1] += f" · last activity {facts.last_activity}"
    if note:
        lines.append(escape_mrkdwn(note))
    text = cut_mrkdwn("\n".join(lines), SECTION_LIMIT)
    fallback = f"{facts.title} — v{facts.version}, {facts.status}"
    return {
        "text": escape_mrkdwn(fallback),
        "blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": text}}],
    }


def event_line(event: Event, lore_url: str) -> str:
    """One line of mrkdwn saying what happened (mail text escaped)."""
    who = escape_mrkdwn(event.actor_name or event.actor_email)
    d = event.detail
    link = f"<{lore_link(lore_url, event.msgid)}|mail>"
    if event.kind in ("new_series", "new_version"):
        what = "new series" if event.kind == "new_series" else "new version"
        resend = " (RESEND)" if d.get("resend") else ""
        size = f", {_count(d['total'], 'patch')}" if d.get("total") else ""
        return f":new: {what}: v{event.version}{resend} by {who}{size} · {link}"
    if event.kind == "review":
        scope = f" “{escape_mrkdwn(d['scope'])}”" if d.get("scope") else ""
        return (
            f":mag: {escape_mrkdwn(d.get('trailer', 'review'))} from {who} on v{event.version} "
            f"{_patches_text(d.get('patches', []), d.get('total') or 0)}{scope} · {link}"
        )
    if event.kind in ("applied", "pulled", "dropped"):
        icon = {"applied": ":white_check_mark:", "pulled": ":truck:"}.get(event.kind, ":x:")
        into = "in" if event.kind == "pulled" else "to"
        where = f" {into} {escape_mrkdwn(d['where'])}" if d.get("where") else ""
        commit = f" (commit {escape_mrkdwn(d['commit'][:12])})" if d.get("commit") else ""
        return f"{icon} v{event.version} {event.kind}{where} by {who}{commit} · {link}"
    if event.kind == "changes_requested":
        said = f": “{escape_mrkdwn(d['where'])}”" if d.get("where") else ""
        return f":repeat: changes requested on v{event.version} — {who}{said} · {link}"
    if event.kind == "report":
        title = escape_mrkdwn(d.get("title"))
        return f":robot_face: {who} reported on v{event.version}: {title} · {link}"
    return f"{escape_mrkdwn(event.kind)} by {who} · {link}"


def event_message(event: Event, lore_url: str, *, title: str | None = None) -> dict:
    line = cut_mrkdwn(event_line(event, lore_url), SECTION_LIMIT)
    if title:
        line = cut_mrkdwn(f"*{escape_mrkdwn(title)}*\n{line}", SECTION_LIMIT)
    return {
        "text": escape_mrkdwn(f"{event.kind.replace('_', ' ')}: {title or ''}".strip(" :")),
        "blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": line}}],
    }


def _patches_text(patches: list[int], total: int) -> str:
    real = [n for n in patches if n >= 1]
    if total and len(real) >= total:
        return f"(all {total} patches)"
    if not real:
        return "(the cover letter)"
    return f"(patch{'es' if len(real) > 1 else ''} {_ranges(real)} of {total or '?'})"


def _ranges(ns: list[int]) -> str:
    out: list[str] = []
    start = prev = ns[0]
    for n in [*ns[1:], None]:
        if n is not None and n == prev + 1:
            prev = n
            continue
        out.append(str(start) if start == prev else f"{start}-{prev}")
        if n is not None:
            start = prev = n
    return ", ".join(out)


def _count(n: int, noun: str) -> str:
    plural = noun + ("es" if noun.endswith("ch") else "s")
    return f"{n} {noun if n == 1 else plural}"
