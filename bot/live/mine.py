"""`/kvmarm mine`: a person's series, latest activity first — per version its review
coverage, the status with evidence, and what waits on them: changes requested, and questions
asked in replies to the latest version after the author's last mail there (a "?" ending a
sentence in the replier's own words)."""

from __future__ import annotations

import re
from collections.abc import Sequence

from bot.links import lore_link
from bot.live.cards import card_facts, load_series
from bot.mrkdwn import escape_mrkdwn
from storage.db import Database
from storage.live import replies_after_author, series_by_authors

_SHORT = {"Reviewed-by": "R-b", "Acked-by": "A-b", "Tested-by": "T-b"}
MAX_SERIES = 10
MAX_VERSIONS = 4  # per series, newest first
DONE = ("applied", "pulled", "superseded", "dropped")
# A question in someone's own words (quotes are already gone): "?" ending a sentence.
_QUESTION_RE = re.compile(r"\?(?:\s|$)")


def version_coverage(version: dict) -> str:
    """ "R-b 5/7 · A-b 2/7" for one version (patches with at least one such trailer)."""
    patches = [p for p in version["patches"] if p["n"] >= 1]
    parts = []
    for kind, short in _SHORT.items():
        n = sum(1 for p in patches if any(t["type"] == kind for t in p["trailers"]))
        if n:
            parts.append(f"{short} {n}/{len(patches)}")
    return " · ".join(parts) or "no reviews"


def mine_lines(db: Database, emails: Sequence[str], lore_url: str) -> list[str]:
    """One mrkdwn paragraph per series (mail text escaped); empty when there are none."""
    out = []
    for series_id in series_by_authors(db, list(emails), MAX_SERIES):
        series = load_series(db, series_id)
        if series is None or not series["versions"]:
            continue
        facts = card_facts(db, series)
        link = lore_link(lore_url, facts.link_msgid)
        title = escape_mrkdwn(facts.title).replace("|", "¦")
        status = facts.status + (f" ({escape_mrkdwn(facts.evidence)})" if facts.evidence else "")
        versions = " · ".join(
            f"v{v['version']}: {version_coverage(v)}"
            for v in reversed(series["versions"][-MAX_VERSIONS:])
        )
        lines = [f"*<{link}|{title}>*", f"{status} · last activity {facts.last_activity}", versions]
        if facts.status == "changes-requested":
            lines.append(":point_right: waits on you: changes were requested")
        latest = series["versions"][-1]
        if latest["status"] not in DONE:
            asked = [q for q in replies_after_author(db, latest["key"], list(emails))
                     if _QUESTION_RE.search(q[3] or "")]  # fmt: skip
            if asked:
                links = ", ".join(
                    f"<{lore_link(lore_url, msgid)}|{escape_mrkdwn(name)} {date[:10]}>"
                    for msgid, name, date, _body in asked[-3:]
                )
                lines.append(f":point_right: waits on you: questions not answered yet ({links})")
        out.append("\n".join(lines))
    return out
